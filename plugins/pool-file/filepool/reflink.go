package filepool

// reflink.go: the file-reflink driver (the reference's qubes/storage/reflink.py).
// The package doc says what is on disk.

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// Reflink is the file-reflink driver. It keeps no state: everything comes
// with the call or is on disk.
type Reflink struct{ common }

// NewReflink returns the file-reflink driver.
func NewReflink() *Reflink {
	return &Reflink{common{name: ReflinkName, maxRevisions: -1, setupCheck: true}}
}

var _ pool.Driver = (*Reflink)(nil)

func (d *Reflink) Info(context.Context) (pool.Info, error) {
	return pool.Info{
		Name:         ReflinkName,
		Version:      Version,
		Description:  "volumes as image files, snapshots by reflink (FICLONE) where the file system allows, else sparse copies",
		Capabilities: pool.Capabilities{Revisions: true, Shrink: true, FastClone: true, Import: true, Export: true},
		PoolConfig:   d.configKeys(),
	}, nil
}

// rvol is where a volume's files are.
type rvol struct {
	dir, base                     string // directory, and the vid's last element
	clean, dirty, precache, imprt string
}

func reflinkPaths(p pool.Pool, vid string) rvol {
	b := volPath(p, vid)
	return rvol{dir: filepath.Dir(b), base: filepath.Base(b),
		clean: b + ".img", dirty: b + "-dirty.img", precache: b + "-precache.img", imprt: b + "-import.img"}
}

// revision is one kept revision: <clean>.<n>@<stamp>Z.
type revision struct {
	n     int
	stamp string
	path  string
}

func (r revision) id() string { return strconv.Itoa(r.n) }

var revisionName = regexp.MustCompile(`^\.([0-9]+)@([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})Z$`)

// revisions lists the volume's revisions by increasing number.
func (r rvol) revisions() ([]revision, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var revs []revision
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), r.base+".img")
		m := revisionName.FindStringSubmatch(rest)
		if !ok || m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		revs = append(revs, revision{n: n, stamp: m[2], path: filepath.Join(r.dir, e.Name())})
	}
	slices.SortFunc(revs, func(a, b revision) int { return cmp.Compare(a.n, b.n) })
	return revs, nil
}

func (r rvol) revisionPath(n int, stamp string) string {
	return fmt.Sprintf("%s.%d@%sZ", r.clean, n, stamp)
}

// isTemp tells the suffixes of this driver's files (see cleanTemps).
func (r rvol) isTemp(suffix string) bool {
	switch suffix {
	case ".img", "-dirty.img", "-precache.img", "-import.img":
		return true
	}
	return revisionName.MatchString(strings.TrimPrefix(suffix, ".img"))
}

// removeIncomplete removes what a call cut short left: temporary files
// and an import never ended (the reference does this at every start).
func (r rvol) removeIncomplete() error {
	if err := cleanTemps(r.dir, r.base, r.isTemp); err != nil {
		return err
	}
	return removeSync(r.imprt)
}

// pruneRevisions removes the oldest revisions beyond keep.
func (r rvol) pruneRevisions(keep int) error {
	revs, err := r.revisions()
	if err != nil {
		return err
	}
	for _, rev := range revs[:len(revs)-min(max(keep, 0), len(revs))] {
		if err := removeSync(rev.path); err != nil {
			return err
		}
	}
	return nil
}

// found reports whether the volume exists. An origin volume has its clean
// image (or, started with snapshots disabled, its dirty one); a stopped
// snapshot or volatile volume has an empty dirty image standing for it
// (see the package doc).
func (d *Reflink) found(p pool.Pool, v pool.Volume) bool {
	r := reflinkPaths(p, v.VID)
	if exists(r.clean) || exists(r.dirty) {
		return true
	}
	return v.Type() != pool.Origin && refLayout(p, v.VID)
}

// startedSnapshot: a started snapshot volume has its clean image, a hard
// link to the source's clean image it was copied from.
func (r rvol) startedSnapshot() bool { return exists(r.clean) && exists(r.dirty) }

