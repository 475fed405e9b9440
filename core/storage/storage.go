// Package storage is the core's side of storage pools and volumes. The
// core orchestrates: which pools exist (their records in qubes.xml), which
// driver serves each, which volumes a qube has, and when they are created,
// started, committed, cloned, reverted and removed. Drivers do the work on
// disk; they run as plugins behind the pool.Driver interface, so this
// package never knows a process is involved (tests use in-process
// drivers).
//
// Locking. Pool and volume records live in the model (qubes.App) and are
// read and changed under its lock, as everything else there. Driver calls
// may take long (a clone copies gigabytes), so the Manager's operations
// that call drivers take the model lock only to read or record, never
// across the driver call; a per-volume lock keeps two operations on one
// volume apart while operations on different volumes run in parallel.
//
// Failure. A pool whose driver is not running, or whose storage is absent,
// is unavailable: its qubes still load, list and can be edited, and any
// operation that needs the storage fails with a message saying which pool
// and why. Nothing is removed from qubes.xml because a driver failed.
package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/store"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// Driver is what the core needs of a pool driver: the SDK's interface,
// which core/pluginhost implements over a plugin and tests implement in
// process.
type Driver = pool.Driver

// Drivers finds the driver serving a driver name ("file-reflink"). Pools
// name their driver in qubes.xml; the plugin configured under that name
// serves it (core/pluginhost.Host is a Drivers).
type Drivers interface {
	PoolDriver(name string) (pool.Driver, error)
	// DriverNames lists the drivers configured, running or not.
	DriverNames() []string
}

// The pool attributes the daemon keeps for itself; every other attribute
// of a pool record is the driver's config.
const (
	attrName              = "name"
	attrDriver            = "driver"
	attrRevisionsToKeep   = "revisions_to_keep"
	attrEphemeralVolatile = "ephemeral_volatile"
)

// Manager runs storage operations for the model.
type Manager struct {
	app     *qubes.App
	drivers Drivers
	log     hclog.Logger
	locks   keyedLocks
	// reserve is the share of a pool, in percent, an operation may not
	// fill (see checkSpace).
	reserve uint64
	commit  func(ctx context.Context, version uint64) error

	mu sync.Mutex
	// warned holds the pools whose usage was last seen at or past
	// usageWarnPercent, so that pool-usage-warning fires once per crossing.
	warned map[string]bool
	// imports are the imports in progress, by volume key; journal is where
	// they are kept across a crash ("" = in memory only).
	imports map[string]*importEntry
	journal string
}

// Options configure a Manager.
type Options struct {
	// ReservePercent of each pool's size is kept free: an operation that
	// would use it is refused. 0 keeps nothing back.
	ReservePercent uint64
	Logger         hclog.Logger
	// StateDir is where the Manager keeps its journal of imports in
	// progress (see ImportBegin). "" keeps it in memory only: a crash
	// then leaves imports that nothing ends.
	StateDir string
	// Commit makes a model version durable (core/store.Committer.Commit).
	// The Manager changes volume records itself where only it knows the
	// new value (the size after an import or a clone); nil leaves those
	// changes for the next save.
	Commit func(ctx context.Context, version uint64) error
}

// New returns a Manager for app's pools and volumes, reaching drivers
// through drivers. Imports a previous run left in progress (see
// CleanupAbandonedImports) are read from the journal in opts.StateDir; an
// unreadable journal is logged and set aside.
func New(app *qubes.App, drivers Drivers, opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m := &Manager{app: app, drivers: drivers, log: log, reserve: opts.ReservePercent, commit: opts.Commit,
		warned: map[string]bool{}, imports: map[string]*importEntry{}}
	if opts.StateDir != "" {
		m.journal = filepath.Join(opts.StateDir, journalName)
		m.loadJournal()
	}
	return m
}

// Pool is a pool record: its name, driver and attributes.
type Pool struct {
	Name   string
	Driver string
	// Attrs are every attribute of the record, as written.
	Attrs map[string]string
}

// PoolFromRecord reads a pool record (as NewPoolRecord makes one).
func PoolFromRecord(rec store.Pool) Pool { return poolFromRecord(rec) }

// poolFromRecord reads a pool record.
func poolFromRecord(rec store.Pool) Pool {
	p := Pool{Attrs: make(map[string]string, len(rec.Attrs))}
	for _, a := range rec.Attrs {
		p.Attrs[a.Name] = a.Value
	}
	p.Name, p.Driver = p.Attrs[attrName], p.Attrs[attrDriver]
	return p
}

// DriverConfig is the part of the record the driver owns.
func (p Pool) DriverConfig() map[string]string {
	cfg := maps.Clone(p.Attrs)
	for _, k := range []string{attrName, attrDriver, attrRevisionsToKeep, attrEphemeralVolatile} {
		delete(cfg, k)
	}
	return cfg
}

// spec is the pool as drivers see it.
func (p Pool) spec() pool.Pool { return pool.Pool{Name: p.Name, Config: p.DriverConfig()} }

// RevisionsToKeep is the pool's default for new volumes (1 when unset).
func (p Pool) RevisionsToKeep() int {
	if n, err := strconv.Atoi(p.Attrs[attrRevisionsToKeep]); err == nil {
		return n
	}
	return 1
}

// EphemeralVolatile reports whether the pool's volatile volumes are
// encrypted with a throw-away key.
func (p Pool) EphemeralVolatile() bool { return p.Attrs[attrEphemeralVolatile] == "True" }

// Pools returns the pools in qubes.xml order. Call it under the model's
// lock.
func (m *Manager) Pools() []Pool {
	recs := m.app.Pools()
	out := make([]Pool, len(recs))
	for i, r := range recs {
		out[i] = poolFromRecord(r)
	}
	return out
}

