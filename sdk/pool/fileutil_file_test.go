package pool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCopySparseFile(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		size int64
		data map[int64]string // offset → bytes written into src
		old  []byte           // what dst holds before the copy
	}{
		{"empty", 0, nil, nil},
		{"all hole", 8 * mib, nil, nil},
		{"data at both ends", 8 * mib, map[int64]string{0: "head", 8*mib - 4: "tail"}, nil},
		{"data in the middle of a hole", 16 * mib, map[int64]string{5 * mib: "middle"}, nil},
		{"dst longer with data", 2 * mib, map[int64]string{mib: "x"}, bytes.Repeat([]byte{0xff}, 4*mib)},
		{"dst shorter", 3 * mib, map[int64]string{3*mib - 1: "z"}, []byte("old")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, err := os.Create(filepath.Join(dir, "src"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if err := src.Truncate(tc.size); err != nil {
				t.Fatal(err)
			}
			for off, s := range tc.data {
				if _, err := src.WriteAt([]byte(s), off); err != nil {
					t.Fatal(err)
				}
			}
			dstPath := filepath.Join(dir, "dst")
			if err := os.WriteFile(dstPath, tc.old, 0o600); err != nil {
				t.Fatal(err)
			}
			dst, err := os.OpenFile(dstPath, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			if err := CopySparseFile(t.Context(), dst, src); err != nil {
				t.Fatalf("CopySparseFile: %v", err)
			}
			want, _ := os.ReadFile(src.Name())
			got, _ := os.ReadFile(dstPath)
			if !bytes.Equal(got, want) {
				t.Errorf("copy differs from the source (len %d, want %d)", len(got), len(want))
			}
			if n, ok := allocated(t, dstPath); ok && tc.size >= 8*mib && n > 2*mib {
				t.Errorf("copy of a sparse file takes %d bytes: holes not kept", n)
			}
		})
	}
}

func TestCopySparseFileCancelled(t *testing.T) {
	dir := t.TempDir()
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := CopySparseFile(ctx, dst, src); !errors.Is(err, context.Canceled) {
		t.Errorf("CopySparseFile with a cancelled context: %v, want context.Canceled", err)
	}
}
