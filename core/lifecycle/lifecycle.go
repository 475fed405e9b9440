// Package lifecycle starts, stops, pauses and kills qubes through libvirt
// (core/vmm), with their storage started before and stopped after, their
// QubesDB filled at start, and the domain-* events of spec/core-model.md §4
// fired on the qube in the reference's order.
//
// Locking: a per-qube start lock serialises Start (the reference's
// startup_lock); the model lock is taken only to read the qube and to fire
// events, never across a libvirt or storage call.
//
// A "run" is one life of a qube's domain, armed once the domain exists
// (after the paused create, or when a running domain is adopted at daemon
// start). Its end — domain-stopped, storage stopped, QubesDB closed,
// domain-shutdown — happens exactly once, whichever of libvirt's stopped
// event, a failed start's clean-up or the next Start's flush gets there
// first.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qdb"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/core/vmm"
)

// Options are what a Manager is built from.
type Options struct {
	App      *qubes.App
	Storage  *storage.Manager
	Conn     *vmm.Conn
	Renderer *vmm.Renderer
	QDB      *qdb.Registry
	Logger   hclog.Logger
	// Commit makes a model version durable (nil: nothing is committed;
	// lifecycle events change the model only through their handlers).
	Commit func(ctx context.Context, version uint64) error
	// StopTimeout bounds how long Kill (and a failed start's clean-up)
	// waits for libvirt's stopped event before ending the run itself.
	// Default 10 s.
	StopTimeout time.Duration
	// FreeMemory reports the host's free memory in bytes for the check
	// before a start (spec §4.6; the memory-balancing issue replaces it).
	// Nil: libvirt's free memory, except on libvirt's test driver, whose
	// figure is a constant unrelated to its domains (no check there).
	FreeMemory func() (uint64, error)
}

// Manager runs the lifecycle of the model's qubes.
type Manager struct {
	opts Options
	app  *qubes.App
	log  hclog.Logger

	mu       sync.Mutex
	locks    map[string]chan struct{} // per-qube start lock
	runs     map[string]*run          // armed runs by qube name
	reserved uint64                   // memory (bytes) of starts between their check and their domain's creation

	fired   atomic.Uint64 // the newest model version an event left (commitFired)
	bg      sync.WaitGroup
	closed  atomic.Bool
	unwatch func() // ends the runtime netvm change's subscriptions
}

// run is one life of a qube's domain.
type run struct {
	vols []storage.Volume // started volumes, stopped when the run ends
	// starting: the start is still bringing the domain up. Its paused
	// create and its own resume are not domain-paused/domain-unpaused
	// (Start fires domain-unpaused itself), so libvirt's suspended and
	// resumed events are ignored until the start's resume has returned.
	starting atomic.Bool
	// paused: domain-paused has fired and domain-unpaused not yet. Events
	// are matched against it and against the domain's state, so that a
	// suspended or resumed event delivered twice, or late, fires nothing
	// (the reference's skip_unpause_event, made robust).
	paused  atomic.Bool
	claimed atomic.Bool
	done    chan struct{} // closed once domain-shutdown has been fired
	// guestDBStop ends the push of QubesDB to the guest (guestdb.go); nil
	// when the domain's flavour has no QubesDB channel.
	guestDBStop atomic.Pointer[func()]
}

// New returns a Manager. Feed it libvirt's events with HandleEvent.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.QDB == nil {
		o.QDB = &qdb.Registry{}
	}
	if o.FreeMemory == nil && o.Conn != nil && (o.Renderer == nil || o.Renderer.Flavour() != vmm.FlavourTest) {
		o.FreeMemory = o.Conn.FreeMemory
	}
	m := &Manager{opts: o, app: o.App, log: o.Logger.Named("lifecycle"),
		locks: map[string]chan struct{}{}, runs: map[string]*run{}}
	m.unwatch = m.watchNetVM()
	return m
}

// Close waits for the stop handling in progress. The Conn is the caller's.
func (m *Manager) Close() {
	if m.closed.CompareAndSwap(false, true) {
		m.unwatch()
	}
	m.bg.Wait()
}

func kv(k string, v any) events.KV { return events.KV{Key: k, Value: v} }

// Lock takes the start lock of the qube called name: Start, and the
// removal of a qube (admin.vm.Remove, a disposable's clean-up), hold it.
func (m *Manager) Lock(ctx context.Context, name string) (unlock func(), err error) {
	return m.lock(ctx, name)
}

