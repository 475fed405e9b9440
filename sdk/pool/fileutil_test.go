package pool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes path takes on disk (st_blocks), where the OS
// says.
func allocated(t *testing.T, path string) (int64, bool) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := reflect.ValueOf(fi.Sys())
	if sys.Kind() != reflect.Pointer || sys.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	blocks := sys.Elem().FieldByName("Blocks")
	if !blocks.CanInt() {
		return 0, false
	}
	return blocks.Int() * 512, true
}

// onlyFiles fails the test unless dir holds exactly names (no temporary
// file left behind).
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func TestCreateSparse(t *testing.T) {
	for _, tc := range []struct {
		name string
		size uint64
		old  []byte // what is there before, if not nil
	}{
		{"empty", 0, nil},
		{"one byte", 1, nil},
		{"odd size", 12345, nil},
		{"16 MiB", 16 << 20, nil},
		{"replaces a file", 8192, bytes.Repeat([]byte("x"), 100000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "img")
			if tc.old != nil {
				if err := os.WriteFile(path, tc.old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 2 { // twice: the second replaces the first
				if err := CreateSparse(path, tc.size); err != nil {
					t.Fatalf("CreateSparse %d: %v", i, err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(got)) != tc.size || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
				t.Errorf("content: %d bytes, not all zeros; want %d zeros", len(got), tc.size)
			}
			if n, ok := allocated(t, path); ok && n > 64<<10 {
				t.Errorf("%d bytes allocated on disk, want none (a sparse file)", n)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v (%v), want 0600", fi.Mode(), err)
			}
			onlyFiles(t, dir, "img")
		})
	}
}

func TestCreateSparseErrors(t *testing.T) {
	dir := t.TempDir()
	if err := CreateSparse(filepath.Join(dir, "no-such-dir", "img"), 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("in a missing directory: %v, want ErrNotFound", err)
	}
	if err := CreateSparse(filepath.Join(dir, "img"), 1<<63); !errors.Is(err, ErrInvalid) {
		t.Errorf("size 1<<63: %v, want ErrInvalid", err)
	}
	onlyFiles(t, dir)
}

// extent is data written at an offset of a test file.
type extent struct {
	off  int64
	data string
}

func TestCopySparse(t *testing.T) {
	defer func(n int64) { copyChunk = n }(copyChunk)
	copyChunk = 3 * 4096 // several copy calls per extent
	const mib = 1 << 20
	block := strings.Repeat("d", 4096)
	for _, tc := range []struct {
		name    string
		size    int64
		extents []extent
	}{
		{"empty", 0, nil},
		{"all hole", 8 * mib, nil},
		{"data at the start", 8 * mib, []extent{{0, "start"}}},
		{"data in the last partial block", 8*mib + 100, []extent{{8*mib + 10, "end"}}},
		{"data up to the end", 2*mib + 5, []extent{{2 * mib, "12345"}}},
		{"extents and holes", 16 * mib, []extent{{4096, block}, {3 * mib, strings.Repeat(block, 10)}, {9*mib + 7, "x"}}},
		{"no holes", 256 << 10, []extent{{0, strings.Repeat(block, 64)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			want := make([]byte, tc.size)
			f, err := os.Create(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.extents {
				copy(want[e.off:], e.data)
				if _, err := f.WriteAt([]byte(e.data), e.off); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Truncate(tc.size); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, []byte("old content, replaced"), 0o644); err != nil {
				t.Fatal(err)
			}

			if err := CopySparse(t.Context(), src, dst); err != nil {
				t.Fatalf("CopySparse: %v", err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("copy: %d bytes differing from the source's %d", len(got), len(want))
			}
			srcUse, ok := allocated(t, src)
			dstUse, _ := allocated(t, dst)
			if ok && runtime.GOOS == "linux" && dstUse > srcUse+64<<10 {
				t.Errorf("copy takes %d bytes on disk, the source %d: holes not kept", dstUse, srcUse)
			}
			onlyFiles(t, dir, "dst", "src")
		})
	}
}

func TestCopySparseErrors(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("source"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		ctx      func() context.Context
		src, dst string
		want     error
	}{
		{"missing source", t.Context, filepath.Join(dir, "none"), dst, ErrNotFound},
		{"missing destination directory", t.Context, src, filepath.Join(dir, "none", "dst"), ErrNotFound},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, src, dst, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CopySparse(tc.ctx(), tc.src, tc.dst); !errors.Is(err, tc.want) {
				t.Errorf("CopySparse: %v, want %v", err, tc.want)
			}
			if got, err := os.ReadFile(dst); err != nil || string(got) != "kept" {
				t.Errorf("destination after a failed copy: %q, %v; want it untouched", got, err)
			}
			onlyFiles(t, dir, "dst", "src")
		})
	}
}