// startedVolatile: a started volatile volume's dirty image holds data; a
// stopped one's is empty. (A qube that wrote nothing yet gets its image
// again, unchanged, from a repeated Start.)
func (r rvol) startedVolatile() bool {
	fi, _ := stat(r.dirty)
	return fi != nil && allocated(fi) > 0
}

func (d *Reflink) Create(ctx context.Context, p pool.Pool, v pool.Volume) error {
	if err := refuseOriginSnapshot(v); err != nil {
		return err
	}
	r := reflinkPaths(p, v.VID)
	if exists(r.clean) || exists(r.dirty) {
		return nil // a retry, or created already
	}
	if v.Type() != pool.Origin {
		// the reference makes nothing; an empty dirty image marks the volume
		return osError(inParent(p, r.dirty, func() error { return createSparse(r.dirty, v.Size, 0o600) }), "creating volume %s", v.VID)
	}
	if v.Size == 0 {
		return pool.Errorf(pool.ErrInvalid, "volume %s: size must be more than 0", v.VID)
	}
	err := inParent(p, r.clean, func() error { return createSparse(r.clean, v.Size, 0o600) })
	if err == nil {
		err = d.refreshPrecache(ctx, r)
	}
	return osError(err, "creating volume %s", v.VID)
}

// Remove deletes every file of the volume, revisions oldest first, then
// its directory if that is empty (as the reference does).
func (d *Reflink) Remove(_ context.Context, p pool.Pool, v pool.Volume) error {
	r := reflinkPaths(p, v.VID)
	err := r.removeIncomplete()
	if err == nil {
		err = r.pruneRevisions(0)
	}
	for _, f := range []string{r.clean, r.precache, r.dirty} {
		if err == nil {
			err = removeSync(f)
		}
	}
	if err == nil {
		err = removeVolumeDir(p, r.clean)
	}
	return osError(err, "removing volume %s", v.VID)
}

func (d *Reflink) Start(ctx context.Context, p pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	if err := refuseOriginSnapshot(v); err != nil {
		return pool.BlockDevice{}, err
	}
	r := reflinkPaths(p, v.VID)
	bd := pool.BlockDevice{Path: r.dirty, RW: v.RW}
	if err := r.removeIncomplete(); err != nil {
		return bd, osError(err, "starting volume %s", v.VID)
	}
	var err error
	switch v.Type() {
	case pool.Origin:
		err = d.startOrigin(ctx, p, v, r)
	case pool.Snapshot:
		err = d.startSnapshot(ctx, p, v, r)
	default:
		err = startVolatile(p, v, r.dirty, 0o600)
	}
	return bd, osError(err, "starting volume %s", v.VID)
}

// startOrigin gives the qube the dirty image: a copy of the clean one
// (the precache, made at the last commit, if it is still good), or with
// snapshots disabled the clean image itself, renamed.
func (d *Reflink) startOrigin(ctx context.Context, p pool.Pool, v pool.Volume, r rvol) error {
	if exists(r.dirty) {
		return nil // started
	}
	if !exists(r.clean) {
		return notFound(p, v)
	}
	if v.RevisionsToKeep == -1 && v.RW {
		err := r.pruneRevisions(0)
		if err == nil {
			err = removeSync(r.precache)
		}
		if err == nil {
			err = renameSync(r.clean, r.dirty)
		}
		return err
	}
	if r.precacheGood() {
		return renameSync(r.precache, r.dirty)
	}
	if err := removeSync(r.precache); err != nil {
		return err
	}
	_, err := copyFile(ctx, r.clean, r.dirty, copyOpts{perm: 0o600, size: -1})
	return err
}

// precacheGood: the precache is a copy of the clean image as it is now
// (same size and modification time; the reference's staleness check).
func (r rvol) precacheGood() bool {
	pc, err1 := os.Stat(r.precache)
	cl, err2 := os.Stat(r.clean)
	return err1 == nil && err2 == nil && pc.Size() == cl.Size() && pc.ModTime().Equal(cl.ModTime())
}

