package main

// driver.go: the Driver methods — what any pool driver writes. Where things
// are on disk, and the small helpers the methods share, are in files.go.

import (
	"cmp"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// Driver keeps no state: everything it needs comes with each call (the pool
// config and the volume spec) or is on disk. UnimplementedDriver supplies
// Configure (no plugin config accepted), Destroy (nothing: the directory may
// hold what is not ours) and the methods of the capabilities Info does not
// declare (CloneFrom, Revert, ImportBegin, ...), which the daemon does not
// call.
//
// The SDK checks every request before a method sees it (pool.Check): the
// vid is safe as a path element, the spec consistent (a source exactly for
// snap_on_start), a resize not to 0, and the pool config passed
// ValidateConfig.
type Driver struct{ pool.UnimplementedDriver }

var info = pool.Info{Name: "dir", Version: "0.2.0", Description: "each volume a sparse file in a directory",
	Capabilities: pool.Capabilities{Shrink: true},
	PoolConfig:   []pool.ConfigKey{{Name: "dir_path", Description: "absolute directory holding the volumes", Required: true}}}

func (*Driver) Info(context.Context) (pool.Info, error) { return info, nil }

// ValidateConfig checks a pool config; the SDK runs it before every call,
// so that the other methods can trust p.Config["dir_path"].
func (*Driver) ValidateConfig(_ context.Context, cfg map[string]string) error {
	return require(len(cfg) == 1 && filepath.IsAbs(cfg["dir_path"]), pool.ErrInvalid,
		"pool config %v: want dir_path, an absolute directory, and no other key", cfg)
}

// Open checks that the directory is there: a disk that is not mounted makes
// the pool unavailable, rather than its volumes missing. (Setup, which
// runs when the pool is made, fails if dir_path is not a directory.)
func (*Driver) Open(_ context.Context, p pool.Pool) error {
	return require(exists(dir(p)), pool.ErrUnavailable, "pool %s: %s does not exist", p.Name, dir(p))
}

func (*Driver) Setup(_ context.Context, p pool.Pool) error { return os.MkdirAll(dir(p), 0o755) }

func (*Driver) Usage(_ context.Context, p pool.Pool) (pool.Usage, error) {
	var st syscall.Statfs_t
	err := syscall.Statfs(dir(p), &st)
	return pool.Usage{Size: st.Blocks * uint64(st.Bsize), Usage: (st.Blocks - st.Bfree) * uint64(st.Bsize)}, err
}

func (*Driver) ListVolumes(_ context.Context, p pool.Pool) (vols []pool.VolumeState, err error) {
	entries, err := os.ReadDir(dir(p))
	for _, e := range entries {
		if vid, _ := url.PathUnescape(e.Name()); e.IsDir() && pool.ValidateVID(vid) == nil {
			vols = append(vols, state(filepath.Join(dir(p), e.Name()), pool.Volume{VID: vid}))
		}
	}
	return vols, err
}

// Create makes the volume's directory and, for an origin volume, a
// clean.img of zeros. A retry finds the directory there and completes
// what is missing.
func (*Driver) Create(_ context.Context, p pool.Pool, v pool.Volume) (err error) {
	img := filepath.Join(volDir(p, v.VID), clean)
	if !exists(filepath.Dir(img)) {
		err = os.Mkdir(filepath.Dir(img), 0o755) // not MkdirAll: never recreate a vanished dir_path
	}
	if err == nil && v.SaveOnStop && !exists(img) {
		err = pool.CreateSparse(img, v.Size)
	}
	return err
}

func (*Driver) Remove(_ context.Context, p pool.Pool, v pool.Volume) error {
	return os.RemoveAll(volDir(p, v.VID))
}

// Start gives the qube running.img: zeros (volatile) or a copy of the
// committed content Start is based on (see base). A started volume keeps
// the running image it has. An unknown volume is ErrNotFound: the pool
// helpers report a missing directory or source so.
func (*Driver) Start(ctx context.Context, p pool.Pool, v pool.Volume) (dev pool.BlockDevice, err error) {
	dev = pool.BlockDevice{Path: filepath.Join(volDir(p, v.VID), running), RW: v.RW}
	if !exists(dev.Path) && v.Type() == pool.Volatile {
		err = pool.CreateSparse(dev.Path, v.Size)
	} else if !exists(dev.Path) {
		err = pool.CopySparse(ctx, base(p, v), dev.Path)
	}
	return dev, err
}

// Stop commits what the qube wrote to an origin volume, by a rename;
// anything else is thrown away. A stopped volume has no running.img:
// nothing to do.
func (*Driver) Stop(_ context.Context, p pool.Pool, v pool.Volume) error {
	img := filepath.Join(volDir(p, v.VID), running)
	if v.SaveOnStop && v.RW && exists(img) {
		return os.Rename(img, filepath.Join(filepath.Dir(img), clean))
	}
	return os.RemoveAll(img)
}

// Resize truncates the running image if there is one, else the committed
// content; growing adds zeros that take no space. A stopped volatile or
// snapshot volume has no image to resize: its next Start makes a new one.
func (*Driver) Resize(_ context.Context, p pool.Pool, v pool.Volume, size uint64) error {
	d := volDir(p, v.VID)
	for _, img := range []string{filepath.Join(d, running), filepath.Join(d, clean)} {
		if exists(img) && v.RW {
			return os.Truncate(img, int64(size))
		}
	}
	return cmp.Or(found(p, v), require(v.RW, pool.ErrInvalid, "volume %s is read-only", v.VID))
}

func (*Driver) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	return state(volDir(p, v.VID), v), found(p, v)
}

// Verify checks that the volume, and the committed content a Start
// copies, are there.
func (*Driver) Verify(_ context.Context, p pool.Pool, v pool.Volume) error {
	ok := v.Type() == pool.Volatile || exists(base(p, v))
	return cmp.Or(found(p, v), require(ok, pool.ErrNotFound, "volume %s: %s is missing", v.VID, base(p, v)))
}
