package filepool

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// TestReflinkLayout checks the files of a pool against the reference's
// layout through a volume's life, on both file systems.
func TestReflinkLayout(t *testing.T) {
	for _, fs := range ptest.Filesystems {
		t.Run(fs.Name, func(t *testing.T) {
			d, p := setup(t, ReflinkName, fs, fs.Root(t))
			root := dir(p)
			if got := files(t, root); !slices.Equal(got, []string{"appvms", "vm-templates"}) {
				t.Errorf("after Setup: %v", got)
			}
			qube := filepath.Join(root, "appvms", "work")
			v := origin("appvms/work/private", 4*mib, 2)
			ok(t, d.Create(t.Context(), p, v), "Create")
			precache := map[bool][]string{true: {"private-precache.img"}}[fs.Reflinks]
			want := append([]string{"private.img"}, precache...)
			slices.Sort(want)
			if got := files(t, qube); !slices.Equal(got, want) {
				t.Errorf("after Create: %v, want %v", got, want)
			}

			// Three commits with revisions_to_keep 2: revisions 2 and 3,
			// each stamped with the modification time of the image it was.
			var stamps []string
			for i, m := range []string{"one", "two", "three"} {
				fi, err := os.Stat(filepath.Join(qube, "private.img"))
				ok(t, err, "stat")
				stamps = append(stamps, isodate(fi.ModTime()))
				bd, err := d.Start(t.Context(), p, v)
				ok(t, err, "Start")
				if bd.Path != filepath.Join(qube, "private-dirty.img") {
					t.Errorf("Start gives %s", bd.Path)
				}
				if got := files(t, qube); !slices.Contains(got, "private-dirty.img") || slices.Contains(got, "private-precache.img") {
					t.Errorf("started (commit %d): %v", i+1, got)
				}
				put(t, bd.Path, 0, m)
				ok(t, d.Stop(t.Context(), p, v), "Stop")
			}
			want = append([]string{"private.img", "private.img.2@" + stamps[1] + "Z", "private.img.3@" + stamps[2] + "Z"}, precache...)
			slices.Sort(want)
			if got := files(t, qube); !slices.Equal(got, want) {
				t.Errorf("after three commits: %v, want %v", got, want)
			}
			if got := get(t, filepath.Join(qube, "private.img.3@"+stamps[2]+"Z"), 0, 8); got != "two" {
				t.Errorf("revision 3 holds %q, want %q", got, "two")
			}
			revs, err := d.ListRevisions(t.Context(), p, v)
			ok(t, err, "ListRevisions")
			if len(revs) != 2 || revs[0].ID != "2" || revs[1].ID != "3" || isodate(revs[1].Time) != stamps[2] {
				t.Errorf("ListRevisions: %+v, want 2 and 3 stamped %v", revs, stamps[1:])
			}

			// Revert keeps the revision and takes its content.
			ok(t, d.Revert(t.Context(), p, v, "2"), "Revert")
			if got := exported(t, d, p, v); got != "one" {
				t.Errorf("after Revert to 2: %q, want %q", got, "one")
			}
			if got := revIDs(t, d, p, v); !slices.Equal(got, []string{"2", "3"}) {
				t.Errorf("after Revert: revisions %v", got)
			}
			fi, _ := os.Stat(filepath.Join(qube, "private.img"))
			if !fi.ModTime().After(time.Now().Add(-time.Minute)) {
				t.Errorf("the reverted image's mtime %v is old: the next revision would be dated before the others", fi.ModTime())
			}
			cycle(t, d, p, v, "four")
			if got := revIDs(t, d, p, v); !slices.Equal(got, []string{"3", "4"}) {
				t.Errorf("a commit after the revert: revisions %v, want [3 4]", got)
			}
			if ts := func() []time.Time {
				revs, _ := d.ListRevisions(t.Context(), p, v)
				return []time.Time{revs[0].Time, revs[1].Time}
			}(); ts[1].Before(ts[0]) {
				t.Errorf("revisions not in chronological order after a revert: %v", ts)
			}

			// A snapshot volume: while started, its .img is a link to the
			// source's; stopped, an empty -dirty.img stands for it.
			tpl := origin("vm-templates/fedora/root", 4*mib, 1)
			ok(t, d.Create(t.Context(), p, tpl), "Create template root")
			cycle(t, d, p, tpl, "template")
			s := snapshotOf("appvms/work/root", tpl)
			ok(t, d.Create(t.Context(), p, s), "Create snapshot")
			if n := used(t, filepath.Join(qube, "root-dirty.img")); n != 0 {
				t.Errorf("a created snapshot volume's -dirty.img takes %d bytes", n)
			}
			bd, err := d.Start(t.Context(), p, s)
			ok(t, err, "Start snapshot")
			if !sameFile(filepath.Join(qube, "root.img"), filepath.Join(root, "vm-templates", "fedora", "root.img")) {
				t.Error("a started snapshot volume's root.img is not a link to its source's")
			}
			if got := get(t, bd.Path, 0, 16); got != "template" {
				t.Errorf("snapshot reads %q", got)
			}
			st, err := d.VolumeInfo(t.Context(), p, s)
			if ok(t, err, "VolumeInfo"); st.Outdated {
				t.Error("a fresh snapshot is outdated")
			}
			cycle(t, d, p, tpl, "template-2")
			if st, _ := d.VolumeInfo(t.Context(), p, s); !st.Outdated {
				t.Error("a snapshot whose source committed since its start is not outdated")
			}
			ok(t, d.Stop(t.Context(), p, s), "Stop snapshot")
			if exists(filepath.Join(qube, "root.img")) || used(t, filepath.Join(qube, "root-dirty.img")) != 0 {
				t.Errorf("stopped snapshot volume: %v", files(t, qube))
			}

			// Remove takes everything, and the qube's directory with the last volume.
			ok(t, d.Remove(t.Context(), p, s), "Remove snapshot")
			ok(t, d.Remove(t.Context(), p, v), "Remove")
			if exists(qube) {
				t.Errorf("the qube's directory is left: %v", files(t, qube))
			}
			if !exists(filepath.Join(root, "appvms")) {
				t.Error("Remove took appvms/")
			}
		})
	}
}