// refreshPrecache replaces the precache with a reflink of the clean image,
// for the next Start to rename. Where the file system makes no reflinks
// there is no precache: a full copy would double the space the volume
// takes (the reference makes one anyway).
func (d *Reflink) refreshPrecache(ctx context.Context, r rvol) error {
	if err := removeSync(r.precache); err != nil || !exists(r.clean) {
		return err
	}
	_, err := copyFile(ctx, r.clean, r.precache, copyOpts{perm: 0o600, size: -1, keepMtime: true, reflinkOnly: true})
	return err
}

// startSnapshot hard-links the source's clean image as the volume's own
// clean image (so that VolumeInfo can tell when the source has committed
// since: Outdated) and copies it to the dirty image. The link gets its
// name last: a started snapshot volume is one with a clean image.
func (d *Reflink) startSnapshot(ctx context.Context, p pool.Pool, v pool.Volume, r rvol) error {
	if r.startedSnapshot() {
		return nil
	}
	src := reflinkPaths(p, v.SourceVID)
	if !exists(src.clean) {
		if exists(src.dirty) {
			return pool.Errorf(pool.ErrInUse, "source volume %s is started with snapshots disabled (revisions_to_keep -1)", v.SourceVID)
		}
		return pool.Errorf(pool.ErrNotFound, "source volume %s of %s not found in pool %s", v.SourceVID, v.VID, p.Name)
	}
	if err := removeSync(r.clean); err != nil {
		return err
	}
	return inParent(p, r.clean, func() error {
		link := tmpName(r.clean)
		if err := os.Link(src.clean, link); err != nil {
			return osError(err, "linking %s", src.clean)
		}
		_, err := copyFile(ctx, link, r.dirty, copyOpts{perm: 0o600, size: -1})
		if err == nil {
			err = renameSync(link, r.clean)
		}
		if err != nil {
			os.Remove(link)
		}
		return err
	})
}

// startVolatile gives the qube an empty image of v.Size bytes. A started
// volume's image (one that holds data) is left as it is; an empty one is
// resized in place, never replaced: a qube may have it open already.
func startVolatile(p pool.Pool, v pool.Volume, img string, perm os.FileMode) error {
	fi, err := stat(img)
	switch {
	case err != nil:
		return err
	case fi == nil:
		return inParent(p, img, func() error { return createSparse(img, v.Size, perm) })
	case allocated(fi) > 0:
		return nil
	case uint64(fi.Size()) != v.Size:
		return truncateSync(img, v.Size)
	}
	return nil
}

func (d *Reflink) Stop(ctx context.Context, p pool.Pool, v pool.Volume) error {
	r := reflinkPaths(p, v.VID)
	var err error
	switch v.Type() {
	case pool.Origin, pool.OriginSnapshot:
		switch {
		case !exists(r.dirty):
		case !v.RW && exists(r.clean):
			err = removeSync(r.dirty) // a read-only volume commits nothing
		default:
			err = d.commit(ctx, v, r, r.dirty)
		}
	case pool.Snapshot:
		// Stopped first (the link goes), then the image is emptied.
		if exists(r.clean) {
			err = removeSync(r.clean)
			if err == nil {
				err = createSparse(r.dirty, v.Size, 0o600)
			}
		} else if r.startedVolatile() {
			err = createSparse(r.dirty, v.Size, 0o600) // a Stop cut short
		}
	default:
		if fi, _ := stat(r.dirty); fi != nil && allocated(fi) > 0 {
			err = createSparse(r.dirty, uint64(fi.Size()), 0o600) // keeps a resize, as the reference does
		}
	}
	return osError(err, "stopping volume %s", v.VID)
}

