package filepool

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// TestFileLayout checks the files of a pool against the reference's file
// driver's layout through a volume's life, on both file systems.
func TestFileLayout(t *testing.T) {
	for _, fs := range ptest.Filesystems {
		t.Run(fs.Name, func(t *testing.T) {
			d, p := setup(t, FileName, fs, fs.Root(t))
			qube := filepath.Join(dir(p), "appvms", "work")
			v := origin("appvms/work/private", 4*mib, 1)
			ok(t, d.Create(t.Context(), p, v), "Create")
			if got := files(t, qube); !slices.Equal(got, []string{"private.img"}) {
				t.Errorf("after Create: %v", got)
			}
			if fi, _ := os.Stat(filepath.Join(qube, "private.img")); fi.Mode().Perm() != 0o664 {
				t.Errorf("image mode %v, want the reference's 0664", fi.Mode().Perm())
			}
			cycle(t, d, p, v, "one")

			// Started: the qube writes private.img; private-cow.img keeps
			// the content from before the start.
			bd, err := d.Start(t.Context(), p, v)
			ok(t, err, "Start")
			if bd.Path != filepath.Join(qube, "private.img") || !bd.RW {
				t.Errorf("Start gives %+v", bd)
			}
			put(t, bd.Path, 0, "two")
			if got := get(t, filepath.Join(qube, "private-cow.img"), 0, 8); got != "one" {
				t.Errorf("private-cow.img holds %q, want the content from before the start", got)
			}
			if st, err := d.VolumeInfo(t.Context(), p, v); err != nil || !st.Dirty {
				t.Errorf("VolumeInfo of a started volume: %+v, %v", st, err)
			}
			if got := exported(t, d, p, v); got != "one" {
				t.Errorf("export of a started volume: %q", got)
			}
			ok(t, d.Stop(t.Context(), p, v), "Stop")
			if got := files(t, qube); !slices.Equal(got, []string{"private-cow.img.old", "private.img"}) {
				t.Errorf("after a commit: %v", got)
			}
			if got := get(t, filepath.Join(qube, "private-cow.img.old"), 0, 8); got != "one" {
				t.Errorf("revision old holds %q", got)
			}
			revs, err := d.ListRevisions(t.Context(), p, v)
			if ok(t, err, "ListRevisions"); len(revs) != 1 || revs[0].ID != "old" || revs[0].Time.IsZero() {
				t.Errorf("ListRevisions: %+v", revs)
			}

			// Revert keeps "old"; Revert again does the same.
			for range 2 {
				ok(t, d.Revert(t.Context(), p, v, "old"), "Revert")
				if got := exported(t, d, p, v); got != "one" {
					t.Errorf("after Revert: %q", got)
				}
			}
			isKind(t, d.Revert(t.Context(), p, v, "1"), pool.ErrNotFound, "Revert to an unknown revision")

			// revisions_to_keep 0: no old.
			v0 := v
			v0.RevisionsToKeep = 0
			cycle(t, d, p, v0, "three")
			if got := files(t, qube); !slices.Equal(got, []string{"private.img"}) {
				t.Errorf("a commit with revisions_to_keep 0: %v", got)
			}

			// An import: the replaced image becomes old.
			path, err := d.ImportBegin(t.Context(), p, v, 8*mib)
			if ok(t, err, "ImportBegin"); path != filepath.Join(qube, "private-import.img") {
				t.Errorf("ImportBegin gives %s", path)
			}
			put(t, path, 0, "imported")
			ok(t, d.ImportEnd(t.Context(), p, v, true), "ImportEnd")
			if got := files(t, qube); !slices.Equal(got, []string{"private-cow.img.old", "private.img"}) {
				t.Errorf("after an import: %v", got)
			}
			if get(t, filepath.Join(qube, "private.img"), 0, 8) != "imported" || get(t, filepath.Join(qube, "private-cow.img.old"), 0, 8) != "three" {
				t.Error("after an import: the image is not the import, or old not the image before")
			}

			// A snapshot volume: private-cow.img is what its qube gets.
			s := snapshotOf("appvms/disp1/private", v)
			ok(t, d.Create(t.Context(), p, s), "Create snapshot")
			disp := filepath.Join(dir(p), "appvms", "disp1")
			if got := files(t, disp); !slices.Equal(got, []string{"private-cow.img"}) || used(t, filepath.Join(disp, "private-cow.img")) != 0 {
				t.Errorf("a created snapshot volume: %v", got)
			}
			bd, err = d.Start(t.Context(), p, s)
			ok(t, err, "Start snapshot")
			if bd.Path != filepath.Join(disp, "private-cow.img") || get(t, bd.Path, 0, 8) != "imported" {
				t.Errorf("snapshot: %s holds %q", bd.Path, get(t, bd.Path, 0, 8))
			}
			put(t, bd.Path, 0, "disposable")
			ok(t, d.Stop(t.Context(), p, s), "Stop snapshot")
			if used(t, bd.Path) != 0 || get(t, filepath.Join(qube, "private.img"), 0, 8) != "imported" {
				t.Error("a stopped snapshot volume's copy is not emptied, or its source changed")
			}

			// A volatile volume: private.img emptied at stop, not removed.
			vol := volatileVol("appvms/work/volatile", 4*mib)
			ok(t, d.Create(t.Context(), p, vol), "Create volatile")
			cycle(t, d, p, vol, "swap")
			if img := filepath.Join(qube, "volatile.img"); used(t, img) != 0 || fileSize(t, img) != 4*mib {
				t.Error("a stopped volatile volume's image is not empty")
			}

			for _, x := range []pool.Volume{s, vol, v} {
				ok(t, d.Remove(t.Context(), p, x), "Remove")
			}
			if exists(qube) || exists(disp) {
				t.Error("Remove left a qube's directory")
			}
		})
	}
}

