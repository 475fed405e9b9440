// Package qubes is the model of the system: the application with its global
// properties, the qubes of every class with their properties, features, tags
// and labels, networking between qubes, disposables, and the rules that keep
// the model consistent (no network loops, no removal of a qube still in use).
//
// # Concurrency
//
// The model lives in memory and is guarded by one reader/writer lock. Callers
// outside the package enter it through App.Read (shared) or App.Write
// (exclusive); every other method of App, Qube, Features, Tags and Label
// assumes the caller is inside one of them, and mutating methods need Write.
// Core event handlers run inside the Write that fired them and use the same
// unlocked methods. App.Write returns the model version after the change;
// core/store's Committer makes that version durable.
//
// # Events
//
// Every change fires events on the App's bus (see core/events) with the
// names and keyword arguments of the reference daemon: property-set:NAME,
// domain-feature-set:NAME, domain-tag-add:TAG, domain-add, ... Events are off
// while a store is being loaded and on from then on.
package qubes

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
)

// Limits of identifiers, as in the reference.
const (
	MaxQID    = 10000 // qids are 0 (the AdminVM) .. MaxQID-1
	MaxDispID = 10000 // dispids are 0 .. MaxDispID-1
)

// Options describe the host the model runs on.
type Options struct {
	// DataDir is the state directory (/var/lib/qubes on a real system).
	DataDir string
	// HostMemoryMiB and HostCPUs are the host's totals (global properties
	// maxmem and no_cpus).
	HostMemoryMiB int
	HostCPUs      int
	// AdminMaxMemMiB is the AdminVM's memory (its maxmem property).
	AdminMaxMemMiB int
	// Xen tells whether the hypervisor can balance memory; off Xen the
	// default maxmem of every qube is 0.
	Xen    bool
	Logger hclog.Logger
	// Now returns the current time; tests may replace it.
	Now func() time.Time
}

// App is the model: global properties, labels, pool records and qubes.
type App struct {
	mu   sync.RWMutex
	opts Options
	log  hclog.Logger
	bus  *events.Bus

	property.Bag
	eventsEnabled bool

	labels []*Label // by index
	pools  []store.Pool

	byName map[string]*Qube
	byQID  map[int]*Qube
	byUUID map[string]*Qube
	// sorted caches Qubes(): dom0 first, then by name; nil when stale.
	// Readers fill it under the shared lock, so it is an atomic pointer
	// (two readers may both compute it; they store the same list).
	sorted atomic.Pointer[[]*Qube]

	quarantined []*Quarantined
	dropped     []store.Property // invalid global values, kept in the file until replaced

	version      uint64
	deletedDisps map[int]time.Time // dispid → when its qube was removed

	kernelMu    sync.Mutex // reads take it too: they run concurrently
	kernelCache map[string]kernelFiles

	dispatches dispatches // callbacks from other processes during a Read/Write
	writing    bool       // inside Write; guarded by mu
}

// New returns an empty model: no labels, no pools, no qubes. Most callers
// want Load (from a store Document) or NewDefault (a fresh system).
func New(opts Options) *App {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DataDir == "" {
		opts.DataDir = "/var/lib/qubes"
	}
	if opts.AdminMaxMemMiB == 0 {
		opts.AdminMaxMemMiB = 4096
	}
	a := &App{
		opts:         opts,
		log:          opts.Logger,
		bus:          events.New(),
		byName:       map[string]*Qube{},
		byQID:        map[int]*Qube{},
		byUUID:       map[string]*Qube{},
		deletedDisps: map[int]time.Time{},
	}
	a.Bag.Init(a, globalTable)
	a.registerCoreHandlers()
	return a
}

// Bus returns the event bus. Subscribers of the Observer tier (event
// streams) must not call back into the model from their handlers.
func (a *App) Bus() *events.Bus { return a.bus }

// Options returns the options the model was created with.
func (a *App) Options() Options { return a.opts }

// Logger returns the model's logger.
func (a *App) Logger() hclog.Logger { return a.log }

// Read runs fn with the model locked for reading.
func (a *App) Read(fn func() error) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return fn()
}

// Write runs fn with the model locked for writing and returns the model
// version that includes whatever fn changed. The version advances even when
// fn fails, since fn may have changed something before failing.
func (a *App) Write(fn func() error) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.writing = true
	defer func() { a.writing = false }()
	err := fn()
	a.version++
	return a.version, err
}

// Writing reports whether the caller runs inside Write (true) or Read
// (false). Only meaningful inside one of them: readers and the writer never
// run at the same time, so the answer is about the caller's own lock.
func (a *App) Writing() bool { return a.writing }

// Version returns the current model version. Call it inside Read or Write.
func (a *App) Version() uint64 { return a.version }

// PropertyOwner names the application in messages, as the reference does.
func (a *App) PropertyOwner() string { return "Qubes" }

// ClassName is the application's class name.
func (a *App) ClassName() string { return "Qubes" }

// FireEvent fires an application event (subject nil) when events are on.
func (a *App) FireEvent(name string, pre bool, kwargs ...events.KV) error {
	if !a.eventsEnabled {
		return nil
	}
	_, err := a.bus.Fire(nil, name, pre, kwargs...)
	return err
}