// commit makes from (the dirty or the import image) the clean image. The
// clean image it replaces becomes the newest revision — a second name of
// the same file, so nothing is copied — unless revisions_to_keep is 0 or
// -1; then revisions beyond revisions_to_keep go, oldest first. At every
// step the committed content is whole under the clean name; a commit cut
// short and called again ends as one that ran once (a revision that is
// the clean image itself was made by the call cut short).
func (d *Reflink) commit(ctx context.Context, v pool.Volume, r rvol, from string) error {
	if err := fsyncPath(from); err != nil {
		return err
	}
	if err := removeSync(r.precache); err != nil {
		return err
	}
	keep := v.RevisionsToKeep
	revs, err := r.revisions()
	if err != nil {
		return err
	}
	if fi, _ := stat(r.clean); fi != nil && keep > 0 && (len(revs) == 0 || !sameFile(revs[len(revs)-1].path, r.clean)) {
		next := 1
		if len(revs) > 0 {
			next = revs[len(revs)-1].n + 1
		}
		if err := linkSync(r.clean, r.revisionPath(next, isodate(fi.ModTime()))); err != nil {
			return err
		}
	}
	if err := r.pruneRevisions(keep); err != nil {
		return err
	}
	if err := renameSync(from, r.clean); err != nil {
		return err
	}
	return d.refreshPrecache(ctx, r)
}

// Resize resizes the dirty image of a started volume in place (and the
// loop devices a running qube reads it through), or makes a resized copy
// of a stopped origin volume's clean image (a new file: snapshot volumes
// hold links to the old one). A stopped snapshot or volatile volume has
// nothing to resize: its next Start uses the new size.
func (d *Reflink) Resize(ctx context.Context, p pool.Pool, v pool.Volume, size uint64) error {
	if !d.found(p, v) {
		return notFound(p, v)
	}
	if !v.RW {
		return pool.Errorf(pool.ErrInvalid, "cannot resize: volume %s is read-only", v.VID)
	}
	r := reflinkPaths(p, v.VID)
	started := exists(r.dirty) // a stopped volatile volume's empty image may be resized too
	if v.Type() == pool.Snapshot {
		started = r.startedSnapshot()
	}
	var err error
	switch {
	case started:
		if err = truncateSync(r.dirty, size); err == nil {
			err = refreshLoops(r.dirty)
		}
	case v.Type() == pool.Origin:
		if fi, _ := stat(r.clean); fi != nil && uint64(fi.Size()) != size {
			if err = removeSync(r.precache); err == nil {
				_, err = copyFile(ctx, r.clean, r.clean, copyOpts{perm: 0o600, size: int64(size)})
			}
			if err == nil {
				err = d.refreshPrecache(ctx, r)
			}
		}
	}
	return osError(err, "resizing volume %s", v.VID)
}

// Revert makes the revision the clean image: a second name of its file
// (clean images, like revisions, are never written in place, so the two
// can share one), with a fresh modification time, so that the revision made
// from it at the next commit does not look older than those already kept.
// The revision stays, and the clean image it replaces is not kept (the
// SDK's contract, under which a retried call ends as one call). The
// reference instead renames the revision (consuming it) and keeps the
// replaced image as a new revision.
func (d *Reflink) Revert(ctx context.Context, p pool.Pool, v pool.Volume, id string) error {
	if !d.found(p, v) {
		return notFound(p, v)
	}
	r := reflinkPaths(p, v.VID)
	if exists(r.dirty) && v.Type() == pool.Origin {
		return pool.Errorf(pool.ErrInUse, "cannot revert: volume %s is not cleanly stopped", v.VID)
	}
	revs, err := r.revisions()
	if err != nil {
		return osError(err, "volume %s", v.VID)
	}
	i := len(revs) - 1
	if id != "" {
		i = slices.IndexFunc(revs, func(rev revision) bool { return rev.id() == id })
	}
	if i < 0 {
		return pool.Errorf(pool.ErrNotFound, "volume %s has no revision %q", v.VID, id)
	}
	err = removeSync(r.precache)
	if err == nil {
		err = linkSync(revs[i].path, r.clean)
	}
	if err == nil {
		now := time.Now()
		err = os.Chtimes(r.clean, now, now)
	}
	if err == nil {
		err = d.refreshPrecache(ctx, r)
	}
	return osError(err, "reverting volume %s to revision %s", v.VID, revs[i].id())
}

