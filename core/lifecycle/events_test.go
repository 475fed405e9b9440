package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/lifecycle"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

// libvirt's events arrive late, twice or never (spec core-model §4.3,
// DESIGN §3.4): these tests put a feed between libvirt and a Manager that
// delivers each event once, twice or not at all, and check that the
// domain-* events still fire exactly once and the run still ends.

// hangGuard bounds every wait, so that a bug fails a test instead of
// hanging it; no test asserts on time.
const hangGuard = 30 * time.Second

// feed sits between libvirt (vmm.Options.OnEvent) and a Manager: it hands
// each translated event to Manager.HandleEvent as many times as copies
// says (0: the event is lost), and records every event it was given.
type feed struct {
	mu      sync.Mutex
	m       *lifecycle.Manager
	copies  int
	seen    []vmm.Event
	changed chan struct{} // closed and replaced on every event
}

func newFeed() *feed { return &feed{copies: 1, changed: make(chan struct{})} }

func (f *feed) onEvent(ev vmm.Event) {
	f.mu.Lock()
	m, n := f.m, f.copies
	f.mu.Unlock()
	for range n {
		if m != nil {
			m.HandleEvent(ev)
		}
	}
	f.mu.Lock()
	f.seen = append(f.seen, ev)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// deliver sets how many times each later event reaches the Manager.
func (f *feed) deliver(copies int) {
	f.mu.Lock()
	f.copies = copies
	f.mu.Unlock()
}

// mark is the number of events seen so far, for wait.
func (f *feed) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// wait returns once an event of kind for domain, seen after mark, has
// been handled (delivered or dropped).
func (f *feed) wait(t *testing.T, mark int, domain string, kind vmm.EventKind) {
	t.Helper()
	guard := time.After(hangGuard)
	for {
		f.mu.Lock()
		for _, ev := range f.seen[mark:] {
			if ev.Domain == domain && ev.Kind == kind {
				f.mu.Unlock()
				return
			}
		}
		ch, seen := f.changed, slices.Clone(f.seen[mark:])
		f.mu.Unlock()
		select {
		case <-ch:
		case <-guard:
			t.Fatalf("libvirt sent no %s event for %s; events since: %v", kind, domain, seen)
		}
	}
}

// manager builds a Manager on the daemon's model and storage, fed
// libvirt's events through f. Its runs are its own: the daemon's manager
// ignores the domains this one starts.
func (e *env) manager(t *testing.T, stopTimeout time.Duration) (*lifecycle.Manager, *feed) {
	t.Helper()
	f := newFeed()
	conn, err := vmm.Open(vmm.Options{OnEvent: f.onEvent})
	if err != nil {
		t.Fatal(err)
	}
	r, err := vmm.NewRenderer(vmm.FlavourTest, "")
	if err != nil {
		t.Fatal(err)
	}
	m := lifecycle.New(lifecycle.Options{App: e.d.App(), Storage: e.d.Storage(), Conn: conn, Renderer: r, StopTimeout: stopTimeout})
	f.mu.Lock()
	f.m = m
	f.mu.Unlock()
	t.Cleanup(func() {
		_ = conn.Close()
		m.Close()
	})
	return m, f
}

// startSettled starts q and waits until libvirt's events of the start
// (the resumed event of its resume comes last) have been handled.
func startSettled(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube) {
	t.Helper()
	mk := f.mark()
	if err := m.Start(context.Background(), q); err != nil {
		t.Fatalf("starting %s: %v", q.Name(), err)
	}
	f.wait(t, mk, q.Name(), vmm.EventResumed)
}

func wantEvents(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// stopCalls counts the storage stops of q's private volume.
func (e *env) stopCalls(t *testing.T, q *qubes.Qube) int {
	t.Helper()
	var vid string
	_ = e.d.App().Read(func() error {
		v, err := e.d.Storage().Volume(q, "private")
		vid = v.Spec.VID
		return err
	})
	return e.mem.Calls("Stop", vid)
}

// lonelyQube is a new qube without a netvm: these tests are about one
// qube's events, not its network chain.
func (e *env) lonelyQube(t *testing.T, name string) *qubes.Qube {
	t.Helper()
	q := e.newQube(t, name)
	e.call(t, "admin.vm.property.Set", name, "netvm", "")
	return q
}

var stopEvents = []string{"domain-stopped", "domain-shutdown"}

func TestDuplicatedEvents(t *testing.T) {
	e := startEnv(t)
	tests := []struct {
		name string
		run  func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder)
	}{
		{"start then kill", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			wantEvents(t, "start events", r.take(), startEvents)
			stops := e.stopCalls(t, q)
			mk := f.mark()
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			f.wait(t, mk, q.Name(), vmm.EventStopped)
			wantEvents(t, "kill events", r.take(), stopEvents)
			if n := e.stopCalls(t, q) - stops; n != 1 {
				t.Errorf("the private volume was stopped %d times, want once", n)
			}
		}},
		{"shutdown --wait", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			r.take()
			mk := f.mark()
			if err := m.Shutdown(context.Background(), q, false, true, 0); err != nil {
				t.Fatal(err)
			}
			f.wait(t, mk, q.Name(), vmm.EventStopped)
			wantEvents(t, "shutdown events", r.take(), []string{"domain-pre-shutdown", "domain-stopped", "domain-shutdown"})
		}},
		{"a stopped event repeated after the next start", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			mk := f.mark()
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			f.wait(t, mk, q.Name(), vmm.EventStopped)
			startSettled(t, m, f, q)
			r.take()
			// the previous run's stop, delivered again late (spec §4.3: a
			// stop is handled only when libvirt has the domain stopped)
			m.HandleEvent(vmm.Event{Domain: q.Name(), UUID: q.UUID(), Kind: vmm.EventStopped, Reason: vmm.StopDestroyed, Detail: string(vmm.StopDestroyed)})
			m.Close() // waits for any stop handling the event started
			if got := r.take(); len(got) != 0 {
				t.Errorf("a stale stopped event fired %v on the running qube", got)
			}
			if s := m.PowerState(q); s != "Running" {
				t.Errorf("state after a stale stopped event = %s, want Running", s)
			}
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			wantEvents(t, "kill events", r.take(), stopEvents)
		}},
		{"pause then unpause", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			r.take()
			mk := f.mark()
			if err := m.Pause(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			f.wait(t, mk, q.Name(), vmm.EventSuspended)
			wantEvents(t, "pause events", r.take(), []string{"domain-pre-paused", "domain-paused"})
			mk = f.mark()
			if err := m.Unpause(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			f.wait(t, mk, q.Name(), vmm.EventResumed)
			wantEvents(t, "unpause events", r.take(), []string{"domain-pre-unpaused", "domain-unpaused"})
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			wantEvents(t, "kill events", r.take(), stopEvents)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := e.lonelyQube(t, fmt.Sprintf("dup%d", i))
			r := e.record(t, q)
			m, f := e.manager(t, 0)
			f.deliver(2)
			tt.run(t, m, f, q, r)
			m.Close() // waits for the stop handling still running
			if extra := r.take(); len(extra) != 0 {
				t.Errorf("events fired after the last step: %v", extra)
			}
		})
	}
}

