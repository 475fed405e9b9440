package qubes

import (
	"sync"
	"sync/atomic"

	"github.com/qubesgo/qubesd/core/qerr"
)

// Dispatches let code outside the daemon's goroutines — an extension
// plugin's calls back into the core — act on the model while the core waits
// for that extension inside a Read or Write.
//
// The core runs event handlers with the model locked. When a handler is an
// extension in another process, the extension may call the core back (set a
// tag, read a property) before it answers. Those calls arrive on other
// goroutines; taking the lock there would deadlock, since the lock's holder
// is waiting for the very answer. So the firing side opens a dispatch around
// the wait (BeginDispatch), hands its id to the extension, and the callback
// side runs its work under that id (InDispatch): without locking, because
// the holder is blocked until the extension answers, and one callback at a
// time. A callback without a live dispatch id takes the lock as usual.

type dispatch struct {
	write bool       // the holder has the write lock
	mu    sync.Mutex // callbacks of one dispatch run one at a time
}

type dispatches struct {
	next atomic.Uint64
	mu   sync.Mutex
	live map[uint64]*dispatch
}

// BeginDispatch opens a dispatch for a wait on another process, made while
// the caller holds the model's lock (write: the write lock). It returns the
// id to hand over and a function that closes the dispatch; callbacks that
// arrive after it closes are refused.
func (a *App) BeginDispatch(write bool) (id uint64, end func()) {
	d := &a.dispatches
	id = d.next.Add(1)
	d.mu.Lock()
	if d.live == nil {
		d.live = map[uint64]*dispatch{}
	}
	d.live[id] = &dispatch{write: write}
	d.mu.Unlock()
	return id, func() {
		d.mu.Lock()
		delete(d.live, id)
		d.mu.Unlock()
	}
}

// InDispatch runs fn on the model on behalf of dispatch id: inside the lock
// its opener holds when the dispatch is live, else (id 0) under a lock of
// its own — the write lock when write is true. A write inside a read-only
// dispatch, or under an id that is no longer live, is refused: the
// extension is answering too late or out of turn. It returns the model
// version after fn for writes made under a lock of its own (0 otherwise,
// the opener's Write accounts for changes made inside its dispatch).
func (a *App) InDispatch(id uint64, write bool, fn func() error) (uint64, error) {
	if id == 0 {
		if write {
			return a.Write(fn)
		}
		return 0, a.Read(fn)
	}
	a.dispatches.mu.Lock()
	d, ok := a.dispatches.live[id]
	a.dispatches.mu.Unlock()
	if !ok {
		return 0, qerr.New(qerr.Exception, "event dispatch %d is over: a callback must be made while handling the event", id)
	}
	if write && !d.write {
		return 0, qerr.New(qerr.PermissionDenied, "this event is delivered for reading only: the model cannot be changed while handling it")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return 0, fn()
}