// lock takes q's start lock.
func (m *Manager) lock(ctx context.Context, name string) (func(), error) {
	m.mu.Lock()
	l, ok := m.locks[name]
	if !ok {
		l = make(chan struct{}, 1)
		m.locks[name] = l
	}
	m.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Manager) getRun(name string) *run {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[name]
}

func (m *Manager) setRun(name string, r *run) {
	m.mu.Lock()
	m.runs[name] = r
	m.mu.Unlock()
}

// fire fires an event on q under the model's write lock. What its handlers
// changed is made durable by the operation's commitFired, once per
// operation rather than once per event (a start fires seven).
func (m *Manager) fire(q *qubes.Qube, name string, pre bool, kwargs ...events.KV) error {
	v, err := m.app.Write(func() error { return q.FireEvent(name, pre, kwargs...) })
	m.noteVersion(v)
	return err
}

// noteVersion records a model version an event left, for commitFired.
func (m *Manager) noteVersion(v uint64) {
	for {
		cur := m.fired.Load()
		if v <= cur || m.fired.CompareAndSwap(cur, v) {
			return
		}
	}
}

// commitFired makes durable what the events fired so far changed; every
// public operation calls it before it returns, so that a reply to the
// Admin API comes after the change is saved, as for any other write.
func (m *Manager) commitFired() {
	v := m.fired.Load()
	if m.opts.Commit == nil || v == 0 {
		return
	}
	if err := m.opts.Commit(context.Background(), v); err != nil {
		m.log.Error("saving what the lifecycle's events changed", "version", v, "error", err)
	}
}

func notVM(q *qubes.Qube, what string) error {
	return qerr.New(qerr.Exception, "Cannot %s %s: it is not a virtual machine of this host", what, q.Name())
}

// PowerState is q's power state (spec §4.1): dom0 and remote qubes are
// Running; a qube without an armed run is Halted without asking libvirt;
// the others are what libvirt says. It asks libvirt, so callers should not
// hold the model lock for long lists (the Admin API lists take it; a
// lookup on the test driver or a local libvirtd is microseconds).
func (m *Manager) PowerState(q *qubes.Qube) string {
	if !q.HasVM() {
		return string(vmm.Running)
	}
	if m.getRun(q.Name()) == nil {
		return string(vmm.Halted)
	}
	st, err := m.opts.Conn.State(q.Name())
	if err != nil {
		return string(vmm.NA)
	}
	return string(st)
}

// IsRunning is libvirt's isActive (true also for Paused, Halting...).
func (m *Manager) IsRunning(q *qubes.Qube) bool {
	s := m.PowerState(q)
	return s != string(vmm.Halted) && s != string(vmm.NA)
}

// Adopt arms a run for every qube whose domain libvirt reports active (a
// daemon restarted while qubes ran). Their volumes are recorded as started:
// the stop commits them. It returns the names adopted.
func (m *Manager) Adopt() ([]string, error) {
	doms, err := m.opts.Conn.List()
	if err != nil {
		return nil, err
	}
	var adopted []string
	for _, d := range doms {
		if !d.Active {
			continue
		}
		var q *qubes.Qube
		var vols []storage.Volume
		var entries []qdbEntry
		_ = m.app.Read(func() error {
			c, err := m.app.Qube(d.Name)
			if err != nil || !c.HasVM() || (d.UUID != "" && c.UUID() != d.UUID) {
				return nil
			}
			q = c
			if m.opts.Storage != nil {
				vols, _ = m.opts.Storage.Volumes(c)
			}
			entries = qdbEntries(c)
			return nil
		})
		if q == nil || m.getRun(q.Name()) != nil {
			continue
		}
		r := &run{vols: vols, done: make(chan struct{})}
		r.paused.Store(d.State == vmm.Paused)
		m.setRun(q.Name(), r)
		// QubesDB lived in the previous daemon: fill it again, and carry it
		// to the guest again where the flavour does
		db := m.opts.QDB.Open(q.Name())
		for _, e := range entries {
			if err := db.Write(e.path, []byte(e.value)); err != nil {
				m.log.Warn("refilling QubesDB of an adopted qube", "qube", q.Name(), "path", e.path, "error", err)
			}
		}
		if err := m.connectGuestDB(context.Background(), q, r, db); err != nil {
			m.log.Warn("reconnecting QubesDB to an adopted qube's guest; it keeps what it had", "qube", q.Name(), "error", err)
		}
		adopted = append(adopted, q.Name())
		m.log.Info("adopted a running qube", "qube", q.Name(), "state", d.State)
	}
	return adopted, nil
}

