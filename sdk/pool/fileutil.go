package pool

// File helpers for drivers that keep volumes in files. Both write the new
// file beside the target under a temporary name (".NAME.tmp-RANDOM"), sync
// it, rename it into place and sync the directory, so that a call retried after a crash finds
// either the old file or the finished new one, never a half-written one. A
// crash can leave the temporary file behind; nothing else uses it.

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// CreateSparse makes path a file of size bytes of zeros that takes no space
// on disk (a sparse file), replacing any file there. The file has mode 0600.
// An error of kind ErrNotFound says that path's directory does not exist.
func CreateSparse(path string, size uint64) error {
	if int64(size) < 0 {
		return Errorf(ErrInvalid, "%s: size %d is too large", path, size)
	}
	return replaceFile(path, func(f *os.File) error { return f.Truncate(int64(size)) })
}

// CopySparse makes dst a copy of src, replacing any file there, and keeps
// src's holes: on Linux it copies only the data (found with SEEK_DATA and
// SEEK_HOLE), with copy_file_range, which shares the blocks instead where
// the file system can (btrfs, xfs); elsewhere it copies everything. The
// copy has mode 0600. If ctx ends first, dst is left as it was. An error of
// kind ErrNotFound says that src, or dst's directory, does not exist.
func CopySparse(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return Errorf(ErrNotFound, "%v", err)
	}
	if err != nil {
		return err
	}
	defer in.Close()
	return replaceFile(dst, func(out *os.File) error { return copyData(ctx, out, in) })
}

// copyChunk bounds one copy call, so that a cancelled ctx is noticed (a
// variable for the tests).
var copyChunk int64 = 64 << 20

// copyData copies in's data to out at the same offsets and makes out as
// long as in.
func copyData(ctx context.Context, out, in *os.File) error {
	size, err := in.Seek(0, io.SeekEnd)
	for off := int64(0); err == nil && off < size; {
		start, end := off, size
		if runtime.GOOS == "linux" {
			start, end, err = DataExtent(in, off, size)
		}
		if err != nil || start >= size {
			break
		}
		n := min(end-start, copyChunk)
		err = ctx.Err()
		if err == nil {
			_, err = in.Seek(start, io.SeekStart)
		}
		if err == nil {
			_, err = out.Seek(start, io.SeekStart)
		}
		if err == nil {
			_, err = io.CopyN(out, in, n) // copy_file_range on Linux
		}
		off = start + n
	}
	if err != nil {
		return err
	}
	return out.Truncate(size)
}

// Linux's whence values for lseek (the syscall package has no names for them).
const seekData, seekHole = 3, 4

// DataExtent returns the first run of data in f at or after off, [start,
// end), with end at most size; start is size if there is none. It asks the
// file system (SEEK_DATA, SEEK_HOLE); where the file or file system cannot
// tell (a block device, an old file system), all of it is data. For
// drivers and daemons that copy volumes without filling their holes.
func DataExtent(f *os.File, off, size int64) (start, end int64, err error) {
	start, err = f.Seek(off, seekData)
	switch {
	case errors.Is(err, syscall.ENXIO): // only a hole from off to the end
		return size, size, nil
	case errors.Is(err, syscall.EINVAL): // SEEK_DATA not supported
		return off, size, nil
	case err != nil:
		return 0, 0, err
	}
	end, err = f.Seek(start, seekHole)
	if err != nil || end <= start {
		return start, size, nil
	}
	return start, min(end, size), nil
}

// replaceFile writes path's new content with fill into a temporary file
// beside it, syncs it and renames it over path. On failure the temporary
// file is removed and path is left as it was.
func replaceFile(path string, fill func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		return Errorf(ErrNotFound, "creating %s: directory %s does not exist", path, filepath.Dir(path))
	}
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable: without it, a crash may bring
// back the old name after the call returned.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
