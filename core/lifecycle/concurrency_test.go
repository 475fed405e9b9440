package lifecycle_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// listStates parses an admin.vm.List reply into name → state.
func listStates(t *testing.T, reply string) map[string]string {
	t.Helper()
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(reply, "\n"), "\n") {
		name, rest, _ := strings.Cut(line, " ")
		for _, f := range strings.Fields(rest) {
			if s, ok := strings.CutPrefix(f, "state="); ok {
				states[name] = s
			}
		}
	}
	return states
}

// TestConcurrentStarts starts 20 qubes at once through the Admin API and
// holds every one inside its storage start; admin.vm.List, property.Get
// and CurrentState must answer while all 20 are held (a start must not
// block the daemon's readers), then every start completes once released.
// Nothing here is timed: the gate proves the overlap.
func TestConcurrentStarts(t *testing.T) {
	const n = 20
	e := startEnv(t)
	names := make([]string, n)
	recs := make([]*recorder, n)
	for i := range names {
		names[i] = fmt.Sprintf("conc%02d", i)
		recs[i] = e.record(t, e.lonelyQube(t, names[i]))
	}

	gate := e.mem.Block("Start", "")
	defer gate.Release() // a failure below must not leave the starts held
	done := make(chan error, n)
	for _, name := range names {
		go func() {
			_, err := e.c.Call(context.Background(), "admin.vm.Start", name, "", nil)
			if err != nil {
				err = fmt.Errorf("starting %s: %w", name, err)
			}
			done <- err
		}()
	}

	// every start reaches its first volume and waits there
	held := map[string]bool{}
	guard := time.After(hangGuard)
	for len(held) < n {
		select {
		case vid := <-gate.Entered():
			held[vid] = true
		case err := <-done:
			t.Fatalf("a start returned while the storage held it: %v", err)
		case <-guard:
			t.Fatalf("only %d of %d starts reached their storage: starts are serialised", len(held), n)
		}
	}

	// the readers answer while all 20 are held
	states := listStates(t, e.call(t, "admin.vm.List", "dom0", "", ""))
	for _, name := range names {
		if states[name] != "Halted" {
			t.Errorf("admin.vm.List while %s's storage starts: state %q, want Halted", name, states[name])
		}
	}
	if states["dom0"] != "Running" {
		t.Errorf("admin.vm.List: dom0's state %q, want Running", states["dom0"])
	}
	if got := e.call(t, "admin.vm.property.Get", names[0], "memory", ""); got != "default=True type=int 400" {
		t.Errorf("admin.vm.property.Get memory during the starts = %q", got)
	}
	if got := e.call(t, "admin.vm.CurrentState", names[n-1], "", ""); got != "mem=0 mem_static_max=0 cputime=0 power_state=Halted" {
		t.Errorf("admin.vm.CurrentState during the starts = %q", got)
	}
	select {
	case err := <-done:
		t.Fatalf("a start returned while the storage held it: %v", err)
	default:
	}

	gate.Release()
	for range n {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	states = listStates(t, e.call(t, "admin.vm.List", "dom0", "", ""))
	for i, name := range names {
		if states[name] != "Running" {
			t.Errorf("%s after its start: state %q, want Running", name, states[name])
		}
		wantEvents(t, name+"'s start events", recs[i].take(), startEvents)
	}

	// and they all stop, each with its own events
	for _, name := range names {
		go func() {
			_, err := e.c.Call(context.Background(), "admin.vm.Kill", name, "", nil)
			if err != nil {
				err = fmt.Errorf("killing %s: %w", name, err)
			}
			done <- err
		}()
	}
	for range n {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	states = listStates(t, e.call(t, "admin.vm.List", "dom0", "", ""))
	for i, name := range names {
		if states[name] != "Halted" {
			t.Errorf("%s after its kill: state %q, want Halted", name, states[name])
		}
		wantEvents(t, name+"'s kill events", recs[i].take(), stopEvents)
	}
}
