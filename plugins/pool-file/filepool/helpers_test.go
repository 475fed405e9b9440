package filepool

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// setup makes a pool of the driver named name in root (on fs) and returns
// the driver behind the SDK's request checks, as the daemon calls it.
func setup(t *testing.T, name string, fs ptest.FS, root string) (pool.Driver, pool.Pool) {
	t.Helper()
	var d pool.Driver = NewFile()
	if name == ReflinkName {
		d = NewReflink()
	}
	p := pool.Pool{Name: "test", Config: ptest.PoolConfig(name, fs, filepath.Join(root, "pool"))}
	d = pool.Check(d)
	ok(t, d.Setup(t.Context(), p), "Setup")
	return d, p
}

func ok(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func isKind(t *testing.T, err, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error %v, want one of kind %v", what, err, kind)
	}
}

func origin(vid string, size uint64, keep int) pool.Volume {
	return pool.Volume{VID: vid, Name: "private", Size: size, RW: true, SaveOnStop: true, RevisionsToKeep: keep}
}

func snapshotOf(vid string, src pool.Volume) pool.Volume {
	return pool.Volume{VID: vid, Name: "root", Size: src.Size, RW: true, SnapOnStart: true, SourceVID: src.VID}
}

func volatileVol(vid string, size uint64) pool.Volume {
	return pool.Volume{VID: vid, Name: "volatile", Size: size, RW: true}
}

// put writes s at off in path (which must exist).
func put(t *testing.T, path string, off int64, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt([]byte(s), off)
		err = errors.Join(err, f.Sync(), f.Close())
	}
	ok(t, err, "writing "+path)
}

// get reads n bytes at off in path, zeros trimmed.
func get(t *testing.T, path string, off int64, n int) string {
	t.Helper()
	f, err := os.Open(path)
	ok(t, err, "opening "+path)
	defer f.Close()
	buf := make([]byte, n)
	f.ReadAt(buf, off)
	return strings.TrimRight(string(buf), "\x00")
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	ok(t, err, "stat")
	return fi.Size()
}

func used(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	ok(t, err, "stat")
	return allocated(fi)
}

// files lists the names in dir, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	ok(t, err, "reading "+dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func revIDs(t *testing.T, d pool.Driver, p pool.Pool, v pool.Volume) []string {
	t.Helper()
	revs, err := d.ListRevisions(t.Context(), p, v)
	ok(t, err, "ListRevisions")
	var ids []string
	for _, r := range revs {
		ids = append(ids, r.ID)
	}
	return ids
}

// cycle starts v, writes marker at 0 into the device and stops it.
func cycle(t *testing.T, d pool.Driver, p pool.Pool, v pool.Volume, marker string) {
	t.Helper()
	bd, err := d.Start(t.Context(), p, v)
	ok(t, err, "Start "+v.VID)
	put(t, bd.Path, 0, marker)
	ok(t, d.Stop(t.Context(), p, v), "Stop "+v.VID)
}

// exported is v's committed content at 0, read through ExportBegin.
func exported(t *testing.T, d pool.Driver, p pool.Pool, v pool.Volume) string {
	t.Helper()
	path, err := d.ExportBegin(t.Context(), p, v)
	ok(t, err, "ExportBegin "+v.VID)
	defer d.ExportEnd(t.Context(), p, v, path)
	return get(t, path, 0, 64)
}