// StepError is a failed start: which step failed and why.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Start starts q (spec §4.2). Starting a qube that is not Halted does
// nothing.
func (m *Manager) Start(ctx context.Context, q *qubes.Qube) error {
	if !q.HasVM() {
		return notVM(q, "start")
	}
	name := q.Name()
	unlock, err := m.lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	defer m.commitFired()

	if r := m.getRun(name); r != nil {
		st, err := m.opts.Conn.State(name)
		if err != nil {
			return &StepError{"checking the domain's state", err}
		}
		if st != vmm.Halted {
			return nil
		}
		// the previous run's stop was not handled yet: do it now
		m.endRun(q, r)
	}

	// prohibit-start, domain-pre-start, and everything read from the model
	var (
		vols    []storage.Volume
		cfg     vmm.DomainConfig
		entries []qdbEntry
		netvm   *qubes.Qube
		memNeed uint64
	)
	v, err := m.app.Write(func() error {
		if cur, err := m.app.Qube(name); err != nil || cur != q {
			// removed while this start waited for the lock
			return qerr.New(qerr.VMNotFound, "No such domain: %s", property.PyRepr(name))
		}
		if q.IsDisposable() {
			// the reference re-checks; the model refuses to turn
			// template_for_dispvms off under a disposable, but a
			// hand-edited qubes.xml may have done it
			if t := q.Template(); t == nil || !boolean(t, "template_for_dispvms") {
				tn := ""
				if t != nil {
					tn = t.Name()
				}
				return qerr.New(qerr.Exception, "template for DispVM (%s) needs to have template_for_dispvms=True", tn)
			}
		}
		if v, ok := q.Features.Get("prohibit-start"); ok && q.Features.Truthy("prohibit-start") {
			return qerr.New(qerr.Exception, "Qube start is prohibited. Rationale: %s", v)
		}
		if err := q.FireEvent("domain-pre-start", true, kv("start_guid", true), kv("mem_required", nil)); err != nil {
			return err
		}
		var err error
		if m.opts.Storage != nil {
			if vols, err = m.opts.Storage.Volumes(q); err != nil {
				return err
			}
		}
		cfg = m.domainConfig(q)
		entries = qdbEntries(q)
		netvm = netVM(q)
		memNeed = memoryRequest(cfg)
		return nil
	})
	m.noteVersion(v)
	if err != nil {
		m.startFailed(q, err)
		return err
	}

	// the network provider first, and so the whole upstream chain
	if netvm != nil && netvm.HasVM() {
		if err := m.startNetVM(ctx, q, netvm); err != nil {
			m.startFailed(q, err)
			return err
		}
	}
	release, err := m.reserveMemory(q, memNeed)
	if err != nil {
		m.startFailed(q, err)
		return err
	}
	defer release()

	// storage: every volume, in order; undone on failure
	var started []storage.Volume
	devs := map[string]devInfo{}
	for _, v := range vols {
		if v.Name == "kernel" && v.Spec.VID == "" {
			continue // no kernel: the volume has no version to start (as the reference's)
		}
		dev, err := m.opts.Storage.Start(ctx, v)
		if err != nil {
			err = &StepError{fmt.Sprintf("starting volume %s of %s", v.Name, name), err}
			m.startFailed(q, err)
			m.stopVolumes(q, started)
			return err
		}
		started = append(started, v)
		devs[v.Name] = devInfo{vol: v, path: dev.Path, rw: dev.RW, devType: dev.DevType}
	}
	m.fillDisks(&cfg, vols, devs)

	// spawn: render, define, create paused
	fail := func(step string, err error) error {
		err = &StepError{step, err}
		m.startFailed(q, err)
		m.stopVolumes(q, started)
		return err
	}
	if err := m.fire(q, "domain-pre-spawn", true, kv("start_guid", true)); err != nil {
		return fail("domain-pre-spawn", err)
	}
	xml, err := m.opts.Renderer.Render(cfg)
	if err != nil {
		return fail("rendering the domain XML", err)
	}
	if err := m.opts.Conn.Define(name, xml); err != nil {
		return fail("defining the domain", err)
	}
	r := &run{vols: started, done: make(chan struct{})}
	r.starting.Store(true)
	defer r.starting.Store(false)
	m.setRun(name, r)
	if err := m.opts.Conn.CreatePaused(name); err != nil {
		m.mu.Lock()
		delete(m.runs, name)
		m.mu.Unlock()
		m.undefine(name)
		return fail("creating the domain paused", err)
	}
	release() // the domain exists: its memory is libvirt's to count now

	// bring-up; from here a failure kills the domain and ends the run
	bringUpFail := func(step string, err error) error {
		err = &StepError{step, err}
		m.startFailed(q, err)
		if derr := m.opts.Conn.Destroy(name); derr != nil && !errors.Is(derr, vmm.ErrInvalidState) && !errors.Is(derr, vmm.ErrNoDomain) {
			m.log.Warn("destroying the domain of a failed start", "qube", name, "error", derr)
		}
		m.endRun(q, r)
		m.undefine(name)
		return err
	}
	if err := m.fire(q, "domain-spawn", false, kv("start_guid", true)); err != nil {
		return bringUpFail("domain-spawn", err)
	}
	db := m.opts.QDB.Open(name)
	for _, e := range entries {
		if err := db.Write(e.path, []byte(e.value)); err != nil {
			return bringUpFail("filling QubesDB", err)
		}
	}
	if err := m.fire(q, "domain-qdb-create", false); err != nil {
		return bringUpFail("domain-qdb-create", err)
	}
	// after domain-qdb-create, so that what its handlers write is in the
	// guest's first snapshot
	if err := m.connectGuestDB(ctx, q, r, db); err != nil {
		return bringUpFail("connecting QubesDB to the guest", err)
	}
	if err := m.fire(q, "domain-pre-unpaused", true); err != nil {
		return bringUpFail("domain-pre-unpaused", err)
	}
	if err := m.opts.Conn.Resume(name); err != nil {
		return bringUpFail("resuming the domain", err)
	}
	r.starting.Store(false)
	if err := m.fire(q, "domain-unpaused", false); err != nil {
		return bringUpFail("domain-unpaused", err)
	}
	if err := m.fire(q, "domain-start", false, kv("start_guid", true)); err != nil {
		return bringUpFail("domain-start", err)
	}
	m.replugClients(q, true)
	return nil
}

