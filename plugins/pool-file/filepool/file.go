package filepool

// file.go: the file driver, on the reference's legacy file-driver layout
// (qubes/storage/file.py) with copies where the reference stacks
// device-mapper snapshots. The package doc says what is on disk.

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// File is the file driver. It keeps no state: everything comes with the
// call or is on disk.
type File struct{ common }

// NewFile returns the file driver.
func NewFile() *File {
	return &File{common{name: FileName, maxRevisions: 1}}
}

var _ pool.Driver = (*File)(nil)

// fileRevision is the id of the file driver's single revision.
const fileRevision = "old"

// The reference makes a volume's image group-readable.
const imgPerm = 0o664

func (d *File) Info(context.Context) (pool.Info, error) {
	return pool.Info{
		Name:        FileName,
		Version:     Version,
		Description: "the legacy file driver's layout (<vid>.img, <vid>-cow.img), snapshots by reflink or sparse copy instead of device-mapper",
		// Revisions is not declared: the driver keeps at most one
		// (revisions_to_keep 0 or 1), "old", which ListRevisions and
		// Revert handle, but a driver declaring Revisions keeps as many
		// as a volume asks for.
		Capabilities: pool.Capabilities{Shrink: true, FastClone: true, Import: true, Export: true},
		PoolConfig:   d.configKeys(),
	}, nil
}

// fvol is where a volume's files are.
type fvol struct {
	dir, base           string // directory, and the vid's last element
	img, cow, old, impt string
}

func filePaths(p pool.Pool, vid string) fvol {
	b := volPath(p, vid)
	return fvol{dir: filepath.Dir(b), base: filepath.Base(b),
		img: b + ".img", cow: b + "-cow.img", old: b + "-cow.img.old", impt: b + "-import.img"}
}

func (f fvol) isTemp(suffix string) bool {
	return slices.Contains([]string{".img", "-cow.img", "-cow.img.old", "-import.img"}, suffix)
}

// cowKind is what a <vid>-cow.img holds.
type cowKind int

const (
	// cowNone: there is none.
	cowNone cowKind = iota
	// cowEmpty: the reference's store of a stopped volume (a sparse file,
	// or a device-mapper header and no exception), or the empty file
	// standing for a stopped snapshot volume: the volume is stopped.
	cowEmpty
	// cowCopy: ours, a whole image (taking at least one block on disk): the
	// volume is started.
	cowCopy
	// cowDelta: the reference's store with exceptions: a volume it left
	// started, whose pre-start content is <vid>.img with them put back.
	cowDelta
)

// classify tells what the copy-on-write file at path is.
func classify(path string) (cowKind, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return cowNone, nil
	}
	if err != nil {
		return cowNone, err
	}
	defer f.Close()
	s, err := openDMStore(f)
	if err != nil {
		return cowNone, err
	}
	if s != nil {
		empty, err := s.empty()
		if empty || err != nil {
			return cowEmpty, err
		}
		return cowDelta, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return cowNone, err
	}
	if allocated(fi) == 0 {
		return cowEmpty, nil
	}
	return cowCopy, nil
}

// started reports whether the origin or snapshot volume with this
// copy-on-write file is started.
func (k cowKind) started() bool { return k == cowCopy || k == cowDelta }

// withDelta returns, for a cowDelta store at path, a copyOpts.then that
// puts its chunks back into the copy of the image; nil otherwise.
func withDelta(k cowKind, path string) func(*os.File) error {
	if k != cowDelta {
		return nil
	}
	return func(img *os.File) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		s, err := openDMStore(f)
		if err != nil || s == nil {
			return errors.Join(err, errors.New(path+": not a copy-on-write store any more"))
		}
		return s.apply(img)
	}
}

// fileKeep is how many revisions a volume keeps: revisions_to_keep, at
// most 1.
func fileKeep(v pool.Volume) int { return min(v.RevisionsToKeep, 1) }

// found reports whether the volume exists: an origin or volatile volume
// has its image; a snapshot volume has its copy-on-write file (an empty one
// while stopped, see the package doc). A stopped volatile or snapshot
// volume of a pool the reference made has no file and exists as long as its
// qube's directory does.
func (d *File) found(p pool.Pool, v pool.Volume) bool {
	f := filePaths(p, v.VID)
	switch v.Type() {
	case pool.Origin, pool.OriginSnapshot:
		return exists(f.img)
	case pool.Snapshot:
		return exists(f.cow) || refLayout(p, v.VID)
	}
	return exists(f.img) || refLayout(p, v.VID)
}

