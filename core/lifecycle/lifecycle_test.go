package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/daemon"
	"github.com/qubesgo/qubesd/core/daemon/daemontest"
	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/core/vmm"
	"github.com/qubesgo/qubesd/sdk/admin"
)

// env is a daemon on the reference fixture with in-memory pools and
// libvirt's test driver (test:///default, shared by the whole process:
// every test uses qubes of its own names and removes their domains).
type env struct {
	d    *daemon.Daemon
	c    *admin.Client
	mem  *storagetest.MemDriver
	sock string // the admin socket
}

func startEnv(t *testing.T) *env {
	t.Helper()
	d := daemontest.Start(t)
	return &env{d: d.Daemon, c: admin.New(d.Config.Daemon.SocketPath()), mem: d.Pool, sock: d.Config.Daemon.SocketPath()}
}

// newQube creates a StandaloneVM (its volumes are origins: no template
// content needed) with no kernel and no netvm (the fixture's default netvm
// has no volumes in the in-memory pools), and removes its domain at the
// end.
func (e *env) newQube(t *testing.T, name string) *qubes.Qube {
	t.Helper()
	e.call(t, "admin.vm.Create.StandaloneVM", "dom0", "", "name="+name+" label=red")
	e.call(t, "admin.vm.property.Set", name, "kernel", "")
	e.call(t, "admin.vm.property.Set", name, "netvm", "")
	t.Cleanup(func() {
		if conn, err := vmm.Open(vmm.Options{}); err == nil {
			_ = conn.Destroy(name)
			_ = conn.Undefine(name)
			conn.Close()
		}
	})
	var q *qubes.Qube
	_ = e.d.App().Read(func() error { q, _ = e.d.App().Qube(name); return nil })
	return q
}

func (e *env) call(t *testing.T, method, dest, arg, payload string) string {
	t.Helper()
	out, err := e.c.Call(context.Background(), method, dest, arg, []byte(payload))
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, dest, arg, err)
	}
	return string(out)
}

// callErr returns the call's error as "<Type>: <message>" ("" when it
// succeeds).
func (e *env) callErr(method, dest, arg string) string {
	_, err := e.c.Call(context.Background(), method, dest, arg, nil)
	var ae *admin.Error
	if errors.As(err, &ae) {
		return ae.Type + ": " + ae.Message
	}
	return fmt.Sprint(err)
}

// recorder collects the domain-* events of one qube, in firing order.
type recorder struct {
	mu  sync.Mutex
	evs []string
}

