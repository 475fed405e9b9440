package storage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func TestCloneFastPath(t *testing.T) {
	e := newEnv(t)
	src := e.origin("template-private")
	dst := e.vol("vm0001", "private")
	e.ok(e.m.Clone(e.ctx, dst, src, nil), "Clone")
	if n := e.d.Calls("CloneFrom", dst.Spec.VID); n != 1 {
		t.Errorf("CloneFrom called %d times, want once", n)
	}
	if n := e.d.Calls("ImportBegin", ""); n != 0 {
		t.Errorf("the fast path imported (%d calls)", n)
	}
	if got, want := e.d.Content(dst.Pool.Name, dst.Spec.VID), e.d.Content(src.Pool.Name, src.Spec.VID); !bytes.Equal(got, want) {
		t.Errorf("clone content differs from its source")
	}
}

// TestCloneFastPathOntoEmpty: a destination that holds nothing (created
// with its qube, as CloneTo's always is) is replaced by the driver's own
// clone, which shares blocks with the source.
func TestCloneFastPathOntoEmpty(t *testing.T) {
	e := newEnv(t)
	src := e.origin("template-private")
	e.ok(e.d.SetContent(src.Pool.Name, src.Spec.VID, []byte("template data")), "SetContent")
	dst := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, dst), "Create")
	e.ok(e.m.Clone(e.ctx, dst, src, nil), "Clone")
	if n := e.d.Calls("CloneFrom", dst.Spec.VID); n != 1 {
		t.Errorf("CloneFrom called %d times, want once", n)
	}
	if n := e.d.Calls("ImportBegin", ""); n != 0 {
		t.Errorf("copied instead of cloning (%d imports)", n)
	}
	if !bytes.Equal(e.d.Content(dst.Pool.Name, dst.Spec.VID), []byte("template data")) {
		t.Errorf("clone content differs from its source")
	}
}

// TestCloneFastOnlyOntoData: a driver that can only clone into new volumes
// and cannot import refuses to clone over data, which stays.
func TestCloneFastOnlyOntoData(t *testing.T) {
	e := newEnv(t)
	e.d.Caps.Import, e.d.Caps.Export = false, false
	src := e.origin("template-private")
	dst := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, dst), "Create")
	e.ok(e.d.SetContent(dst.Pool.Name, dst.Spec.VID, []byte("precious")), "SetContent")
	err := e.m.Clone(e.ctx, dst, src, nil)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("holds data")) {
		t.Errorf("Clone over data: %v, want a refusal saying the volume holds data", err)
	}
	if !bytes.Equal(e.d.Content(dst.Pool.Name, dst.Spec.VID), []byte("precious")) {
		t.Error("the destination's data was destroyed")
	}
}

func TestCloneCopyPath(t *testing.T) {
	for _, c := range []struct {
		name      string
		fastClone bool
		dstExists bool
	}{
		{"no fast clone, new dst", false, false},
		{"no fast clone, existing dst", false, true},
		{"fast clone, existing dst holding data", true, true}, // CloneFrom only makes new volumes
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.d.Caps.FastClone = c.fastClone
			src := e.origin("template-private")
			big := make([]byte, 3<<20)
			copy(big, "start")
			copy(big[2<<20:], "past a hole")
			e.ok(e.d.SetContent(src.Pool.Name, src.Spec.VID, big), "SetContent")
			dst := e.vol("vm0001", "private")
			if c.dstExists {
				e.ok(e.m.Create(e.ctx, dst), "Create")
				e.ok(e.d.SetContent(dst.Pool.Name, dst.Spec.VID, []byte("old")), "SetContent")
			}
			var last [2]uint64
			calls := 0
			e.ok(e.m.Clone(e.ctx, dst, src, func(done, total uint64) { last = [2]uint64{done, total}; calls++ }), "Clone")
			if n := e.d.Calls("CloneFrom", ""); n != 0 {
				t.Errorf("CloneFrom called %d times", n)
			}
			if !bytes.Equal(e.d.Content(dst.Pool.Name, dst.Spec.VID), big) {
				t.Errorf("clone content differs from its source")
			}
			if calls == 0 || last != [2]uint64{uint64(len(big)), uint64(len(big))} {
				t.Errorf("progress: %d calls, last %v, want the last (%d, %d)", calls, last, len(big), len(big))
			}
			if sz := e.vol("vm0001", "private").Spec.Size; sz != uint64(len(big)) {
				t.Errorf("recorded size %d, want %d", sz, len(big))
			}
			if files := e.d.Files(); len(files) != 0 {
				t.Errorf("files left behind: %v", files)
			}
			if _, ok := e.m.ImportInProgress(dst); ok {
				t.Error("import still marked in progress")
			}
		})
	}
}