func (d *File) Create(_ context.Context, p pool.Pool, v pool.Volume) error {
	if err := refuseOriginSnapshot(v); err != nil {
		return err
	}
	if v.SaveOnStop && v.RevisionsToKeep > 1 {
		return pool.Errorf(pool.ErrInvalid, "volume %s: revisions_to_keep %d: the file driver keeps at most 1 revision", v.VID, v.RevisionsToKeep)
	}
	f := filePaths(p, v.VID)
	path, perm := f.img, os.FileMode(imgPerm)
	switch v.Type() {
	case pool.Snapshot:
		path, perm = f.cow, 0o600
	case pool.Origin:
		if v.Size == 0 {
			return pool.Errorf(pool.ErrInvalid, "volume %s: size must be more than 0", v.VID)
		}
	}
	if exists(path) {
		return nil // a retry, or created already
	}
	return osError(inParent(p, path, func() error { return createSparse(path, v.Size, perm) }), "creating volume %s", v.VID)
}

func (d *File) Remove(_ context.Context, p pool.Pool, v pool.Volume) error {
	f := filePaths(p, v.VID)
	err := cleanTemps(f.dir, f.base, f.isTemp)
	for _, path := range []string{f.impt, f.old, f.cow, f.img} {
		if err == nil {
			err = removeSync(path)
		}
	}
	if err == nil {
		err = removeVolumeDir(p, f.img)
	}
	return osError(err, "removing volume %s", v.VID)
}

// Start gives the qube its disk:
//   - origin: <vid>.img itself; the content from before the start is kept
//     in <vid>-cow.img, a copy (as the reference's snapshot-origin keeps,
//     chunk by chunk, what the qube overwrites). Read-only: the copy is
//     what the qube gets, and is thrown away. Snapshots disabled
//     (revisions_to_keep -1): <vid>.img and no copy.
//   - snapshot: <vid>-cow.img, a copy of the source's content from before
//     its start.
//   - volatile: <vid>.img, empty.
func (d *File) Start(ctx context.Context, p pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	if err := refuseOriginSnapshot(v); err != nil {
		return pool.BlockDevice{}, err
	}
	f := filePaths(p, v.VID)
	bd := pool.BlockDevice{Path: f.img, RW: v.RW}
	if err := cleanTemps(f.dir, f.base, f.isTemp); err != nil {
		return bd, osError(err, "starting volume %s", v.VID)
	}
	var err error
	switch v.Type() {
	case pool.Origin:
		if !v.RW {
			bd.Path = f.cow
		}
		err = d.startOrigin(ctx, p, v, f)
	case pool.Snapshot:
		bd.Path = f.cow
		err = d.startSnapshot(ctx, p, v, f)
	default:
		err = startVolatile(p, v, f.img, imgPerm)
	}
	return bd, osError(err, "starting volume %s", v.VID)
}

func (d *File) startOrigin(ctx context.Context, p pool.Pool, v pool.Volume, f fvol) error {
	if !exists(f.img) {
		return notFound(p, v)
	}
	k, err := classify(f.cow)
	switch {
	case err != nil:
		return err
	case k == cowDelta && !v.RW:
		return pool.Errorf(pool.ErrInUse, "volume %s: the reference's file driver left it started read-write; stop it first", v.VID)
	case k.started():
		return nil
	case v.RevisionsToKeep == -1 && v.RW:
		return nil // the qube writes the only copy
	}
	_, err = copyFile(ctx, f.img, f.cow, copyOpts{perm: 0o600, size: -1, mark: true})
	return err
}

func (d *File) startSnapshot(ctx context.Context, p pool.Pool, v pool.Volume, f fvol) error {
	if k, err := classify(f.cow); err != nil || k == cowCopy {
		return err
	}
	src := filePaths(p, v.SourceVID)
	if !exists(src.img) {
		return pool.Errorf(pool.ErrNotFound, "source volume %s of %s not found in pool %s", v.SourceVID, v.VID, p.Name)
	}
	return copyPreStart(ctx, p, src, true, f.cow, copyOpts{perm: 0o600, size: -1, mark: true})
}