func TestMissingEvents(t *testing.T) {
	e := startEnv(t)
	// destroyBehind kills q's domain through a connection of its own, as
	// if it died while its events were lost.
	destroyBehind := func(t *testing.T, f *feed, q *qubes.Qube) {
		t.Helper()
		mk := f.mark()
		if err := vmmConn(t).Destroy(q.Name()); err != nil {
			t.Fatal(err)
		}
		f.wait(t, mk, q.Name(), vmm.EventStopped) // seen by the feed, dropped
	}
	tests := []struct {
		name string
		run  func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder)
	}{
		{"kill without a stopped event", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			r.take()
			stops := e.stopCalls(t, q)
			f.deliver(0)
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatalf("kill without libvirt's stopped event: %v", err)
			}
			wantEvents(t, "kill events", r.take(), stopEvents)
			if n := e.stopCalls(t, q) - stops; n != 1 {
				t.Errorf("the private volume was stopped %d times, want once", n)
			}
			if s := m.PowerState(q); s != "Halted" {
				t.Errorf("state after kill = %s", s)
			}
		}},
		{"shutdown --wait without a stopped event", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			r.take()
			f.deliver(0)
			if err := m.Shutdown(context.Background(), q, false, true, 10*time.Millisecond); err != nil {
				t.Fatalf("shutdown --wait without libvirt's stopped event: %v", err)
			}
			wantEvents(t, "shutdown events", r.take(), []string{"domain-pre-shutdown", "domain-stopped", "domain-shutdown"})
		}},
		{"stop missed while disconnected, synthesised at reconnect", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			r.take()
			stops := e.stopCalls(t, q)
			f.deliver(0)
			destroyBehind(t, f, q)
			if got := r.take(); len(got) != 0 {
				t.Fatalf("events fired for a stop that was lost: %v", got)
			}
			// what core/vmm delivers after reconnecting (translator.reconcile)
			m.HandleEvent(vmm.Event{Domain: q.Name(), UUID: q.UUID(), Kind: vmm.EventStopped,
				Reason: vmm.StopLost, Detail: string(vmm.StopLost), Synthetic: true})
			wantEvents(t, "events of the synthesised stop", r.waitFor(t, "domain-shutdown"), stopEvents)
			if n := e.stopCalls(t, q) - stops; n != 1 {
				t.Errorf("the private volume was stopped %d times, want once", n)
			}
			// libvirt's own stopped event, late: nothing more
			m.HandleEvent(vmm.Event{Domain: q.Name(), UUID: q.UUID(), Kind: vmm.EventStopped, Reason: vmm.StopDestroyed, Detail: string(vmm.StopDestroyed)})
			if s := m.PowerState(q); s != "Halted" {
				t.Errorf("state after the stop = %s", s)
			}
		}},
		{"stop missed, then started again", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			startSettled(t, m, f, q)
			r.take()
			f.deliver(0)
			destroyBehind(t, f, q)
			f.deliver(1)
			startSettled(t, m, f, q)
			wantEvents(t, "events of the start after a lost stop", r.take(), append(slices.Clone(stopEvents), startEvents...))
			if s := m.PowerState(q); s != "Running" {
				t.Errorf("state after the new start = %s", s)
			}
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			wantEvents(t, "kill events", r.take(), stopEvents)
		}},
		{"the start's own events lost, a later pause still fires domain-paused", func(t *testing.T, m *lifecycle.Manager, f *feed, q *qubes.Qube, r *recorder) {
			f.deliver(0)
			startSettled(t, m, f, q)
			wantEvents(t, "start events", r.take(), startEvents)
			f.deliver(1)
			mk := f.mark()
			if err := m.Pause(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			f.wait(t, mk, q.Name(), vmm.EventSuspended)
			wantEvents(t, "pause events", r.take(), []string{"domain-pre-paused", "domain-paused"})
			if err := m.Kill(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			wantEvents(t, "kill events", r.take(), stopEvents)
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := e.lonelyQube(t, fmt.Sprintf("miss%d", i))
			r := e.record(t, q)
			// Kill and a failed start wait this long for libvirt's stopped
			// event before looking at the domain themselves
			m, f := e.manager(t, 10*time.Millisecond)
			tt.run(t, m, f, q, r)
			m.Close()
			if extra := r.take(); len(extra) != 0 {
				t.Errorf("events fired after the last step: %v", extra)
			}
		})
	}
}
