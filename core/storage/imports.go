package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// Imports. admin.vm.volume.Import writes a volume's new content between
// two Admin API calls (internal.vm.volume.ImportBegin and ImportEnd), so no
// lock can be held from begin to end. Instead an import in progress is a
// marker on the volume: while it is set every other operation on the
// volume is refused, saying so. The markers are journalled in a small file
// (Options.StateDir), written before the driver is asked to begin and
// cleared after it ended, so that after a crash CleanupAbandonedImports
// ends (aborts) every import the previous run left behind — a driver keeps
// the old content until ImportEnd(true), so aborting loses nothing that
// was committed.

// journalName is the journal's file name in Options.StateDir.
const journalName = "storage-imports.json"

// importEntry is one import in progress.
type importEntry struct {
	Pool   string            `json:"pool"`
	Driver string            `json:"driver"`
	Attrs  map[string]string `json:"attrs"`
	Qube   string            `json:"qube"`
	Volume string            `json:"volume"`
	Spec   pool.Volume       `json:"spec"`
	Size   uint64            `json:"size"`
	Begun  time.Time         `json:"begun"`
	// abandoned: read from the journal at start, left by an earlier run.
	abandoned bool
}

func (e *importEntry) pool() Pool { return Pool{Name: e.Pool, Driver: e.Driver, Attrs: e.Attrs} }

// loadJournal reads the imports an earlier run left in progress.
func (m *Manager) loadJournal() {
	raw, err := os.ReadFile(m.journal)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var entries []*importEntry
	if err == nil {
		err = json.Unmarshal(raw, &entries)
	}
	if err != nil {
		bad := m.journal + ".bad-" + strconv.FormatInt(time.Now().Unix(), 10)
		m.log.Error("the journal of imports in progress is unreadable; set aside, imports it listed are not ended", "path", m.journal, "moved_to", bad, "error", err)
		_ = os.Rename(m.journal, bad)
		return
	}
	for _, e := range entries {
		e.abandoned = true
		m.imports[Volume{Pool: e.pool(), Spec: e.Spec}.key()] = e
	}
}

// saveJournalLocked writes the journal (m.mu held): a temporary file,
// synced and renamed over the old one.
func (m *Manager) saveJournalLocked() error {
	if m.journal == "" {
		return nil
	}
	entries := make([]*importEntry, 0, len(m.imports))
	for _, k := range slices.Sorted(maps.Keys(m.imports)) {
		entries = append(entries, m.imports[k])
	}
	if len(entries) == 0 {
		if err := os.Remove(m.journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	raw, err := json.MarshalIndent(entries, "", "\t")
	if err != nil {
		return err
	}
	dir := filepath.Dir(m.journal)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+journalName+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), m.journal)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// setImport records (e != nil) or clears the import marker of the volume
// with key, in memory and in the journal.
func (m *Manager) setImport(key string, e *importEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.imports[key]
	if e != nil {
		m.imports[key] = e
	} else {
		delete(m.imports, key)
	}
	if err := m.saveJournalLocked(); err != nil {
		if had { // put the memory back as the file still says
			m.imports[key] = old
		} else {
			delete(m.imports, key)
		}
		return qerr.Wrap(qerr.StoragePoolError, err, "recording the import in %s failed: %v", m.journal, err)
	}
	return nil
}

// importOf returns v's import in progress, or nil.
func (m *Manager) importOf(v Volume) *importEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.imports[v.key()]
}

// notImporting refuses an operation on v while an import into it is in
// progress.
func (m *Manager) notImporting(v Volume) error {
	if e := m.importOf(v); e != nil {
		how := "begun " + e.Begun.UTC().Format(time.DateTime) + " UTC"
		if e.abandoned {
			how = "left by an earlier run of qubesd; it is ended when qubesd starts"
		}
		return qerr.New(qerr.StoragePoolError, "volume %s of %s: an import is in progress (%s); it must end first", v.Name, v.Qube, how)
	}
	return nil
}

// ImportInProgress reports whether v has an import in progress, and its
// size.
func (m *Manager) ImportInProgress(v Volume) (size uint64, ok bool) {
	if e := m.importOf(v); e != nil {
		return e.Size, true
	}
	return 0, false
}

// driverCaps returns d's capabilities.
func (m *Manager) driverCaps(ctx context.Context, p Pool, d pool.Driver) (pool.Capabilities, error) {
	info, err := d.Info(ctx)
	if err != nil {
		return pool.Capabilities{}, m.poolError(p, "driver info", err)
	}
	return info.Capabilities, nil
}

// ImportBegin starts an import into v, an origin volume, of size bytes (0:
// v's recorded size) and returns the path to write them to. The volume's
// content is replaced only at ImportEnd(true); until ImportEnd, every
// other operation on v is refused. There must be room for size bytes in
// the pool (see checkSpace).
func (m *Manager) ImportBegin(ctx context.Context, v Volume, size uint64) (string, error) {
	if size == 0 {
		size = v.Spec.Size
	}
	d, err := m.volumeDriver(v)
	if err != nil {
		return "", err
	}
	caps, err := m.driverCaps(ctx, v.Pool, d)
	if err != nil {
		return "", err
	}
	if !caps.Import {
		return "", qerr.New(qerr.StoragePoolError, "pool %s (driver %s) cannot import data into volume %s:%s", v.Pool.Name, v.Pool.Driver, v.Qube, v.Name)
	}
	if v.Spec.Type() != pool.Origin {
		return "", qerr.New(qerr.StoragePoolError, "volume %s:%s keeps no data of its own (a %s volume): nothing to import into", v.Qube, v.Name, v.Spec.Type())
	}
	unlock, err := m.lockVolumes(ctx, v)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := m.notImporting(v); err != nil {
		return "", err
	}
	if err := m.checkSpace(ctx, v.Pool, "importing into "+v.Qube+":"+v.Name, size); err != nil {
		return "", err
	}
	return m.importBegin(ctx, d, v, size)
}

