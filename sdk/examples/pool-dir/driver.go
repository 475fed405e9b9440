package main

// driver.go: the Driver methods — what any pool driver writes. The storage
// primitives they use (files, copies, commits) are in files.go.

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// Driver keeps no state: everything it needs comes with each call (the pool
// config and the volume spec) or is on disk. UnimplementedDriver supplies
// Configure (no plugin config accepted), Destroy (nothing: the directory may
// hold what is not ours) and ExportEnd (nothing to release).
type Driver struct{ pool.UnimplementedDriver }

const (
	clean     = "clean.img"
	running   = "running.img"
	importing = "import.img"
)

func (*Driver) Info(context.Context) (pool.Info, error) {
	return pool.Info{
		Name: "dir", Version: "0.1.0", Description: "each volume a sparse file in a directory",
		Capabilities: pool.Capabilities{Revisions: true, Shrink: true, FastClone: true, Import: true, Export: true},
		PoolConfig:   []pool.ConfigKey{{Name: "dir_path", Description: "absolute directory holding the volumes", Required: true}},
	}, nil
}

// ValidateConfig checks a pool config. The SDK runs it before every call,
// so the other methods can trust p.Config["dir_path"].
func (*Driver) ValidateConfig(_ context.Context, cfg map[string]string) error {
	for k := range cfg {
		if k != "dir_path" {
			return pool.Errorf(pool.ErrInvalid, "unknown pool config key %q (this driver knows dir_path)", k)
		}
	}
	if !filepath.IsAbs(cfg["dir_path"]) {
		return pool.Errorf(pool.ErrInvalid, "dir_path %q: must be an absolute path", cfg["dir_path"])
	}
	return nil
}

func (*Driver) Open(_ context.Context, p pool.Pool) error {
	if fi, err := os.Stat(p.Config["dir_path"]); err != nil || !fi.IsDir() {
		return pool.Errorf(pool.ErrUnavailable, "pool %s: %s is not a directory", p.Name, p.Config["dir_path"])
	}
	return nil
}

func (*Driver) Setup(_ context.Context, p pool.Pool) error {
	return os.MkdirAll(p.Config["dir_path"], 0o755)
}

func (*Driver) Usage(_ context.Context, p pool.Pool) (pool.Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.Config["dir_path"], &st); err != nil {
		return pool.Usage{}, err
	}
	bs := uint64(st.Bsize)
	return pool.Usage{Size: st.Blocks * bs, Usage: (st.Blocks - st.Bfree) * bs}, nil
}

func (*Driver) ListVolumes(_ context.Context, p pool.Pool) ([]pool.VolumeState, error) {
	entries, err := os.ReadDir(p.Config["dir_path"])
	var vols []pool.VolumeState
	for _, e := range entries {
		if vid, uerr := url.PathUnescape(e.Name()); uerr == nil && e.IsDir() && !strings.HasPrefix(e.Name(), "~") {
			vols = append(vols, state(filepath.Join(p.Config["dir_path"], e.Name()), vid))
		}
	}
	return vols, err
}

func (*Driver) Create(_ context.Context, p pool.Pool, v pool.Volume) error {
	return newVolume(p, v.VID, func(tmp string) error {
		if !v.SaveOnStop {
			return nil // volatile and snapshot volumes get their image at Start
		}
		return sparse(filepath.Join(tmp, clean), v.Size)
	})
}

func (*Driver) Remove(_ context.Context, p pool.Pool, v pool.Volume) error {
	return os.RemoveAll(volDir(p, v.VID))
}

// Start gives the qube running.img: a fresh one (volatile), a copy of the
// source's committed content (snapshot) or of its own (origin). A started
// volume keeps the running image it has.
func (*Driver) Start(_ context.Context, p pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	d, err := existing(p, v)
	img := filepath.Join(d, running)
	if err == nil && !exists(img) {
		switch v.Type() {
		case pool.Volatile:
			err = sparse(img, v.Size)
		case pool.Snapshot:
			err = copyFile(filepath.Join(volDir(p, v.SourceVID), clean), img)
		case pool.Origin:
			err = copyFile(filepath.Join(d, clean), img)
		default:
			err = pool.Errorf(pool.ErrUnimplemented, "volume %s: snap_on_start with save_on_stop is not supported", v.VID)
		}
	}
	return pool.BlockDevice{Path: img, RW: v.RW}, err
}

// Stop commits what the qube wrote to an origin volume; anything else is
// thrown away. A stopped volume has no running.img: nothing to do.
func (*Driver) Stop(_ context.Context, p pool.Pool, v pool.Volume) error {
	img := filepath.Join(volDir(p, v.VID), running)
	switch {
	case !exists(img):
		return nil
	case v.SaveOnStop && v.RW:
		return commit(filepath.Dir(img), img, v.RevisionsToKeep)
	}
	return os.Remove(img)
}