// TestReflinkReferencePool reads a pool as the reference leaves it.
func TestReflinkReferencePool(t *testing.T) {
	fs := ptest.Filesystems[0]
	d, p := setup(t, ReflinkName, fs, t.TempDir())
	qube := filepath.Join(dir(p), "appvms", "work")
	ok(t, os.MkdirAll(qube, 0o755), "mkdir")
	write := func(name, content string) {
		ok(t, createSparse(filepath.Join(qube, name), 4*mib, 0o600), "create")
		put(t, filepath.Join(qube, name), 0, content)
	}
	write("private.img", "clean")
	write("private.img.3@2024-01-02T03:04:05Z", "rev3")
	write("private.img.12@2024-02-02T03:04:05Z", "rev12") // numbers sort as numbers
	write("private-precache.img", "stale")                // older than private.img: stale
	old := time.Now().Add(-time.Hour)
	ok(t, os.Chtimes(filepath.Join(qube, "private-precache.img"), old, old), "Chtimes")
	write("private.img~tmpabc", "a crash's leftover")
	v := origin("appvms/work/private", 4*mib, 2)

	revs, err := d.ListRevisions(t.Context(), p, v)
	ok(t, err, "ListRevisions")
	if len(revs) != 2 || revs[0].ID != "3" || revs[1].ID != "12" ||
		!revs[0].Time.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("revisions %+v", revs)
	}
	if st, err := d.VolumeInfo(t.Context(), p, v); err != nil || st.Dirty || st.Size != 4*mib {
		t.Errorf("VolumeInfo: %+v, %v", st, err)
	}
	bd, err := d.Start(t.Context(), p, v)
	ok(t, err, "Start")
	if got := get(t, bd.Path, 0, 8); got != "clean" {
		t.Errorf("started from a stale precache: %q", got)
	}
	if names := files(t, qube); slices.Contains(names, "private.img~tmpabc") || slices.Contains(names, "private-precache.img") {
		t.Errorf("Start left %v", names)
	}
	ok(t, d.Stop(t.Context(), p, v), "Stop")
	if got := revIDs(t, d, p, v); !slices.Equal(got, []string{"12", "13"}) {
		t.Errorf("after a commit: %v, want [12 13]", got)
	}

	// A snapshot volume the reference stopped has no file; it exists while
	// its qube's directory does.
	tpl := origin("vm-templates/fedora/root", 4*mib, 1)
	ok(t, d.Create(t.Context(), p, tpl), "Create")
	s := snapshotOf("appvms/work/root", tpl)
	vol := volatileVol("appvms/work/volatile", 4*mib)
	for _, x := range []pool.Volume{s, vol} {
		if _, err := d.VolumeInfo(t.Context(), p, x); err != nil {
			t.Errorf("VolumeInfo of %s, which the reference keeps no file for: %v", x.VID, err)
		}
		ok(t, d.Verify(t.Context(), p, x), "Verify "+x.VID)
		cycle(t, d, p, x, "x")
	}
	other := snapshotOf("appvms/gone/root", tpl)
	_, err = d.VolumeInfo(t.Context(), p, other)
	isKind(t, err, pool.ErrNotFound, "VolumeInfo of a snapshot volume of a qube without a directory")

	// A -dirty.img the reference left (a crash while started) is a started
	// volume: Stop commits it.
	write("private-dirty.img", "left running")
	if st, _ := d.VolumeInfo(t.Context(), p, v); !st.Dirty {
		t.Error("a volume with a -dirty.img is not dirty")
	}
	ok(t, d.Stop(t.Context(), p, v), "Stop")
	if got := exported(t, d, p, v); got != "left running" {
		t.Errorf("after Stop: %q", got)
	}
}

