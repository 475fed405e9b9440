package filepool

// files.go: the file operations both drivers are built from. Every new file
// is written under a temporary name beside its target — "<name>~<random>",
// the reference's naming, so that either implementation cleans up what the
// other left after a crash — synced, renamed into place, and the directory
// synced. A call retried after a crash finds the old file or the finished
// new one, never a half-written one.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// tmpMark separates a temporary file's final name from its random tail.
const tmpMark = "~"

func exists(path string) bool { _, err := os.Lstat(path); return err == nil }

// stat returns path's info, nil if it does not exist.
func stat(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return fi, err
}

// allocated is the space fi's file takes on disk (st_blocks), which for a
// sparse file is less than its size.
func allocated(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Blocks) * 512
	}
	return uint64(fi.Size())
}

// inode is fi's inode number (0 where the OS does not say).
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// sameFile reports whether a and b are the same inode (both must exist).
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// syncDir makes the directory's entries (a rename, a new or removed name)
// durable. A directory removed meanwhile (the last volume of a qube went)
// has nothing left to sync.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// renameSync renames from to to and syncs the directory.
func renameSync(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

// linkSync makes to a second name of from's inode, replacing any file at
// to, and syncs the directory.
func linkSync(from, to string) error {
	tmp := tmpName(to)
	if err := os.Link(from, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(to))
}

// removeSync removes path, if it is there, and syncs the directory.
func removeSync(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// removeEmptyDir removes dir if it is empty (the reference removes a
// qube's directory with its last volume).
func removeEmptyDir(dir string) error {
	err := os.Remove(dir)
	if err == nil {
		return syncDir(filepath.Dir(dir))
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return nil
	}
	return err
}

// tmpName is a fresh temporary name for path (not created).
func tmpName(path string) string { return path + tmpMark + rand.Text()[:12] }

// replaceFile writes path's new content with fill into a temporary file
// beside it, syncs it, renames it over path and syncs the directory. On
// failure the temporary file is removed and path is left as it was.
func replaceFile(path string, perm os.FileMode, fill func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+tmpMark+"*")
	if errors.Is(err, fs.ErrNotExist) {
		return pool.Errorf(pool.ErrNotFound, "creating %s: directory %s does not exist", path, filepath.Dir(path))
	}
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameSync(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// createSparse makes path a file of size zero bytes that take no space.
func createSparse(path string, size uint64, perm os.FileMode) error {
	if int64(size) < 0 {
		return pool.Errorf(pool.ErrInvalid, "%s: size %d is too large", path, size)
	}
	return replaceFile(path, perm, func(f *os.File) error { return f.Truncate(int64(size)) })
}

// copyOpts says how copyFile shapes the copy.
type copyOpts struct {
	perm os.FileMode
	// size, if not -1, is the copy's length (truncated or extended).
	size int64
	// keepMtime gives the copy src's modification time.
	keepMtime bool
	// mark makes sure the copy takes at least one block on disk without
	// changing its content (see markAllocated).
	mark bool
	// reflinkOnly makes the copy only if it can be a reflink; otherwise
	// copyFile does nothing and returns false.
	reflinkOnly bool
	// then, if set, runs on the copy (after size, before mark) before it
	// is synced and renamed.
	then func(f *os.File) error
}

// copyFile makes dst a copy of src: a reflink (FICLONE: the copy shares
// src's blocks and takes no space) where the file system can, else a
// sparse copy (pool.CopySparseFile: holes stay holes, and copy_file_range
// still shares blocks on file systems that do it that way). It reports
// whether the copy is a reflink. An error of kind ErrNotFound says that src
// does not exist.
func copyFile(ctx context.Context, src, dst string, o copyOpts) (reflinked bool, err error) {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return false, pool.Errorf(pool.ErrNotFound, "%s does not exist", src)
	}
	if err != nil {
		return false, err
	}
	defer in.Close()
	errSkip := errors.New("no reflink")
	err = replaceFile(dst, o.perm, func(out *os.File) error {
		reflinked, err = reflink(out, in)
		if err != nil {
			return err
		}
		if !reflinked && o.reflinkOnly {
			return errSkip
		}
		if !reflinked {
			if err := pool.CopySparseFile(ctx, out, in); err != nil {
				return err
			}
		}
		if o.size >= 0 {
			if err := out.Truncate(o.size); err != nil {
				return err
			}
		}
		if o.then != nil {
			if err := o.then(out); err != nil {
				return err
			}
		}
		if o.mark {
			if err := markAllocated(out); err != nil {
				return err
			}
		}
		if o.keepMtime {
			fi, err := in.Stat()
			if err != nil {
				return err
			}
			return os.Chtimes(out.Name(), fi.ModTime(), fi.ModTime())
		}
		return nil
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	return reflinked, err
}

// reflink clones src's whole content into dst with FICLONE. It returns
// false, and no error, where the file system cannot (or not between these
// two files).
func reflink(dst, src *os.File) (bool, error) {
	err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL),
		errors.Is(err, unix.EBADF), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS),
		errors.Is(err, unix.EPERM):
		return false, nil
	}
	return false, fmt.Errorf("FICLONE: %w", err)
}

// reflinkSupported reports whether dir's file system makes reflinks (the
// reference's setup check): it clones a small temporary file.
func reflinkSupported(dir string) (bool, error) {
	src, err := os.CreateTemp(dir, ".reflink-check"+tmpMark+"*")
	if err != nil {
		return false, err
	}
	defer func() { src.Close(); os.Remove(src.Name()) }()
	dst, err := os.CreateTemp(dir, ".reflink-check"+tmpMark+"*")
	if err != nil {
		return false, err
	}
	defer func() { dst.Close(); os.Remove(dst.Name()) }()
	if _, err := src.WriteString("foo"); err != nil { // no file system gets clever with empty files
		return false, err
	}
	return reflink(dst, src)
}

// markAllocated makes sure f takes at least one block on disk, without
// changing its content or size: it allocates its first block if that is a
// hole. The file driver tells its own running copies from the reference's
// empty copy-on-write stores by this (see file.go).
func markAllocated(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || allocated(fi) > 0 {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
	if err != nil && fi.Size() > 0 { // no fallocate: write the first bytes back
		buf := make([]byte, min(fi.Size(), 4096))
		if _, err = f.ReadAt(buf, 0); err == nil {
			_, err = f.WriteAt(buf, 0)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		if fi, err = f.Stat(); err == nil && allocated(fi) == 0 {
			err = fmt.Errorf("%s: the file system allocates no block for it", f.Name())
		}
	}
	return err
}

// truncateSync sets path's size in place and syncs it.
func truncateSync(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(int64(size))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fsyncPath syncs the file at path (what a qube wrote through a loop
// device may still be in the page cache).
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// loopSysfs is where the kernel lists loop devices (a variable for tests).
var loopSysfs = "/sys/block"

// refreshLoops tells every loop device backed by img that its size
// changed (LOOP_SET_CAPACITY), as the reference does after a resize: a
// running qube's disk is the image through a loop device.
func refreshLoops(img string) error {
	real, err := filepath.EvalSymlinks(img)
	if err != nil {
		return err
	}
	if real, err = filepath.Abs(real); err != nil {
		return err
	}
	backing, _ := filepath.Glob(filepath.Join(loopSysfs, "loop*", "loop", "backing_file"))
	var errs []error
	for _, b := range backing {
		name, err := os.ReadFile(b)
		if err != nil || strings.TrimSuffix(string(name), "\n") != real {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(b)))
		f, err := os.Open(dev)
		if err == nil {
			err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0)
			f.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("updating the size of %s (backed by %s): %w", dev, img, err))
		}
	}
	return errors.Join(errs...)
}

// cleanTemps removes the temporary files of one volume left by a crash:
// in dir, the names base+suffix+"~..." for which isOurs(suffix) holds.
func cleanTemps(dir, base string, isOurs func(suffix string) bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok {
			continue
		}
		if suffix, _, ok := strings.Cut(rest, tmpMark); ok && isOurs(suffix) {
			if err := removeSync(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// osError gives an operating system error on a volume its context and,
// where it has one, its kind: a missing file is ErrNotFound, a full disk
// ErrPoolFull.
func osError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	var pe *pool.Error
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w (%v)", what, pool.ErrNotFound, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %w (%v)", what, pool.ErrPoolFull, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
