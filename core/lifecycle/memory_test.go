package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/lifecycle"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

// memManager is a Manager on the daemon's model whose host has free bytes
// of free memory.
func (e *env) memManager(t *testing.T, free uint64) *lifecycle.Manager {
	t.Helper()
	var m *lifecycle.Manager
	ready := make(chan struct{})
	conn, err := vmm.Open(vmm.Options{OnEvent: func(ev vmm.Event) { <-ready; m.HandleEvent(ev) }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := vmm.NewRenderer(vmm.FlavourTest, "")
	if err != nil {
		t.Fatal(err)
	}
	m = lifecycle.New(lifecycle.Options{App: e.d.App(), Storage: e.d.Storage(), Conn: conn, Renderer: r,
		FreeMemory: func() (uint64, error) { return free, nil }})
	close(ready)
	t.Cleanup(func() {
		m.Close()
		_ = conn.Close()
	})
	return m
}

func TestMemoryCheck(t *testing.T) {
	e := startEnv(t)
	const mib = 1 << 20
	// a qube of 400 MiB and 2 vCPUs (the fixture's defaults) asks for
	// 400 + 4 + 2×1.5 MiB, plus 400×8 KiB of page tables (not pv)
	const need = 400*mib + 4*mib + 3*mib + 400*8192

	t.Run("refused when the host has too little", func(t *testing.T) {
		q := e.newQube(t, "memlow")
		r := e.record(t, q)
		m := e.memManager(t, need-1)
		err := m.Start(context.Background(), q)
		if !errors.Is(err, qerr.Match(qerr.MemoryError)) || !strings.HasPrefix(err.Error(), "Not enough memory to start domain 'memlow': it needs 411 MiB, the host has 410 MiB free") {
			t.Fatalf("start: %v", err)
		}
		got := r.take()
		if len(got) != 2 || got[0] != "domain-pre-start" || !strings.HasPrefix(got[1], "domain-start-failed(Not enough memory") {
			t.Errorf("events: %v", got)
		}
		if s := m.PowerState(q); s != "Halted" {
			t.Errorf("state: %s", s)
		}
	})

	t.Run("a start in flight holds its memory until its domain exists", func(t *testing.T) {
		a, b := e.newQube(t, "memfirst"), e.newQube(t, "memsecond")
		m := e.memManager(t, need+need/2) // room for one, not two
		var vid string
		_ = e.d.App().Read(func() error {
			v, err := e.d.Storage().Volume(a, "root")
			vid = v.Spec.VID
			return err
		})
		gate := e.mem.Block("Start", vid)
		done := make(chan error, 1)
		go func() { done <- m.Start(context.Background(), a) }()
		<-gate.Entered() // a passed the check and is starting its storage
		if err := m.Start(context.Background(), b); !errors.Is(err, qerr.Match(qerr.MemoryError)) ||
			!strings.Contains(err.Error(), "410 MiB of it held by other qubes being started") {
			t.Errorf("second start while the first holds its memory: %v", err)
		}
		gate.Release()
		if err := <-done; err != nil {
			t.Fatalf("first start: %v", err)
		}
		// the first domain exists: its reservation is gone
		if err := m.Start(context.Background(), b); err != nil {
			t.Errorf("second start after the first: %v", err)
		}
		for _, q := range []*qubes.Qube{a, b} {
			if err := m.Kill(context.Background(), q); err != nil {
				t.Errorf("kill %s: %v", q.Name(), err)
			}
		}
	})
}
