package lifecycle

import (
	"context"
	"testing"

	"github.com/qubesgo/qubesd/core/qubes/qubestest"
)

// A removed qube's start lock does not stay behind: a system that creates
// and removes disposables all day would otherwise grow without bound.
func TestForgetDropsTheStartLock(t *testing.T) {
	app, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	m := New(Options{App: app})
	defer m.Close()
	for _, name := range []string{"disp1", "disp2", "disp3"} {
		unlock, err := m.Lock(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		m.Forget(name, "", false)
		unlock()
	}
	m.mu.Lock()
	n := len(m.locks)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d start locks left after their qubes were removed", n)
	}
	// a qube of the same name gets a working lock again
	unlock, err := m.Lock(context.Background(), "disp1")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}