// TestFileReferencePool reads a pool as the reference's file driver leaves
// it, device-mapper copy-on-write stores included.
func TestFileReferencePool(t *testing.T) {
	const chunk = 128 * kib // the reference's chunk: 256 sectors
	fs := ptest.Filesystems[0]
	d, p := setup(t, FileName, fs, t.TempDir())
	qube := filepath.Join(dir(p), "appvms", "work")
	tplDir := filepath.Join(dir(p), "vm-templates", "fedora")
	for _, dir := range []string{qube, tplDir} {
		ok(t, os.MkdirAll(dir, 0o755), "mkdir")
	}
	img := func(path string, chunks map[int64]string) {
		ok(t, createSparse(path, 16*chunk, 0o664), "create")
		for c, s := range chunks {
			put(t, path, c*chunk, s)
		}
	}
	// private: committed "new" content; old is a store of the chunks the
	// last commit replaced; private-cow.img the empty store of a stopped
	// volume.
	img(filepath.Join(qube, "private.img"), map[int64]string{0: "new-0", 3: "new-3", 5: "same-5"})
	writeDMStore(t, filepath.Join(qube, "private-cow.img.old"), 256, 1, []dmException{{0, []byte("old-0")}, {3, nil}})
	writeDMStore(t, filepath.Join(qube, "private-cow.img"), 256, 1, nil)
	v := origin("appvms/work/private", 16*chunk, 1)

	if st, err := d.VolumeInfo(t.Context(), p, v); err != nil || st.Dirty {
		t.Errorf("VolumeInfo of a stopped volume: %+v, %v", st, err)
	}
	if got := revIDs(t, d, p, v); !slices.Equal(got, []string{"old"}) {
		t.Errorf("revisions %v", got)
	}
	if got := exported(t, d, p, v); got != "new-0" {
		t.Errorf("export: %q", got)
	}
	for range 2 {
		ok(t, d.Revert(t.Context(), p, v, ""), "Revert")
		path := filepath.Join(qube, "private.img")
		if got := get(t, path, 0, 8) + "|" + get(t, path, 3*chunk, 8) + "|" + get(t, path, 5*chunk, 8); got != "old-0||same-5" {
			t.Errorf("after Revert: %q, want the content before the last commit", got)
		}
	}
	if k, _ := classify(filepath.Join(qube, "private-cow.img.old")); k != cowCopy || !isRegularImage(filepath.Join(qube, "private-cow.img.old")) {
		t.Error("after Revert, old is not a whole image")
	}

	// A snapshot volume of a template the reference left running: it sees
	// the template's content from before its start.
	img(filepath.Join(tplDir, "root.img"), map[int64]string{0: "written-by-running-template"})
	writeDMStore(t, filepath.Join(tplDir, "root-cow.img"), 256, 1, []dmException{{0, []byte("template-before")}})
	tpl := origin("vm-templates/fedora/root", 16*chunk, 1)
	if st, _ := d.VolumeInfo(t.Context(), p, tpl); !st.Dirty {
		t.Error("a volume the reference left started is not dirty")
	}
	_, err := d.ExportBegin(t.Context(), p, tpl)
	isKind(t, err, pool.ErrInUse, "ExportBegin of a volume the reference left started")
	s := snapshotOf("appvms/work/root", tpl)
	if _, err := d.VolumeInfo(t.Context(), p, s); err != nil {
		t.Errorf("VolumeInfo of a snapshot volume the reference keeps no file for: %v", err)
	}
	bd, err := d.Start(t.Context(), p, s)
	ok(t, err, "Start snapshot")
	if got := get(t, bd.Path, 0, 32); got != "template-before" {
		t.Errorf("snapshot of a template the reference left started: %q", got)
	}
	ok(t, d.Stop(t.Context(), p, s), "Stop snapshot")
	// Stopping the template commits as the reference would; its old is
	// the store, and reverting to it gives the content before.
	ok(t, d.Stop(t.Context(), p, tpl), "Stop template")
	if got := exported(t, d, p, tpl); got != "written-by-running-template" {
		t.Errorf("template after its commit: %q", got)
	}
	ok(t, d.Revert(t.Context(), p, tpl, "old"), "Revert template")
	if got := exported(t, d, p, tpl); got != "template-before" {
		t.Errorf("template after Revert: %q", got)
	}

	// A volatile volume the reference stopped has no file.
	vol := volatileVol("appvms/work/volatile", 4*mib)
	ok(t, d.Verify(t.Context(), p, vol), "Verify volatile")
	ok(t, d.Resize(t.Context(), p, vol, 8*mib), "Resize volatile")
	cycle(t, d, p, vol, "x")
}

