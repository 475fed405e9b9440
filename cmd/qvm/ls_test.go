package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/sdk/admin"
)

func TestFlags(t *testing.T) {
	vm := &lsVM{
		VMInfo: admin.VMInfo{Name: "test-vm", Class: "AppVM", State: "Running"},
		props: map[string]admin.Property{
			"updateable": {Value: "True"}, "provides_network": {Value: "False"},
			"debug": {Value: "True"}, "autostart": {Value: "False"},
		},
	}
	// The Python tool's test: AppVM, running, updateable, debug.
	if got := flags(vm); got != "arU---D-" {
		t.Errorf("flags = %q, want arU---D-", got)
	}
	vm.props["virt_mode"] = admin.Property{Value: "hvm"}
	vm.Class, vm.State = "StandaloneVM", "Halted"
	if got := flags(vm); got != "S-U---D-" {
		t.Errorf("flags = %q, want S-U---D-", got)
	}
	vm.Class = "AdminVM"
	if got := flags(vm); got[0] != '0' {
		t.Errorf("flags = %q, want 0 first", got)
	}
	vm.Class, vm.State = "RemoteVM", "Paused"
	if got := flags(vm); got[:2] != "-p" {
		t.Errorf("flags = %q, want -p first", got)
	}
}

func TestSortNumber(t *testing.T) {
	for s, want := range map[string]int64{"12": 12, "50%": 50, "-": 0, "x": 0, "-3": -3} {
		if got := sortNumber(s); got != want {
			t.Errorf("sortNumber(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestSelectVMs(t *testing.T) {
	var all []*lsVM
	for _, n := range []string{"dom0", "debian-13", "debian-13-minimal", "debian-13-xfce", "debian-sid",
		"fedora-41", "fedora-41-minimal", "fedora-41-xfce", "fedora-rawhide"} {
		class := "AppVM"
		if n == "dom0" {
			class = "AdminVM"
		}
		all = append(all, &lsVM{VMInfo: admin.VMInfo{Name: n, Class: class}})
	}
	names := func(vms []*lsVM) string {
		var s []string
		for _, vm := range vms {
			s = append(s, vm.Name)
		}
		return strings.Join(s, " ")
	}
	// The Python tool's wildcard tests.
	for pat, want := range map[string]string{
		"fedora*":        "fedora-41 fedora-41-minimal fedora-41-xfce fedora-rawhide",
		"*minimal":       "debian-13-minimal fedora-41-minimal",
		"????":           "dom0",
		"??????-[rs]*":   "debian-sid fedora-rawhide",
		"??????-[!14s]*": "fedora-rawhide",
	} {
		got, err := selectVMs(all, []string{pat}, nil, true)
		if err != nil || names(got) != want {
			t.Errorf("%q: got %q, %v; want %q", pat, names(got), err, want)
		}
	}
	got, err := selectVMs(all, []string{"dom0", "debian-13", "dom0"}, nil, true)
	if err != nil || names(got) != "dom0 debian-13" {
		t.Errorf("duplicates: %q, %v", names(got), err)
	}
	if _, err := selectVMs(all, []string{"nosuch"}, nil, true); err == nil || err.Error() != "no such domain: 'nosuch'" {
		t.Errorf("unknown qube: %v", err)
	}
	got, _ = selectVMs(all, nil, []string{"fedora-41", "debian-13"}, false)
	if strings.Contains(names(got), "dom0") || strings.Contains(" "+names(got)+" ", " fedora-41 ") || len(got) != 6 {
		t.Errorf("all but excluded and dom0: %q", names(got))
	}
}

func TestParallelBound(t *testing.T) {
	var cur, peak atomic.Int32
	err := parallel(context.Background(), 100, func(ctx context.Context, i int) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		cur.Add(-1)
		return nil
	})
	if err != nil || peak.Load() > maxParallel || peak.Load() < 2 {
		t.Errorf("err %v, peak %d", err, peak.Load())
	}
	boom := fmt.Errorf("boom")
	var ran atomic.Int32
	err = parallel(context.Background(), 1000, func(ctx context.Context, i int) error {
		ran.Add(1)
		if i == 3 {
			return boom
		}
		time.Sleep(time.Millisecond)
		return ctx.Err()
	})
	if err != boom || ran.Load() == 1000 {
		t.Errorf("err %v after %d calls", err, ran.Load())
	}
}

// bigFake answers like qubesd with n qubes, counting calls and the largest
// number of calls in flight.
type bigFake struct {
	n               int
	refuseGetAll    bool
	bulk            bool // answers admin.vm.property.GetAllBulk, as qubesd-go does
	calls, inFlight atomic.Int32
	peak            atomic.Int32
	mu              sync.Mutex
	methods         map[string]int
}

func (f *bigFake) answer(req []byte) []byte {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	f.calls.Add(1)
	header, _, _ := bytes.Cut(req, []byte{0})
	fields := strings.Fields(string(header))
	method, arg, _ := strings.Cut(fields[0], "+")
	dest := fields[3]
	f.mu.Lock()
	f.methods[method]++
	f.mu.Unlock()
	switch method {
	case "admin.vm.List":
		var b strings.Builder
		b.WriteString("0\x00dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n")
		for i := 1; i < f.n; i++ {
			fmt.Fprintf(&b, "vm%04d class=AppVM state=Halted uuid=00000000-0000-0000-0000-%012d\n", i, i)
		}
		return []byte(b.String())
	case "admin.vm.property.GetAllBulk":
		if !f.bulk {
			break // the reference daemon: no such method
		}
		var b strings.Builder
		b.WriteString("0\x00dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n")
		b.WriteString("label default=False type=label black\nname default=True type=str dom0\n\n")
		for i := 1; i < f.n; i++ {
			fmt.Fprintf(&b, "vm%04d class=AppVM state=Halted uuid=00000000-0000-0000-0000-%012d\n", i, i)
			fmt.Fprintf(&b, "label default=False type=label red\ntemplate default=False type=vm debian\n"+
				"netvm default=True type=vm sys-firewall\nname default=False type=str vm%04d\n\n", i)
		}
		return []byte(b.String())
	case "admin.vm.property.GetAll":
		time.Sleep(2 * time.Millisecond) // let calls overlap
		if f.refuseGetAll {
			return nil
		}
		if dest == "dom0" {
			return []byte("0\x00label default=False type=label black\nname default=True type=str dom0\n")
		}
		return []byte("0\x00label default=False type=label red\ntemplate default=False type=vm debian\n" +
			"netvm default=True type=vm sys-firewall\nname default=False type=str " + dest + "\n")
	case "admin.vm.property.Get":
		values := map[string]string{"label": "default=False type=label green", "template": "default=False type=vm debian",
			"netvm": "default=True type=vm "}
		if v, ok := values[arg]; ok && dest != "dom0" {
			return []byte("0\x00" + v)
		}
		return []byte("2\x00QubesNoSuchPropertyError\x00\x00Invalid property '" + arg + "' of " + dest + "\x00")
	}
	return []byte("2\x00ProtocolError\x00\x00no such method: '" + method + "'\x00")
}

func runWith(t *testing.T, socket string, argv ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			if k == admin.SocketEnv {
				return socket
			}
			return ""
		},
	})
	return out.String(), errb.String(), code
}

