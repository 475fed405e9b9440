package main

// files.go: where a volume's files are, and the helpers driver.go shares. A
// driver for other storage (LVM, ZFS, ...) replaces these and keeps the
// shape of driver.go.

import (
	"cmp"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// The files in a volume's directory (see the package doc).
const clean, running = "clean.img", "running.img"

func dir(p pool.Pool) string { return p.Config["dir_path"] }

// volDir is the directory of volume vid: the SDK checked that the vid is
// well formed, and escaping its "/" keeps the pool directory flat.
func volDir(p pool.Pool, vid string) string { return filepath.Join(dir(p), url.PathEscape(vid)) }

// base is the committed content a Start copies: the source's clean.img for
// a snapshot volume (the SDK checked that it has a source), else the
// volume's own.
func base(p pool.Pool, v pool.Volume) string {
	return filepath.Join(volDir(p, cmp.Or(v.SourceVID, v.VID)), clean)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// found is ErrNotFound for a volume that was never created (or is removed).
func found(p pool.Pool, v pool.Volume) error {
	return require(exists(volDir(p, v.VID)), pool.ErrNotFound, "volume %s not found in pool %s", v.VID, p.Name)
}

// require returns nil if ok holds, else an error of the kind (pool.ErrInvalid, ...).
func require(ok bool, kind error, format string, args ...any) error {
	if ok {
		return nil
	}
	return pool.Errorf(kind, format, args...)
}

// state reads what the disk says about volume v, in directory d: its size
// is the running image's, else the committed content's, else (nothing on
// disk) the spec's.
func state(d string, v pool.Volume) pool.VolumeState {
	s := pool.VolumeState{VID: v.VID, Size: v.Size, Dirty: exists(filepath.Join(d, running)) && exists(filepath.Join(d, clean))}
	for _, name := range []string{clean, running} { // running.img, if there, comes last and wins
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil {
			s.Size, s.Usage = uint64(fi.Size()), s.Usage+uint64(fi.Sys().(*syscall.Stat_t).Blocks)*512
		}
	}
	return s
}
