package lifecycle

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/core/vmm"
)

// Disposables with auto_cleanup are removed — volumes, record, libvirt
// definition — once they stop (the reference's DispVM._auto_cleanup on
// domain-shutdown), and at daemon start when a crash left them behind (the
// reference's cleanup-dispvms at boot). The removal is admin.vm.Remove's
// (storage.Manager.RemoveAll, qubes.App.Remove, a commit), but volumes
// first: a qube whose volumes could not all be removed is kept, so that
// qvm-remove or the next start can finish the job.

// disposableCleanupTimeout bounds one disposable's removal: waiting for
// its start lock, removing its volumes, saving.
const disposableCleanupTimeout = time.Minute

// errKeep ends a removal that found nothing to do.
var errKeep = errors.New("nothing to remove")

// cleanupDisposable removes q once it has stopped, when q is a disposable
// with auto_cleanup. endRun calls it after domain-shutdown, sometimes with
// q's start lock held (a start that failed or flushed the previous run),
// so the removal runs in the background and takes the lock itself: a
// disposable started again meanwhile is left to its next stop.
func (m *Manager) cleanupDisposable(q *qubes.Qube) {
	var auto bool
	_ = m.app.Read(func() error { auto = q.AutoCleanup(); return nil })
	if !auto {
		return
	}
	if m.closed.Load() {
		m.log.Warn("a disposable stopped while qubesd is stopping; it is removed at the next start", "qube", q.Name())
		return
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), disposableCleanupTimeout)
		defer cancel()
		m.removeDisposable(ctx, q, "it stopped")
	}()
}

// Orphans returns the disposables with auto_cleanup that do not run:
// those a crash of qubesd or of the host left behind. Call it after Adopt
// (a disposable adopted as running is left to its stop) and before the
// Admin API serves, so that no disposable created since is taken for one;
// remove them with ReapDisposables.
func (m *Manager) Orphans() []*qubes.Qube {
	var found []*qubes.Qube
	_ = m.app.Read(func() error {
		for _, q := range m.app.Qubes() {
			if q.AutoCleanup() && m.getRun(q.Name()) == nil {
				found = append(found, q)
			}
		}
		return nil
	})
	return found
}

// ReapDisposables removes the orphans Orphans found, once the pool
// drivers are up; one started or changed meanwhile is left alone. It
// returns the names of those removed; every failure is logged, and the
// qube kept for the next start (or qvm-remove) to finish.
func (m *Manager) ReapDisposables(ctx context.Context, orphans []*qubes.Qube) []string {
	var removed []string
	for _, q := range orphans {
		if ctx.Err() != nil {
			m.log.Warn("removing the disposables a crash left behind was cut short; the rest go at the next start", "error", ctx.Err())
			break
		}
		if m.removeDisposable(ctx, q, "qubesd found it stopped at start (left behind by a crash)") {
			removed = append(removed, q.Name())
		}
	}
	return removed
}

// removeDisposable removes q, under its start lock, unless it runs, is
// gone already, no longer has auto_cleanup or is still referenced: first
// its volumes, then its record (domain-pre-delete, domain-delete, saved)
// with its libvirt definition. It reports whether q was removed.
func (m *Manager) removeDisposable(ctx context.Context, q *qubes.Qube, why string) bool {
	name := q.Name()
	log := m.log.With("qube", name, "reason", why)
	unlock, err := m.lock(ctx, name)
	if err != nil {
		log.Error("auto-cleanup of a disposable gave up waiting for its start to end; it is kept: remove it with qvm-remove, or restart qubesd to retry", "error", err)
		return false
	}
	defer unlock()
	if m.getRun(name) != nil {
		return false // started again: removed when it stops
	}
	if m.opts.Conn != nil {
		d, err := m.opts.Conn.Lookup(name)
		switch {
		case errors.Is(err, vmm.ErrNoDomain):
		case err != nil:
			log.Error("auto-cleanup of a disposable cannot tell from libvirt whether it runs; it is kept: check libvirt, then remove it with qvm-remove or restart qubesd", "error", err)
			return false
		case d.Active:
			log.Error("auto-cleanup of a disposable found its domain running without qubesd knowing it; it is kept: kill it (virsh destroy) and restart qubesd, or qvm-remove it once halted", "state", d.State)
			return false
		}
	}

	var vols []storage.Volume
	err = m.app.Read(func() error {
		if cur, err := m.app.Qube(name); err != nil || cur != q || !q.AutoCleanup() {
			return errKeep // removed, or kept on purpose, meanwhile
		}
		if err := q.CheckUnreferenced(); err != nil {
			return err
		}
		if m.opts.Storage == nil {
			return nil
		}
		var err error
		vols, err = m.opts.Storage.Volumes(q)
		return err
	})
	if errors.Is(err, errKeep) {
		return false
	}
	if err != nil {
		log.Error("auto-cleanup of a disposable refused: the qube and its volumes are kept; fix what the error says, then remove it with qvm-remove", "error", err)
		return false
	}
	if len(vols) > 0 {
		if err := m.opts.Storage.RemoveAll(ctx, vols); err != nil {
			log.Error("auto-cleanup of a disposable could not remove its volumes; the qube is kept so that nothing is left behind unrecorded: fix the pool, then remove it with qvm-remove, or restart qubesd to retry", "error", err)
			return false
		}
	}

	// as the reference: the domain is undefined before domain-delete (a
	// start defines it again, should the record stay)
	m.Forget(name, q.DirPath(), true)
	version, err := m.app.Write(func() error {
		if err := q.ForgetPreload(); err != nil {
			log.Warn("taking a disposable out of its template's preloaded disposables", "error", err)
		}
		return m.app.Remove(q)
	})
	if m.opts.Commit != nil && version != 0 {
		// not ctx: a removal made in memory is saved even when the daemon is stopping
		cctx, cancel := context.WithTimeout(context.Background(), disposableCleanupTimeout)
		if cerr := m.opts.Commit(cctx, version); cerr != nil {
			log.Error("saving after a disposable's auto-cleanup failed; it is in memory only and redone at the next start", "error", cerr)
		}
		cancel()
	}
	if err != nil {
		log.Error("auto-cleanup of a disposable removed its volumes but not the qube; remove it with qvm-remove", "error", err)
		return false
	}
	log.Info("disposable removed (auto_cleanup)")
	return true
}

// Forget removes what a removed qube leaves outside the model and its
// volumes: its libvirt definition (kept after a stop, as Qubes keeps it),
// its directory (console log, QubesDB socket) and its start lock's entry.
// Call it holding the qube's start lock. The caller has removed
// the qube from the model and its volumes; a volume left on disk keeps the
// directory, which holds it in the file pools. Failures are logged with
// what to do.
func (m *Manager) Forget(name, dir string, volumesRemoved bool) {
	// the start lock's entry goes too (the caller holds the lock: a start
	// still waiting on it finds the qube gone; a new qube of the same name
	// gets a new lock)
	m.mu.Lock()
	delete(m.locks, name)
	m.mu.Unlock()
	if m.opts.Conn != nil {
		if err := m.opts.Conn.Undefine(name); err != nil && !errors.Is(err, vmm.ErrNoDomain) {
			m.log.Warn("undefining a removed qube's domain failed; remove it with virsh undefine", "qube", name, "error", err)
		}
	}
	if !volumesRemoved || dir == "" {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		m.log.Warn("removing a removed qube's directory failed; remove it by hand", "qube", name, "dir", dir, "error", err)
	}
}
