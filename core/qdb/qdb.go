// Package qdb holds the QubesDB content the daemon keeps for each running
// qube: the per-qube configuration database (path → value) that the
// reference daemon writes into the domain's qubesdb-daemon and that the
// qube's agents read (/name, /qubes-ip, /qubes-service/<name>, ...; see
// spec/core-model.md §4.7 and spec/storage-extensions-memory-backup.md).
//
// Lifecycle. A qube's DB exists only while the qube runs. The lifecycle
// (core/vmm, a later issue) opens it with Registry.Open when the qube
// starts, fills the keys of spec/core-model.md §4.7, fires
// domain-qdb-create so that extensions add theirs, and pushes the content
// to the real QubesDB daemon of the domain, then keeps it in step through
// DB.Mirror; it drops the DB with Registry.Close when the qube has
// stopped. dom0 always runs, so the daemon opens its DB at start.
// Extensions write through the host.v1 service (core/pluginhost's
// HostService QdbWrite and QdbRemove), which refuses a qube without an
// open DB as not running. This package does not talk to a real qubesdb.
//
// Why Mirror and nothing more: the push to the domain needs the content
// at one instant and, from then on, every change in the order it was made
// (a subtree removal followed by writes into it, as the firewall push of
// spec/storage-extensions-memory-backup.md §3.6 does, must not be
// reordered). Mirror hands out both atomically; a snapshot alone would
// force polling, a change feed alone would race with the initial copy.
// There is no read-side watch of what the VM writes (the block devices'
// /qubes-block-devices, /features-request): that content arrives from the
// domain and belongs to the lifecycle issue's connection to it.
//
// Paths and values are checked as QubesDB checks them (see path.go): an
// error is a *qerr.Error of kind QubesValueError saying what was wrong and
// what is allowed.
package qdb

import (
	"slices"
	"strings"
	"sync"

	"github.com/qubesgo/qubesd/core/qerr"
)

// Entry is one path and its value.
type Entry struct {
	Path  string
	Value []byte
}

// Change is one modification of a DB, as a mirror receives it. A write
// carries the new value; a removal has Removed set and Path is the path
// given to Remove: an entry, or a subtree ending in "/" (one QubesDB rm of
// a directory).
type Change struct {
	Path    string
	Value   []byte
	Removed bool
}

type mirror struct {
	id uint64
	fn func(Change)
}

// DB is the QubesDB content of one running qube. It is safe for
// concurrent use. Values are copied in and out: a caller never shares a
// slice with the DB.
type DB struct {
	qube string

	mu      sync.RWMutex
	entries map[string][]byte
	mirrors []mirror
	nextID  uint64
	closed  bool
}

func newDB(qube string) *DB { return &DB{qube: qube, entries: map[string][]byte{}} }

// Qube returns the name of the qube the DB belongs to.
func (db *DB) Qube() string { return db.qube }

// NotRunning is the error for a qube that has no QubesDB because it does
// not run (kind QubesVMNotRunningError).
func NotRunning(qube string) *qerr.Error {
	return qerr.New(qerr.VMNotRunning, "qube %s is not running: its QubesDB exists only while it runs", qube)
}

// Write sets path to value, replacing any value it had. The path names an
// entry (no trailing "/"); see path.go for what is allowed. On a DB whose
// qube has stopped it fails with NotRunning.
func (db *DB) Write(path string, value []byte) error {
	if err := checkPath(path, false); err != nil {
		return err
	}
	if err := checkValue(path, value); err != nil {
		return err
	}
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return NotRunning(db.qube)
	}
	db.entries[path] = v
	db.notify(Change{Path: path, Value: v})
	return nil
}

// Read returns a copy of the value at path; ok is false when there is no
// such entry (an invalid path never has one).
func (db *DB) Read(path string) (value []byte, ok bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	v, ok := db.entries[path]
	if !ok {
		return nil, false
	}
	return slices.Clone(v), true
}

