package daemon_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qubes"
)

// TestRestartAdoptsRunningQubes stops a daemon while qubes run, starts a
// new one on the same data directory, storage and libvirt, and checks that
// it adopted them: Running, and their later stop — through the Admin API
// or behind the daemon's back — fires domain-stopped then domain-shutdown
// and stops their storage. A qube that stopped while no daemon ran is
// Halted and starts again.
func TestRestartAdoptsRunningQubes(t *testing.T) {
	e := newRestartEnv(t)
	hold, d1 := e.hold, e.d1
	call := e.caller(t)

	// killedAway: running at the restart, killed through the new daemon;
	// stoppedAway: running at the restart, destroyed behind its back;
	// stoppedWhileDown: destroyed while no daemon ran; neverStarted.
	const killedAway, stoppedAway, stoppedWhileDown, neverStarted = "adopt0", "adopt1", "adopt2", "adopt3"
	names := []string{killedAway, stoppedAway, stoppedWhileDown, neverStarted}
	defer func() {
		for _, n := range names {
			_ = hold.Destroy(n)
			_ = hold.Undefine(n)
		}
	}()
	for _, n := range names {
		call("admin.vm.Create.StandaloneVM", "dom0", "", "name="+n+" label=red")
		call("admin.vm.property.Set", n, "kernel", "")
		call("admin.vm.property.Set", n, "netvm", "")
	}
	for _, n := range names[:3] {
		call("admin.vm.Start", n, "", "")
	}
	e.stop(t)
	if err := hold.Destroy(stoppedWhileDown); err != nil {
		t.Fatal(err)
	}

	d1.Pool.ResetCalls()
	// the same data directory, pools and libvirt
	d2 := e.restart(t)
	rec := newRecorder(t, d2.App())

	want := map[string]string{killedAway: "Running", stoppedAway: "Running", stoppedWhileDown: "Halted", neverStarted: "Halted"}
	for _, n := range names {
		if got := state(call("admin.vm.List", n, "", "")); got != want[n] {
			t.Errorf("%s after the restart: state %s, want %s", n, got, want[n])
		}
	}

	privateVID := func(name string) string {
		var vid string
		_ = d2.App().Read(func() error {
			q, err := d2.App().Qube(name)
			if err != nil {
				return err
			}
			v, err := d2.Storage().Volume(q, "private")
			vid = v.Spec.VID
			return err
		})
		return vid
	}
	stopEvents := []string{"domain-stopped", "domain-shutdown"}
	// The storage a run left started while no daemon ran is stopped once
	// the pools are up (the reference's app.stop_storage()); the running
	// qubes' is not.
	t.Run("storage of the qubes not running is stopped at start", func(t *testing.T) {
		for guard := time.Now().Add(hangGuard); d1.Pool.Calls("Stop", privateVID(stoppedWhileDown)) == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(guard) {
				t.Fatalf("the private volume of %s, stopped while no daemon ran, was not stopped after the restart", stoppedWhileDown)
			}
		}
		for _, n := range []string{killedAway, stoppedAway} {
			if c := d1.Pool.Calls("Stop", privateVID(n)); c != 0 {
				t.Errorf("the restart stopped the private volume of %s, which runs", n)
			}
		}
	})
	d1.Pool.ResetCalls()

	call("admin.vm.Kill", killedAway, "", "")
	if got := rec.take(killedAway); !slices.Equal(got, stopEvents) {
		t.Errorf("kill of an adopted qube: events %v, want %v", got, stopEvents)
	}
	if n := d1.Pool.Calls("Stop", privateVID(killedAway)); n != 1 {
		t.Errorf("kill of an adopted qube stopped its private volume %d times, want once", n)
	}

	if err := hold.Destroy(stoppedAway); err != nil {
		t.Fatal(err)
	}
	if got := rec.waitFor(t, stoppedAway, "domain-shutdown"); !slices.Equal(got, stopEvents) {
		t.Errorf("an adopted qube stopped behind the daemon: events %v, want %v", got, stopEvents)
	}
	if n := d1.Pool.Calls("Stop", privateVID(stoppedAway)); n != 1 {
		t.Errorf("an adopted qube stopped behind the daemon: its private volume was stopped %d times, want once", n)
	}

	for _, n := range names {
		if got := state(call("admin.vm.List", n, "", "")); got != "Halted" {
			t.Errorf("%s after its stop: state %s, want Halted", n, got)
		}
	}
	// the adopted qubes and the one that stopped unseen start again
	for _, n := range names[:3] {
		call("admin.vm.Start", n, "", "")
		if got := state(call("admin.vm.List", n, "", "")); got != "Running" {
			t.Errorf("%s started after the restart: state %s", n, got)
		}
		call("admin.vm.Kill", n, "", "")
	}
}

func state(listReply string) string {
	for _, f := range strings.Fields(listReply) {
		if s, ok := strings.CutPrefix(f, "state="); ok {
			return s
		}
	}
	return ""
}

// recorder collects the domain-* events fired on each qube, in order.
type recorder struct {
	mu  sync.Mutex
	evs map[string][]string
}

func newRecorder(t *testing.T, app *qubes.App) *recorder {
	r := &recorder{evs: map[string][]string{}}
	unsub := app.Bus().Subscribe("domain-*", events.Observer, func(ev *events.Event) error {
		if q, ok := ev.Subject.(*qubes.Qube); ok {
			r.mu.Lock()
			r.evs[q.Name()] = append(r.evs[q.Name()], ev.Name)
			r.mu.Unlock()
		}
		return nil
	})
	t.Cleanup(unsub)
	return r
}

func (r *recorder) take(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs[name]
	delete(r.evs, name)
	return out
}

// waitFor waits until name's events end with last.
func (r *recorder) waitFor(t *testing.T, name, last string) []string {
	t.Helper()
	for guard := time.Now().Add(hangGuard); time.Now().Before(guard); time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		evs := r.evs[name]
		done := len(evs) > 0 && evs[len(evs)-1] == last
		r.mu.Unlock()
		if done {
			return r.take(name)
		}
	}
	got := r.take(name)
	t.Fatalf("no %s for %s; events: %v", last, name, got)
	return got
}