// copyPreStart copies an origin volume's content from before its start
// (see preStart) to dst. The volume may be committed meanwhile (a call on
// another volume), its copy renamed away: then it looks again.
func copyPreStart(ctx context.Context, p pool.Pool, src fvol, srcRW bool, dst string, o copyOpts) error {
	var err error
	for range 3 {
		from, k, perr := preStart(src)
		if perr != nil {
			return perr
		}
		if k == cowCopy && !srcRW {
			from = src.img // a read-only start's copy is the qube's
		}
		o.then = withDelta(k, src.cow)
		err = inParent(p, dst, func() error { _, err := copyFile(ctx, from, dst, o); return err })
		if !errors.Is(err, pool.ErrNotFound) || !exists(src.img) {
			return err
		}
	}
	return err
}

// preStart says where an origin volume's content from before its start
// is: in its copy while it is started (k cowCopy), in <vid>.img with the
// reference's store put back (k cowDelta), else in <vid>.img.
func preStart(f fvol) (string, cowKind, error) {
	k, err := classify(f.cow)
	if err != nil {
		return "", k, err
	}
	if k == cowCopy {
		return f.cow, k, nil
	}
	return f.img, k, nil
}

// Stop commits an origin volume: the copy of the content from before the
// start becomes the revision "old" (revisions_to_keep 1) or goes — the
// reference's commit, which renames <vid>-cow.img to <vid>-cow.img.old. A
// snapshot volume's copy is emptied, a volatile volume's image too.
func (d *File) Stop(_ context.Context, p pool.Pool, v pool.Volume) error {
	f := filePaths(p, v.VID)
	var err error
	switch v.Type() {
	case pool.Origin, pool.OriginSnapshot:
		err = d.stopOrigin(v, f)
	case pool.Snapshot:
		var k cowKind
		if k, err = classify(f.cow); err == nil && k.started() {
			err = createSparse(f.cow, v.Size, 0o600)
		}
	default:
		if fi, _ := stat(f.img); fi != nil && allocated(fi) > 0 {
			err = createSparse(f.img, uint64(fi.Size()), imgPerm) // keeps a resize, as the reference does
		}
	}
	return osError(err, "stopping volume %s", v.VID)
}

func (d *File) stopOrigin(v pool.Volume, f fvol) error {
	k, err := classify(f.cow)
	if err != nil || !k.started() {
		if err == nil && v.RevisionsToKeep == -1 && v.RW && exists(f.img) {
			err = fsyncPath(f.img) // the qube wrote the image itself
		}
		return err
	}
	if !v.RW {
		return removeSync(f.cow) // what a read-only qube got is thrown away
	}
	if err := fsyncPath(f.img); err != nil {
		return err
	}
	if fileKeep(v) < 1 {
		if err := removeSync(f.old); err != nil {
			return err
		}
		return removeSync(f.cow)
	}
	return renameSync(f.cow, f.old)
}

// Resize truncates the image the qube writes (the reference truncates
// <vid>.img; with a copy-on-write snapshot volume started, its copy) and
// refreshes the loop devices reading it. A stopped snapshot volume has
// nothing to resize.
func (d *File) Resize(_ context.Context, p pool.Pool, v pool.Volume, size uint64) error {
	if !d.found(p, v) {
		return notFound(p, v)
	}
	if !v.RW {
		return pool.Errorf(pool.ErrInvalid, "cannot resize read-only volume %s", v.VID)
	}
	f := filePaths(p, v.VID)
	img := f.img
	if v.Type() == pool.Snapshot {
		k, err := classify(f.cow)
		if err != nil || k != cowCopy {
			return osError(err, "resizing volume %s", v.VID)
		}
		img = f.cow
	}
	if !exists(img) {
		return nil // a volatile volume of a pool the reference made
	}
	err := truncateSync(img, size)
	if err == nil {
		err = refreshLoops(img)
	}
	return osError(err, "resizing volume %s", v.VID)
}