// connectGuestDB starts the push of db to r's guest, where the flavour
// has one; the run's end stops it.
func (m *Manager) connectGuestDB(ctx context.Context, q *qubes.Qube, r *run, db *qdb.DB) error {
	stop, err := m.attachGuestDB(ctx, q, db)
	if err != nil {
		return err
	}
	if stop != nil {
		r.guestDBStop.Store(&stop)
	}
	return nil
}

// undefine removes the definition a failed start left (nothing of a
// failed start stays in libvirt).
func (m *Manager) undefine(name string) {
	if err := m.opts.Conn.Undefine(name); err != nil && !errors.Is(err, vmm.ErrNoDomain) {
		m.log.Warn("undefining the domain of a failed start", "qube", name, "error", err)
	}
}

func (m *Manager) startFailed(q *qubes.Qube, err error) {
	if ferr := m.fire(q, "domain-start-failed", false, kv("reason", err.Error())); ferr != nil {
		m.log.Warn("a domain-start-failed handler failed", "qube", q.Name(), "error", ferr)
	}
	// a disposable that never ran is removed as one that stopped (the
	// removal waits for this start's lock; one whose run began is removed
	// by the run's end)
	m.cleanupDisposable(q)
}

func (m *Manager) stopVolumes(q *qubes.Qube, vols []storage.Volume) {
	for i := len(vols) - 1; i >= 0; i-- {
		if err := m.opts.Storage.Stop(context.Background(), vols[i]); err != nil {
			m.log.Error("stopping a volume", "qube", q.Name(), "volume", vols[i].Name, "error", err)
		}
	}
}

