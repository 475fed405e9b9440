package storage

import (
	"context"
	"slices"
	"strconv"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// Volume is one volume of a qube: its record in the qube's volume-config
// and the pool it lives in.
type Volume struct {
	Qube string
	Name string
	Pool Pool
	// Spec is the volume as its driver sees it.
	Spec pool.Volume
	// Attrs are the record's attributes as written.
	Attrs map[string]string
}

// key identifies the volume for the per-volume locks.
func (v Volume) key() string { return v.Pool.Name + "/" + v.Spec.VID }

// Volumes returns q's volumes in volume-config order (root, private,
// volatile, kernel as the reference writes them). Call it under the
// model's lock.
func (m *Manager) Volumes(q *qubes.Qube) ([]Volume, error) {
	recs := q.Volumes()
	out := make([]Volume, 0, len(recs))
	for _, rec := range recs {
		attrs := make(map[string]string, len(rec.Attrs))
		for _, a := range rec.Attrs {
			attrs[a.Name] = a.Value
		}
		v, err := m.volume(q, attrs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Volume returns q's volume called name. Call it under the model's lock.
func (m *Manager) Volume(q *qubes.Qube, name string) (Volume, error) {
	vols, err := m.Volumes(q)
	if err != nil {
		return Volume{}, err
	}
	for _, v := range vols {
		if v.Name == name {
			return v, nil
		}
	}
	return Volume{}, qerr.New(qerr.PermissionDenied, "qube %s has no volume %q", q.Name(), name)
}

// VolumeNames returns the names of q's volumes in order.
func VolumeNames(q *qubes.Qube) []string {
	var names []string
	for _, rec := range q.Volumes() {
		for _, a := range rec.Attrs {
			if a.Name == "name" {
				names = append(names, a.Value)
			}
		}
	}
	return names
}

// volume builds a Volume from its record.
func (m *Manager) volume(q *qubes.Qube, attrs map[string]string) (Volume, error) {
	p, err := m.Pool(attrs["pool"])
	if err != nil {
		return Volume{}, qerr.Wrap(qerr.StoragePoolError, err, "qube %s, volume %s: %v", q.Name(), attrs["name"], err)
	}
	v := Volume{Qube: q.Name(), Name: attrs["name"], Pool: p, Attrs: attrs}
	size, _ := strconv.ParseUint(attrs["size"], 10, 64)
	rev := p.RevisionsToKeep()
	if n, err := strconv.Atoi(attrs["revisions_to_keep"]); err == nil {
		rev = n
	}
	vid := attrs["vid"]
	if v.Name == "kernel" {
		// The reference's kernel volume follows the qube's kernel
		// property: its vid is the kernel version in use.
		if k, err := q.Get("kernel"); err == nil {
			vid, _ = k.(string)
		}
	}
	v.Spec = pool.Volume{
		VID:             vid,
		Name:            v.Name,
		Size:            size,
		RW:              attrs["rw"] == "True",
		SnapOnStart:     attrs["snap_on_start"] == "True",
		SaveOnStop:      attrs["save_on_stop"] == "True",
		RevisionsToKeep: rev,
		SourceVID:       attrs["source"],
		Ephemeral:       attrs["ephemeral"] == "True" || (v.Name == "volatile" && p.EphemeralVolatile()),
	}
	return v, nil
}

// volumeDriver returns the driver of v's pool.
func (m *Manager) volumeDriver(v Volume) (pool.Driver, error) { return m.driver(v.Pool) }

// lockedDriver returns v's driver with v's lock taken; the caller
// unlocks.
func (m *Manager) lockedDriver(ctx context.Context, v Volume) (pool.Driver, func(), error) {
	d, err := m.volumeDriver(v)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := m.lockVolumes(ctx, v)
	if err != nil {
		return nil, nil, err
	}
	return d, unlock, nil
}

// do runs fn on v's driver under v's lock, and makes its error one for API
// clients.
func (m *Manager) do(ctx context.Context, v Volume, what string, fn func(d pool.Driver, p pool.Pool) error) error {
	d, unlock, err := m.lockedDriver(ctx, v)
	if err != nil {
		return err
	}
	defer unlock()
	if err := m.notImporting(v); err != nil {
		return err
	}
	return m.poolError(v.Pool, what+" "+v.Qube+":"+v.Name, fn(d, v.Pool.spec()))
}

// lockVolumes takes the locks of vols in a fixed order (by key), so that
// two operations on the same volumes never wait for each other. The
// returned function releases them.
func (m *Manager) lockVolumes(ctx context.Context, vols ...Volume) (func(), error) {
	keys := make([]string, 0, len(vols))
	for _, v := range vols {
		keys = append(keys, v.key())
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var unlocks []func()
	release := func() {
		for _, u := range slices.Backward(unlocks) {
			u()
		}
	}
	for _, k := range keys {
		unlock, err := m.locks.lock(ctx, k)
		if err != nil {
			release()
			v := vols[slices.IndexFunc(vols, func(v Volume) bool { return v.key() == k })]
			return nil, qerr.Wrap(qerr.StoragePoolError, err, "volume %s of %s is busy with another operation: %v", v.Name, v.Qube, err)
		}
		unlocks = append(unlocks, unlock)
	}
	return release, nil
}

// Info is what a driver reports about a volume.
func (m *Manager) Info(ctx context.Context, v Volume) (pool.VolumeState, error) {
	var st pool.VolumeState
	err := m.do(ctx, v, "volume info", func(d pool.Driver, p pool.Pool) error {
		var err error
		st, err = d.VolumeInfo(ctx, p, v.Spec)
		return err
	})
	return st, err
}

// Revisions lists v's kept revisions, oldest first: the order is an API
// contract (qvm-volume revert without a revision takes the last one).
func (m *Manager) Revisions(ctx context.Context, v Volume) ([]pool.Revision, error) {
	var revs []pool.Revision
	err := m.do(ctx, v, "listing revisions of", func(d pool.Driver, p pool.Pool) error {
		var err error
		revs, err = d.ListRevisions(ctx, p, v.Spec)
		return err
	})
	slices.SortStableFunc(revs, func(a, b pool.Revision) int { return a.Time.Compare(b.Time) })
	return revs, err
}

// Revert restores v to revision (the newest when ""). The revision must be
// one ListRevisions gives.
func (m *Manager) Revert(ctx context.Context, v Volume, revision string) error {
	revs, err := m.Revisions(ctx, v)
	if err != nil {
		return err
	}
	if len(revs) == 0 {
		return qerr.New(qerr.VolumeRevisionNotFound, "volume %s of %s has no revisions to revert to", v.Name, v.Qube)
	}
	if revision == "" {
		revision = revs[len(revs)-1].ID
	}
	if !slices.ContainsFunc(revs, func(r pool.Revision) bool { return r.ID == revision }) {
		return qerr.New(qerr.VolumeRevisionNotFound, "volume %s of %s has no revision %q (qvm-volume info %s:%s lists them)", v.Name, v.Qube, revision, v.Qube, v.Name)
	}
	return m.do(ctx, v, "reverting", func(d pool.Driver, p pool.Pool) error { return d.Revert(ctx, p, v.Spec, revision) })
}

// Resize grows (or, where the driver can, shrinks) v to size bytes. The
// caller records the new size in the volume's record.
func (m *Manager) Resize(ctx context.Context, v Volume, size uint64) error {
	if !v.Spec.RW {
		return qerr.New(qerr.StoragePoolError, "Can not resize readonly volume %s:%s", v.Qube, v.Name)
	}
	if size == v.Spec.Size {
		return nil
	}
	return m.do(ctx, v, "resizing", func(d pool.Driver, p pool.Pool) error { return d.Resize(ctx, p, v.Spec, size) })
}

// Create creates v's storage (nothing for a snapshot of another volume).
func (m *Manager) Create(ctx context.Context, v Volume) error {
	return m.do(ctx, v, "creating", func(d pool.Driver, p pool.Pool) error { return d.Create(ctx, p, v.Spec) })
}

// Remove removes v's storage and its revisions.
func (m *Manager) Remove(ctx context.Context, v Volume) error {
	return m.do(ctx, v, "removing", func(d pool.Driver, p pool.Pool) error { return d.Remove(ctx, p, v.Spec) })
}

// Start prepares v for a starting qube and returns the disk it gets.
func (m *Manager) Start(ctx context.Context, v Volume) (pool.BlockDevice, error) {
	var dev pool.BlockDevice
	err := m.do(ctx, v, "starting", func(d pool.Driver, p pool.Pool) error {
		var err error
		dev, err = d.Start(ctx, p, v.Spec)
		return err
	})
	return dev, err
}

// Stop commits or discards what the qube wrote to v, as its type says.
func (m *Manager) Stop(ctx context.Context, v Volume) error {
	return m.do(ctx, v, "stopping", func(d pool.Driver, p pool.Pool) error { return d.Stop(ctx, p, v.Spec) })
}

// CreateAll creates vols in order. If one fails, those already created are
// removed again and the first error is returned: a qube is created with
// all its volumes or none.
func (m *Manager) CreateAll(ctx context.Context, vols []Volume) error {
	for i, v := range vols {
		if err := m.Create(ctx, v); err != nil {
			for _, done := range slices.Backward(vols[:i]) {
				if rerr := m.Remove(context.WithoutCancel(ctx), done); rerr != nil {
					m.log.Error("removing a volume after a failed create; it is left on disk", "qube", done.Qube, "volume", done.Name, "pool", done.Pool.Name, "vid", done.Spec.VID, "error", rerr)
				}
			}
			return err
		}
	}
	return nil
}

// RemoveAll removes vols, going on past failures; it returns the first.
// A volume whose pool is unavailable is left where it is, and logged.
func (m *Manager) RemoveAll(ctx context.Context, vols []Volume) error {
	var first error
	for _, v := range vols {
		if err := m.Remove(ctx, v); err != nil {
			m.log.Error("removing a volume failed; it is left on disk", "qube", v.Qube, "volume", v.Name, "pool", v.Pool.Name, "vid", v.Spec.VID, "error", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}
