package filepool

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// FIEMAP (linux/fiemap.h): the extents of a file, with a flag for those
// shared with another file (a reflink).
const (
	fsIocFiemap        = 0xC020660B
	fiemapFlagSync     = 0x1
	fiemapExtentLast   = 0x1
	fiemapExtentShared = 0x2000
	fiemapHeaderLen    = 32
	fiemapExtentLen    = 56
)

// extents returns the bytes of path's data extents, and how many of them
// are shared with another file.
func extents(t *testing.T, path string) (total, shared uint64) {
	t.Helper()
	f, err := os.Open(path)
	ok(t, err, "open")
	defer f.Close()
	const batch = 256
	le := binary.LittleEndian
	for start := uint64(0); ; {
		buf := make([]byte, fiemapHeaderLen+batch*fiemapExtentLen)
		le.PutUint64(buf[0:], start)
		le.PutUint64(buf[8:], ^uint64(0)-start)
		le.PutUint32(buf[16:], fiemapFlagSync)
		le.PutUint32(buf[24:], batch)
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
			t.Fatalf("FIEMAP %s: %v", path, errno)
		}
		n := le.Uint32(buf[20:])
		if n == 0 {
			return total, shared
		}
		for i := range n {
			e := buf[fiemapHeaderLen+i*fiemapExtentLen:]
			logical, length, flags := le.Uint64(e[0:]), le.Uint64(e[16:]), le.Uint32(e[40:])
			total += length
			if flags&fiemapExtentShared != 0 {
				shared += length
			}
			start = logical + length
			if flags&fiemapExtentLast != 0 {
				return total, shared
			}
		}
	}
}

// free is the free space of the file system holding path, after a sync.
func free(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	ok(t, err, "open")
	defer f.Close()
	ok(t, unix.Syncfs(int(f.Fd())), "syncfs")
	var st unix.Statfs_t
	ok(t, unix.Fstatfs(int(f.Fd()), &st), "statfs")
	return st.Bfree * uint64(st.Bsize)
}

// TestReflinkOnBtrfs proves that on btrfs the drivers copy by reflink: a
// volume holding 256 MiB of data is started, cloned and committed, and the
// copies share its extents and take no space.
func TestReflinkOnBtrfs(t *testing.T) {
	fs := ptest.Filesystems[1]
	root := fs.Root(t)
	for _, name := range []string{ReflinkName, FileName} {
		t.Run(name, func(t *testing.T) {
			const size = 256 * mib
			ok(t, os.Mkdir(filepath.Join(root, name), 0o755), "mkdir")
			d, p := setup(t, name, fs, filepath.Join(root, name))
			v := origin("appvms/work/private", size, 1)
			ok(t, d.Create(t.Context(), p, v), "Create")
			path, err := d.ImportBegin(t.Context(), p, v, size)
			ok(t, err, "ImportBegin")
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			ok(t, err, "open")
			_, err = io.CopyN(f, rand.Reader, size) // data that no file system compresses away
			ok(t, err, "writing 256 MiB")
			ok(t, f.Close(), "close")
			ok(t, d.ImportEnd(t.Context(), p, v, true), "ImportEnd")
			img := filepath.Join(dir(p), "appvms", "work", "private.img")

			before := free(t, root)
			bd, err := d.Start(t.Context(), p, v) // reflink: the running image, or the copy of the one before
			ok(t, err, "Start")
			clone := origin("appvms/clone/private", size, 1)
			ok(t, d.CloneFrom(t.Context(), p, clone, v), "CloneFrom") // the clone
			s := snapshotOf("appvms/disp/private", v)
			ok(t, d.Create(t.Context(), p, s), "Create snapshot")
			sbd, err := d.Start(t.Context(), p, s) // the snapshot's image
			ok(t, err, "Start snapshot")
			after := free(t, root)
			if before < after || before-after > 32*mib {
				t.Errorf("three copies of 256 MiB took %d MiB of the file system (free %d → %d): not reflinks",
					(before-after)/mib, before, after)
			}
			copies := []string{bd.Path, sbd.Path, filepath.Join(dir(p), "appvms", "clone", "private.img")}
			if name == FileName {
				copies[0] = filepath.Join(dir(p), "appvms", "work", "private-cow.img")
			}
			for _, c := range append(copies, img) {
				total, shared := extents(t, c)
				if total < size || shared < size {
					t.Errorf("%s: %d MiB in extents, %d MiB of them shared; want all of 256 MiB shared", c, total/mib, shared/mib)
				}
			}
			put(t, bd.Path, 0, "written")
			ok(t, d.Stop(t.Context(), p, v), "Stop")
			ok(t, d.Stop(t.Context(), p, s), "Stop snapshot")
			if got := free(t, root); before < got || before-got > 32*mib {
				t.Errorf("after the commit the volumes take %d MiB more than before the start", (before-got)/mib)
			}
		})
	}
}

