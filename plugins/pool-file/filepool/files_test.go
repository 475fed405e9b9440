package filepool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// TestCopyFile: a copy is a reflink exactly where the file system makes
// them, keeps holes either way, and is shaped as asked.
func TestCopyFile(t *testing.T) {
	for _, fs := range ptest.Filesystems {
		t.Run(fs.Name, func(t *testing.T) {
			dir := fs.Root(t)
			src := filepath.Join(dir, "src.img")
			ok(t, createSparse(src, 64*mib, 0o600), "createSparse")
			put(t, src, 0, "head")
			put(t, src, 48*mib, "middle")
			old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
			ok(t, os.Chtimes(src, old, old), "Chtimes")
			for _, tc := range []struct {
				name string
				o    copyOpts
				size int64
			}{
				{"plain", copyOpts{perm: 0o600, size: -1}, 64 * mib},
				{"grown", copyOpts{perm: 0o600, size: 100 * mib}, 100 * mib},
				{"shrunk", copyOpts{perm: 0o640, size: 49 * mib}, 49 * mib},
				{"mtime kept", copyOpts{perm: 0o600, size: -1, keepMtime: true}, 64 * mib},
				{"marked", copyOpts{perm: 0o600, size: -1, mark: true}, 64 * mib},
				{"reflink only", copyOpts{perm: 0o600, size: -1, reflinkOnly: true}, 64 * mib},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dst := filepath.Join(dir, tc.name+".img")
					reflinked, err := copyFile(t.Context(), src, dst, tc.o)
					ok(t, err, "copyFile")
					if reflinked != fs.Reflinks {
						t.Errorf("reflinked %v on %s", reflinked, fs.Name)
					}
					if tc.o.reflinkOnly && !fs.Reflinks {
						if exists(dst) {
							t.Errorf("a reflink-only copy where reflinks do not work made %s", dst)
						}
						return
					}
					if n := fileSize(t, dst); n != tc.size {
						t.Errorf("size %d, want %d", n, tc.size)
					}
					if got := get(t, dst, 0, 4) + get(t, dst, 48*mib, 6); got != "headmiddle" {
						t.Errorf("content %q", got)
					}
					if n := used(t, dst); n > 2*mib {
						t.Errorf("the copy takes %d bytes: holes not kept", n)
					}
					fi, _ := os.Stat(dst)
					if fi.Mode().Perm() != tc.o.perm {
						t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.o.perm)
					}
					if got := fi.ModTime().Equal(old); got != tc.o.keepMtime {
						t.Errorf("mtime %v (source's %v), keepMtime %v", fi.ModTime(), old, tc.o.keepMtime)
					}
					if names := files(t, dir); strings.Contains(strings.Join(names, " "), tmpMark) {
						t.Errorf("temporary file left: %v", names)
					}
				})
			}
			_, err := copyFile(t.Context(), filepath.Join(dir, "none"), filepath.Join(dir, "x"), copyOpts{size: -1})
			isKind(t, err, pool.ErrNotFound, "copyFile of a missing file")
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := copyFile(ctx, src, filepath.Join(dir, "cancelled.img"), copyOpts{size: -1}); !fs.Reflinks && !errors.Is(err, context.Canceled) {
				t.Errorf("copyFile with a cancelled context: %v", err)
			}
			if exists(filepath.Join(dir, "cancelled.img")) && !fs.Reflinks {
				t.Error("a cancelled copy left its target")
			}
		})
	}
}

// TestMarkAllocated: a file of zeros gets one block, its content and size
// unchanged; a file with data is left alone.
func TestMarkAllocated(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		data string
	}{
		{"empty file", 0, ""},
		{"small hole", 100, ""},
		{"big hole", 1 * gib, ""},
		{"data", 1 * mib, "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img")
			ok(t, createSparse(path, uint64(tc.size), 0o600), "createSparse")
			if tc.data != "" {
				put(t, path, 0, tc.data)
			}
			before := used(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			ok(t, err, "open")
			ok(t, markAllocated(f), "markAllocated")
			f.Close()
			after := used(t, path)
			if after == 0 || after > 64*kib {
				t.Errorf("takes %d bytes after, want a block", after)
			}
			if tc.data != "" && after != before {
				t.Errorf("a file with data went from %d to %d bytes", before, after)
			}
			if n := fileSize(t, path); n != tc.size {
				t.Errorf("size %d, want %d", n, tc.size)
			}
			if got := get(t, path, 0, 16); got != tc.data {
				t.Errorf("content %q, want %q", got, tc.data)
			}
		})
	}
}

// TestCleanTemps removes exactly a volume's temporary files.
func TestCleanTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"root.img", "root-dirty.img", "root2.img~x1", "root-other.img~x", "private.img~y", "root.img.1@2024-01-02T03:04:05Z"}
	gone := []string{"root.img~abc", "root-dirty.img~1", "root-precache.img~2", "root-import.img~3", "root.img.4@2024-01-02T03:04:05Z~z"}
	for _, n := range append(keep, gone...) {
		ok(t, os.WriteFile(filepath.Join(dir, n), nil, 0o600), "write")
	}
	r := reflinkPaths(pool.Pool{Config: map[string]string{"dir_path": dir}}, "root")
	ok(t, cleanTemps(dir, "root", r.isTemp), "cleanTemps")
	got := files(t, dir)
	for _, n := range keep {
		if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+n+" ") {
			t.Errorf("%s was removed", n)
		}
	}
	if len(got) != len(keep) {
		t.Errorf("left %v, want %v", got, keep)
	}
}

// TestRefreshLoops: after a resize of a started volume, the loop device
// reading its image (as a running qube's disk does) has the new size.
func TestRefreshLoops(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("attaching a loop device needs root: run the tests as root, as make test does in CI")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup is missing: install util-linux's mount package (apt-get install -y mount)")
	}
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			drv, p := setup(t, d.name, ptest.Filesystems[0], t.TempDir())
			v := origin("appvms/work/private", 8*mib, 1)
			ok(t, drv.Create(t.Context(), p, v), "Create")
			bd, err := drv.Start(t.Context(), p, v)
			ok(t, err, "Start")
			out, err := exec.Command("losetup", "--find", "--show", bd.Path).CombinedOutput()
			if err != nil {
				t.Skipf("skipped: losetup --find refused: %v %s", err, out)
			}
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() {
				if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
					t.Errorf("losetup -d %s: %v %s", dev, err, out)
				}
			})
			ok(t, drv.Resize(t.Context(), p, v, 24*mib), "Resize")
			b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "size"))
			ok(t, err, "reading the loop device's size")
			if sectors, _ := strconv.Atoi(strings.TrimSpace(string(b))); sectors*512 != 24*mib {
				t.Errorf("%s: %d sectors after the resize, want %d", dev, sectors, 24*mib/512)
			}
			v.Size = 24 * mib
			ok(t, drv.Stop(t.Context(), p, v), "Stop")
		})
	}
}
