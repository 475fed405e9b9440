// Package storagetest gives tests of the storage layer and the Admin API a
// pool driver that needs nothing on the machine: MemDriver keeps volumes
// in memory and hands out real files (under a directory of the test's) only
// where the driver contract hands out paths — Start, ImportBegin and
// ExportBegin. It passes the SDK's conformance suite (sdk/pooltest) and has
// knobs to inject errors, count calls and hold calls at a gate.
package storagetest

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// MemDriver is an in-memory pool.Driver. One MemDriver serves any number
// of pools, told apart by name; a pool exists once Setup ran for it.
//
// Set Caps, Name and Now before the first call; the knobs (Fail, Block,
// SetOffline, SetUsage) may change at any time.
type MemDriver struct {
	// Name is the driver name Info reports ("mem" by default).
	Name string
	// Caps are the capabilities Info declares and the driver honours:
	// New sets every one but OriginSnapshot. A call that needs a capability
	// that was turned off fails with pool.ErrUnimplemented.
	Caps pool.Capabilities
	// Now stamps revisions (time.Now by default).
	Now func() time.Time
	// RevisionOrder, when set, rearranges what ListRevisions returns (to
	// test that the daemon sorts them itself).
	RevisionOrder func([]pool.Revision) []pool.Revision

	dir string

	mu    sync.Mutex
	pools map[string]*memPool
	// knobs
	fails    map[callKey]error
	failNext map[callKey]error
	calls    map[callKey]int
	gates    map[callKey]*Gate
	offline  map[string]bool
	usage    map[string]pool.Usage
}

type memPool struct {
	vols map[string]*memVol
}

type memVol struct {
	// data is the committed content of an origin volume (nil for other
	// volumes, whose content lives only while started).
	data *content
	size uint64 // nominal size at Create
	revs []memRev
	next int // next revision number
	gen  int // commits so far (for Outdated)

	run    string // running image while started
	srcGen int    // the source's gen when a snapshot started

	imp     string // import file while an import is in progress
	impSize uint64

	exports map[string]bool
}

type memRev struct {
	id   string
	time time.Time
	data *content
}

// NewMemDriver returns a driver with every capability but OriginSnapshot,
// keeping the files it hands out in dir.
func NewMemDriver(dir string) *MemDriver {
	return &MemDriver{
		Name: "mem",
		Caps: pool.Capabilities{Revisions: true, Shrink: true, FastClone: true, Import: true, Export: true, Ephemeral: true},
		dir:  dir,
	}
}

// Config keys a MemDriver pool accepts.
const (
	// KeyDirPath is accepted and ignored (the file drivers' key, so that a
	// MemDriver can stand in for them with the reference's pool records).
	KeyDirPath = "dir_path"
	// KeySize is the pool's size in bytes, which Usage reports (0 or
	// absent: unknown).
	KeySize = "size"
)

func (d *MemDriver) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Content returns the committed content of a volume (nil if it has none),
// for tests to compare.
func (d *MemDriver) Content(poolName, vid string) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pools[poolName]
	if p == nil || p.vols[vid] == nil || p.vols[vid].data == nil {
		return nil
	}
	return p.vols[vid].data.bytes()
}

// SetContent replaces the committed content of an existing volume,
// without making a revision (the volume is made an origin volume if it was
// not one).
func (d *MemDriver) SetContent(poolName, vid string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pools[poolName]
	if p == nil || p.vols[vid] == nil {
		return pool.Errorf(pool.ErrNotFound, "pool %s: no volume %s", poolName, vid)
	}
	c := zeros(uint64(len(data)))
	for off := 0; off < len(data); off += blockSize {
		b := make([]byte, blockSize)
		copy(b, data[off:])
		if !allZero(b) {
			c.blocks[uint64(off/blockSize)] = b
		}
	}
	p.vols[vid].data = c
	p.vols[vid].gen++
	return nil
}

// Has reports whether the pool has the volume.
func (d *MemDriver) Has(poolName, vid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pools[poolName]
	return p != nil && p.vols[vid] != nil
}

// Importing reports whether the volume has an import in progress.
func (d *MemDriver) Importing(poolName, vid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pools[poolName]
	return p != nil && p.vols[vid] != nil && p.vols[vid].imp != ""
}

func (d *MemDriver) Info(ctx context.Context) (pool.Info, error) {
	if err := d.enter(ctx, "Info", "", ""); err != nil {
		return pool.Info{}, err
	}
	return pool.Info{
		Name:         cmp.Or(d.Name, "mem"),
		Version:      "test",
		Description:  "volumes in memory, for tests",
		Capabilities: d.Caps,
		PoolConfig: []pool.ConfigKey{
			{Name: KeyDirPath, Description: "ignored"},
			{Name: KeySize, Description: "pool size in bytes (0: unknown)"},
		},
	}, nil
}