// Revert makes the revision "old" the volume's image; the revision stays.
// (The reference's file driver lists "old" but cannot revert to it.) If
// the reference made it, it is a copy-on-write store of the chunks its
// commit replaced: it is first turned into the whole image it stands for.
func (d *File) Revert(ctx context.Context, p pool.Pool, v pool.Volume, revision string) error {
	if !d.found(p, v) {
		return notFound(p, v)
	}
	f := filePaths(p, v.VID)
	if v.Type() != pool.Origin || !exists(f.old) || (revision != "" && revision != fileRevision) {
		return pool.Errorf(pool.ErrNotFound, "volume %s has no revision %q", v.VID, revision)
	}
	if k, err := classify(f.cow); err != nil || k.started() {
		return errors.Join(err, pool.Errorf(pool.ErrInUse, "cannot revert: volume %s is not cleanly stopped", v.VID))
	}
	var err error
	if !isRegularImage(f.old) {
		// <vid>-cow.img.old becomes the whole image it stands for (the
		// store is read through the descriptor withDelta holds while its
		// replacement is renamed over it).
		_, err = copyFile(ctx, f.img, f.old, copyOpts{perm: 0o600, size: -1, then: withDelta(cowDelta, f.old)})
	}
	if err == nil {
		_, err = copyFile(ctx, f.old, f.img, copyOpts{perm: imgPerm, size: -1})
	}
	return osError(err, "reverting volume %s", v.VID)
}

// isRegularImage reports whether path is an image (ours) rather than a
// store (the reference's, which starts with the device-mapper header).
func isRegularImage(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	s, _ := openDMStore(f)
	return s == nil
}

// ListRevisions lists "old", dated by its change time as the reference
// does.
func (d *File) ListRevisions(_ context.Context, p pool.Pool, v pool.Volume) ([]pool.Revision, error) {
	if !d.found(p, v) {
		return nil, notFound(p, v)
	}
	fi, err := stat(filePaths(p, v.VID).old)
	if err != nil || fi == nil || v.Type() != pool.Origin {
		return []pool.Revision{}, osError(err, "volume %s", v.VID)
	}
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		t = time.Unix(st.Ctim.Sec, 0)
	}
	return []pool.Revision{{ID: fileRevision, Time: t.UTC().Truncate(time.Second)}}, nil
}

func (d *File) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	if !d.found(p, v) {
		return pool.VolumeState{}, notFound(p, v)
	}
	f := filePaths(p, v.VID)
	st := pool.VolumeState{VID: v.VID, Size: v.Size}
	k, err := classify(f.cow)
	if err != nil {
		return st, osError(err, "volume %s", v.VID)
	}
	// the qube gets the image itself, or for a snapshot volume its copy
	// (the reference stacks device-mapper snapshots instead)
	img, cow := f.img, ""
	st.Path = f.img
	switch v.Type() {
	case pool.Snapshot:
		img, st.Path = "", f.cow
		if k == cowCopy {
			img = f.cow
		}
	case pool.Origin, pool.OriginSnapshot:
		st.Dirty = k.started() && v.RW
		if k.started() {
			cow = f.cow
		}
	}
	if fi, _ := stat(img); img != "" && fi != nil {
		st.Size, st.Usage = uint64(fi.Size()), allocated(fi)
	}
	if fi, _ := stat(cow); cow != "" && fi != nil {
		st.Usage += allocated(fi)
	}
	return st, nil
}

// Verify checks, as the reference does, that the image a Start uses is
// there: the volume's own, or its source's for a snapshot volume.
func (d *File) Verify(_ context.Context, p pool.Pool, v pool.Volume) error {
	if !d.found(p, v) {
		return notFound(p, v)
	}
	switch v.Type() {
	case pool.Snapshot:
		if src := filePaths(p, v.SourceVID); !exists(src.img) {
			return pool.Errorf(pool.ErrNotFound, "missing image file: %s (the source of volume %s)", src.img, v.VID)
		}
	case pool.Origin:
		if f := filePaths(p, v.VID); !exists(f.img) {
			return pool.Errorf(pool.ErrNotFound, "missing image file: %s", f.img)
		}
	}
	return nil
}