// EventsEnabled reports whether the application fires events.
func (a *App) EventsEnabled() bool { return a.eventsEnabled }

// SetEventsEnabled turns the application's events on or off.
func (a *App) SetEventsEnabled(on bool) { a.eventsEnabled = on }

// AdminVM returns dom0, or nil in a model that has none yet.
func (a *App) AdminVM() *Qube { return a.byQID[0] }

// Qubes returns every qube: the AdminVM first, then by name — the order of
// the Admin API's lists and of qubes.xml. The slice must not be changed.
func (a *App) Qubes() []*Qube {
	if p := a.sorted.Load(); p != nil {
		return *p
	}
	s := make([]*Qube, 0, len(a.byName))
	for _, q := range a.byName {
		s = append(s, q)
	}
	slices.SortFunc(s, compareQubes)
	a.sorted.Store(&s)
	return s
}

func compareQubes(x, y *Qube) int {
	xa, ya := x.class.kind == kindAdmin, y.class.kind == kindAdmin
	switch {
	case xa && !ya:
		return -1
	case ya && !xa:
		return 1
	}
	return cmp.Compare(x.name, y.name)
}

// Len returns the number of qubes (quarantined records not included).
func (a *App) Len() int { return len(a.byName) }

// Qube finds a qube by name.
func (a *App) Qube(name string) (*Qube, error) {
	if q, ok := a.byName[name]; ok {
		return q, nil
	}
	return nil, notFound(name)
}

// QubeByQID finds a qube by qid.
func (a *App) QubeByQID(qid int) (*Qube, bool) {
	q, ok := a.byQID[qid]
	return q, ok
}

// QubeByUUID finds a qube by UUID (any case, with or without hyphens).
func (a *App) QubeByUUID(uuid string) (*Qube, error) {
	u, err := ParseUUID(uuid)
	if err != nil {
		return nil, qerr.New(qerr.VMInvalidUUID, "VM UUID is not valid: %s", property.PyRepr(uuid))
	}
	if q, ok := a.byUUID[u]; ok {
		return q, nil
	}
	return nil, notFound("uuid:" + u)
}

func notFound(name string) error {
	return qerr.New(qerr.VMNotFound, "No such domain: %s", property.PyRepr(name))
}

// KernelsDir returns the directory that holds the installed kernels: that of
// the linux-kernel pool default_pool_kernel names, else of the first
// linux-kernel pool, else <DataDir>/vm-kernels.
func (a *App) KernelsDir() string {
	want, first := a.str("default_pool_kernel"), ""
	for _, p := range a.pools {
		d := attr(p.Attrs, "dir_path")
		if attr(p.Attrs, "driver") != "linux-kernel" || d == "" {
			continue
		}
		if attr(p.Attrs, "name") == want {
			return d
		}
		if first == "" {
			first = d
		}
	}
	if first != "" {
		return first
	}
	return filepath.Join(a.opts.DataDir, "vm-kernels")
}

func attr(attrs []store.Attr, name string) string {
	for _, x := range attrs {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// Pools returns the storage pool records, in file order. Until the storage
// layer gives them behaviour they are kept as written.
func (a *App) Pools() []store.Pool { return a.pools }

// PoolNames returns the names of the pools.
func (a *App) PoolNames() []string {
	names := make([]string, 0, len(a.pools))
	for _, p := range a.pools {
		names = append(names, attr(p.Attrs, "name"))
	}
	return names
}

func (a *App) hasPool(name string) bool {
	return slices.Contains(a.PoolNames(), name)
}

// AddPoolRecord adds a pool record (used when creating a store; the storage
// layer adds pools through its own API).
func (a *App) AddPoolRecord(p store.Pool) error {
	name := attr(p.Attrs, "name")
	if name == "" {
		return qerr.New(qerr.ValueError, "pool record has no name")
	}
	if a.hasPool(name) {
		return qerr.New(qerr.PoolInUse, "Storage pool is in use: %s", property.PyRepr(name))
	}
	a.pools = append(a.pools, p)
	return a.FireEvent("pool-add", false, events.KV{Key: "pool", Value: name})
}

func (a *App) String() string { return fmt.Sprintf("Qubes(%d qubes)", len(a.byName)) }

// The reference's default messages of the power-state errors (qubes/exc.py),
// which clients show as they are.

// NotRunningError is QubesVMNotRunningError for the qube called name.
func NotRunningError(name string) error {
	return qerr.New(qerr.VMNotRunning, "Domain not running (either powered off or paused): %s", property.PyRepr(name))
}

// NotPausedError is QubesVMNotPausedError for the qube called name.
func NotPausedError(name string) error {
	return qerr.New(qerr.VMNotPaused, "Domain is not paused: %s", property.PyRepr(name))
}

// NotSuspendedError is QubesVMNotSuspendedError for the qube called name.
func NotSuspendedError(name string) error {
	return qerr.New(qerr.VMNotSuspended, "Domain is not suspended: %s", property.PyRepr(name))
}
