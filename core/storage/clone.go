package storage

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// Clone makes dst's storage a copy of src's committed content (src may
// be started: its content from before the start is copied). dst need not
// exist; if it does, its content is replaced — and where its driver keeps
// revisions, the old content becomes one.
//
// In one pool whose driver has FastClone, a dst that does not exist yet is
// made with the driver's CloneFrom. Otherwise the data is copied: src is
// exported, dst imported (created first if absent), and the data extents
// of the export are written into the import path in place (the holes are
// left: the import starts as zeros), with progress reports; the import is
// committed only when everything is there. On any failure the import is
// aborted and a dst created here removed, so dst is as it was before.
//
// A dst that keeps no data of its own (a snapshot or volatile volume) is
// only created. There must be room in dst's pool for src's usage (see
// checkSpace). Both volumes are locked for the whole clone.
func (m *Manager) Clone(ctx context.Context, dst, src Volume, progress func(done, total uint64)) error {
	if dst.key() == src.key() {
		return qerr.New(qerr.ValueError, "volume %s:%s cannot be cloned onto itself", dst.Qube, dst.Name)
	}
	dd, err := m.volumeDriver(dst)
	if err != nil {
		return err
	}
	sd, err := m.volumeDriver(src)
	if err != nil {
		return err
	}
	unlock, err := m.lockVolumes(ctx, dst, src)
	if err != nil {
		return err
	}
	defer unlock()
	for _, v := range []Volume{dst, src} {
		if err := m.notImporting(v); err != nil {
			return err
		}
	}
	dp, sp := dst.Pool.spec(), src.Pool.spec()
	what := "cloning " + src.Qube + ":" + src.Name + " to " + dst.Qube + ":" + dst.Name

	dstState, err := dd.VolumeInfo(ctx, dp, dst.Spec)
	exists := err == nil
	if err != nil && !errors.Is(err, pool.ErrNotFound) {
		return m.poolError(dst.Pool, what, err)
	}
	if dst.Spec.Type() != pool.Origin {
		if exists {
			return nil
		}
		return m.poolError(dst.Pool, what, dd.Create(ctx, dp, dst.Spec))
	}

	st, err := sd.VolumeInfo(ctx, sp, src.Spec)
	if err != nil {
		return m.poolError(src.Pool, what, err)
	}
	if err := m.checkSpace(ctx, dst.Pool, "cloning", st.Usage); err != nil {
		return err
	}
	dcaps, err := m.driverCaps(ctx, dst.Pool, dd)
	if err != nil {
		return err
	}
	scaps := dcaps
	if src.Pool.Driver != dst.Pool.Driver {
		if scaps, err = m.driverCaps(ctx, src.Pool, sd); err != nil {
			return err
		}
	}
	sameFast := src.Pool.Name == dst.Pool.Name && dcaps.FastClone
	canCopy := scaps.Export && dcaps.Import
	// A destination that holds nothing (just created with its qube, as
	// CloneTo's always is) may be replaced: the driver's own clone then
	// shares blocks with the source (reflinks), where a copy would not.
	fresh := !exists || m.holdsNothing(ctx, dd, dcaps, dst, dstState)
	switch {
	case sameFast && fresh:
		if exists {
			if err := dd.Remove(ctx, dp, dst.Spec); err != nil {
				return m.poolError(dst.Pool, what, err)
			}
		}
		if err := dd.CloneFrom(ctx, dp, dst.Spec, src.Spec); err != nil {
			return m.poolError(dst.Pool, what, err)
		}
		return m.recordCloneSize(ctx, dd, dst)
	case !canCopy && sameFast:
		return qerr.New(qerr.StoragePoolError, "%s: pool %s (driver %s) can clone only into an empty volume, and %s:%s holds data; refused rather than destroy it before the copy exists (qvm-volume clear it first)",
			what, dst.Pool.Name, dst.Pool.Driver, dst.Qube, dst.Name)
	case !canCopy:
		return qerr.New(qerr.StoragePoolError, "%s: pool %s (driver %s) cannot export and pool %s (driver %s) cannot import, or the reverse; the data cannot be copied",
			what, src.Pool.Name, src.Pool.Driver, dst.Pool.Name, dst.Pool.Driver)
	}

	if !exists {
		if err := dd.Create(ctx, dp, dst.Spec); err != nil {
			return m.poolError(dst.Pool, what, err)
		}
	}
	err = m.copyVolume(ctx, dd, sd, dst, src, what, progress)
	if err != nil && !exists {
		if rerr := dd.Remove(context.WithoutCancel(ctx), dp, dst.Spec); rerr != nil {
			m.log.Error("removing a volume after a failed clone; it is left on disk", "pool", dst.Pool.Name, "vid", dst.Spec.VID, "error", rerr)
		}
	}
	return err
}