func TestCloneFailureLeavesDst(t *testing.T) {
	for _, c := range []struct {
		name      string
		dstExists bool
		fail      func(e *env, dst Volume, cancel context.CancelFunc) func(done, total uint64)
	}{
		{"export fails", true, func(e *env, _ Volume, _ context.CancelFunc) func(uint64, uint64) {
			e.d.Fail("ExportBegin", "", errInjected)
			return nil
		}},
		{"import begin fails", true, func(e *env, dst Volume, _ context.CancelFunc) func(uint64, uint64) {
			e.d.Fail("ImportBegin", dst.Spec.VID, errInjected)
			return nil
		}},
		{"copy cancelled", true, func(_ *env, _ Volume, cancel context.CancelFunc) func(uint64, uint64) {
			return func(uint64, uint64) { cancel() }
		}},
		{"commit fails", true, func(e *env, dst Volume, _ context.CancelFunc) func(uint64, uint64) {
			// ImportEnd(true) fails; the abort that follows works.
			e.d.FailNext("ImportEnd", dst.Spec.VID, errInjected)
			return nil
		}},
		{"copy cancelled, new dst", false, func(_ *env, _ Volume, cancel context.CancelFunc) func(uint64, uint64) {
			return func(uint64, uint64) { cancel() }
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.d.Caps.FastClone = false
			src := e.origin("new content")
			dst := e.vol("vm0001", "private")
			if c.dstExists {
				e.ok(e.m.Create(e.ctx, dst), "Create")
				e.ok(e.d.SetContent(dst.Pool.Name, dst.Spec.VID, []byte("old content")), "SetContent")
			}
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			progress := c.fail(e, dst, cancel)
			err := e.m.Clone(ctx, dst, src, progress)
			wantErr(t, err, qerr.StoragePoolError, "private")
			if c.dstExists {
				if got := string(bytes.TrimRight(e.d.Content(dst.Pool.Name, dst.Spec.VID), "\x00")); got != "old content" {
					t.Errorf("dst holds %q after a failed clone, want its old content", got)
				}
			} else if e.d.Has(dst.Pool.Name, dst.Spec.VID) {
				t.Error("a dst created for the clone is left after it failed")
			}
			if e.d.Importing(dst.Pool.Name, dst.Spec.VID) {
				t.Error("the driver's import was not aborted")
			}
			if _, ok := e.m.ImportInProgress(dst); ok {
				t.Error("import still marked in progress")
			}
		})
	}
}

func TestCloneOntoItself(t *testing.T) {
	e := newEnv(t)
	v := e.origin("x")
	wantErr(t, e.m.Clone(e.ctx, v, v, nil), qerr.ValueError, "onto itself")
}

func TestCloneSnapshotVolumeOnlyCreates(t *testing.T) {
	e := newEnv(t)
	src, dst := e.vol("vm0001", "root"), e.vol("vm0002", "root")
	e.ok(e.m.Clone(e.ctx, dst, src, nil), "Clone")
	if !e.d.Has(dst.Pool.Name, dst.Spec.VID) {
		t.Error("dst not created")
	}
	if n := e.d.Calls("CloneFrom", "") + e.d.Calls("ExportBegin", ""); n != 0 {
		t.Errorf("a snapshot volume's data was copied (%d calls)", n)
	}
}

// The copy keeps holes: between two files, the copy takes about the
// blocks the data takes, not the file's size.
func TestCopyExtentsSparse(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 20
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Truncate(size); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("data"), 1024)
	for _, off := range []int64{0, 32 << 20, size - 4096} {
		if _, err := src.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	// A run of zeros written as data (not a hole) must not be written either.
	if _, err := src.WriteAt(make([]byte, 4<<20), 8<<20); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.Truncate(size); err != nil {
		t.Fatal(err)
	}
	var reports int
	if err := copyExtents(t.Context(), dst, src, size, func(done, total uint64) { reports++ }); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src.Name())
	b, _ := os.ReadFile(dst.Name())
	if !bytes.Equal(a, b) {
		t.Fatal("the copy differs")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst.Name(), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 4<<20 {
		t.Errorf("the copy takes %d bytes on disk for 12 KiB of data in %d: holes were filled", used, size)
	}
	if reports == 0 {
		t.Error("no progress reports")
	}
	if err := copyExtents(cancelled(t), dst, src, size, nil); err == nil {
		t.Error("a cancelled copy succeeded")
	}
}

func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

var _ = pool.ErrNotFound
