// Package pooltest is the conformance suite every qubesd storage pool
// driver passes. A driver's test calls Run with a factory:
//
//	func TestConformance(t *testing.T) {
//		pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) {
//			return &mydriver.Driver{}, pool.Pool{Name: "test", Config: map[string]string{"dir_path": t.TempDir()}}
//		})
//	}
//
// Run drives the driver as the daemon does — behind the SDK's request
// checks (pool.Check), through the pool.Driver interface — so the same
// suite runs a driver in-process and through its plugin process (give Run a
// factory returning the *pool.Client of a launched plugin; see the pool-dir
// example's tests).
//
// What it checks, each in its own subtest: the pool calls; every volume
// type of Qubes (volatile, snapshot, origin; origin_snapshot and ephemeral
// only with the capability) through start/stop cycles with the right persistence; the
// started state (dirty); revisions made at stop and listed oldest first,
// revisions_to_keep honoured (also 0 and -1); revert; resize (grow; shrink
// refused unless the capability says so; read-only refused); clone;
// import begin/end (write through the handed-out path, commit or abort);
// export (the content from before the start while started); idempotency of
// every mutating call (twice succeeds and leaves the state once left); the
// error kinds (ErrNotFound for an unknown volume or revision, ErrInvalid
// for a refused config or spec, ErrInUse for what a started volume
// forbids); calls on different volumes at once.
//
// A subtest that needs a capability the driver does not declare
// (pool.Capabilities) is skipped, saying so. Data is written and read
// through the paths the driver hands out (Start, ImportBegin, ExportBegin),
// with plain file I/O, so they must be files or block devices this process
// can open.
//
// A driver whose volumes are read-only and provided by the pool's storage
// (installed kernels, ISO images) — which Create cannot make, nor a qube
// write — calls RunReadOnly instead, with a factory that also returns a
// ReadOnlyFixture: the volumes the pool holds (and whether Start gives each
// a disk), one it does not hold and, optionally, an incomplete one and a
// way to make the storage vanish. It runs the subtests that apply to such
// a pool, writing nothing (see RunReadOnly).
package pooltest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// Factory returns the driver under test and a pool for it. Each call must
// return a pool of its own, empty (for instance with a t.TempDir() in its
// config); the driver may be shared between calls. Run calls Setup and Open
// on the pool; the factory need not.
type Factory func(t *testing.T) (pool.Driver, pool.Pool)

// Size is the size of the volumes the suite creates: small enough to copy
// fast, big enough to hold several file-system blocks.
const Size = 1 << 20

// Run runs the conformance suite against the driver the factory returns.
func Run(t *testing.T, factory Factory) {
	t.Helper()
	if factory == nil {
		t.Fatal("pooltest.Run: nil factory")
	}
	d, _ := factory(t)
	info := driverInfo(t, d)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(newEnv(t, factory, info))
		})
	}
}

// driverInfo reads the driver's Info once for a whole run, and logs it.
func driverInfo(t *testing.T, d pool.Driver) pool.Info {
	t.Helper()
	info, err := pool.Check(d).Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	t.Logf("driver %q %s: capabilities %+v", info.Name, info.Version, info.Capabilities)
	return info
}

var tests = []struct {
	name string
	fn   func(e *env)
}{
	{"Info", testInfo},
	{"Config", testConfig},
	{"Pool", testPool},
	{"Volatile", testVolatile},
	{"Origin", testOrigin},
	{"OriginReadOnly", testOriginReadOnly},
	{"Snapshot", testSnapshot},
	{"OriginSnapshot", testOriginSnapshot},
	{"Ephemeral", testEphemeral},
	{"Revisions", testRevisions},
	{"RevisionsToKeep", testRevisionsToKeep},
	{"Revert", testRevert},
	{"Resize", testResize},
	{"Shrink", testShrink},
	{"Clone", testClone},
	{"Import", testImport},
	{"Export", testExport},
	{"Remove", testRemove},
	{"ListVolumes", testListVolumes},
	{"Verify", testVerify},
	{"Idempotent", testIdempotent},
	{"Errors", testErrors},
	{"Concurrent", testConcurrent},
}

// env is one subtest's driver and fresh pool, with helpers that fail the
// test on error.
type env struct {
	t    *testing.T
	ctx  context.Context
	d    pool.Driver
	p    pool.Pool
	info pool.Info
	caps pool.Capabilities
	// committed is what the suite wrote last to each volume's committed
	// content (a marker), and revs each revision's, so that a revert can be
	// checked whatever ids the driver picks.
	committed map[string]string
	revs      map[string]map[string]string
}

func newEnv(t *testing.T, factory Factory, info pool.Info) *env {
	d, p := factory(t)
	return openEnv(t, d, p, info)
}

