package storagetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// Test knobs of MemDriver: injected errors, call counts and gates. A knob
// names a method ("Create", "ImportBegin", ...; the pool.Driver method
// names) and a vid; the vid "" matches every call of the method (pool
// calls such as Usage have the vid "").

type callKey struct{ method, vid string }

// Fail makes every later call of method on vid ("" = any) fail with err
// before it does anything; a nil err removes the failure.
func (d *MemDriver) Fail(method, vid string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fails == nil {
		d.fails = map[callKey]error{}
	}
	if err == nil {
		delete(d.fails, callKey{method, vid})
		return
	}
	d.fails[callKey{method, vid}] = err
}

// FailNext makes the next call of method on vid ("" = any) fail with err,
// once.
func (d *MemDriver) FailNext(method, vid string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failNext == nil {
		d.failNext = map[callKey]error{}
	}
	d.failNext[callKey{method, vid}] = err
}

// Calls returns how many times method was called on vid ("" = on any
// volume), failed calls included.
func (d *MemDriver) Calls(method, vid string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[callKey{method, vid}]
}

// ResetCalls sets every call count back to zero.
func (d *MemDriver) ResetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
}

// SetOffline makes every call on the pool called name fail with
// pool.ErrUnavailable (true) or work again (false).
func (d *MemDriver) SetOffline(name string, offline bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.offline == nil {
		d.offline = map[string]bool{}
	}
	d.offline[name] = offline
}

// SetUsage makes Usage of the pool called name report u, whatever its
// volumes hold. A zero u goes back to the computed usage.
func (d *MemDriver) SetUsage(name string, u pool.Usage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.usage == nil {
		d.usage = map[string]pool.Usage{}
	}
	if u.Size == 0 && u.Usage == 0 && u.Details == nil {
		delete(d.usage, name)
		return
	}
	d.usage[name] = u
}

// Gate holds calls until released.
type Gate struct {
	entered chan string
	release chan struct{}
	once    sync.Once
}

// Entered receives the vid of each call that reached the gate, as it
// arrives (up to 64 unread).
func (g *Gate) Entered() <-chan string { return g.entered }

// Release lets every held call, and every later one, through.
func (g *Gate) Release() { g.once.Do(func() { close(g.release) }) }

// Block makes calls of method on vid ("" = any) wait at a gate until it is
// released (or their context ends), after announcing themselves on
// Entered. Calls arriving after Release pass, still announced. Block
// replaces an earlier gate on the same method and vid.
func (d *MemDriver) Block(method, vid string) *Gate {
	g := &Gate{entered: make(chan string, 64), release: make(chan struct{})}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gates == nil {
		d.gates = map[callKey]*Gate{}
	}
	d.gates[callKey{method, vid}] = g
	return g
}

// enter is the start of every driver call: it counts it, holds it at a
// gate, and returns the injected failure or the pool's unavailability.
func (d *MemDriver) enter(ctx context.Context, method, poolName, vid string) error {
	d.mu.Lock()
	if d.calls == nil {
		d.calls = map[callKey]int{}
	}
	d.calls[callKey{method, ""}]++
	if vid != "" {
		d.calls[callKey{method, vid}]++
	}
	g := d.gates[callKey{method, vid}]
	if g == nil {
		g = d.gates[callKey{method, ""}]
	}
	var err error
	for _, k := range []callKey{{method, vid}, {method, ""}} {
		if e, ok := d.failNext[k]; ok && err == nil {
			err = e
			delete(d.failNext, k)
		}
	}
	if err == nil {
		err = d.fails[callKey{method, vid}]
	}
	if err == nil {
		err = d.fails[callKey{method, ""}]
	}
	offline := poolName != "" && d.offline[poolName]
	d.mu.Unlock()

	if g != nil {
		select {
		case g.entered <- vid:
		default:
		}
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	if offline {
		return pool.Errorf(pool.ErrUnavailable, "pool %s: storage offline", poolName)
	}
	return nil
}

// Drivers serves drivers by name: a storage.Drivers for tests. A name
// without a driver is an unavailable driver.
type Drivers map[string]pool.Driver

// DriverNames lists the drivers, sorted.
func (ds Drivers) DriverNames() []string { return slices.Sorted(maps.Keys(ds)) }

// PoolDriver returns the driver called name.
func (ds Drivers) PoolDriver(name string) (pool.Driver, error) {
	if d, ok := ds[name]; ok && d != nil {
		return d, nil
	}
	return nil, pool.Errorf(pool.ErrUnavailable, "%s", fmt.Sprintf("no pool driver %q is running", name))
}
