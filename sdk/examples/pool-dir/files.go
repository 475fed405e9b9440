package main

// files.go: this driver's storage primitives. A driver for other storage
// (LVM, ZFS, ...) replaces these and keeps the shape of driver.go.

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qubesgo/qubesd/sdk/pool"
)

func volDir(p pool.Pool, vid string) string {
	return filepath.Join(p.Config["dir_path"], url.PathEscape(vid))
}

// existing returns the volume's directory, or ErrNotFound if the volume
// was never created.
func existing(p pool.Pool, v pool.Volume) (string, error) {
	d := volDir(p, v.VID)
	if !exists(d) {
		return d, pool.Errorf(pool.ErrNotFound, "volume %s not found in pool %s", v.VID, p.Name)
	}
	return d, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newVolume builds a volume's directory under a temporary name with fill,
// then renames it into place. An existing volume is left alone (a retry).
func newVolume(p pool.Pool, vid string, fill func(tmp string) error) error {
	if exists(volDir(p, vid)) {
		return nil
	}
	tmp, err := os.MkdirTemp(p.Config["dir_path"], "~new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := fill(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, volDir(p, vid))
}

// sparse creates (or empties) a sparse file of size bytes: all zeros.
func sparse(path string, size uint64) error {
	f, err := os.Create(path)
	if err == nil {
		err = errors.Join(f.Truncate(int64(size)), f.Close())
	}
	return err
}

// copyFile copies src to dst through a temporary file and a rename, with
// cp: it shares blocks (reflink) where the filesystem can, as btrfs and
// xfs do, and keeps holes otherwise.
func copyFile(src, dst string) error {
	if !exists(src) {
		return pool.Errorf(pool.ErrNotFound, "%s does not exist", src)
	}
	if out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", src, dst+".tmp").CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", src, err, strings.TrimSpace(string(out)))
	}
	return os.Rename(dst+".tmp", dst)
}

// commit makes img the committed content of the volume in d. The content
// it replaces becomes a revision (renamed, not copied) when revisions are
// kept; then revisions beyond keep, oldest first, are deleted. At no point
// is there no copy of the data.
func commit(d, img string, keep int) error {
	if old := filepath.Join(d, clean); keep > 0 && exists(old) {
		revs, err := revisions(d)
		ns := time.Now().UnixNano()
		if n := len(revs); n > 0 {
			ns = max(ns, revs[n-1].Time.UnixNano()+1) // ids strictly increase
		}
		if err := errors.Join(err, os.Rename(old, filepath.Join(d, revFile(strconv.FormatInt(ns, 10))))); err != nil {
			return err
		}
	}
	if err := os.Rename(img, filepath.Join(d, clean)); err != nil {
		return err
	}
	revs, err := revisions(d)
	for ; err == nil && len(revs) > max(keep, 0); revs = revs[1:] {
		err = os.Remove(filepath.Join(d, revFile(revs[0].ID)))
	}
	return err
}

func revFile(id string) string { return "rev-" + id + ".img" }

// revisions lists the volume's revisions, oldest first.
func revisions(d string) ([]pool.Revision, error) {
	entries, err := os.ReadDir(d)
	var revs []pool.Revision
	for _, e := range entries {
		var ns int64
		if _, serr := fmt.Sscanf(e.Name(), "rev-%d.img", &ns); serr == nil && e.Name() == revFile(strconv.FormatInt(ns, 10)) {
			revs = append(revs, pool.Revision{ID: strconv.FormatInt(ns, 10), Time: time.Unix(0, ns)})
		}
	}
	slices.SortFunc(revs, func(a, b pool.Revision) int { return a.Time.Compare(b.Time) })
	return revs, err
}

// state reads what the disk says about a volume.
func state(d, vid string) pool.VolumeState {
	s := pool.VolumeState{VID: vid, Dirty: exists(filepath.Join(d, running)) && exists(filepath.Join(d, clean))}
	entries, _ := os.ReadDir(d)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			s.Usage += uint64(fi.Sys().(*syscall.Stat_t).Blocks) * 512
			if e.Name() == running || (e.Name() == clean && !exists(filepath.Join(d, running))) {
				s.Size = uint64(fi.Size()) // the running image's, else the committed one's
			}
		}
	}
	return s
}
