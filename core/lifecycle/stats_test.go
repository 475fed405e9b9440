package lifecycle_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/vmm"
)

// readFrame reads one NUL-framed Admin API frame: "1" subject event
// (key value)* "" or "2" type "" message.
func readFrame(t *testing.T, r *bufio.Reader) []string {
	t.Helper()
	var parts []string
	for {
		s, err := r.ReadString(0)
		if err != nil {
			t.Fatalf("reading a frame after %q: %v", parts, err)
		}
		s = strings.TrimSuffix(s, "\x00")
		parts = append(parts, s)
		switch {
		case parts[0] == "2" && len(parts) == 4:
			return parts
		case parts[0] == "1" && len(parts) >= 3 && s == "" && len(parts)%2 == 0:
			return parts
		}
	}
}

func openStats(t *testing.T, sock, dest string) (*bufio.Reader, func()) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("admin.vm.Stats+ dom0 name " + dest + "\x00")); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.UnixConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return bufio.NewReader(c), func() { c.Close() }
}

func TestStatsStream(t *testing.T) {
	e := startEnv(t)
	q := e.newQube(t, "stats1")
	halted := e.newQube(t, "stats2")

	r, done := openStats(t, e.sock, halted.Name())
	if got := readFrame(t, r); strings.Join(got, "|") != "2|QubesVMNotRunningError||Domain not running (either powered off or paused): 'stats2'" {
		t.Errorf("stats of a halted qube: %q", got)
	}
	done()

	e.call(t, "admin.vm.Start", q.Name(), "", "")
	defer e.call(t, "admin.vm.Kill", q.Name(), "", "")
	for _, dest := range []string{"dom0", q.Name()} {
		r, done := openStats(t, e.sock, dest)
		if got := readFrame(t, r); strings.Join(got, "|") != "1||connection-established|" {
			t.Fatalf("%s: first frame %q", dest, got)
		}
		// the first sample comes at once; dom0's lists every running qube
		var frame []string
		for frame == nil || frame[1] != q.Name() {
			frame = readFrame(t, r)
			if frame[0] != "1" || frame[2] != "vm-stats" {
				t.Fatalf("%s: frame %q", dest, frame)
			}
		}
		keys := []string{}
		kv := map[string]string{}
		for i := 3; i+1 < len(frame); i += 2 {
			keys = append(keys, frame[i])
			kv[frame[i]] = frame[i+1]
		}
		if want := "memory_kb memory_assigned_total memory_assigned_usable memory_with_swap_used cpu_time cpu_usage online_vcpus"; strings.Join(keys, " ") != want {
			t.Errorf("%s: keys %v, want %s", dest, keys, want)
		}
		if kv["memory_kb"] != "409600" || kv["memory_assigned_usable"] != "409600" || kv["online_vcpus"] != "2" || kv["cpu_usage"] != "0" {
			t.Errorf("%s: first sample %v", dest, kv)
		}
		done()
	}
}

func TestConsole(t *testing.T) {
	e := startEnv(t)
	q := e.newQube(t, "cons")
	if err := e.callErr("admin.vm.Console", q.Name(), ""); err != "QubesVMNotRunningError: Domain not running (either powered off or paused): 'cons'" {
		t.Errorf("console of a halted qube: %s", err)
	}
	e.call(t, "admin.vm.Start", q.Name(), "", "")
	defer e.call(t, "admin.vm.Kill", q.Name(), "", "")
	// the test template's domain has no pty console
	if err := e.callErr("admin.vm.Console", q.Name(), ""); !strings.HasPrefix(err, "QubesException: cons has no console terminal: its console is written to ") {
		t.Errorf("console of a qube without a pty: %s", err)
	}
}

// dom0's CurrentState has libvirt's figures where dom0 is a domain
// (Domain-0, as on Xen), zeros where it is not.
func TestDom0CurrentState(t *testing.T) {
	e := startEnv(t)
	if got := e.call(t, "admin.vm.CurrentState", "dom0", "", ""); got != "mem=0 mem_static_max=0 cputime=0 power_state=Running" {
		t.Errorf("dom0 without a domain: %q", got)
	}
	conn := vmmConn(t)
	r, err := vmm.NewRenderer(vmm.FlavourTest, "")
	if err != nil {
		t.Fatal(err)
	}
	x, err := r.Render(vmm.DomainConfig{Name: "Domain-0", MemoryMiB: 1024, VCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Define("Domain-0", x); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Destroy("Domain-0")
		_ = conn.Undefine("Domain-0")
	})
	if err := conn.CreatePaused("Domain-0"); err != nil {
		t.Fatal(err)
	}
	var mem, maxMem, cpu uint64
	var power string
	got := e.call(t, "admin.vm.CurrentState", "dom0", "", "")
	if _, err := fmt.Sscanf(got, "mem=%d mem_static_max=%d cputime=%d power_state=%s", &mem, &maxMem, &cpu, &power); err != nil ||
		mem != 1024*1024 || maxMem != 1024*1024 || power != "Running" {
		t.Errorf("dom0 with a Domain-0 domain: %q (%v), want 1048576 KiB and Running", got, err)
	}
}