func (d *Reflink) ListRevisions(_ context.Context, p pool.Pool, v pool.Volume) ([]pool.Revision, error) {
	if !d.found(p, v) {
		return nil, notFound(p, v)
	}
	revs, err := reflinkPaths(p, v.VID).revisions()
	if err != nil {
		return nil, osError(err, "volume %s", v.VID)
	}
	out := make([]pool.Revision, 0, len(revs))
	for _, rev := range revs {
		t, err := time.Parse("2006-01-02T15:04:05", rev.stamp)
		if err != nil {
			continue
		}
		out = append(out, pool.Revision{ID: rev.id(), Time: t})
	}
	return out, nil
}

func (d *Reflink) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	if !d.found(p, v) {
		return pool.VolumeState{}, notFound(p, v)
	}
	return reflinkState(p, v), nil
}

// reflinkState reads a volume's state from its files: size and usage of
// the dirty image while started, else of the clean one, else the spec's.
func reflinkState(p pool.Pool, v pool.Volume) pool.VolumeState {
	r := reflinkPaths(p, v.VID)
	// the qube always gets the dirty image, as in the reference
	st := pool.VolumeState{VID: v.VID, Size: v.Size, Path: r.dirty}
	img := r.clean
	switch v.Type() {
	case pool.Snapshot:
		img = ""
		if r.startedSnapshot() {
			img = r.dirty
			st.Outdated = !sameFile(r.clean, reflinkPaths(p, v.SourceVID).clean)
		}
	case pool.Volatile:
		img = r.dirty
	default:
		if exists(r.dirty) {
			img, st.Dirty = r.dirty, true
		}
	}
	if fi, _ := stat(img); img != "" && fi != nil {
		st.Size, st.Usage = uint64(fi.Size()), allocated(fi)
	}
	return st
}

// Verify checks that the image a Start uses is there: the clean image of
// an origin volume, the source's of a snapshot volume.
func (d *Reflink) Verify(_ context.Context, p pool.Pool, v pool.Volume) error {
	if !d.found(p, v) {
		return notFound(p, v)
	}
	r := reflinkPaths(p, v.VID)
	switch v.Type() {
	case pool.Snapshot:
		if src := reflinkPaths(p, v.SourceVID); !exists(src.clean) && !exists(src.dirty) {
			return pool.Errorf(pool.ErrNotFound, "missing image file %s of volume %s, the source of %s", src.clean, v.SourceVID, v.VID)
		}
	case pool.Origin:
		if !exists(r.clean) && !exists(r.dirty) {
			return pool.Errorf(pool.ErrNotFound, "missing image file %s for volume %s", r.clean, v.VID)
		}
	}
	return nil
}

// CloneFrom makes v's clean image a copy (a reflink where possible) of
// src's. It is made under a temporary name, so a clone that fails leaves
// nothing.
func (d *Reflink) CloneFrom(ctx context.Context, p pool.Pool, v, src pool.Volume) error {
	if err := onlyOrigin(v, "clone into"); err != nil {
		return err
	}
	if err := onlyOrigin(src, "clone from"); err != nil {
		return err
	}
	r := reflinkPaths(p, v.VID)
	if exists(r.clean) || exists(r.dirty) {
		return nil // a retry
	}
	s := reflinkPaths(p, src.VID)
	if !exists(s.clean) {
		if exists(s.dirty) {
			return pool.Errorf(pool.ErrInUse, "cannot clone volume %s: it is started with snapshots disabled", src.VID)
		}
		return pool.Errorf(pool.ErrNotFound, "cannot clone volume %s: not found in pool %s", src.VID, p.Name)
	}
	err := inParent(p, r.clean, func() error {
		_, err := copyFile(ctx, s.clean, r.clean, copyOpts{perm: 0o600, size: -1})
		return err
	})
	if err == nil {
		err = d.refreshPrecache(ctx, r)
	}
	return osError(err, "cloning volume %s into %s", src.VID, v.VID)
}

