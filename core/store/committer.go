package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Committer makes model changes durable with group commit.
//
// The model counts its changes in a version number. A caller that changed
// the model calls Commit with the version its change produced; Commit
// returns once a save of a snapshot at least that recent is durable. One
// goroutine does the saving: at most one save runs at a time, and every
// caller that arrives while a save is running is covered by the next single
// save, so a burst of N changes costs about two saves, not N.
type Committer struct {
	store    *Store
	snapshot func() (*Document, uint64)
	log      hclog.Logger

	kick chan struct{} // wakes the saver; buffered, capacity 1
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the saver has returned

	mu      sync.Mutex
	durable uint64    // the newest version known to be on disk
	started uint64    // number of saves started
	waiters []*waiter // callers waiting for a save
	closed  bool

	saves     atomic.Uint64
	closeOnce sync.Once
}

type waiter struct {
	version uint64
	epoch   uint64 // c.started when the waiter arrived
	ch      chan error
}

// NewCommitter returns a Committer saving to s. snapshot is called (from the
// Committer's goroutine, never concurrently with itself) to take a
// consistent copy of the model: it returns the Document and the model
// version it reflects. log may be nil. Call Close when done.
func NewCommitter(s *Store, snapshot func() (*Document, uint64), log hclog.Logger) *Committer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c := &Committer{
		store:    s,
		snapshot: snapshot,
		log:      log,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go c.run()
	return c
}

// Commit blocks until a save of a snapshot whose version is at least
// version is durable, and returns nil. If the save that should have covered
// version fails, Commit returns its error; a later Commit tries again. If
// ctx ends first, Commit returns ctx.Err() (a save already running still
// completes). After Close, Commit returns ErrClosed.
//
// version must be a version the model has reached (the one the caller's
// change produced); a version newer than the snapshot taken for the caller
// fails with an error rather than waiting for ever.
func (c *Committer) Commit(ctx context.Context, version uint64) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if version <= c.durable {
		c.mu.Unlock()
		return nil
	}
	w := &waiter{version: version, epoch: c.started, ch: make(chan error, 1)}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()

	select {
	case c.kick <- struct{}{}:
	default: // the saver is already due to look at the waiters
	}

	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		for i, o := range c.waiters {
			if o == w {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Durable returns the newest model version known to be saved.
func (c *Committer) Durable() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.durable
}

// Saves returns the number of saves attempted so far (for tests and
// metrics).
func (c *Committer) Saves() uint64 { return c.saves.Load() }

// Close waits for a running save to finish and stops the Committer. Callers
// still waiting get ErrClosed. It does not close the Store.
func (c *Committer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
	})
	<-c.done
	return nil
}

// run is the saver goroutine.
func (c *Committer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			c.fail(ErrClosed)
			return
		case <-c.kick:
		}
		for c.saveOnce() {
			select {
			case <-c.stop:
				c.fail(ErrClosed)
				return
			default:
			}
		}
	}
}

// fail resolves every waiter with err.
func (c *Committer) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waiters {
		w.ch <- err
	}
	c.waiters = nil
}

// saveOnce runs one save if anybody waits, resolves the waiters it covers,
// and reports whether it ran (so that the caller looks again: waiters that
// arrived during the save need another one).
func (c *Committer) saveOnce() bool {
	c.mu.Lock()
	if len(c.waiters) == 0 {
		c.mu.Unlock()
		return false
	}
	c.started++
	epoch := c.started
	c.mu.Unlock()

	doc, version := c.snapshot()
	err := c.store.Save(doc)
	c.saves.Add(1)
	if err != nil {
		c.log.Error("saving qubes.xml failed", "version", version, "error", err)
		err = fmt.Errorf("commit model version %d: %w", version, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && version > c.durable {
		c.durable = version
	}
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		switch {
		case w.version <= version:
			// This save covered the waiter's change.
			w.ch <- err
		case w.epoch < epoch:
			// The waiter arrived before the snapshot was taken, yet the
			// snapshot does not have its version: a caller bug, or the
			// save failed.
			if err != nil {
				w.ch <- err
			} else {
				w.ch <- fmt.Errorf("commit: version %d was requested but the model is only at version %d", w.version, version)
			}
		default:
			keep = append(keep, w)
		}
	}
	clear(c.waiters[len(keep):])
	c.waiters = keep
	return true
}