// endRun ends r once: domain-stopped, storage stopped (committed or
// discarded), QubesDB closed, domain-shutdown. A second caller waits for
// the first to finish.
func (m *Manager) endRun(q *qubes.Qube, r *run) {
	if !r.claimed.CompareAndSwap(false, true) {
		<-r.done
		return
	}
	defer close(r.done)
	name := q.Name()
	if err := m.fire(q, "domain-stopped", false); err != nil {
		m.log.Warn("a domain-stopped handler failed", "qube", name, "error", err)
	}
	if stop := r.guestDBStop.Load(); stop != nil {
		(*stop)()
	}
	m.stopVolumes(q, r.vols)
	m.opts.QDB.Close(name)
	m.mu.Lock()
	if m.runs[name] == r {
		delete(m.runs, name)
	}
	m.mu.Unlock()
	if err := m.fire(q, "domain-shutdown", false); err != nil {
		m.log.Warn("a domain-shutdown handler failed", "qube", name, "error", err)
	}
	m.commitFired()
	m.replugClients(q, false)
	m.cleanupDisposable(q)
}

// HandleEvent takes one of libvirt's translated events (vmm.Options.OnEvent).
func (m *Manager) HandleEvent(ev vmm.Event) {
	var q *qubes.Qube
	_ = m.app.Read(func() error {
		c, err := m.app.Qube(ev.Domain)
		if err == nil && c.HasVM() && (ev.UUID == "" || c.UUID() == ev.UUID) {
			q = c
		}
		return nil
	})
	if q == nil {
		return
	}
	r := m.getRun(q.Name())
	if r == nil {
		return // not ours, or its stop was handled already
	}
	switch ev.Kind {
	case vmm.EventStopped:
		if st, err := m.opts.Conn.State(q.Name()); err == nil && st != vmm.Halted && st != vmm.Crashed && st != vmm.Dying {
			// a stale event (say, of the previous run, delivered after the
			// next start): the domain runs, as the reference checks too
			m.log.Debug("ignoring a stopped event for a domain that runs", "qube", q.Name(), "state", st)
			return
		}
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			m.endRun(q, r)
		}()
	case vmm.EventSuspended:
		if r.starting.Load() || !m.stateIs(q, vmm.Paused) {
			return // the start's paused create, or a stale event
		}
		m.paused(q) // nothing if domain-paused has fired already
		m.commitFired()
	case vmm.EventResumed:
		if r.starting.Load() || !m.stateIs(q, vmm.Running) || !r.paused.CompareAndSwap(true, false) {
			return // the start's resume, Unpause's own, a stale event, or a repeat
		}
		if err := m.fire(q, "domain-unpaused", false); err != nil {
			m.log.Warn("a domain-unpaused handler failed", "qube", q.Name(), "error", err)
		}
		m.commitFired()
	}
}

// stateIs reports whether libvirt has q's domain in state st now.
func (m *Manager) stateIs(q *qubes.Qube, st vmm.PowerState) bool {
	got, err := m.opts.Conn.State(q.Name())
	return err == nil && got == st
}

func notStarted(q *qubes.Qube) error {
	return qerr.New(qerr.VMNotStarted, "Domain is powered off: %s", property.PyRepr(q.Name()))
}

// waitRun waits for r to end; if libvirt's stopped event does not come in
// time but the domain is gone, it ends the run itself.
func (m *Manager) waitRun(ctx context.Context, q *qubes.Qube, r *run, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	if st, err := m.opts.Conn.State(q.Name()); err == nil && st == vmm.Halted {
		m.endRun(q, r)
		return nil
	}
	return errTimeout
}

var errTimeout = errors.New("timed out")

// Kill destroys q's domain at once and returns once its stop was handled
// (spec §4.5).
func (m *Manager) Kill(ctx context.Context, q *qubes.Qube) error {
	if !q.HasVM() {
		return notVM(q, "kill")
	}
	r := m.getRun(q.Name())
	if r == nil {
		return notStarted(q)
	}
	if err := m.opts.Conn.Destroy(q.Name()); err != nil {
		if errors.Is(err, vmm.ErrInvalidState) || errors.Is(err, vmm.ErrNoDomain) {
			return notStarted(q)
		}
		return err
	}
	if err := m.waitRun(ctx, q, r, m.opts.StopTimeout); err != nil {
		return qerr.Wrap(qerr.Exception, err, "Killing %s: its stop was not seen: %v", q.Name(), err)
	}
	return nil
}