func (d *MemDriver) Configure(ctx context.Context, config []byte) error {
	if err := d.enter(ctx, "Configure", "", ""); err != nil {
		return err
	}
	return pool.DecodeConfig(config, &struct{}{})
}

func (d *MemDriver) ValidateConfig(ctx context.Context, config map[string]string) error {
	if err := d.enter(ctx, "ValidateConfig", "", ""); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(config)) {
		switch k {
		case KeyDirPath:
		case KeySize:
			if _, err := strconv.ParseUint(config[k], 10, 64); err != nil {
				return pool.Errorf(pool.ErrInvalid, "pool config key %s: %q is not a size in bytes", k, config[k])
			}
		default:
			return pool.Errorf(pool.ErrInvalid, "unknown pool config key %q", k)
		}
	}
	return nil
}

// poolLocked returns the pool's state; call it with d.mu held.
func (d *MemDriver) poolLocked(p pool.Pool) (*memPool, error) {
	mp := d.pools[p.Name]
	if mp == nil {
		return nil, pool.Errorf(pool.ErrUnavailable, "pool %s: storage not set up", p.Name)
	}
	return mp, nil
}

// onPool begins a call on pool p: the call's knobs (enter: failures,
// gates), then the driver's lock, and the pool's state. On success the
// caller must call unlock; on error nothing is held.
func (d *MemDriver) onPool(ctx context.Context, method string, p pool.Pool, vid string) (mp *memPool, unlock func(), err error) {
	if err := d.enter(ctx, method, p.Name, vid); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	if mp, err = d.poolLocked(p); err != nil {
		d.mu.Unlock()
		return nil, nil, err
	}
	return mp, d.mu.Unlock, nil
}

// onVol is onPool for a call on an existing volume vid.
func (d *MemDriver) onVol(ctx context.Context, method string, p pool.Pool, vid string) (mp *memPool, mv *memVol, unlock func(), err error) {
	if err := d.enter(ctx, method, p.Name, vid); err != nil {
		return nil, nil, nil, err
	}
	d.mu.Lock()
	if mp, mv, err = d.volLocked(p, vid); err != nil {
		d.mu.Unlock()
		return nil, nil, nil, err
	}
	return mp, mv, d.mu.Unlock, nil
}

// volLocked returns the volume's state; call it with d.mu held.
func (d *MemDriver) volLocked(p pool.Pool, vid string) (*memPool, *memVol, error) {
	mp, err := d.poolLocked(p)
	if err != nil {
		return nil, nil, err
	}
	mv := mp.vols[vid]
	if mv == nil {
		return mp, nil, pool.Errorf(pool.ErrNotFound, "pool %s: no volume %s", p.Name, vid)
	}
	return mp, mv, nil
}

func (d *MemDriver) Open(ctx context.Context, p pool.Pool) error {
	if err := d.enter(ctx, "Open", p.Name, ""); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.poolLocked(p)
	return err
}

func (d *MemDriver) Setup(ctx context.Context, p pool.Pool) error {
	if err := d.enter(ctx, "Setup", p.Name, ""); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pools == nil {
		d.pools = map[string]*memPool{}
	}
	if d.pools[p.Name] == nil {
		d.pools[p.Name] = &memPool{vols: map[string]*memVol{}}
	}
	return nil
}

func (d *MemDriver) Destroy(ctx context.Context, p pool.Pool) error {
	if err := d.enter(ctx, "Destroy", p.Name, ""); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mp := d.pools[p.Name]; mp != nil {
		for _, v := range mp.vols {
			v.removeFiles()
		}
		delete(d.pools, p.Name)
	}
	return nil
}

func (d *MemDriver) Usage(ctx context.Context, p pool.Pool) (pool.Usage, error) {
	mp, unlock, err := d.onPool(ctx, "Usage", p, "")
	if err != nil {
		return pool.Usage{}, err
	}
	defer unlock()
	if u, ok := d.usage[p.Name]; ok {
		return u, nil
	}
	var u pool.Usage
	u.Size, _ = strconv.ParseUint(p.Config[KeySize], 10, 64)
	for _, v := range mp.vols {
		if v.data != nil {
			u.Usage += v.data.usage()
		}
		for _, r := range v.revs {
			u.Usage += r.data.usage()
		}
	}
	if u.Size != 0 {
		u.Usage = min(u.Usage, u.Size)
	}
	u.Details = map[string]uint64{"data_size": u.Size, "data_usage": u.Usage}
	return u, nil
}