func (e *env) record(t *testing.T, q *qubes.Qube) *recorder {
	r := &recorder{}
	unsub := e.d.App().Bus().Subscribe("domain-*", events.Observer, func(ev *events.Event) error {
		if ev.Subject != q {
			return nil
		}
		s := ev.Name
		if v, ok := ev.Arg("reason"); ok {
			s += "(" + fmt.Sprint(v) + ")"
		}
		r.mu.Lock()
		r.evs = append(r.evs, s)
		r.mu.Unlock()
		return nil
	})
	t.Cleanup(unsub)
	return r
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

// waitFor waits until the recorded events end with last.
func (r *recorder) waitFor(t *testing.T, last string) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := len(r.evs)
		done := n > 0 && r.evs[n-1] == last
		r.mu.Unlock()
		if done {
			return r.take()
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := r.take()
	t.Fatalf("no %s; events: %v", last, got)
	return got
}

func (e *env) listState(t *testing.T, name string) string {
	t.Helper()
	out := e.call(t, "admin.vm.List", name, "", "")
	for _, f := range strings.Fields(out) {
		if s, ok := strings.CutPrefix(f, "state="); ok {
			return s
		}
	}
	t.Fatalf("no state in %q", out)
	return ""
}

var startEvents = []string{"domain-pre-start", "domain-pre-spawn", "domain-spawn", "domain-qdb-create",
	"domain-pre-unpaused", "domain-unpaused", "domain-start"}

func TestLifecycle(t *testing.T) {
	e := startEnv(t)
	tests := []struct {
		name string
		run  func(t *testing.T, q *qubes.Qube, r *recorder)
	}{
		{"start then shutdown --wait commits private", func(t *testing.T, q *qubes.Qube, r *recorder) {
			e.call(t, "admin.vm.Start", q.Name(), "", "")
			if got := r.take(); !slices.Equal(got, startEvents) {
				t.Errorf("start events:\n got %v\nwant %v", got, startEvents)
			}
			if s := e.listState(t, q.Name()); s != "Running" {
				t.Errorf("state after start = %s", s)
			}
			db, ok := e.d.QDB().Get(q.Name())
			if !ok {
				t.Fatal("no QubesDB for the running qube")
			}
			for path, want := range map[string]string{"/name": q.Name(), "/type": "StandaloneVM", "/qubes-vm-persistence": "full"} {
				if v, _ := db.Read(path); string(v) != want {
					t.Errorf("qdb %s = %q, want %q", path, v, want)
				}
			}
			// the guest writes to private; the stop commits it
			xml, err := vmmConn(t).XMLDesc(q.Name())
			if err != nil {
				t.Fatal(err)
			}
			priv := diskPath(t, xml, "xvdb")
			if err := os.WriteFile(priv, []byte("written by the guest"), 0o600); err != nil {
				t.Fatal(err)
			}
			// starting a running qube does nothing
			e.call(t, "admin.vm.Start", q.Name(), "", "")
			if got := r.take(); len(got) != 0 {
				t.Errorf("second start fired %v", got)
			}
			e.call(t, "admin.vm.Shutdown", q.Name(), "wait", "")
			want := []string{"domain-pre-shutdown", "domain-stopped", "domain-shutdown"}
			if got := r.take(); !slices.Equal(got, want) {
				t.Errorf("shutdown events:\n got %v\nwant %v", got, want)
			}
			if s := e.listState(t, q.Name()); s != "Halted" {
				t.Errorf("state after shutdown = %s", s)
			}
			if _, ok := e.d.QDB().Get(q.Name()); ok {
				t.Error("QubesDB still open after the stop")
			}
			if n := e.mem.Calls("Stop", ""); n == 0 {
				t.Error("no volume stopped")
			}
			if _, err := os.Stat(priv); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the private volume's run file is still there after the stop (%v)", err)
			}
			// and it starts again
			e.call(t, "admin.vm.Start", q.Name(), "", "")
			r.take()
			e.call(t, "admin.vm.Kill", q.Name(), "", "")
			r.take()
		}},
		{"kill", func(t *testing.T, q *qubes.Qube, r *recorder) {
			e.call(t, "admin.vm.Start", q.Name(), "", "")
			r.take()
			e.call(t, "admin.vm.Kill", q.Name(), "", "")
			want := []string{"domain-stopped", "domain-shutdown"}
			if got := r.take(); !slices.Equal(got, want) {
				t.Errorf("kill events:\n got %v\nwant %v", got, want)
			}
			if s := e.listState(t, q.Name()); s != "Halted" {
				t.Errorf("state after kill = %s", s)
			}
			for _, m := range []string{"admin.vm.Kill", "admin.vm.Shutdown"} {
				if err := e.callErr(m, q.Name(), ""); !strings.Contains(err, "QubesVMNotStartedError") {
					t.Errorf("%s of a halted qube: %v", m, err)
				}
			}
		}},
		{"pause and unpause", func(t *testing.T, q *qubes.Qube, r *recorder) {
			if err := e.callErr("admin.vm.Pause", q.Name(), ""); !strings.Contains(err, "QubesVMNotRunningError") {
				t.Errorf("pause of a halted qube: %v", err)
			}
			e.call(t, "admin.vm.Start", q.Name(), "", "")
			r.take()
			if err := e.callErr("admin.vm.Unpause", q.Name(), ""); !strings.Contains(err, "QubesVMNotPausedError") {
				t.Errorf("unpause of a running qube: %v", err)
			}
			e.call(t, "admin.vm.Pause", q.Name(), "", "")
			if got, want := r.waitFor(t, "domain-paused"), []string{"domain-pre-paused", "domain-paused"}; !slices.Equal(got, want) {
				t.Errorf("pause events: got %v, want %v", got, want)
			}
			if s := e.listState(t, q.Name()); s != "Paused" {
				t.Errorf("state after pause = %s", s)
			}
			// libvirt's figures: the test driver's domain has the qube's
			// 400 MiB and counts CPU time from the host's clock
			got := e.call(t, "admin.vm.CurrentState", q.Name(), "", "")
			var mem, maxMem, cpu uint64
			var power string
			if _, err := fmt.Sscanf(got, "mem=%d mem_static_max=%d cputime=%d power_state=%s", &mem, &maxMem, &cpu, &power); err != nil ||
				mem != 409600 || maxMem != 409600 || cpu == 0 || power != "Paused" {
				t.Errorf("CurrentState = %q (%v), want 409600 KiB, a CPU time, Paused", got, err)
			}
			if err := e.callErr("admin.vm.Shutdown", q.Name(), ""); !strings.Contains(err, "QubesVMNotRunningError") {
				t.Errorf("shutdown of a paused qube without force: %v", err)
			}
			r.take()
			e.call(t, "admin.vm.Unpause", q.Name(), "", "")
			time.Sleep(50 * time.Millisecond) // a second domain-unpaused from libvirt's event would land here
			if got, want := r.take(), []string{"domain-pre-unpaused", "domain-unpaused"}; !slices.Equal(got, want) {
				t.Errorf("unpause events: got %v, want %v", got, want)
			}
			e.call(t, "admin.vm.Pause", q.Name(), "", "")
			r.waitFor(t, "domain-paused")
			e.call(t, "admin.vm.Shutdown", q.Name(), "force+wait", "")
			if got, want := r.take(), []string{"domain-pre-shutdown", "domain-stopped", "domain-shutdown"}; !slices.Equal(got, want) {
				t.Errorf("forced shutdown of a paused qube: got %v, want %v", got, want)
			}
		}},
		{"failed storage start undoes everything", func(t *testing.T, q *qubes.Qube, r *recorder) {
			var vid string
			_ = e.d.App().Read(func() error {
				v, err := e.d.Storage().Volume(q, "private")
				vid = v.Spec.VID
				return err
			})
			e.mem.Fail("Start", vid, errors.New("disk on fire"))
			defer e.mem.Fail("Start", vid, nil)
			e.mem.ResetCalls()
			err := e.callErr("admin.vm.Start", q.Name(), "")
			if !strings.HasPrefix(err, "StoragePoolException: starting volume private") || !strings.Contains(err, "disk on fire") {
				t.Errorf("start error = %v", err)
			}
			got := r.take()
			if len(got) != 2 || got[0] != "domain-pre-start" || !strings.HasPrefix(got[1], "domain-start-failed(starting volume private") {
				t.Errorf("failed start events: %v", got)
			}
			if n := e.mem.Calls("Stop", ""); n != 1 { // root was started, then stopped
				t.Errorf("volumes stopped after the failed start: %d, want 1 (root)", n)
			}
			if _, err := vmmConn(t).Lookup(q.Name()); !errors.Is(err, vmm.ErrNoDomain) {
				t.Errorf("a domain is left after the failed start: %v", err)
			}
			if s := e.listState(t, q.Name()); s != "Halted" {
				t.Errorf("state = %s", s)
			}
			if got := e.call(t, "admin.vm.CurrentState", q.Name(), "", ""); got != "mem=0 mem_static_max=0 cputime=0 power_state=Halted" {
				t.Errorf("CurrentState = %q", got)
			}
		}},
		{"shutdown argument", func(t *testing.T, q *qubes.Qube, r *recorder) {
			if err := e.callErr("admin.vm.Shutdown", q.Name(), "now"); !strings.Contains(err, "Argument must match: force, wait") {
				t.Errorf("shutdown now: %v", err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := e.newQube(t, fmt.Sprintf("lc%d", i))
			tt.run(t, q, e.record(t, q))
		})
	}
	// dom0 is always Running
	if got := e.call(t, "admin.vm.CurrentState", "dom0", "", ""); got != "mem=0 mem_static_max=0 cputime=0 power_state=Running" {
		t.Errorf("dom0 CurrentState = %q", got)
	}
}

func vmmConn(t *testing.T) *vmm.Conn {
	t.Helper()
	c, err := vmm.Open(vmm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// diskPath finds the source of the disk with target dev in a domain XML.
func diskPath(t *testing.T, xml, dev string) string {
	t.Helper()
	i := strings.Index(xml, "<target dev='"+dev+"'")
	if i < 0 {
		t.Fatalf("no disk %s in %s", dev, xml)
	}
	j := strings.LastIndex(xml[:i], "<source file='")
	if j < 0 {
		t.Fatalf("no source for %s in %s", dev, xml)
	}
	rest := xml[j+len("<source file='"):]
	return rest[:strings.IndexByte(rest, '\'')]
}