// holdsNothing reports whether an existing volume has nothing to lose:
// no data, not started, no revisions.
func (m *Manager) holdsNothing(ctx context.Context, d pool.Driver, caps pool.Capabilities, v Volume, st pool.VolumeState) bool {
	if st.Usage != 0 || st.Dirty {
		return false
	}
	if !caps.Revisions {
		return true
	}
	revs, err := d.ListRevisions(ctx, v.Pool.spec(), v.Spec)
	return err == nil && len(revs) == 0
}

// recordCloneSize records the size CloneFrom gave dst.
func (m *Manager) recordCloneSize(ctx context.Context, dd pool.Driver, dst Volume) error {
	st, err := dd.VolumeInfo(ctx, dst.Pool.spec(), dst.Spec)
	if err != nil || st.Size == dst.Spec.Size || st.Size == 0 {
		return nil // the clone is done; its size shows in volume info
	}
	return m.recordSize(ctx, dst, st.Size)
}

// copyVolume copies src's committed content into dst (which exists)
// through export and import; both volumes are locked.
func (m *Manager) copyVolume(ctx context.Context, dd, sd pool.Driver, dst, src Volume, what string, progress func(done, total uint64)) (err error) {
	epath, err := sd.ExportBegin(ctx, src.Pool.spec(), src.Spec)
	if err != nil {
		return m.poolError(src.Pool, what, err)
	}
	defer func() {
		if eerr := sd.ExportEnd(context.WithoutCancel(ctx), src.Pool.spec(), src.Spec, epath); eerr != nil {
			m.log.Error("ending an export failed", "pool", src.Pool.Name, "vid", src.Spec.VID, "path", epath, "error", eerr)
		}
	}()
	in, err := os.Open(epath)
	if err != nil {
		return qerr.Wrap(qerr.StoragePoolError, err, "%s: reading the export of pool %s: %v", what, src.Pool.Name, err)
	}
	defer in.Close()
	total, err := in.Seek(0, io.SeekEnd)
	if err != nil {
		return qerr.Wrap(qerr.StoragePoolError, err, "%s: reading the export of pool %s: %v", what, src.Pool.Name, err)
	}
	ipath, err := m.importBegin(ctx, dd, dst, uint64(total))
	if err != nil {
		return err
	}
	abort := func(err error) error {
		if aerr := m.importEnd(context.WithoutCancel(ctx), dd, dst, false); aerr != nil {
			m.log.Error("aborting an import after a failed copy; it stays in progress", "pool", dst.Pool.Name, "vid", dst.Spec.VID, "error", aerr)
		}
		return err
	}
	out, err := os.OpenFile(ipath, os.O_WRONLY, 0)
	if err != nil {
		return abort(qerr.Wrap(qerr.StoragePoolError, err, "%s: opening the import path of pool %s: %v", what, dst.Pool.Name, err))
	}
	err = copyExtents(ctx, out, in, total, progress)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return abort(qerr.Wrap(qerr.StoragePoolError, err, "%s: cancelled: %v", what, err))
		}
		return abort(qerr.Wrap(qerr.StoragePoolError, err, "%s: copying the data failed: %v", what, err))
	}
	if err := m.importEnd(ctx, dd, dst, true); err != nil {
		return abort(err)
	}
	return nil
}

// copyChunk is the unit of copying and of progress reports.
const copyChunk = 1 << 20

// copyExtents copies in's first total bytes to out at the same offsets,
// writing only data: it skips in's holes (SEEK_DATA/SEEK_HOLE where the
// file system tells them) and chunks of zeros, since out starts as zeros.
// progress gets (bytes done, total) after each chunk and at the end.
func copyExtents(ctx context.Context, out, in *os.File, total int64, progress func(done, total uint64)) error {
	report := func(done int64) {
		if progress != nil {
			progress(uint64(done), uint64(total))
		}
	}
	buf := make([]byte, copyChunk)
	for off := int64(0); off < total; {
		start, end, err := pool.DataExtent(in, off, total)
		if err != nil {
			return err
		}
		for pos := start; pos < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), end-pos)
			if _, err := in.ReadAt(buf[:n], pos); err != nil && !(errors.Is(err, io.EOF)) {
				return err
			}
			if !allZero(buf[:n]) {
				if _, err := out.WriteAt(buf[:n], pos); err != nil {
					return err
				}
			}
			pos += n
			report(pos)
		}
		off = end
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	report(total)
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