// importBegin journals the import and asks the driver to begin it; v's
// lock is held.
func (m *Manager) importBegin(ctx context.Context, d pool.Driver, v Volume, size uint64) (string, error) {
	e := &importEntry{Pool: v.Pool.Name, Driver: v.Pool.Driver, Attrs: v.Pool.Attrs, Qube: v.Qube, Volume: v.Name,
		Spec: v.Spec, Size: size, Begun: time.Now()}
	if err := m.setImport(v.key(), e); err != nil {
		return "", err
	}
	path, err := d.ImportBegin(ctx, v.Pool.spec(), v.Spec, size)
	if err != nil {
		if cerr := m.setImport(v.key(), nil); cerr != nil {
			m.log.Error("clearing a failed import from the journal", "qube", v.Qube, "volume", v.Name, "error", cerr)
		}
		return "", m.poolError(v.Pool, "beginning an import into "+v.Qube+":"+v.Name, err)
	}
	return path, nil
}

// ImportEnd ends v's import: success commits the data written (the old
// content becoming a revision where the pool keeps them) and records the
// imported size in v's record; otherwise the data is discarded and v keeps
// its content. Without an import in progress it only asks the driver
// (which does nothing then). If the driver fails, the import stays in
// progress: ImportEnd may be called again.
func (m *Manager) ImportEnd(ctx context.Context, v Volume, success bool) error {
	d, unlock, err := m.lockedDriver(ctx, v)
	if err != nil {
		return err
	}
	defer unlock()
	return m.importEnd(ctx, d, v, success)
}

// importEnd ends v's import; v's lock is held.
func (m *Manager) importEnd(ctx context.Context, d pool.Driver, v Volume, success bool) error {
	e := m.importOf(v)
	spec := v.Spec
	if e != nil {
		spec.Size = e.Size
	}
	if err := d.ImportEnd(ctx, v.Pool.spec(), spec, success); err != nil {
		return m.poolError(v.Pool, "ending the import into "+v.Qube+":"+v.Name, err)
	}
	if e == nil {
		return nil
	}
	if err := m.setImport(v.key(), nil); err != nil {
		return err
	}
	if success && e.Size != v.Spec.Size {
		return m.recordSize(ctx, v, e.Size)
	}
	return nil
}

// recordSize records size as v's size in its qube's volume-config (the
// qube may be gone: then nothing is recorded).
func (m *Manager) recordSize(ctx context.Context, v Volume, size uint64) error {
	version, err := m.app.Write(func() error {
		q, err := m.app.Qube(v.Qube)
		if err != nil {
			return nil
		}
		return q.SetVolumeAttr(v.Name, "size", strconv.FormatUint(size, 10))
	})
	if err != nil {
		return err
	}
	if m.commit != nil {
		if err := m.commit(ctx, version); err != nil {
			return qerr.Wrap(qerr.Exception, err, "volume %s:%s has %d bytes now, but saving that in qubes.xml failed: %v", v.Qube, v.Name, size, err)
		}
	}
	return nil
}

// CleanupAbandonedImports aborts (ImportEnd false) every import an earlier
// run of the daemon left in progress, as its journal lists them. Call it
// once at daemon start, after the pool drivers are up. An import whose
// pool is unavailable stays in progress (its volume refuses operations)
// and is in the returned error; calling again retries it. Imports begun
// by this run are not touched.
func (m *Manager) CleanupAbandonedImports(ctx context.Context) error {
	m.mu.Lock()
	var todo []*importEntry
	for _, e := range m.imports {
		if e.abandoned {
			todo = append(todo, e)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(todo, func(a, b *importEntry) int { return a.Begun.Compare(b.Begun) })
	var errs []error
	for _, e := range todo {
		p := e.pool()
		_ = m.app.Read(func() error { // the pool's record as it is now, if it is still there
			if cur, err := m.Pool(e.Pool); err == nil {
				p = cur
			}
			return nil
		})
		v := Volume{Qube: e.Qube, Name: e.Volume, Pool: p, Spec: e.Spec}
		err := m.ImportEnd(ctx, v, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s:%s (pool %s, vid %s): %w", e.Qube, e.Volume, e.Pool, e.Spec.VID, err))
			continue
		}
		m.log.Warn("aborted an import a previous run left in progress", "qube", e.Qube, "volume", e.Volume, "pool", e.Pool, "vid", e.Spec.VID, "begun", e.Begun)
	}
	if len(errs) > 0 {
		return qerr.Wrap(qerr.StoragePoolError, errors.Join(errs...), "imports left in progress could not be ended: %v", errors.Join(errs...))
	}
	return nil
}