// Shutdown asks q to shut down (spec §4.4); with wait it returns once the
// stop was handled, or QubesVMShutdownTimeoutError after timeout (0: the
// qube's shutdown_timeout).
func (m *Manager) Shutdown(ctx context.Context, q *qubes.Qube, force, wait bool, timeout time.Duration) error {
	if !q.HasVM() {
		return notVM(q, "shut down")
	}
	name := q.Name()
	r := m.getRun(name)
	state := m.PowerState(q)
	if r == nil || state == string(vmm.Halted) {
		return notStarted(q)
	}
	defer m.commitFired()
	err := m.shutdown(ctx, q, r, state, force, wait, timeout)
	if err != nil {
		if ferr := m.fire(q, "domain-shutdown-failed", false, kv("reason", err.Error())); ferr != nil {
			m.log.Warn("a domain-shutdown-failed handler failed", "qube", name, "error", ferr)
		}
	}
	return err
}

func (m *Manager) shutdown(ctx context.Context, q *qubes.Qube, r *run, state string, force, wait bool, timeout time.Duration) error {
	name := q.Name()
	if err := m.fire(q, "domain-pre-shutdown", true, kv("force", force)); err != nil {
		return err
	}
	if !force {
		if err := m.refuseShutdownInUse(q); err != nil {
			return err
		}
	}
	if state == string(vmm.Paused) {
		if !force {
			return qubes.NotRunningError(name)
		}
		if err := m.opts.Conn.Destroy(name); err != nil && !errors.Is(err, vmm.ErrInvalidState) {
			return err
		}
	} else if err := m.opts.Conn.Shutdown(name); err != nil {
		if errors.Is(err, vmm.ErrInvalidState) || errors.Is(err, vmm.ErrNoDomain) {
			return notStarted(q)
		}
		return qerr.Wrap(qerr.ShutdownTimeout, err, "Domain shutdown failed: %s: %v", property.PyRepr(name), err)
	}
	if !wait {
		return nil
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
		_ = m.app.Read(func() error {
			if v, err := q.Get("shutdown_timeout"); err == nil {
				if n, ok := v.(int); ok && n > 0 {
					timeout = time.Duration(n) * time.Second
				}
			}
			return nil
		})
	}
	if err := m.waitRun(ctx, q, r, timeout); err != nil {
		if errors.Is(err, errTimeout) {
			return qerr.New(qerr.ShutdownTimeout, "Domain shutdown timed out: %s", property.PyRepr(name))
		}
		return err
	}
	return nil
}

// Pause pauses q (spec §4.5) and fires domain-paused once libvirt has.
func (m *Manager) Pause(ctx context.Context, q *qubes.Qube) error {
	if !q.HasVM() {
		return notVM(q, "pause")
	}
	defer m.commitFired()
	if m.getRun(q.Name()) == nil || !m.IsRunning(q) {
		return qubes.NotRunningError(q.Name())
	}
	if err := m.fire(q, "domain-pre-paused", true); err != nil {
		return err
	}
	if err := m.opts.Conn.Pause(q.Name()); err != nil {
		if errors.Is(err, vmm.ErrInvalidState) {
			return qubes.NotRunningError(q.Name())
		}
		return err
	}
	m.paused(q)
	return nil
}

// paused fires domain-paused for a pause qubesd made, unless libvirt's
// suspended event got there first; that event, arriving later, is then
// ignored.
func (m *Manager) paused(q *qubes.Qube) {
	if r := m.getRun(q.Name()); r != nil && r.paused.CompareAndSwap(false, true) {
		if err := m.fire(q, "domain-paused", false); err != nil {
			m.log.Warn("a domain-paused handler failed", "qube", q.Name(), "error", err)
		}
	}
}

// Unpause resumes a paused q and fires domain-unpaused itself (spec §4.5).
func (m *Manager) Unpause(ctx context.Context, q *qubes.Qube) error {
	if !q.HasVM() {
		return notVM(q, "unpause")
	}
	r := m.getRun(q.Name())
	if r == nil || m.PowerState(q) != string(vmm.Paused) {
		return qubes.NotPausedError(q.Name())
	}
	defer m.commitFired()
	if err := m.fire(q, "domain-pre-unpaused", true); err != nil {
		return err
	}
	// domain-unpaused is fired here, not for libvirt's resumed event
	wasPaused := r.paused.Swap(false)
	if err := m.opts.Conn.Resume(q.Name()); err != nil {
		r.paused.Store(wasPaused)
		if errors.Is(err, vmm.ErrInvalidState) {
			return qubes.NotPausedError(q.Name())
		}
		return err
	}
	return m.fire(q, "domain-unpaused", false)
}