// openEnv puts d behind the SDK's request checks and sets up and opens p,
// as the daemon does with a pool it adds.
func openEnv(t *testing.T, d pool.Driver, p pool.Pool, info pool.Info) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), d: pool.Check(d), p: p, info: info, caps: info.Capabilities,
		committed: map[string]string{}, revs: map[string]map[string]string{}}
	if err := e.d.ValidateConfig(e.ctx, p.Config); err != nil {
		t.Fatalf("ValidateConfig of the factory's pool config %v: %v", p.Config, err)
	}
	e.ok(e.d.Setup(e.ctx, p), "Setup")
	e.ok(e.d.Open(e.ctx, p), "Open")
	return e
}

func (e *env) ok(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// kind checks that err is of the given kind.
func (e *env) kind(err, kind error, what string) {
	e.t.Helper()
	if !errors.Is(err, kind) {
		e.t.Errorf("%s: got error %v, want an error of kind %q (pool.%s)", what, err, kind, kindName(kind))
	}
}

func kindName(kind error) string {
	for name, k := range map[string]error{
		"ErrNotFound": pool.ErrNotFound, "ErrAlreadyExists": pool.ErrAlreadyExists, "ErrInUse": pool.ErrInUse,
		"ErrPoolFull": pool.ErrPoolFull, "ErrInvalid": pool.ErrInvalid, "ErrUnimplemented": pool.ErrUnimplemented,
		"ErrUnavailable": pool.ErrUnavailable,
	} {
		if k == kind {
			return name
		}
	}
	return "?"
}

func (e *env) need(have bool, capability string) {
	e.t.Helper()
	if !have {
		e.t.Skipf("skipped: the driver does not declare the %s capability", capability)
	}
}

// Volume specs as the daemon builds them.

func origin(vid string, keep int) pool.Volume {
	return pool.Volume{VID: vid, Name: "private", Size: Size, RW: true, SaveOnStop: true, RevisionsToKeep: keep}
}

func volatile(vid string) pool.Volume {
	return pool.Volume{VID: vid, Name: "volatile", Size: Size, RW: true}
}

func snapshot(vid string, src pool.Volume) pool.Volume {
	return pool.Volume{VID: vid, Name: "root", Size: src.Size, RW: true, SnapOnStart: true, SourceVID: src.VID}
}

func (e *env) create(v pool.Volume) {
	e.t.Helper()
	e.ok(e.d.Create(e.ctx, e.p, v), "Create "+v.VID)
	if v.SaveOnStop {
		e.committed[v.VID] = ""
	}
}

func (e *env) start(v pool.Volume) pool.BlockDevice {
	e.t.Helper()
	bd, err := e.d.Start(e.ctx, e.p, v)
	e.ok(err, "Start "+v.VID)
	if bd.Path == "" {
		e.t.Fatalf("Start %s: no device path", v.VID)
	}
	return bd
}

// stop stops v and, for a committing volume, records the commit: the
// revisions that appeared hold the content committed before.
func (e *env) stop(v pool.Volume, wrote string) {
	e.t.Helper()
	before := e.revIDs(v)
	e.ok(e.d.Stop(e.ctx, e.p, v), "Stop "+v.VID)
	if v.Type() == pool.Origin && v.RW {
		e.recordCommit(v, before, wrote)
	}
}

func (e *env) recordCommit(v pool.Volume, before []string, now string) {
	e.t.Helper()
	if e.revs[v.VID] == nil {
		e.revs[v.VID] = map[string]string{}
	}
	for _, id := range e.revIDs(v) {
		if !slices.Contains(before, id) {
			e.revs[v.VID][id] = e.committed[v.VID]
		}
	}
	e.committed[v.VID] = now
}

// cycle starts v, writes marker (unless empty) and stops it.
func (e *env) cycle(v pool.Volume, marker string) {
	e.t.Helper()
	bd := e.start(v)
	content := e.read(bd.Path)
	if marker != "" {
		e.write(bd.Path, marker)
		content = marker
	}
	e.stop(v, content)
}

func (e *env) revisions(v pool.Volume) []pool.Revision {
	e.t.Helper()
	if !e.caps.Revisions {
		return nil
	}
	revs, err := e.d.ListRevisions(e.ctx, e.p, v)
	e.ok(err, "ListRevisions "+v.VID)
	return revs
}

func (e *env) revIDs(v pool.Volume) []string {
	e.t.Helper()
	var ids []string
	for _, r := range e.revisions(v) {
		ids = append(ids, r.ID)
	}
	return ids
}

func (e *env) state(v pool.Volume) pool.VolumeState {
	e.t.Helper()
	st, err := e.d.VolumeInfo(e.ctx, e.p, v)
	e.ok(err, "VolumeInfo "+v.VID)
	return st
}

// committedContent reads v's committed content without changing it when
// the driver exports, else through a start/stop cycle (which commits).
func (e *env) committedContent(v pool.Volume) string {
	e.t.Helper()
	if e.caps.Export && v.SaveOnStop {
		path, err := e.d.ExportBegin(e.ctx, e.p, v)
		e.ok(err, "ExportBegin "+v.VID)
		defer func() { e.ok(e.d.ExportEnd(e.ctx, e.p, v, path), "ExportEnd "+v.VID) }()
		return e.read(path)
	}
	bd := e.start(v)
	got := e.read(bd.Path)
	e.stop(v, got)
	return got
}
