package lifecycle_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qubes"
)

// chainRecorder collects "qube:event" for a set of qubes, in firing order.
type chainRecorder struct {
	mu  sync.Mutex
	evs []string
}

func (e *env) recordAll(t *testing.T, qs ...*qubes.Qube) *chainRecorder {
	r := &chainRecorder{}
	unsub := e.d.App().Bus().Subscribe("domain-*", events.Observer, func(ev *events.Event) error {
		q, ok := ev.Subject.(*qubes.Qube)
		if !ok || !slices.Contains(qs, q) {
			return nil
		}
		if ev.Name != "domain-start" && ev.Name != "domain-pre-start" && ev.Name != "domain-start-failed" &&
			ev.Name != "domain-shutdown" && ev.Name != "domain-pre-shutdown" {
			return nil
		}
		r.mu.Lock()
		r.evs = append(r.evs, q.Name()+":"+ev.Name)
		r.mu.Unlock()
		return nil
	})
	t.Cleanup(unsub)
	return r
}

func (r *chainRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

// netChain makes net1 <- net2 <- client: two network providers and a
// client of the second.
func (e *env) netChain(t *testing.T, prefix string) (net1, net2, client *qubes.Qube) {
	t.Helper()
	net1 = e.newQube(t, prefix+"net1")
	e.call(t, "admin.vm.property.Set", net1.Name(), "provides_network", "True")
	net2 = e.newQube(t, prefix+"net2")
	e.call(t, "admin.vm.property.Set", net2.Name(), "provides_network", "True")
	e.call(t, "admin.vm.property.Set", net2.Name(), "netvm", net1.Name())
	client = e.newQube(t, prefix+"client")
	e.call(t, "admin.vm.property.Set", client.Name(), "netvm", net2.Name())
	return net1, net2, client
}

func TestNetVMChain(t *testing.T) {
	e := startEnv(t)

	t.Run("the chain starts upstream first and stops downstream first", func(t *testing.T) {
		net1, net2, client := e.netChain(t, "ch")
		r := e.recordAll(t, net1, net2, client)
		e.call(t, "admin.vm.Start", client.Name(), "", "")
		want := []string{
			"chclient:domain-pre-start",
			"chnet2:domain-pre-start",
			"chnet1:domain-pre-start", "chnet1:domain-start",
			"chnet2:domain-start",
			"chclient:domain-start",
		}
		if got := r.take(); !slices.Equal(got, want) {
			t.Errorf("start of the client:\n got %v\nwant %v", got, want)
		}
		for _, q := range []*qubes.Qube{net1, net2, client} {
			if s := e.listState(t, q.Name()); s != "Running" {
				t.Errorf("%s is %s", q.Name(), s)
			}
		}
		// the client's domain has its uplink to net2
		x, err := vmmConn(t).XMLDesc(client.Name())
		if err != nil {
			t.Fatal(err)
		}
		var mac string
		_ = e.d.App().Read(func() error { v, _ := client.Get("mac"); mac = fmt.Sprint(v); return nil })
		if !strings.Contains(x, "<mac address='"+mac+"'/>") {
			t.Errorf("the client's domain has no interface with its MAC %s:\n%s", mac, x)
		}

		// a netvm with running clients refuses a plain shutdown
		err2 := e.callErr("admin.vm.Shutdown", net2.Name(), "")
		if want := "QubesVMInUseError: There are other VMs connected to this VM: chclient"; err2 != want {
			t.Errorf("shutdown of a netvm in use: %q, want %q", err2, want)
		}
		if s := e.listState(t, net2.Name()); s != "Running" {
			t.Errorf("net2 is %s after the refused shutdown", s)
		}
		r.take()
		// shut down in dependency order, and a forced one goes through
		e.call(t, "admin.vm.Shutdown", client.Name(), "wait", "")
		e.call(t, "admin.vm.Shutdown", net2.Name(), "wait", "")
		e.call(t, "admin.vm.Shutdown", net1.Name(), "force+wait", "")
		if got := r.take(); !slices.Contains(got, "chnet1:domain-shutdown") || !slices.Contains(got, "chnet2:domain-shutdown") {
			t.Errorf("shutdown events: %v", got)
		}
	})

	t.Run("a netvm that fails to start fails its client's start", func(t *testing.T) {
		net1, net2, client := e.netChain(t, "cf")
		var vid string
		_ = e.d.App().Read(func() error {
			v, err := e.d.Storage().Volume(net1, "root")
			vid = v.Spec.VID
			return err
		})
		e.mem.Fail("Start", vid, errors.New("disk on fire"))
		defer e.mem.Fail("Start", vid, nil)
		r := e.recordAll(t, net1, net2, client)
		err := e.callErr("admin.vm.Start", client.Name(), "")
		if !strings.HasPrefix(err, "QubesException: Cannot start cfclient: its netvm cfnet2 failed to start: Cannot start cfnet2: its netvm cfnet1 failed to start: starting volume root of cfnet1") ||
			!strings.Contains(err, "disk on fire") {
			t.Errorf("start error: %s", err)
		}
		got := r.take()
		var failed []string
		for _, ev := range got {
			if strings.HasSuffix(ev, ":domain-start-failed") {
				failed = append(failed, strings.TrimSuffix(ev, ":domain-start-failed"))
			}
		}
		if want := []string{"cfnet1", "cfnet2", "cfclient"}; !slices.Equal(failed, want) {
			t.Errorf("domain-start-failed fired for %v, want %v (events %v)", failed, want, got)
		}
		for _, q := range []*qubes.Qube{net1, net2, client} {
			if s := e.listState(t, q.Name()); s != "Halted" {
				t.Errorf("%s is %s after the failed start", q.Name(), s)
			}
		}
	})

	t.Run("netvm changes while running", func(t *testing.T) {
		net1, net2, client := e.netChain(t, "rn")
		e.call(t, "admin.vm.Start", client.Name(), "", "")
		other := e.newQube(t, "rnother")
		e.call(t, "admin.vm.property.Set", other.Name(), "provides_network", "True")

		// a halted netvm is refused, and the property keeps its value
		_, serr := e.c.Call(t.Context(), "admin.vm.property.Set", client.Name(), "netvm", []byte(other.Name()))
		if serr == nil || !strings.Contains(serr.Error(), "Cannot dynamically attach to stopped NetVM: 'rnother'") {
			t.Errorf("netvm set to a halted qube: %v", serr)
		}
		if got := e.call(t, "admin.vm.property.Get", client.Name(), "netvm", ""); !strings.HasSuffix(got, " rnnet2") {
			t.Errorf("netvm after the refusal: %q", got)
		}
		// a running one is accepted (the test driver cannot attach: the
		// definition of the next start has the new uplink)
		e.call(t, "admin.vm.property.Set", client.Name(), "netvm", net1.Name())
		if got := e.call(t, "admin.vm.property.Get", client.Name(), "netvm", ""); !strings.HasSuffix(got, " rnnet1") {
			t.Errorf("netvm after the change: %q", got)
		}
		// net2 has no client left: it shuts down without force
		e.call(t, "admin.vm.Shutdown", net2.Name(), "wait", "")
		// a loop is refused by the model
		if _, err := e.c.Call(t.Context(), "admin.vm.property.Set", net1.Name(), "netvm", []byte(client.Name())); err == nil {
			t.Error("netvm loop accepted")
		}
		e.call(t, "admin.vm.Kill", client.Name(), "", "")
		e.call(t, "admin.vm.Kill", net1.Name(), "", "")
	})
}

func TestSuspendResume(t *testing.T) {
	e := startEnv(t)
	q := e.newQube(t, "susp")
	r := e.record(t, q)
	if err := e.callErr("admin.vm.Suspend", q.Name(), ""); err != "QubesVMNotRunningError: Domain not running (either powered off or paused): 'susp'" {
		t.Errorf("suspend of a halted qube: %s", err)
	}
	if err := e.callErr("admin.vm.Resume", q.Name(), ""); err != "QubesVMNotPausedError: Domain is not paused: 'susp'" {
		t.Errorf("resume of a halted qube: %s", err)
	}
	e.call(t, "admin.vm.Start", q.Name(), "", "")
	r.take()
	// the test driver has no suspend to RAM: a plain pause, as the reference
	e.call(t, "admin.vm.Suspend", q.Name(), "", "")
	if got, want := r.waitFor(t, "domain-paused"), []string{"domain-pre-paused", "domain-paused"}; !slices.Equal(got, want) {
		t.Errorf("suspend events: %v, want %v", got, want)
	}
	if s := e.listState(t, q.Name()); s != "Paused" {
		t.Errorf("state after suspend: %s", s)
	}
	e.call(t, "admin.vm.Resume", q.Name(), "", "")
	if got, want := r.take(), []string{"domain-pre-unpaused", "domain-unpaused"}; !slices.Equal(got, want) {
		t.Errorf("resume events: %v, want %v", got, want)
	}
	if s := e.listState(t, q.Name()); s != "Running" {
		t.Errorf("state after resume: %s", s)
	}
	e.call(t, "admin.vm.Kill", q.Name(), "", "")
}
