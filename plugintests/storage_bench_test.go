package plugintests

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/sdk/admin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// Storage benchmarks: each measures an operation through the real plugins
// (and, where it can, through qubesd) and, in the same run and on the same
// file system, the plain tool doing the same work, reporting the ratio.
// Timings are reported, never asserted. Every run of an operation is
// preceded, outside the measurement, by a sync(2), so that no operation
// pays for the write-back of another's data.

// benchFS is a file system the benchmarks put their files on: the
// temporary directory's (ext4 here: copies are sparse copies) and a btrfs
// on a loop device (reflinks).
type benchFS struct {
	name     string
	root     func(b *testing.B) string
	reflinks bool
}

func benchFilesystems(b *testing.B) []benchFS {
	tmp := fsType(b, os.TempDir())
	return []benchFS{
		{name: tmp, root: func(b *testing.B) string { return newDir(b) }, reflinks: tmp == "btrfs"},
		{name: "btrfs-loop", root: func(b *testing.B) string { return btrfsMount(b, 16*gib) }, reflinks: true},
	}
}

// fsType names the file system path is on.
func fsType(tb testing.TB, path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		tb.Fatal(err)
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x9123683E:
		return "btrfs"
	case 0x58465342:
		return "xfs"
	case 0x01021994:
		return "tmpfs"
	case 0x794c7630:
		return "overlay"
	}
	return fmt.Sprintf("fs-%x", st.Type)
}

// btrfsMount returns the mount point of a fresh btrfs file system of size
// bytes, made in a sparse image file and mounted on a loop device; tb's
// cleanup unmounts it (which frees the loop device), checks that no loop
// device is left on the image and removes it. Skipped, saying why, where
// that cannot be done. (The steps of plugins/pool-file/internal/ptest's
// Btrfs, which this package may not import; unlike it, this one does not
// install btrfs-progs.)
func btrfsMount(tb testing.TB, size int64) string {
	tb.Helper()
	switch {
	case runtime.GOOS != "linux":
		tb.Skip("skipped: btrfs on a loop device needs Linux")
	case os.Geteuid() != 0:
		tb.Skip("skipped: mounting a btrfs file system on a loop device needs root")
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "btrfs") {
		if exec.Command("modprobe", "btrfs").Run() != nil {
			tb.Skip("skipped: the kernel has no btrfs (not in /proc/filesystems, modprobe btrfs failed)")
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		tb.Skipf("skipped: no loop devices (/dev/loop-control: %v)", err)
	}
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		tb.Skip("skipped: mkfs.btrfs is not installed (apt-get install btrfs-progs)")
	}
	dir, err := os.MkdirTemp("", "qsb-")
	if err != nil {
		tb.Fatal(err)
	}
	img, mnt := filepath.Join(dir, "btrfs.img"), filepath.Join(dir, "mnt")
	f, err := os.Create(img)
	if err == nil {
		err = errors.Join(f.Truncate(size), f.Close())
	}
	if err == nil {
		err = os.Mkdir(mnt, 0o755)
	}
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		tb.Fatalf("mkfs.btrfs: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		tb.Skipf("skipped: mount -o loop of a btrfs image refused: %v\n%s", err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v\n%s", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
		out, _ := exec.Command("losetup", "-j", img).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			tb.Errorf("loop device left on %s after umount: %s", img, s)
			for _, line := range strings.Split(s, "\n") {
				if dev, _, ok := strings.Cut(line, ":"); ok {
					_ = exec.Command("losetup", "-d", dev).Run()
				}
			}
		}
		os.RemoveAll(dir)
	})
	return mnt
}

// Source images: 10 GiB, holding 1 GiB of data in 8 extents of 128 MiB
// spread over it.
const (
	srcSize    = 10 * gib
	srcExtents = 8
	srcExtent  = 128 * mib
)