// Remove removes the entry at path, or, when path ends in "/", every entry
// under it ("/" empties the DB), as QubesDB's rm does. Removing what is not
// there is not an error (the reference's Python binding ignores ENOENT
// too). On a DB whose qube has stopped it fails with NotRunning.
func (db *DB) Remove(path string) error {
	if err := checkPath(path, true); err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return NotRunning(db.qube)
	}
	removed := false
	if strings.HasSuffix(path, "/") {
		for p := range db.entries {
			if strings.HasPrefix(p, path) {
				delete(db.entries, p)
				removed = true
			}
		}
	} else if _, ok := db.entries[path]; ok {
		delete(db.entries, path)
		removed = true
	}
	if removed { // QubesDB fires no watch when nothing was removed
		db.notify(Change{Path: path, Removed: true})
	}
	return nil
}

// List returns the paths that start with prefix, sorted bytewise (the
// order of QubesDB's list). The prefix is a plain string prefix, as in
// QubesDB: "/qubes-service/" lists that directory, "/qubes-" matches
// every path starting so, "" lists everything.
func (db *DB) List(prefix string) []string {
	db.mu.RLock()
	out := make([]string, 0, len(db.entries))
	for p := range db.entries {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	db.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Mirror returns the DB's content, sorted by path, and from then on calls
// fn with every change, in the order the changes were made, until stop is
// called or the qube's DB is closed. The snapshot and the start of the
// feed are atomic: no change is missed or seen twice.
//
// fn runs while the DB is locked, so that changes reach it in order: it
// must be quick, must not block on the domain (queue the change and push
// it from another goroutine — a hung qubesdb must never stall the daemon)
// and must not call back into this DB. It must not modify Change.Value.
func (db *DB) Mirror(fn func(Change)) (snapshot []Entry, stop func()) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, func() {}
	}
	snapshot = make([]Entry, 0, len(db.entries))
	for p, v := range db.entries {
		snapshot = append(snapshot, Entry{Path: p, Value: slices.Clone(v)})
	}
	slices.SortFunc(snapshot, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	db.nextID++
	id := db.nextID
	db.mirrors = append(db.mirrors, mirror{id: id, fn: fn})
	return snapshot, func() {
		db.mu.Lock()
		defer db.mu.Unlock()
		db.mirrors = slices.DeleteFunc(db.mirrors, func(m mirror) bool { return m.id == id })
	}
}

// notify hands c to the mirrors; db.mu is held for writing.
func (db *DB) notify(c Change) {
	for _, m := range db.mirrors {
		m.fn(c)
	}
}

// close ends the DB: its content and mirrors are dropped and later writes
// fail with NotRunning, so that a caller still holding the DB of a qube
// that stopped cannot write into the void.
func (db *DB) close() {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.closed = true
	db.entries = map[string][]byte{}
	db.mirrors = nil
}

// Registry holds the DB of every running qube, by qube name. The zero
// value is ready to use; it is safe for concurrent use.
type Registry struct {
	mu  sync.Mutex
	dbs map[string]*DB
}

// Open returns the DB of qube, creating an empty one if the qube has none
// (the qube is starting). Opening an open DB returns it unchanged.
func (r *Registry) Open(qube string) *DB {
	r.mu.Lock()
	defer r.mu.Unlock()
	if db, ok := r.dbs[qube]; ok {
		return db
	}
	if r.dbs == nil {
		r.dbs = map[string]*DB{}
	}
	db := newDB(qube)
	r.dbs[qube] = db
	return db
}

// Get returns the DB of qube; ok is false when the qube has none (it does
// not run).
func (r *Registry) Get(qube string) (db *DB, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	db, ok = r.dbs[qube]
	return db, ok
}

// Close drops the DB of qube (the qube has stopped): its content is gone,
// its mirrors get no more changes, and writes through a DB still held
// fail with NotRunning. Closing a qube without a DB does nothing.
func (r *Registry) Close(qube string) {
	r.mu.Lock()
	db, ok := r.dbs[qube]
	delete(r.dbs, qube)
	r.mu.Unlock()
	if ok {
		db.close()
	}
}