// TestFileRules: what the file driver refuses.
func TestFileRules(t *testing.T) {
	d, p := setup(t, FileName, ptest.Filesystems[0], t.TempDir())
	isKind(t, d.Create(t.Context(), p, origin("appvms/a/private", mib, 2)), pool.ErrInvalid, "Create with revisions_to_keep 2")
	isKind(t, d.ValidateConfig(t.Context(), map[string]string{"dir_path": "/x", "revisions_to_keep": "2"}), pool.ErrInvalid,
		"a pool config with revisions_to_keep 2")
	isKind(t, d.ValidateConfig(t.Context(), map[string]string{"dir_path": "/x", "setup_check": "False"}), pool.ErrInvalid,
		"a pool config with setup_check")

	// revisions_to_keep -1: the qube writes the image, no copy is made.
	v := origin("appvms/a/private", mib, -1)
	ok(t, d.Create(t.Context(), p, v), "Create")
	bd, err := d.Start(t.Context(), p, v)
	ok(t, err, "Start")
	put(t, bd.Path, 0, "direct")
	if exists(filepath.Join(dir(p), "appvms", "a", "private-cow.img")) {
		t.Error("a copy was made with snapshots disabled")
	}
	ok(t, d.Stop(t.Context(), p, v), "Stop")
	if got := exported(t, d, p, v); got != "direct" || len(revIDs(t, d, p, v)) != 0 {
		t.Errorf("with snapshots disabled: %q", got)
	}

	// Read-only: the qube gets a copy, thrown away.
	ro := v
	ro.RW, ro.RevisionsToKeep = false, 1
	bd, err = d.Start(t.Context(), p, ro)
	ok(t, err, "Start read-only")
	if bd.RW || filepath.Base(bd.Path) != "private-cow.img" {
		t.Errorf("read-only Start gives %+v", bd)
	}
	put(t, bd.Path, 0, "buggy")
	if got := exported(t, d, p, ro); got != "direct" {
		t.Errorf("export of a read-only started volume: %q", got)
	}
	ok(t, d.Stop(t.Context(), p, ro), "Stop")
	if got := exported(t, d, p, v); got != "direct" || len(revIDs(t, d, p, v)) != 0 {
		t.Errorf("after a read-only start: %q", got)
	}

	// An import cut after the revision link ends as one import.
	path, err := d.ImportBegin(t.Context(), p, ro, mib)
	ok(t, err, "ImportBegin")
	put(t, path, 0, "imported")
	f := filePaths(p, v.VID)
	ok(t, linkSync(f.img, f.old), "link")
	ok(t, d.ImportEnd(t.Context(), p, ro, true), "ImportEnd")
	ok(t, d.ImportEnd(t.Context(), p, ro, true), "ImportEnd again")
	if exported(t, d, p, v) != "imported" || get(t, f.old, 0, 8) != "direct" || exists(f.impt) {
		t.Error("an import ended after a cut differs from one import")
	}
}