func (d *MemDriver) ListVolumes(ctx context.Context, p pool.Pool) ([]pool.VolumeState, error) {
	mp, unlock, err := d.onPool(ctx, "ListVolumes", p, "")
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make([]pool.VolumeState, 0, len(mp.vols))
	for _, vid := range slices.Sorted(maps.Keys(mp.vols)) {
		out = append(out, mp.state(vid, pool.Volume{VID: vid, Size: mp.vols[vid].size}))
	}
	return out, nil
}

// state describes a volume (which exists) as VolumeInfo does.
func (mp *memPool) state(vid string, v pool.Volume) pool.VolumeState {
	mv := mp.vols[vid]
	st := pool.VolumeState{VID: vid, Size: v.Size}
	if mv.data != nil {
		st.Size, st.Usage = mv.data.size, mv.data.usage()
	}
	if mv.run != "" {
		if fi, err := os.Stat(mv.run); err == nil {
			st.Size = uint64(fi.Size())
		}
		st.Dirty = v.Type() == pool.Origin
		if v.Type() == pool.Snapshot {
			if src := mp.vols[v.SourceVID]; src != nil && src.gen != mv.srcGen {
				st.Outdated = true
			}
		}
	}
	return st
}

func (d *MemDriver) Create(ctx context.Context, p pool.Pool, v pool.Volume) error {
	mp, unlock, err := d.onPool(ctx, "Create", p, v.VID)
	if err != nil {
		return err
	}
	defer unlock()
	if mp.vols[v.VID] != nil {
		return nil // a retry
	}
	if v.Type() == pool.OriginSnapshot && !d.Caps.OriginSnapshot {
		return pool.Errorf(pool.ErrInvalid, "volume %s: snap_on_start with save_on_stop is not supported", v.VID)
	}
	mv := &memVol{size: v.Size}
	if v.SaveOnStop {
		mv.data = zeros(v.Size)
	}
	mp.vols[v.VID] = mv
	return nil
}

func (d *MemDriver) Remove(ctx context.Context, p pool.Pool, v pool.Volume) error {
	mp, unlock, err := d.onPool(ctx, "Remove", p, v.VID)
	if err != nil {
		return err
	}
	defer unlock()
	if mv := mp.vols[v.VID]; mv != nil {
		mv.removeFiles()
		delete(mp.vols, v.VID)
	}
	return nil
}

func (mv *memVol) removeFiles() {
	for _, f := range []string{mv.run, mv.imp} {
		if f != "" {
			os.Remove(f)
		}
	}
	for f := range mv.exports {
		os.Remove(f)
	}
	mv.run, mv.imp, mv.exports = "", "", nil
}