// Resize truncates the running image if there is one, else the committed
// content. A stopped volatile or snapshot volume has nothing on disk: the
// next Start uses the new size from the spec.
func (*Driver) Resize(_ context.Context, p pool.Pool, v pool.Volume, size uint64) error {
	d, err := existing(p, v)
	if err == nil && !v.RW {
		err = pool.Errorf(pool.ErrInvalid, "volume %s is read-only", v.VID)
	}
	for _, f := range []string{running, clean} {
		if img := filepath.Join(d, f); err == nil && exists(img) {
			return os.Truncate(img, int64(size))
		}
	}
	return err
}

// Revert copies a revision over the committed content; the revision stays.
func (*Driver) Revert(_ context.Context, p pool.Pool, v pool.Volume, rev string) error {
	d, err := existing(p, v)
	if err != nil {
		return err
	}
	if exists(filepath.Join(d, running)) {
		return pool.Errorf(pool.ErrInUse, "volume %s is started", v.VID)
	}
	revs, err := revisions(d)
	if rev == "" && len(revs) > 0 {
		rev = revs[len(revs)-1].ID // the latest
	}
	if !slices.ContainsFunc(revs, func(r pool.Revision) bool { return r.ID == rev }) {
		return errors.Join(err, pool.Errorf(pool.ErrNotFound, "volume %s has no revision %q", v.VID, rev))
	}
	return copyFile(filepath.Join(d, revFile(rev)), filepath.Join(d, clean))
}

func (*Driver) ListRevisions(_ context.Context, p pool.Pool, v pool.Volume) ([]pool.Revision, error) {
	d, err := existing(p, v)
	if err != nil {
		return nil, err
	}
	return revisions(d)
}

func (*Driver) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	d, err := existing(p, v)
	s := state(d, v.VID)
	if s.Size == 0 {
		s.Size = v.Size // nothing on disk now (a stopped volatile volume)
	}
	return s, err
}

// Verify checks that the committed content a Start needs is there.
func (*Driver) Verify(_ context.Context, p pool.Pool, v pool.Volume) error {
	d, err := existing(p, v)
	need := map[pool.VolumeType]string{pool.Origin: filepath.Join(d, clean), pool.Snapshot: filepath.Join(volDir(p, v.SourceVID), clean)}[v.Type()]
	if err == nil && need != "" && !exists(need) {
		err = pool.Errorf(pool.ErrNotFound, "volume %s: %s is missing", v.VID, need)
	}
	return err
}

func (*Driver) CloneFrom(_ context.Context, p pool.Pool, v, src pool.Volume) error {
	if !v.SaveOnStop {
		return pool.Errorf(pool.ErrInvalid, "volume %s: only save_on_stop volumes can be clones", v.VID)
	}
	return newVolume(p, v.VID, func(tmp string) error {
		return copyFile(filepath.Join(volDir(p, src.VID), clean), filepath.Join(tmp, clean))
	})
}

// ImportBegin hands out import.img; ImportEnd commits it as Stop commits.
func (*Driver) ImportBegin(_ context.Context, p pool.Pool, v pool.Volume, size uint64) (string, error) {
	d, err := existing(p, v)
	switch {
	case err != nil:
	case !v.SaveOnStop:
		err = pool.Errorf(pool.ErrInvalid, "volume %s: only save_on_stop volumes can be imported into", v.VID)
	case exists(filepath.Join(d, running)):
		err = pool.Errorf(pool.ErrInUse, "volume %s is started", v.VID)
	default:
		err = sparse(filepath.Join(d, importing), size)
	}
	return filepath.Join(d, importing), err
}

func (*Driver) ImportEnd(_ context.Context, p pool.Pool, v pool.Volume, success bool) error {
	img := filepath.Join(volDir(p, v.VID), importing)
	switch {
	case !exists(img):
		return nil // no import in progress: ended already
	case success:
		return commit(filepath.Dir(img), img, v.RevisionsToKeep)
	}
	return os.Remove(img)
}

// ExportBegin hands out the committed content. A commit renames a new file
// over it, so a reader that opened it keeps reading what it opened.
func (*Driver) ExportBegin(_ context.Context, p pool.Pool, v pool.Volume) (string, error) {
	d, err := existing(p, v)
	if err == nil && !v.SaveOnStop {
		err = pool.Errorf(pool.ErrInvalid, "volume %s: only save_on_stop volumes have content to export", v.VID)
	}
	return filepath.Join(d, clean), err
}
