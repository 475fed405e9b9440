package filepool

// dmsnap.go: reading the copy-on-write stores the reference's file driver
// leaves. Its device-mapper snapshots keep, in <vid>-cow.img, the content a
// qube overwrote in <vid>.img: the kernel's persistent exception store
// (drivers/md/dm-snap-persistent.c). So its revision "old" (<vid>-cow.img.old)
// is the committed image with those chunks put back. We never write this
// format; we read it so that a pool the reference used keeps its revision,
// and so that a volume it left started is committed right.
//
// The layout, little-endian, in chunks of chunk_size sectors:
//
//	chunk 0       header: magic "SnAp" (0x70416e53), valid, version 1, chunk_size
//	chunk 1       metadata area 0: exceptions {old_chunk u64, new_chunk u64}
//	chunks 2..    the data of area 0's exceptions (chunk_size*512/16 of them)
//	then          metadata area 1, its data, and so on
//
// An exception with new_chunk 0 ends the list (chunk 0 is the header, so no
// data lives there). The reference writes chunk_size 256 (128 KiB); an
// empty store is the header followed by a zeroed area (its EMPTY_SNAPSHOT).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

const (
	dmSnapMagic    = 0x70416e53
	dmSnapVersion  = 1
	dmSectorSize   = 512
	dmExceptionLen = 16
)

// dmStore is an open persistent exception store.
type dmStore struct {
	f     *os.File
	size  int64
	chunk int64 // bytes
	valid bool
}

// openDMStore reads f's header. It returns nil, and no error, if f is not
// an exception store (no magic, or a header no kernel writes).
func openDMStore(f *os.File) (*dmStore, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var h [16]byte
	if _, err := f.ReadAt(h[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	le := binary.LittleEndian
	magic, valid, version, sectors := le.Uint32(h[0:]), le.Uint32(h[4:]), le.Uint32(h[8:]), le.Uint32(h[12:])
	// The kernel's chunk sizes are powers of two of at least 8 sectors
	// (a page); anything else is not a store but data that happens to
	// start with the magic.
	if magic != dmSnapMagic || version != dmSnapVersion || valid > 1 || sectors < 8 || sectors > 1<<21 || sectors&(sectors-1) != 0 {
		return nil, nil
	}
	return &dmStore{f: f, size: fi.Size(), chunk: int64(sectors) * dmSectorSize, valid: valid == 1}, nil
}

// exceptions calls fn for every exception, in the order the kernel
// applies them: the content of the origin's chunk old was, when the store
// was last written, the store's chunk new.
func (s *dmStore) exceptions(fn func(old, new uint64) error) error {
	perArea := s.chunk / dmExceptionLen
	buf := make([]byte, s.chunk)
	for area := int64(0); ; area++ {
		off := (1 + area*(perArea+1)) * s.chunk
		if off >= s.size {
			return nil // a store cut short ends like a zeroed area
		}
		clear(buf)
		if _, err := s.f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for i := range perArea {
			e := buf[i*dmExceptionLen:]
			old, new := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
			if new == 0 {
				return nil
			}
			if err := fn(old, new); err != nil {
				return err
			}
		}
	}
}

// empty reports whether the store holds no exception: the volume's image
// is all there is.
func (s *dmStore) empty() (bool, error) {
	errFound := errors.New("found")
	err := s.exceptions(func(uint64, uint64) error { return errFound })
	if errors.Is(err, errFound) {
		return false, nil
	}
	return err == nil, err
}

// apply puts the chunks the store keeps back into img, an open copy of the
// origin's image, so that img holds the content from when the store was
// started. Chunks past img's end are left out (the image only grows while
// a store is in use; the tail it grew by had no old content).
func (s *dmStore) apply(img *os.File) error {
	if !s.valid {
		return fmt.Errorf("%s: the copy-on-write store was invalidated (it overflowed): the content it kept is lost", s.f.Name())
	}
	fi, err := img.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	buf := make([]byte, s.chunk)
	return s.exceptions(func(old, new uint64) error {
		src, dst := int64(new)*s.chunk, int64(old)*s.chunk
		if new > uint64(s.size/s.chunk) || src >= s.size {
			return fmt.Errorf("%s: exception for chunk %d points past the store's end (chunk %d)", s.f.Name(), old, new)
		}
		if old > uint64(size/s.chunk) || dst >= size {
			return nil
		}
		n := min(s.chunk, size-dst)
		clear(buf)
		if _, err := s.f.ReadAt(buf[:n], src); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if isZero(buf[:n]) {
			// zeros: a hole keeps the image sparse
			err := unix.Fallocate(int(img.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, dst, n)
			if err == nil {
				return nil
			}
		}
		_, err := img.WriteAt(buf[:n], dst)
		return err
	})
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