// tempFile writes c into a new file under d.dir and returns its path.
func (d *MemDriver) tempFile(p pool.Pool, vid, kind string, c *content) (string, error) {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(p.Name + "-" + vid)
	f, err := os.CreateTemp(d.dir, name+"-"+kind+"-*.img")
	if err != nil {
		return "", err
	}
	path := f.Name()
	f.Close()
	if err := c.writeFile(path); err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

func (d *MemDriver) Start(ctx context.Context, p pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	mp, mv, unlock, err := d.onVol(ctx, "Start", p, v.VID)
	if err != nil {
		return pool.BlockDevice{}, err
	}
	defer unlock()
	if mv.run != "" {
		return pool.BlockDevice{Path: mv.run, RW: v.RW}, nil
	}
	var c *content
	switch v.Type() {
	case pool.Origin:
		if mv.data == nil {
			mv.data = zeros(v.Size)
		}
		c = mv.data
	case pool.Snapshot:
		src := mp.vols[v.SourceVID]
		if src == nil {
			return pool.BlockDevice{}, pool.Errorf(pool.ErrNotFound, "volume %s: its source %s does not exist", v.VID, v.SourceVID)
		}
		c = src.committed()
		if v.Size != 0 && v.Size != c.size {
			c = c.resized(v.Size)
		}
		mv.srcGen = src.gen
	case pool.Volatile:
		c = zeros(v.Size)
	default:
		return pool.BlockDevice{}, pool.Errorf(pool.ErrInvalid, "volume %s: snap_on_start with save_on_stop is not supported", v.VID)
	}
	path, err := d.tempFile(p, v.VID, "run", c)
	if err != nil {
		return pool.BlockDevice{}, err
	}
	mv.run = path
	return pool.BlockDevice{Path: path, RW: v.RW}, nil
}

// committed is the content a snapshot or an export sees.
func (mv *memVol) committed() *content {
	if mv.data != nil {
		return mv.data
	}
	return zeros(mv.size)
}

func (d *MemDriver) Stop(ctx context.Context, p pool.Pool, v pool.Volume) error {
	if err := d.enter(ctx, "Stop", p.Name, v.VID); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, mv, err := d.volLocked(p, v.VID)
	if errors.Is(err, pool.ErrNotFound) {
		return nil
	}
	if err != nil || mv.run == "" {
		return err
	}
	if v.Type() == pool.Origin && v.RW {
		c, err := readFile(mv.run)
		if err != nil {
			return err
		}
		d.commit(mv, c, v.RevisionsToKeep)
	}
	os.Remove(mv.run)
	mv.run = ""
	return nil
}

// commit makes c the committed content; the content it replaces becomes a
// revision, and revisions beyond keep are dropped, oldest first.
func (d *MemDriver) commit(mv *memVol, c *content, keep int) {
	if keep > 0 && mv.data != nil {
		t := d.now()
		if n := len(mv.revs); n > 0 && t.Before(mv.revs[n-1].time) {
			t = mv.revs[n-1].time
		}
		mv.next++
		mv.revs = append(mv.revs, memRev{id: strconv.Itoa(mv.next), time: t, data: mv.data})
	}
	if drop := len(mv.revs) - max(keep, 0); drop > 0 {
		mv.revs = slices.Delete(mv.revs, 0, drop)
	}
	mv.data = c
	mv.gen++
}

func (d *MemDriver) Resize(ctx context.Context, p pool.Pool, v pool.Volume, size uint64) error {
	mp, mv, unlock, err := d.onVol(ctx, "Resize", p, v.VID)
	if err != nil {
		return err
	}
	defer unlock()
	if !v.RW {
		return pool.Errorf(pool.ErrInvalid, "Can not resize readonly volume %s", v.VID)
	}
	cur := mp.state(v.VID, v).Size
	if size < cur && !d.Caps.Shrink {
		return pool.Errorf(pool.ErrInvalid, "volume %s: shrinking from %d to %d bytes is not supported", v.VID, cur, size)
	}
	if mv.run != "" {
		return os.Truncate(mv.run, int64(size))
	}
	if mv.data != nil && v.SaveOnStop {
		mv.data = mv.data.resized(size)
	}
	return nil
}

func (d *MemDriver) Revert(ctx context.Context, p pool.Pool, v pool.Volume, revision string) error {
	if err := d.enter(ctx, "Revert", p.Name, v.VID); err != nil {
		return err
	}
	if !d.Caps.Revisions {
		return pool.Errorf(pool.ErrUnimplemented, "Revert not implemented")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, mv, err := d.volLocked(p, v.VID)
	if err != nil {
		return err
	}
	if mv.run != "" {
		return pool.Errorf(pool.ErrInUse, "volume %s is started", v.VID)
	}
	if len(mv.revs) == 0 {
		return pool.Errorf(pool.ErrNotFound, "volume %s has no revisions", v.VID)
	}
	i := len(mv.revs) - 1
	if revision != "" {
		i = slices.IndexFunc(mv.revs, func(r memRev) bool { return r.id == revision })
		if i < 0 {
			return pool.Errorf(pool.ErrNotFound, "volume %s has no revision %s", v.VID, revision)
		}
	}
	mv.data = mv.revs[i].data.clone()
	mv.gen++
	return nil
}

func (d *MemDriver) ListRevisions(ctx context.Context, p pool.Pool, v pool.Volume) ([]pool.Revision, error) {
	if err := d.enter(ctx, "ListRevisions", p.Name, v.VID); err != nil {
		return nil, err
	}
	d.mu.Lock()
	_, mv, err := d.volLocked(p, v.VID)
	var out []pool.Revision
	if err == nil {
		for _, r := range mv.revs {
			out = append(out, pool.Revision{ID: r.id, Time: r.time})
		}
	}
	order := d.RevisionOrder
	d.mu.Unlock()
	if order != nil && err == nil {
		out = order(out)
	}
	return out, err
}

// AddRevision adds a revision with the given id and time to an origin
// volume, holding its current committed content (tests use it to build
// revision lists in any order).
func (d *MemDriver) AddRevision(poolName, vid, id string, t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pools[poolName]
	if p == nil || p.vols[vid] == nil || p.vols[vid].data == nil {
		return pool.Errorf(pool.ErrNotFound, "pool %s: no origin volume %s", poolName, vid)
	}
	mv := p.vols[vid]
	mv.revs = append(mv.revs, memRev{id: id, time: t, data: mv.data.clone()})
	return nil
}

func (d *MemDriver) VolumeInfo(ctx context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	mp, _, unlock, err := d.onVol(ctx, "VolumeInfo", p, v.VID)
	if err != nil {
		return pool.VolumeState{}, err
	}
	defer unlock()
	return mp.state(v.VID, v), nil
}

func (d *MemDriver) Verify(ctx context.Context, p pool.Pool, v pool.Volume) error {
	mp, _, unlock, err := d.onVol(ctx, "Verify", p, v.VID)
	if err != nil {
		return err
	}
	defer unlock()
	if v.SnapOnStart && mp.vols[v.SourceVID] == nil {
		return pool.Errorf(pool.ErrNotFound, "volume %s: its source %s does not exist", v.VID, v.SourceVID)
	}
	return nil
}

func (d *MemDriver) CloneFrom(ctx context.Context, p pool.Pool, v, src pool.Volume) error {
	if err := d.enter(ctx, "CloneFrom", p.Name, v.VID); err != nil {
		return err
	}
	if !d.Caps.FastClone {
		return pool.Errorf(pool.ErrUnimplemented, "CloneFrom not implemented")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	mp, sv, err := d.volLocked(p, src.VID)
	if err != nil {
		return err
	}
	if mp.vols[v.VID] != nil {
		return nil // a retry
	}
	c := sv.committed().clone()
	mp.vols[v.VID] = &memVol{data: c, size: c.size}
	return nil
}

func (d *MemDriver) ImportBegin(ctx context.Context, p pool.Pool, v pool.Volume, size uint64) (string, error) {
	if err := d.enter(ctx, "ImportBegin", p.Name, v.VID); err != nil {
		return "", err
	}
	if !d.Caps.Import {
		return "", pool.Errorf(pool.ErrUnimplemented, "ImportBegin not implemented")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, mv, err := d.volLocked(p, v.VID)
	if err != nil {
		return "", err
	}
	if mv.run != "" {
		return "", pool.Errorf(pool.ErrInUse, "volume %s is started", v.VID)
	}
	if mv.imp != "" {
		os.Remove(mv.imp)
		mv.imp = ""
	}
	path, err := d.tempFile(p, v.VID, "import", zeros(size))
	if err != nil {
		return "", err
	}
	mv.imp, mv.impSize = path, size
	return path, nil
}

func (d *MemDriver) ImportEnd(ctx context.Context, p pool.Pool, v pool.Volume, success bool) error {
	if err := d.enter(ctx, "ImportEnd", p.Name, v.VID); err != nil {
		return err
	}
	if !d.Caps.Import {
		return pool.Errorf(pool.ErrUnimplemented, "ImportEnd not implemented")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, mv, err := d.volLocked(p, v.VID)
	if errors.Is(err, pool.ErrNotFound) {
		return nil
	}
	if err != nil || mv.imp == "" {
		return err
	}
	if success {
		c, err := readFile(mv.imp)
		if err != nil {
			return err
		}
		if c.size != mv.impSize {
			c = c.resized(mv.impSize)
		}
		d.commit(mv, c, v.RevisionsToKeep)
	}
	os.Remove(mv.imp)
	mv.imp = ""
	return nil
}

func (d *MemDriver) ExportBegin(ctx context.Context, p pool.Pool, v pool.Volume) (string, error) {
	if err := d.enter(ctx, "ExportBegin", p.Name, v.VID); err != nil {
		return "", err
	}
	if !d.Caps.Export {
		return "", pool.Errorf(pool.ErrUnimplemented, "ExportBegin not implemented")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	mp, mv, err := d.volLocked(p, v.VID)
	if err != nil {
		return "", err
	}
	c := mv.committed()
	if v.SnapOnStart {
		if src := mp.vols[v.SourceVID]; src != nil {
			c = src.committed()
		}
	}
	path, err := d.tempFile(p, v.VID, "export", c)
	if err != nil {
		return "", err
	}
	if mv.exports == nil {
		mv.exports = map[string]bool{}
	}
	mv.exports[path] = true
	return path, nil
}

func (d *MemDriver) ExportEnd(ctx context.Context, p pool.Pool, v pool.Volume, path string) error {
	if err := d.enter(ctx, "ExportEnd", p.Name, v.VID); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, mv, err := d.volLocked(p, v.VID)
	if errors.Is(err, pool.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if mv.exports[path] {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		delete(mv.exports, path)
	}
	return nil
}

// Files lists the files the driver has handed out and not yet taken back
// (running images, imports, exports), for tests that check nothing leaks.
func (d *MemDriver) Files() []string {
	matches, _ := filepath.Glob(filepath.Join(d.dir, "*.img"))
	return matches
}

var _ pool.Driver = (*MemDriver)(nil)