// TestReflinkInterrupted: a call cut short at any step, then called
// again, ends as one call that ran.
func TestReflinkInterrupted(t *testing.T) {
	fs := ptest.Filesystems[0]
	for _, tc := range []struct {
		name string
		// cut leaves the state a call cut short leaves (r: the volume's files).
		cut func(t *testing.T, r rvol)
		// call is the call made again.
		call    func(d pool.Driver, p pool.Pool, v pool.Volume) error
		content string
		revs    []string
	}{
		{"Stop after the revision link", func(t *testing.T, r rvol) {
			fi, _ := os.Stat(r.clean)
			ok(t, linkSync(r.clean, r.revisionPath(3, isodate(fi.ModTime()))), "link")
		}, func(d pool.Driver, p pool.Pool, v pool.Volume) error { return d.Stop(t.Context(), p, v) }, "running", []string{"2", "3"}},
		{"Stop after the revision link and the pruning", func(t *testing.T, r rvol) {
			fi, _ := os.Stat(r.clean)
			ok(t, linkSync(r.clean, r.revisionPath(3, isodate(fi.ModTime()))), "link")
			ok(t, r.pruneRevisions(2), "prune")
		}, func(d pool.Driver, p pool.Pool, v pool.Volume) error { return d.Stop(t.Context(), p, v) }, "running", []string{"2", "3"}},
		{"Stop with a temporary copy left", func(t *testing.T, r rvol) {
			ok(t, os.WriteFile(r.clean+"~x", []byte("half"), 0o600), "write")
		}, func(d pool.Driver, p pool.Pool, v pool.Volume) error { return d.Stop(t.Context(), p, v) }, "running", []string{"2", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, p := setup(t, ReflinkName, fs, t.TempDir())
			v := origin("appvms/work/private", 4*mib, 2)
			ok(t, d.Create(t.Context(), p, v), "Create")
			cycle(t, d, p, v, "one")
			cycle(t, d, p, v, "two")
			bd, err := d.Start(t.Context(), p, v)
			ok(t, err, "Start")
			put(t, bd.Path, 0, "running")
			tc.cut(t, reflinkPaths(p, v.VID))
			ok(t, tc.call(d, p, v), "the call again")
			if got := exported(t, d, p, v); got != tc.content {
				t.Errorf("content %q, want %q", got, tc.content)
			}
			if got := revIDs(t, d, p, v); !slices.Equal(got, tc.revs) {
				t.Errorf("revisions %v, want %v", got, tc.revs)
			}
			r := reflinkPaths(p, v.VID)
			revs, _ := r.revisions()
			if got := get(t, revs[len(revs)-1].path, 0, 8); got != "two" {
				t.Errorf("the newest revision holds %q, want %q", got, "two")
			}
		})
	}
}