// TestLsThousandBulk lists 1000 qubes from a daemon with the bulk method:
// three calls (vm.List, quarantine.List, GetAllBulk).
func TestLsThousandBulk(t *testing.T) {
	f := &bigFake{n: 1000, bulk: true, methods: map[string]int{}}
	s, err := startFake(f.answer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	out, errOut, code := runWith(t, s.path, "qvm-ls")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1001 || lines[1000] != "vm0999  Halted   AppVM    red    debian    sys-firewall" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	if f.methods["admin.vm.List"] != 1 || f.methods["admin.vm.property.GetAllBulk"] != 1 || f.calls.Load() != 3 {
		t.Errorf("calls: %v", f.methods)
	}
}

// TestLsThousand lists 1000 qubes from a daemon without the bulk method
// (the reference): one admin.vm.List, the refused quarantine and bulk
// calls, then one GetAll per qube, at most maxParallel at a time.
func TestLsThousand(t *testing.T) {
	f := &bigFake{n: 1000, methods: map[string]int{}}
	s, err := startFake(f.answer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	out, errOut, code := runWith(t, s.path, "qvm-ls")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1001 {
		t.Fatalf("%d lines", len(lines))
	}
	if lines[0] != "NAME    STATE    CLASS    LABEL  TEMPLATE  NETVM" ||
		lines[1] != "dom0    Running  AdminVM  black  -         -" ||
		lines[1000] != "vm0999  Halted   AppVM    red    debian    sys-firewall" {
		t.Errorf("unexpected output:\n%s\n%s\n%s", lines[0], lines[1], lines[1000])
	}
	if f.methods["admin.vm.List"] != 1 || f.methods["admin.vm.property.GetAll"] != 1000 || f.calls.Load() != 1003 {
		t.Errorf("calls: %v", f.methods)
	}
	if p := f.peak.Load(); p > maxParallel || p < 2 {
		t.Errorf("%d calls in flight at most, want 2..%d", p, maxParallel)
	}
}

// TestLsGetAllRefused: an empty reply to GetAll (a qrexec refusal) makes
// qvm-ls ask for the properties it shows one by one, as the Python client.
func TestLsGetAllRefused(t *testing.T) {
	f := &bigFake{n: 3, refuseGetAll: true, methods: map[string]int{}}
	s, err := startFake(f.answer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	out, errOut, code := runWith(t, s.path, "qvm-ls")
	want := "NAME    STATE    CLASS    LABEL  TEMPLATE  NETVM\n" +
		"dom0    Running  AdminVM  -      -         -\n" +
		"vm0001  Halted   AppVM    green  debian    -\n" +
		"vm0002  Halted   AppVM    green  debian    -\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, stderr %q, output\n%s", code, errOut, out)
	}
}

func TestLsNoDaemon(t *testing.T) {
	_, errOut, code := runWith(t, "/nonexistent/qubesd.sock", "qvm-ls")
	if code != 1 || !strings.HasPrefix(errOut, "qvm-ls: error: cannot connect to qubesd at /nonexistent/qubesd.sock") ||
		strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runWith(t, "/nonexistent/qubesd.sock", "qvm", "ls", "--socket", "/other.sock")
	if code != 1 || !strings.Contains(errOut, "/other.sock") {
		t.Errorf("--socket: exit %d, stderr %q", code, errOut)
	}
}