// writeExtents writes the source data into the existing file at path and
// syncs it.
func writeExtents(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'e', 'x', 't'})
	buf := make([]byte, 4*mib)
	for i := int64(0); i < srcExtents; i++ {
		for off := int64(0); off < srcExtent; off += int64(len(buf)) {
			_, _ = rng.Read(buf)
			if _, err := f.WriteAt(buf, i*(srcSize/srcExtents)+off); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
}

// importExtents imports the source data into vm:volume (made srcSize
// bytes) through qubesd's internal API, as qvm-volume import does.
func importExtents(tb testing.TB, d *qubesd, vm, volume string) {
	tb.Helper()
	ctx := context.Background()
	ic := admin.New(d.internal)
	body, err := ic.Call(ctx, "internal.vm.volume.ImportBegin", vm, volume, []byte(strconv.FormatInt(srcSize, 10)))
	if err != nil {
		tb.Fatal(err)
	}
	_, path, ok := strings.Cut(string(body), " ")
	if !ok {
		tb.Fatalf("ImportBegin: %q", body)
	}
	writeExtents(tb, path)
	if _, err := ic.Call(ctx, "internal.vm.volume.ImportEnd", vm, volume, []byte("ok")); err != nil {
		tb.Fatal(err)
	}
}

// checkSource checks that path is the source image: its size, its data.
func checkSource(tb testing.TB, path string) {
	tb.Helper()
	st := statFile(tb, path)
	if st.size != srcSize || st.alloc < srcExtents*srcExtent || st.alloc > srcExtents*srcExtent+sparseLimit {
		tb.Fatalf("%s: %d bytes, %d allocated; want %d with %d of data", path, st.size, st.alloc, srcSize, srcExtents*srcExtent)
	}
}

// sinceSync runs op after a sync(2) and returns how long op took.
func sinceSync(tb testing.TB, op func() error) time.Duration {
	tb.Helper()
	syscall.Sync()
	t0 := time.Now()
	err := op()
	d := time.Since(t0)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func runCmd(name string, args ...string) func() error {
	return func() error {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
}

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// samples shows a few measurements as they are, many as min/median/max.
func samples(ds []time.Duration) string {
	if len(ds) <= 8 {
		return fmt.Sprint(ds)
	}
	return fmt.Sprintf("[n=%d min %v median %v max %v]", len(ds), slices.Min(ds), median(ds), slices.Max(ds))
}

// cloneBench is one clone benchmark: clone makes a clone of src (at the
// path it returns), outside the measurement apart from the call itself
// (it calls timed around it); done removes it.
type cloneBench struct {
	reflinks bool
	src      string // the source image
	cpDst    string // where cp copies it
	clone    func(i int, timed func(func() error)) string
	done     func(i int, clone string)

	cloneT, cpT, cpFsyncT []time.Duration
	shared                []float64 // % of each clone's data in the source's blocks
}

// run runs b.N clones and as many cp runs, alternating which goes first,
// each after a sync; only the clone calls are in b's timer. It checks
// every clone's size and allocation, and records how much of its data it
// shares with the source.
func (c *cloneBench) run(b *testing.B) {
	mode := "--sparse=always"
	if c.reflinks {
		mode = "--reflink=always"
	}
	checkSource(b, c.src)
	timed := func(op func() error) {
		syscall.Sync()
		b.StartTimer()
		t0 := time.Now()
		err := op()
		d := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		c.cloneT = append(c.cloneT, d)
	}
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		var clone string
		ops := []func(){
			func() { clone = c.clone(i, timed) },
			func() {
				cp := sinceSync(b, runCmd("cp", mode, c.src, c.cpDst))
				t0 := time.Now()
				if err := fsyncFile(c.cpDst); err != nil {
					b.Fatal(err)
				}
				c.cpT = append(c.cpT, cp)
				c.cpFsyncT = append(c.cpFsyncT, cp+time.Since(t0))
			},
		}
		if i%2 == 1 {
			slices.Reverse(ops)
		}
		for _, op := range ops {
			op()
		}
		checkSource(b, clone)
		checkSource(b, c.cpDst)
		c.shared = append(c.shared, sharedPercent(b, c.src, clone))
		if err := os.Remove(c.cpDst); err != nil {
			b.Fatal(err)
		}
		c.done(i, clone)
	}
	b.Logf("clone %s; cp %s; cp+fsync %s", samples(c.cloneT), samples(c.cpT), samples(c.cpFsyncT))
	cl, cp, cpf := median(c.cloneT), median(c.cpT), median(c.cpFsyncT)
	b.ReportMetric(ms(cl), "clone-ms")
	b.ReportMetric(ms(cp), "cp-ms")
	b.ReportMetric(ms(cpf), "cp+fsync-ms")
	b.ReportMetric(float64(cl)/float64(cp), "ratio-to-cp")
	b.ReportMetric(float64(cl)/float64(cpf), "ratio-to-cp+fsync")
	b.ReportMetric(slices.Min(c.shared), "shared-%")
}

// BenchmarkStorageClone: a clone of a 10 GiB sparse image holding 1 GiB of
// data in 8 extents, in a file-reflink pool, against cp of the same file
// on the same file system in the same run: cp --sparse=always where the
// file system makes no reflinks, cp --reflink=always on btrfs.
//
//   - qubesd: admin.vm.volume.CloneFrom then CloneTo into the private
//     volume of a new qube (what qvm-clone does), through the socket.
//   - plugin: the file-reflink plugin's CloneFrom into a new volume,
//     through core/pluginhost.
//
// Reported: clone-ms, cp-ms, cp+fsync-ms (medians; the drivers sync what
// they commit, cp does not), ratio-to-cp, ratio-to-cp+fsync, and
// shared-%: how much of the clone's data lies in the source's blocks (100
// for a reflink, 0 for a copy; the least of the runs).
func BenchmarkStorageClone(b *testing.B) {
	for _, fs := range benchFilesystems(b) {
		b.Run(fs.name, func(b *testing.B) {
			root := fs.root(b)
			b.Run("qubesd", func(b *testing.B) { benchCloneQubesd(b, root, fs.reflinks) })
			b.Run("plugin", func(b *testing.B) { benchClonePlugin(b, root, fs.reflinks) })
		})
	}
}

func benchCloneQubesd(b *testing.B, root string, reflinks bool) {
	d := startQubesd(b, newDir(b), storagePlugins)
	d.waitPlugins(b, "file", "file-reflink", "linux-kernel")
	dir := filepath.Join(root, "qubesd-pool")
	args := []string{"add", "benchpool", "file-reflink", "-o", "dir_path=" + dir}
	if !reflinks {
		args = append(args, "-o", "setup_check=False")
	}
	d.ok(b, "qvm-pool", args...)
	d.ok(b, "qvm-create", "-C", "TemplateVM", "-l", "black", "-P", "benchpool", "src")
	importExtents(b, d, "src", "private")
	ctx := context.Background()
	c := &cloneBench{
		reflinks: reflinks,
		src:      filepath.Join(dir, "vm-templates", "src", "private.img"),
		cpDst:    filepath.Join(root, "cp-qubesd.img"),
		// as qvm-clone: a new qube (made untimed), then its private cloned
		clone: func(i int, timed func(func() error)) string {
			dst := fmt.Sprintf("dst%d", i)
			d.ok(b, "qvm-create", "-t", "src", "-l", "red", "-P", "benchpool", dst)
			timed(func() error {
				token, err := d.c.VolumeCloneFrom(ctx, "src", "private")
				if err != nil {
					return err
				}
				return d.c.VolumeCloneTo(ctx, dst, "private", token)
			})
			return filepath.Join(dir, "appvms", dst, "private.img")
		},
		done: func(i int, _ string) { d.ok(b, "qvm-remove", "-f", fmt.Sprintf("dst%d", i)) },
	}
	c.run(b)
}

func benchClonePlugin(b *testing.B, root string, reflinks bool) {
	_, drv := startHost(b, "qubesd-pool-file-reflink", "", pluginhost.Options{})
	ctx := context.Background()
	dir := filepath.Join(root, "plugin-pool")
	p := pool.Pool{Name: "bench", Config: map[string]string{"dir_path": dir}}
	if !reflinks {
		p.Config["setup_check"] = "False"
	}
	vol := func(vid string) pool.Volume {
		return pool.Volume{VID: vid, Name: "private", Size: uint64(srcSize), RW: true, SaveOnStop: true, RevisionsToKeep: 1}
	}
	srcVol := vol("vm-templates/src/private")
	if err := drv.Setup(ctx, p); err != nil {
		b.Fatal(err)
	}
	if err := drv.Create(ctx, p, srcVol); err != nil {
		b.Fatal(err)
	}
	path, err := drv.ImportBegin(ctx, p, srcVol, uint64(srcSize))
	if err != nil {
		b.Fatal(err)
	}
	writeExtents(b, path)
	if err := drv.ImportEnd(ctx, p, srcVol, true); err != nil {
		b.Fatal(err)
	}
	dstVol := func(i int) pool.Volume { return vol(fmt.Sprintf("appvms/clone%d/private", i)) }
	c := &cloneBench{
		reflinks: reflinks,
		src:      filepath.Join(dir, srcVol.VID+".img"),
		cpDst:    filepath.Join(root, "cp-plugin.img"),
		clone: func(i int, timed func(func() error)) string {
			timed(func() error { return drv.CloneFrom(ctx, p, dstVol(i), srcVol) })
			return filepath.Join(dir, dstVol(i).VID+".img")
		},
		done: func(i int, _ string) {
			if err := drv.Remove(ctx, p, dstVol(i)); err != nil {
				b.Fatal(err)
			}
		},
	}
	c.run(b)
}

// BenchmarkStorageImport: qvm-volume import of a 1 GiB file (pseudo-random
// data, no zeros) into a file-reflink pool's volume against dd of the same
// file to a file on the same file system, in the same run. ratio-to-dd is
// the throughput ratio (import's over dd's); ratio-to-dd-fsync compares
// with dd conv=fsync, since an import syncs the data it commits and plain
// dd leaves it in the page cache. The three alternate which goes first;
// only the import is in b's timer.
func BenchmarkStorageImport(b *testing.B) {
	root := newDir(b)
	d := startQubesd(b, newDir(b), storagePlugins)
	d.waitPlugins(b, "file", "file-reflink", "linux-kernel")
	d.ok(b, "qvm-pool", "add", "benchpool", "file-reflink", "-o", "dir_path="+filepath.Join(root, "pool"), "-o", "setup_check=False")
	d.ok(b, "qvm-create", "-C", "TemplateVM", "-l", "black", "-P", "benchpool", "imp")
	const size = 1 * gib
	src := filepath.Join(root, "source.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{'i', 'm', 'p'})
	buf := make([]byte, 4*mib)
	for off := int64(0); off < size; off += int64(len(buf)) {
		_, _ = rng.Read(buf)
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		b.Fatal(err)
	}
	want := sumFile(b, src, -1) // also puts it in the page cache
	ddOut := filepath.Join(root, "dd.img")
	var imp, dd, ddSync []time.Duration
	ddRun := func(into *[]time.Duration, args ...string) func() {
		return func() {
			*into = append(*into, sinceSync(b, runCmd("dd", append([]string{"if=" + src, "of=" + ddOut, "bs=4M", "status=none"}, args...)...)))
			if err := os.Remove(ddOut); err != nil {
				b.Fatal(err)
			}
		}
	}
	ops := []func(){
		func() {
			syscall.Sync()
			b.StartTimer()
			t0 := time.Now()
			d.ok(b, "qvm-volume", "import", "imp:private", src)
			imp = append(imp, time.Since(t0))
			b.StopTimer()
		},
		ddRun(&dd),
		ddRun(&ddSync, "conv=fsync"),
	}
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		// each goes first in turn: none always pays for the file
		// system's work (discards, journal) left by another
		for j := range ops {
			ops[(i+j)%len(ops)]()
		}
	}
	b.StopTimer()
	if sumFile(b, filepath.Join(root, "pool", "vm-templates", "imp", "private.img"), -1) != want {
		b.Fatal("the imported image is not the source")
	}
	mbps := func(d time.Duration) float64 { return float64(size) / float64(mib) / d.Seconds() }
	b.Logf("on %s; import %s; dd %s; dd conv=fsync %s", fsType(b, root), samples(imp), samples(dd), samples(ddSync))
	i, dm, ds := median(imp), median(dd), median(ddSync)
	b.ReportMetric(mbps(i), "import-MB/s")
	b.ReportMetric(mbps(dm), "dd-MB/s")
	b.ReportMetric(mbps(ds), "dd-fsync-MB/s")
	b.ReportMetric(mbps(i)/mbps(dm), "ratio-to-dd")
	b.ReportMetric(mbps(i)/mbps(ds), "ratio-to-dd-fsync")
}

// BenchmarkStorageStartStop: the storage part of a qube's start and stop,
// through the plugins as the daemon makes the calls (core/pluginhost
// proxies, one call at a time): Start of an AppVM's four volumes — root (a
// snapshot of its template's root), private (an origin volume), volatile
// (file-reflink) and kernel (linux-kernel; a kernel without modules.img:
// no disk) — then Stop of each, in reverse. The volumes are new (empty),
// at the default sizes: this is the overhead per qube, not a copy of
// data. p50-us and p99-us are per qube (4 Starts + 4 Stops).
func BenchmarkStorageStartStop(b *testing.B) {
	for _, fs := range benchFilesystems(b) {
		b.Run(fs.name, func(b *testing.B) { benchStartStop(b, fs.root(b), fs.reflinks) })
	}
}

func benchStartStop(b *testing.B, root string, reflinks bool) {
	_, rd := startHost(b, "qubesd-pool-file-reflink", "", pluginhost.Options{})
	_, kd := startHost(b, "qubesd-pool-kernels", "", pluginhost.Options{})
	ctx := context.Background()
	p := pool.Pool{Name: "bench", Config: map[string]string{"dir_path": filepath.Join(root, "pool")}}
	if !reflinks {
		p.Config["setup_check"] = "False"
	}
	kdir := filepath.Join(root, "vm-kernels")
	const version = "6.6.0-bench"
	if err := os.MkdirAll(filepath.Join(kdir, version), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kdir, version, "vmlinuz"), []byte("not a kernel"), 0o644); err != nil {
		b.Fatal(err)
	}
	kp := pool.Pool{Name: "linux-kernel", Config: map[string]string{"dir_path": kdir}}
	if err := rd.Setup(ctx, p); err != nil {
		b.Fatal(err)
	}
	if err := kd.Open(ctx, kp); err != nil {
		b.Fatal(err)
	}
	tplRoot := pool.Volume{VID: "vm-templates/bench-tpl/root", Name: "root", Size: uint64(rootSize), RW: true, SaveOnStop: true, RevisionsToKeep: 1}
	type pv struct {
		d pool.Driver
		p pool.Pool
		v pool.Volume
	}
	vols := []pv{
		{rd, p, pool.Volume{VID: "appvms/bench/root", Name: "root", Size: uint64(rootSize), RW: true, SnapOnStart: true, SourceVID: tplRoot.VID, RevisionsToKeep: 1}},
		{rd, p, pool.Volume{VID: "appvms/bench/private", Name: "private", Size: uint64(privateSize), RW: true, SaveOnStop: true, RevisionsToKeep: 1}},
		{rd, p, pool.Volume{VID: "appvms/bench/volatile", Name: "volatile", Size: uint64(volatileSize), RW: true, RevisionsToKeep: 1}},
		{kd, kp, pool.Volume{VID: version, Name: "kernel"}},
	}
	if err := rd.Create(ctx, p, tplRoot); err != nil {
		b.Fatal(err)
	}
	for _, v := range vols {
		if err := v.d.Create(ctx, v.p, v.v); err != nil {
			b.Fatalf("Create %s: %v", v.v.VID, err)
		}
	}
	// what the qube gets: three images, and no kernel modules disk
	for _, v := range vols {
		dev, err := v.d.Start(ctx, v.p, v.v)
		if err != nil {
			b.Fatalf("Start %s: %v", v.v.VID, err)
		}
		if (v.v.Name == "kernel") != (dev.Path == "") {
			b.Fatalf("Start %s: device %+v", v.v.VID, dev)
		}
	}
	for _, v := range slices.Backward(vols) {
		if err := v.d.Stop(ctx, v.p, v.v); err != nil {
			b.Fatalf("Stop %s: %v", v.v.VID, err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, v := range vols {
			if _, err := v.d.Start(ctx, v.p, v.v); err != nil {
				b.Fatalf("Start %s: %v", v.v.VID, err)
			}
		}
		for _, v := range slices.Backward(vols) {
			if err := v.d.Stop(ctx, v.p, v.v); err != nil {
				b.Fatalf("Stop %s: %v", v.v.VID, err)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// fileExtent is one extent of a file (FIEMAP): where its bytes are in the
// file and on the device.
type fileExtent struct{ logical, physical, length uint64 }

// extentsOf maps path's data (FS_IOC_FIEMAP, after a sync of the file).
func extentsOf(tb testing.TB, path string) []fileExtent {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	const (
		fsIocFiemap     = 0xC020660B // _IOWR('f', 11, struct fiemap)
		fiemapFlagSync  = 0x1
		fiemapExtLast   = 0x1
		headerSize      = 32
		extentSize      = 56
		extentsPerCall  = 128
		fiemapMaxLength = ^uint64(0)
	)
	var out []fileExtent
	buf := make([]uint64, (headerSize+extentsPerCall*extentSize)/8)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*8)
	ne := binary.NativeEndian
	for start := uint64(0); ; {
		clear(raw)
		ne.PutUint64(raw[0:], start)
		ne.PutUint64(raw[8:], fiemapMaxLength-start)
		ne.PutUint32(raw[16:], fiemapFlagSync)
		ne.PutUint32(raw[24:], extentsPerCall)
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
			tb.Fatalf("FIEMAP %s: %v", path, e)
		}
		n := ne.Uint32(raw[20:])
		if n == 0 {
			return out
		}
		for i := range n {
			e := raw[headerSize+int(i)*extentSize:]
			x := fileExtent{logical: ne.Uint64(e[0:]), physical: ne.Uint64(e[8:]), length: ne.Uint64(e[16:])}
			out = append(out, x)
			start = x.logical + x.length
			if ne.Uint32(e[40:])&fiemapExtLast != 0 {
				return out
			}
		}
	}
}

// sharedPercent is how much of clone's data (in percent) lies in blocks
// of src's: 100 for a reflink, 0 for a copy.
func sharedPercent(tb testing.TB, src, clone string) float64 {
	tb.Helper()
	se, ce := extentsOf(tb, src), extentsOf(tb, clone)
	var total, shared uint64
	for _, c := range ce {
		total += c.length
		for _, s := range se {
			lo, hi := max(c.physical, s.physical), min(c.physical+c.length, s.physical+s.length)
			if hi > lo {
				shared += hi - lo
			}
		}
	}
	if total == 0 {
		return 0
	}
	return 100 * float64(shared) / float64(total)
}