// Pool returns the pool called name. Call it under the model's lock.
func (m *Manager) Pool(name string) (Pool, error) {
	for _, p := range m.Pools() {
		if p.Name == name {
			return p, nil
		}
	}
	return Pool{}, qerr.New(qerr.StoragePoolError, "no pool named %q (qvm-pool list shows the pools)", name)
}

// driver returns the driver of p, or an error saying why p is
// unavailable.
func (m *Manager) driver(p Pool) (pool.Driver, error) {
	if p.Driver == "" {
		return nil, qerr.New(qerr.StoragePoolError, "pool %s has no driver in qubes.xml", p.Name)
	}
	d, err := m.drivers.PoolDriver(p.Driver)
	if err != nil {
		return nil, qerr.Wrap(qerr.StoragePoolError, err,
			"pool %s is unavailable: %v (configure a [plugins.%s] pool-driver plugin)", p.Name, err, p.Driver)
	}
	return d, nil
}

// State is a pool's availability.
type State struct {
	Online bool
	// Reason says why the pool is unavailable ("" when online).
	Reason string
}

// PoolState asks p's driver whether its storage is there. Call it without
// the model's lock.
func (m *Manager) PoolState(ctx context.Context, p Pool) State {
	d, err := m.driver(p)
	if err == nil {
		err = d.Open(ctx, p.spec())
	}
	if err != nil {
		return State{Reason: err.Error()}
	}
	return State{Online: true}
}

// Usage returns p's size and usage from its driver. Call it without the
// model's lock.
func (m *Manager) Usage(ctx context.Context, p Pool) (pool.Usage, error) {
	d, err := m.driver(p)
	if err != nil {
		return pool.Usage{}, err
	}
	u, err := d.Usage(ctx, p.spec())
	return u, m.poolError(p, "usage", err)
}

// ListPoolVolumes returns the vids of p's volumes as its driver sees them.
func (m *Manager) ListPoolVolumes(ctx context.Context, p Pool) ([]string, error) {
	d, err := m.driver(p)
	if err != nil {
		return nil, err
	}
	states, err := d.ListVolumes(ctx, p.spec())
	if err != nil {
		return nil, m.poolError(p, "listing volumes", err)
	}
	vids := make([]string, len(states))
	for i, s := range states {
		vids[i] = s.VID
	}
	return vids, nil
}

// poolError turns a driver error into an error for API clients: its kind
// becomes the Qubes exception the reference raises in that case, and the
// message names the pool.
func (m *Manager) poolError(p Pool, what string, err error) error {
	if err == nil {
		return nil
	}
	var qe *qerr.Error
	if errors.As(err, &qe) {
		return err
	}
	msg := fmt.Sprintf("pool %s (driver %s): %s: %v", p.Name, p.Driver, what, err)
	switch {
	case errors.Is(err, pool.ErrInvalid):
		return qerr.Wrap(qerr.ValueError, err, "%s", msg)
	case errors.Is(err, pool.ErrUnavailable):
		return qerr.Wrap(qerr.StoragePoolError, err, "%s (the pool is unavailable; qvm-plugin list shows its driver)", msg)
	}
	return qerr.Wrap(qerr.StoragePoolError, err, "%s", msg)
}

// DriverInfo is a driver available to new pools, for admin.pool.ListDrivers
// and admin.pool.Add.
type DriverInfo struct {
	Name string
	// Params are the config keys admin.pool.Add takes, in the reference's
	// order: revisions_to_keep first and ephemeral_volatile last for
	// drivers that keep revisions, the driver's own keys between.
	Params []string
	// Required are the driver's own keys a new pool must set.
	Required []string
	// Revisions: the driver keeps revisions (a volume's revisions_to_keep
	// may be other than 0).
	Revisions bool
}

// driverInfo describes a driver from its Info.
func driverInfo(name string, info pool.Info) DriverInfo {
	di := DriverInfo{Name: name, Revisions: info.Capabilities.Revisions}
	if di.Revisions {
		di.Params = append(di.Params, attrRevisionsToKeep)
	}
	for _, k := range info.PoolConfig {
		di.Params = append(di.Params, k.Name)
		if k.Required {
			di.Required = append(di.Required, k.Name)
		}
	}
	if di.Revisions {
		di.Params = append(di.Params, attrEphemeralVolatile)
	}
	return di
}

// DriverNames lists the configured drivers, running or not.
func (m *Manager) DriverNames() []string { return m.drivers.DriverNames() }

// DriverInfo asks the driver called name about itself. Call it without the
// model's lock.
func (m *Manager) DriverInfo(ctx context.Context, name string) (DriverInfo, error) {
	d, err := m.drivers.PoolDriver(name)
	if err != nil {
		return DriverInfo{}, qerr.Wrap(qerr.StoragePoolError, err, "pool driver %s is not available: %v (qvm-plugin list shows its state)", name, err)
	}
	info, err := d.Info(ctx)
	if err != nil {
		return DriverInfo{}, qerr.Wrap(qerr.StoragePoolError, err, "pool driver %s does not answer: %v (qvm-plugin list shows its state)", name, err)
	}
	return driverInfo(name, info), nil
}

// Drivers returns the configured drivers that answer, sorted by name; the
// others are logged. Call it without the model's lock.
func (m *Manager) Drivers(ctx context.Context) []DriverInfo {
	var out []DriverInfo
	for _, n := range slices.Sorted(slices.Values(m.drivers.DriverNames())) {
		di, err := m.DriverInfo(ctx, n)
		if err != nil {
			m.log.Warn("pool driver not listed", "driver", n, "error", err)
			continue
		}
		out = append(out, di)
	}
	return out
}