// TestReflinkModes: snapshots disabled, read-only, and what only origin
// volumes do.
func TestReflinkModes(t *testing.T) {
	fs := ptest.Filesystems[0]
	d, p := setup(t, ReflinkName, fs, t.TempDir())

	// revisions_to_keep -1: the clean image itself is what the qube gets.
	v := origin("appvms/work/private", 4*mib, 2)
	ok(t, d.Create(t.Context(), p, v), "Create")
	cycle(t, d, p, v, "one")
	cycle(t, d, p, v, "two")
	v.RevisionsToKeep = -1
	r := reflinkPaths(p, v.VID)
	ino := func(path string) uint64 { fi, _ := os.Stat(path); return inode(fi) }
	clean := ino(r.clean)
	bd, err := d.Start(t.Context(), p, v)
	ok(t, err, "Start")
	if ino(bd.Path) != clean || exists(r.clean) {
		t.Error("with snapshots disabled, Start did not rename the clean image")
	}
	if got := revIDs(t, d, p, v); len(got) != 0 {
		t.Errorf("with snapshots disabled, revisions %v kept", got)
	}
	_, err = d.ExportBegin(t.Context(), p, v)
	isKind(t, err, pool.ErrInUse, "ExportBegin of a started volume with snapshots disabled")
	if st, err := d.VolumeInfo(t.Context(), p, v); err != nil || !st.Dirty {
		t.Errorf("VolumeInfo: %+v, %v", st, err)
	}
	put(t, bd.Path, 0, "three")
	ok(t, d.Stop(t.Context(), p, v), "Stop")
	if ino(r.clean) != clean || exported(t, d, p, v) != "three" {
		t.Error("with snapshots disabled, Stop did not rename the image back")
	}

	// Read-only: the qube's writes do not stick.
	ro := v
	ro.RW, ro.RevisionsToKeep = false, 1
	bd, err = d.Start(t.Context(), p, ro)
	ok(t, err, "Start read-only")
	if bd.RW {
		t.Error("a read-only volume's device is rw")
	}
	put(t, bd.Path, 0, "buggy")
	ok(t, d.Stop(t.Context(), p, ro), "Stop read-only")
	if got := exported(t, d, p, v); got != "three" || len(revIDs(t, d, p, v)) != 0 {
		t.Errorf("after a read-only start: %q", got)
	}

	// Only origin volumes export, import and are cloned from.
	vol := volatileVol("appvms/work/volatile", 4*mib)
	ok(t, d.Create(t.Context(), p, vol), "Create volatile")
	_, err = d.ExportBegin(t.Context(), p, vol)
	isKind(t, err, pool.ErrInvalid, "ExportBegin of a volatile volume")
	_, err = d.ImportBegin(t.Context(), p, vol, mib)
	isKind(t, err, pool.ErrInvalid, "ImportBegin of a volatile volume")
	isKind(t, d.CloneFrom(t.Context(), p, origin("appvms/x/private", mib, 1), vol), pool.ErrInvalid, "CloneFrom a volatile volume")
	isKind(t, d.Create(t.Context(), p, pool.Volume{VID: "appvms/x/os", Size: mib, SnapOnStart: true, SaveOnStop: true, SourceVID: v.VID}),
		pool.ErrUnimplemented, "Create of an origin_snapshot volume")
	isKind(t, d.Create(t.Context(), p, origin("appvms/x/empty", 0, 1)), pool.ErrInvalid, "Create of an empty origin volume")

	// Start removes an import never ended, as the reference does.
	path, err := d.ImportBegin(t.Context(), p, v, mib)
	ok(t, err, "ImportBegin")
	cycle(t, d, p, v, "four")
	if exists(path) {
		t.Error("Start left an import in progress")
	}
}

// TestSetupCheck: file-reflink's Setup refuses a file system without
// reflinks unless setup_check is False, and says so.
func TestSetupCheck(t *testing.T) {
	for _, fs := range ptest.Filesystems {
		t.Run(fs.Name, func(t *testing.T) {
			root := fs.Root(t)
			for _, tc := range []struct {
				check string // "" = absent
				fails bool
			}{
				{"", !fs.Reflinks},
				{"True", !fs.Reflinks},
				{"yes", !fs.Reflinks},
				{"False", false},
				{"0", false},
			} {
				dirPath := filepath.Join(root, "pool-"+tc.check)
				cfg := map[string]string{"dir_path": dirPath}
				if tc.check != "" {
					cfg["setup_check"] = tc.check
				}
				err := pool.Check(NewReflink()).Setup(t.Context(), pool.Pool{Name: "p", Config: cfg})
				if !tc.fails {
					ok(t, err, "Setup with setup_check="+tc.check)
					if got := files(t, dirPath); !slices.Equal(got, []string{"appvms", "vm-templates"}) {
						t.Errorf("Setup made %v", got)
					}
					continue
				}
				isKind(t, err, pool.ErrInvalid, "Setup with setup_check="+tc.check+" on "+fs.Name)
				if err == nil || !regexp.MustCompile(`does not support reflinks.*setup_check=False`).MatchString(err.Error()) {
					t.Errorf("the refusal does not say to pass setup_check=False: %v", err)
				}
				if exists(dirPath) {
					t.Error("a refused Setup left the directory it made")
				}
			}
		})
	}
}