// Suspend suspends q to RAM (spec §4.5); a driver or guest that cannot
// (libvirt's test driver, a guest without S3) gets a plain pause instead,
// with domain-pre-paused, as in the reference. A qube already suspended,
// or paused where only a pause is possible, stays as it is. The guest's SuspendPre
// service needs qrexec, which qubesd-go does not run.
func (m *Manager) Suspend(ctx context.Context, q *qubes.Qube) error {
	if !q.HasVM() {
		return notVM(q, "suspend")
	}
	if m.getRun(q.Name()) == nil || !m.IsRunning(q) {
		return qubes.NotRunningError(q.Name())
	}
	defer m.commitFired()
	state := m.PowerState(q)
	if state == string(vmm.Suspended) {
		return nil
	}
	err := m.opts.Conn.PMSuspend(q.Name())
	if errors.Is(err, vmm.ErrUnsupported) {
		if state == string(vmm.Paused) {
			return nil // already stopped where a pause would stop it
		}
		if err := m.fire(q, "domain-pre-paused", true); err != nil {
			return err
		}
		if err = m.opts.Conn.Pause(q.Name()); err == nil {
			m.paused(q)
		}
	}
	if errors.Is(err, vmm.ErrInvalidState) {
		return qubes.NotRunningError(q.Name())
	}
	return err
}

// Resume wakes a suspended q and fires domain-resumed; a qube that is not
// suspended is unpaused (spec §4.5).
func (m *Manager) Resume(ctx context.Context, q *qubes.Qube) error {
	if !q.HasVM() {
		return notVM(q, "resume")
	}
	if m.getRun(q.Name()) == nil || m.PowerState(q) != string(vmm.Suspended) {
		return m.Unpause(ctx, q)
	}
	defer m.commitFired()
	if err := m.opts.Conn.PMWakeup(q.Name()); err != nil {
		if errors.Is(err, vmm.ErrInvalidState) {
			return qubes.NotSuspendedError(q.Name())
		}
		return err
	}
	return m.fire(q, "domain-resumed", false)
}

// NewSampler samples the resources of every active domain, or of q's only
// (nil: all), for admin.vm.Stats.
func (m *Manager) NewSampler(q *qubes.Qube) *vmm.Sampler {
	if q == nil {
		return m.opts.Conn.NewSampler("")
	}
	return m.opts.Conn.NewSampler(q.Name())
}

// Console is the pseudo-terminal of q's console (admin.vm.Console, for the
// qrexec script that connects to it). A console that is not a pty (the kvm
// template writes it to a file) is an error that names the file.
func (m *Manager) Console(q *qubes.Qube) (string, error) {
	if !q.HasVM() {
		return "", notVM(q, "open the console of")
	}
	if m.getRun(q.Name()) == nil || !m.IsRunning(q) {
		return "", qubes.NotRunningError(q.Name())
	}
	tty, err := m.opts.Conn.ConsoleTTY(q.Name())
	if err != nil {
		return "", err
	}
	if tty == "" {
		return "", qerr.New(qerr.Exception, "%s has no console terminal: its console is written to %s/console.log", q.Name(), q.DirPath())
	}
	return tty, nil
}

// StopHaltedStorage stops the volumes of every qube without a run: the
// reference's app.stop_storage() at qubesd start (spec admin-api §1), so
// that what a run left started when it ended unseen (the daemon was down)
// is committed or discarded. Each qube is handled under its start lock: a
// start cannot race it, and a qube started meanwhile keeps its volumes.
func (m *Manager) StopHaltedStorage(ctx context.Context) {
	if m.opts.Storage == nil {
		return
	}
	var qs []*qubes.Qube
	_ = m.app.Read(func() error {
		for _, q := range m.app.Qubes() {
			// a qube adopted as running is not one of them, even once
			// its run ends: that end stopped its storage
			if q.HasVM() && m.getRun(q.Name()) == nil {
				qs = append(qs, q)
			}
		}
		return nil
	})
	for _, q := range qs {
		unlock, err := m.lock(ctx, q.Name())
		if err != nil {
			return
		}
		if m.getRun(q.Name()) == nil {
			var vols []storage.Volume
			_ = m.app.Read(func() error {
				vols, _ = m.opts.Storage.Volumes(q)
				return nil
			})
			m.stopVolumes(q, vols)
		}
		unlock()
	}
}