// ImportBegin hands out <vid>-import.img, size bytes of zeros.
func (d *Reflink) ImportBegin(_ context.Context, p pool.Pool, v pool.Volume, size uint64) (string, error) {
	if err := onlyOrigin(v, "import"); err != nil {
		return "", err
	}
	if !d.found(p, v) {
		return "", notFound(p, v)
	}
	r := reflinkPaths(p, v.VID)
	if exists(r.dirty) {
		return "", inUse(v, "import")
	}
	return r.imprt, osError(createSparse(r.imprt, size, 0o600), "importing into volume %s", v.VID)
}

// ImportEnd commits the import image as Stop commits the dirty one, or
// removes it.
func (d *Reflink) ImportEnd(ctx context.Context, p pool.Pool, v pool.Volume, success bool) error {
	r := reflinkPaths(p, v.VID)
	if !exists(r.imprt) {
		return nil
	}
	if !success {
		return osError(removeSync(r.imprt), "aborting the import into volume %s", v.VID)
	}
	return osError(d.commit(ctx, v, r, r.imprt), "committing the import into volume %s", v.VID)
}

// ExportBegin hands out the clean image, which a Start does not touch and
// a commit replaces by a rename (a reader keeps what it opened).
func (d *Reflink) ExportBegin(_ context.Context, p pool.Pool, v pool.Volume) (string, error) {
	if err := onlyOrigin(v, "export"); err != nil {
		return "", err
	}
	if !d.found(p, v) {
		return "", notFound(p, v)
	}
	r := reflinkPaths(p, v.VID)
	if !exists(r.clean) {
		return "", pool.Errorf(pool.ErrInUse, "cannot export volume %s: started with snapshots disabled, it has no content from before the start", v.VID)
	}
	return r.clean, nil
}

// ListVolumes lists the volumes that have an image in the pool. Their
// kind is not on disk, so Dirty is a guess: a dirty image beside a clean
// one that no other volume's clean image shares (a started snapshot
// volume's is a link to its source's).
func (d *Reflink) ListVolumes(_ context.Context, p pool.Pool) ([]pool.VolumeState, error) {
	seen := map[string]bool{}
	var vids []string
	err := walkVolumes(p, func(rel string) {
		vid, ok := strings.CutSuffix(rel, "-dirty.img")
		if !ok {
			if strings.HasSuffix(rel, "-precache.img") || strings.HasSuffix(rel, "-import.img") {
				return
			}
			if vid, ok = strings.CutSuffix(rel, ".img"); !ok {
				return
			}
		}
		if !seen[vid] && pool.ValidateVID(vid) == nil {
			seen[vid] = true
			vids = append(vids, vid)
		}
	})
	if err != nil {
		return nil, osError(err, "listing pool %s", p.Name)
	}
	slices.Sort(vids)
	cleans := map[uint64]int{} // inode → how many volumes' clean images it is
	for _, vid := range vids {
		if fi, _ := stat(reflinkPaths(p, vid).clean); fi != nil {
			cleans[inode(fi)]++
		}
	}
	var out []pool.VolumeState
	for _, vid := range vids {
		r := reflinkPaths(p, vid)
		st := pool.VolumeState{VID: vid}
		img := r.dirty
		if fi, _ := stat(r.clean); fi != nil {
			if exists(r.dirty) {
				st.Dirty = cleans[inode(fi)] == 1
			} else {
				img = r.clean
			}
		}
		if fi, _ := stat(img); fi != nil {
			st.Size, st.Usage = uint64(fi.Size()), allocated(fi)
		}
		out = append(out, st)
	}
	return out, nil
}