// CloneFrom makes v's image a copy (a reflink where possible) of src's
// content from before its start. Unlike the reference, which removes the
// target's image before copying, the copy is made under a temporary name.
func (d *File) CloneFrom(ctx context.Context, p pool.Pool, v, src pool.Volume) error {
	if err := onlyOrigin(v, "clone into"); err != nil {
		return err
	}
	if err := onlyOrigin(src, "clone from"); err != nil {
		return err
	}
	f := filePaths(p, v.VID)
	if exists(f.img) {
		return nil // a retry
	}
	s := filePaths(p, src.VID)
	if !exists(s.img) {
		return pool.Errorf(pool.ErrNotFound, "cannot clone volume %s: not found in pool %s", src.VID, p.Name)
	}
	err := copyPreStart(ctx, p, s, src.RW, f.img, copyOpts{perm: imgPerm, size: -1})
	return osError(err, "cloning volume %s into %s", src.VID, v.VID)
}

// ImportBegin hands out <vid>-import.img, size bytes of zeros.
func (d *File) ImportBegin(_ context.Context, p pool.Pool, v pool.Volume, size uint64) (string, error) {
	if err := onlyOrigin(v, "import"); err != nil {
		return "", err
	}
	if !d.found(p, v) {
		return "", notFound(p, v)
	}
	f := filePaths(p, v.VID)
	if k, err := classify(f.cow); err != nil || k.started() {
		return "", errors.Join(err, inUse(v, "import"))
	}
	return f.impt, osError(createSparse(f.impt, size, imgPerm), "importing into volume %s", v.VID)
}

// ImportEnd renames the import image over <vid>.img (as the reference
// does), the replaced image becoming the revision "old" when the volume
// keeps one: a second name given before the rename, so <vid>.img is never
// missing.
func (d *File) ImportEnd(_ context.Context, p pool.Pool, v pool.Volume, success bool) error {
	f := filePaths(p, v.VID)
	if !exists(f.impt) {
		return nil
	}
	if !success {
		return osError(removeSync(f.impt), "aborting the import into volume %s", v.VID)
	}
	var err error
	switch {
	case fileKeep(v) < 1:
		err = removeSync(f.old)
	case exists(f.img) && !sameFile(f.img, f.old):
		err = linkSync(f.img, f.old)
	}
	if err == nil {
		err = renameSync(f.impt, f.img)
	}
	return osError(err, "committing the import into volume %s", v.VID)
}

// ExportBegin hands out the content from before the start: <vid>.img while
// stopped, its copy while started. (The reference refuses to export a
// started volume.)
func (d *File) ExportBegin(_ context.Context, p pool.Pool, v pool.Volume) (string, error) {
	if err := onlyOrigin(v, "export"); err != nil {
		return "", err
	}
	if !d.found(p, v) {
		return "", notFound(p, v)
	}
	f := filePaths(p, v.VID)
	path, k, err := preStart(f)
	switch {
	case err != nil:
		return "", osError(err, "exporting volume %s", v.VID)
	case k == cowDelta:
		return "", pool.Errorf(pool.ErrInUse, "cannot export volume %s: the reference's file driver left it started; start and stop it first", v.VID)
	case k == cowCopy && !v.RW:
		path = f.img
	}
	return path, nil
}

// ListVolumes lists the volumes that have a file in the pool: an image,
// or a snapshot volume's copy-on-write file alone.
func (d *File) ListVolumes(_ context.Context, p pool.Pool) ([]pool.VolumeState, error) {
	kinds := map[string]string{}
	err := walkVolumes(p, func(rel string) {
		for _, suffix := range []string{"-cow.img", "-import.img", ".img"} {
			if vid, ok := strings.CutSuffix(rel, suffix); ok {
				if pool.ValidateVID(vid) == nil && (suffix == ".img" || suffix == "-cow.img" && kinds[vid] == "") {
					kinds[vid] = suffix
				}
				return
			}
		}
	})
	if err != nil {
		return nil, osError(err, "listing pool %s", p.Name)
	}
	var out []pool.VolumeState
	for _, vid := range slices.Sorted(maps.Keys(kinds)) {
		f := filePaths(p, vid)
		st := pool.VolumeState{VID: vid}
		k, _ := classify(f.cow)
		img := f.img
		if kinds[vid] == "-cow.img" {
			img = f.cow
		} else {
			st.Dirty = k.started()
		}
		if fi, _ := stat(img); fi != nil {
			st.Size, st.Usage = uint64(fi.Size()), allocated(fi)
		}
		out = append(out, st)
	}
	return out, nil
}