// TestSparse: on the machine's file system (no reflinks) images are
// sparse: a 1 GiB volume takes next to nothing through its life.
func TestSparse(t *testing.T) {
	fs := ptest.Filesystems[0]
	const size = 1 * gib
	const little = 1 * mib // what "next to nothing" allows: a few blocks
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			drv, p := setup(t, d.name, fs, t.TempDir())
			usage := func(what string, v pool.Volume) {
				t.Helper()
				var sum uint64
				err := walkVolumes(p, func(rel string) {
					if fi, err := os.Stat(filepath.Join(dir(p), rel)); err == nil {
						sum += allocated(fi)
					}
				})
				ok(t, err, "walk")
				st, err := drv.VolumeInfo(t.Context(), p, v)
				ok(t, err, "VolumeInfo")
				if sum > little || st.Usage > little {
					t.Errorf("%s: the pool's files take %d bytes (VolumeInfo usage %d), want next to nothing", what, sum, st.Usage)
				}
				if st.Size != size {
					t.Errorf("%s: size %d", what, st.Size)
				}
			}
			v := origin("appvms/work/private", size, 1)
			ok(t, drv.Create(t.Context(), p, v), "Create")
			usage("created", v)
			bd, err := drv.Start(t.Context(), p, v)
			ok(t, err, "Start")
			usage("started", v)
			put(t, bd.Path, 512*mib, "data")
			ok(t, drv.Stop(t.Context(), p, v), "Stop")
			usage("committed", v)
			cycle(t, drv, p, v, "more")
			usage("committed again (with a revision)", v)
			clone := origin("appvms/clone/private", size, 1)
			ok(t, drv.CloneFrom(t.Context(), p, clone, v), "CloneFrom")
			usage("cloned", clone)
			s := snapshotOf("appvms/disp/private", v)
			ok(t, drv.Create(t.Context(), p, s), "Create snapshot")
			_, err = drv.Start(t.Context(), p, s)
			ok(t, err, "Start snapshot")
			usage("snapshot started", s)
			ok(t, drv.Stop(t.Context(), p, s), "Stop snapshot")
			vol := volatileVol("appvms/work/volatile", size)
			ok(t, drv.Create(t.Context(), p, vol), "Create volatile")
			_, err = drv.Start(t.Context(), p, vol)
			ok(t, err, "Start volatile")
			usage("volatile started", vol)
			path, err := drv.ImportBegin(t.Context(), p, v, size)
			ok(t, err, "ImportBegin")
			put(t, path, 0, "imported")
			ok(t, drv.ImportEnd(t.Context(), p, v, true), "ImportEnd")
			usage("imported", v)
			ok(t, drv.Resize(t.Context(), p, v, size+gib), "Resize")
			ok(t, drv.Resize(t.Context(), p, v, size), "Resize back")
			usage("resized", v)
			if d.name == ReflinkName {
				ok(t, drv.Revert(t.Context(), p, v, ""), "Revert")
				usage("reverted", v)
			}
		})
	}
}
