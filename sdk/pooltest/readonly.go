package pooltest

// readonly.go: the conformance suite for a pool of read-only volumes that
// its storage provides (RunReadOnly).

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// ReadOnlyFactory returns the driver under test, a pool and the fixture
// describing the volumes the pool's storage holds. Each call must return a
// pool of its own whose storage holds the fixture's volumes (for instance
// a t.TempDir() the factory fills), since a subtest may make it vanish; the
// driver may be shared between calls. RunReadOnly calls Setup and Open on
// the pool; the factory need not.
type ReadOnlyFactory func(t *testing.T) (pool.Driver, pool.Pool, ReadOnlyFixture)

// ReadOnlyFixture describes what a read-only pool's storage holds.
type ReadOnlyFixture struct {
	// Volumes are the volumes the storage provides: what ListVolumes must
	// list, exactly, in any order. At least one. Their specs are those the
	// daemon gives such volumes: neither rw nor save_on_stop.
	Volumes []FixtureVolume
	// Absent is a well-formed volume spec, like those of Volumes, that the
	// pool does not hold.
	Absent pool.Volume
	// Incomplete is optional: a volume whose storage is there but
	// incomplete (a kernel directory without vmlinuz), which Verify must
	// refuse. Nil skips that check.
	Incomplete *pool.Volume
	// Vanish is optional: it makes the pool's storage disappear (removes
	// its directory), after which Open must fail with ErrUnavailable. Nil
	// skips that check.
	Vanish func()
}

// FixtureVolume is one volume a read-only pool holds.
type FixtureVolume struct {
	// Spec is the volume's spec as the daemon keeps it.
	Spec pool.Volume
	// Disk: Start gives a device (a non-empty path). Without it Start
	// gives no disk, an empty path (a kernel without modules.img).
	Disk bool
}

// RunReadOnly runs the conformance subtests that apply to a driver whose
// volumes are read-only and provided by the pool's storage (installed
// kernels, ISO images) rather than made by Create: the factory returns the
// driver, a pool, and a fixture describing the volumes the pool holds.
//
// It checks, each in its own subtest: Info (as Run does, and no capability
// that needs writable volumes); config validation (as Run does); the pool
// calls; that ListVolumes lists exactly the fixture's volumes, as
// VolumeInfo describes them; VolumeInfo (never dirty nor outdated); Start
// (a read-only device, or no disk, the same when started twice, and again
// after a Stop); that Create, Stop and Remove are harmless and idempotent
// (the volume is the storage's: it stays listed, unchanged); the absent
// volume (ErrNotFound from VolumeInfo, Start, Verify and Resize; Stop and
// Remove succeed); refusal of a rw or save_on_stop spec (ErrInvalid);
// Resize refused (ErrInvalid); Verify; concurrent use of one volume (the
// daemon starts a pool's shared volume for several qubes at once); Open
// after the storage vanished (ErrUnavailable). Nothing is written to the
// volumes; the devices Start gives are read with plain file I/O.
func RunReadOnly(t *testing.T, factory ReadOnlyFactory) {
	t.Helper()
	if factory == nil {
		t.Fatal("pooltest.RunReadOnly: nil factory")
	}
	d, _, _ := factory(t)
	info := driverInfo(t, d)
	for _, tc := range readOnlyTests {
		t.Run(tc.name, func(t *testing.T) {
			d, p, fx := factory(t)
			checkFixture(t, fx)
			tc.fn(&roEnv{env: openEnv(t, d, p, info), fx: fx})
		})
	}
}

var readOnlyTests = []struct {
	name string
	fn   func(e *roEnv)
}{
	{"Info", testROInfo},
	{"Config", func(e *roEnv) { testConfig(e.env) }},
	{"Pool", func(e *roEnv) { e.poolCalls() }},
	{"ListVolumes", testROListVolumes},
	{"VolumeInfo", testROVolumeInfo},
	{"Start", testROStart},
	{"Harmless", testROHarmless},
	{"Absent", testROAbsent},
	{"WritableSpec", testROWritableSpec},
	{"Resize", testROResize},
	{"Verify", testROVerify},
	{"Concurrent", testROConcurrent},
	{"Vanish", testROVanish},
}

// roEnv is env with the fixture of the pool.
type roEnv struct {
	*env
	fx ReadOnlyFixture
}

// checkFixture fails the test on a fixture the suite cannot use: the
// mistake is the factory's, not the driver's.
func checkFixture(t *testing.T, fx ReadOnlyFixture) {
	t.Helper()
	if len(fx.Volumes) == 0 {
		t.Fatal("pooltest.RunReadOnly: the fixture has no volume: give at least one the pool's storage holds")
	}
	spec := func(v pool.Volume, what string) {
		t.Helper()
		if err := v.Validate(); err != nil {
			t.Fatalf("pooltest.RunReadOnly: fixture %s: %v", what, err)
		}
		if v.RW || v.SaveOnStop {
			t.Fatalf("pooltest.RunReadOnly: fixture %s %s: rw=%v save_on_stop=%v: give the spec of a read-only volume (both false)",
				what, v.VID, v.RW, v.SaveOnStop)
		}
	}
	held := map[string]bool{}
	for _, fv := range fx.Volumes {
		spec(fv.Spec, "volume")
		if held[fv.Spec.VID] {
			t.Fatalf("pooltest.RunReadOnly: fixture volume %s given twice", fv.Spec.VID)
		}
		held[fv.Spec.VID] = true
	}
	spec(fx.Absent, "Absent volume")
	if held[fx.Absent.VID] {
		t.Fatalf("pooltest.RunReadOnly: fixture Absent volume %s is among the fixture's volumes", fx.Absent.VID)
	}
	if fx.Incomplete != nil {
		spec(*fx.Incomplete, "Incomplete volume")
	}
}

// startRO starts a fixture volume and checks the device: read-only, a
// path exactly when the fixture says it has a disk, a known device type.
func (e *roEnv) startRO(fv FixtureVolume) pool.BlockDevice {
	e.t.Helper()
	v := fv.Spec
	bd, err := e.d.Start(e.ctx, e.p, v)
	e.ok(err, "Start "+v.VID)
	switch {
	case fv.Disk && bd.Path == "":
		e.t.Fatalf("Start %s: no device (an empty path), but the fixture says the volume has a disk", v.VID)
	case !fv.Disk && bd.Path != "":
		e.t.Fatalf("Start %s: device %s, but the fixture says the volume has none: Start must then return an empty path (no disk)", v.VID, bd.Path)
	}
	if bd.RW {
		e.t.Errorf("Start %s: the device is rw (BlockDevice.RW): a read-only volume's must not be", v.VID)
	}
	if bd.DevType != "" && bd.DevType != "disk" && bd.DevType != "cdrom" {
		e.t.Errorf("Start %s: device type %q: want \"disk\" (or empty) or \"cdrom\"", v.VID, bd.DevType)
	}
	return bd
}

// unchanged checks that v is still there, listed, with the state want,
// after what (calls that must leave a read-only volume as it was).
func (e *roEnv) unchanged(v pool.Volume, want pool.VolumeState, what string) {
	e.t.Helper()
	st, err := e.d.VolumeInfo(e.ctx, e.p, v)
	if errors.Is(err, pool.ErrNotFound) {
		e.t.Errorf("after %s, VolumeInfo finds no volume %s (%v): the volume is the pool's storage's, and must stay", what, v.VID, err)
		return
	}
	e.ok(err, "VolumeInfo "+v.VID+" after "+what)
	if st != want {
		e.t.Errorf("after %s, VolumeInfo of %s changed from\n\t%+v\nto\n\t%+v\na read-only volume does not change", what, v.VID, want, st)
	}
	if _, ok := e.listed()[v.VID]; !ok {
		e.t.Errorf("after %s, ListVolumes no longer lists %s: the volume is the pool's storage's, and must stay", what, v.VID)
	}
}

// writeCapabilities are the capabilities whose calls need writable volumes.
func writeCapabilities(c pool.Capabilities) map[string]bool {
	return map[string]bool{"Revisions": c.Revisions, "Shrink": c.Shrink, "FastClone": c.FastClone,
		"Import": c.Import, "Ephemeral": c.Ephemeral, "OriginSnapshot": c.OriginSnapshot}
}

func testROInfo(e *roEnv) {
	testInfo(e.env)
	caps := writeCapabilities(e.caps)
	for _, name := range slices.Sorted(maps.Keys(caps)) {
		if caps[name] {
			e.t.Errorf("Info declares the %s capability, which needs writable volumes: a pool of read-only volumes "+
				"must not declare it (the daemon would make calls its volumes cannot serve)", name)
		}
	}
	if e.caps.Export {
		e.t.Log("Info declares Export: RunReadOnly does not check ExportBegin and ExportEnd")
	}
}

func testROListVolumes(e *roEnv) {
	listed := e.listed()
	for _, fv := range e.fx.Volumes {
		v := fv.Spec
		got, ok := listed[v.VID]
		if !ok {
			e.t.Errorf("ListVolumes does not list %s, which the pool's storage holds (listed: %v)", v.VID, slices.Sorted(maps.Keys(listed)))
			continue
		}
		delete(listed, v.VID)
		if st := e.state(v); got != st {
			e.t.Errorf("ListVolumes and VolumeInfo disagree about %s:\n\tListVolumes %+v\n\tVolumeInfo  %+v", v.VID, got, st)
		}
	}
	for _, vid := range slices.Sorted(maps.Keys(listed)) {
		e.t.Errorf("ListVolumes lists %s, which is not among the volumes the pool's storage holds: "+
			"list only the volumes a qube can use (ListVolumes lists the volumes that have storage in the pool)", vid)
	}
	if _, ok := e.listed()[e.fx.Absent.VID]; ok {
		e.t.Errorf("ListVolumes lists %s, which the pool does not hold", e.fx.Absent.VID)
	}
}

func testROVolumeInfo(e *roEnv) {
	for _, fv := range e.fx.Volumes {
		v := fv.Spec
		st := e.state(v)
		if st.VID != "" && st.VID != v.VID {
			e.t.Errorf("VolumeInfo %s: the state is of volume %q", v.VID, st.VID)
		}
		if st.Dirty {
			e.t.Errorf("VolumeInfo %s: dirty: only a started save_on_stop volume is dirty, and a read-only volume has nothing to commit", v.VID)
		}
		if st.Outdated {
			e.t.Errorf("VolumeInfo %s: outdated: only a started snapshot volume can be, and a read-only pool's volume is none", v.VID)
		}
	}
}

// testROStart: Start gives the same read-only device (or none) twice, the
// size VolumeInfo reports, and the same again after a Stop.
func testROStart(e *roEnv) {
	for _, fv := range e.fx.Volumes {
		v := fv.Spec
		want := e.state(v)
		first := e.startRO(fv)
		if second := e.startRO(fv); second != first {
			e.t.Errorf("Start of the started volume %s: %+v, the first Start gave %+v: starting a started volume returns the same device",
				v.VID, second, first)
		}
		var head string
		if fv.Disk {
			head = e.head(first.Path)
			if n := e.size(first.Path); uint64(n) != want.Size {
				e.t.Errorf("Start %s: the device is %d bytes, VolumeInfo says %d", v.VID, n, want.Size)
			}
		}
		e.unchanged(v, want, "Start")
		e.ok(e.d.Stop(e.ctx, e.p, v), "Stop "+v.VID)
		again := e.startRO(fv)
		if fv.Disk && e.head(again.Path) != head {
			e.t.Errorf("Start %s after a Stop: the device's content changed: a read-only volume's does not", v.VID)
		}
		e.ok(e.d.Stop(e.ctx, e.p, v), "Stop "+v.VID)
	}
}

// testROHarmless: Create, Stop and Remove of a volume the storage provides
// succeed, twice, and leave it there unchanged (Create finds it there, a
// stopped volume stays stopped, the storage is not the qube's to remove).
func testROHarmless(e *roEnv) {
	for _, fv := range e.fx.Volumes {
		v := fv.Spec
		want := e.state(v)
		for _, c := range []struct {
			name string
			call func() error
		}{
			{"Create", func() error { return e.d.Create(e.ctx, e.p, v) }},
			{"Stop", func() error { return e.d.Stop(e.ctx, e.p, v) }},
			{"Remove", func() error { return e.d.Remove(e.ctx, e.p, v) }},
			{"Start then Stop", func() error {
				e.startRO(fv)
				return e.d.Stop(e.ctx, e.p, v)
			}},
		} {
			for i := range 2 {
				e.ok(c.call(), fmt.Sprintf("%s of %s (call %d of 2)", c.name, v.VID, i+1))
			}
			e.unchanged(v, want, c.name+" twice")
		}
	}
}

// testROAbsent: the calls on a volume the pool does not hold.
func testROAbsent(e *roEnv) {
	a := e.fx.Absent
	_, err := e.d.VolumeInfo(e.ctx, e.p, a)
	e.kind(err, pool.ErrNotFound, "VolumeInfo of "+a.VID+", which the pool does not hold")
	_, err = e.d.Start(e.ctx, e.p, a)
	e.kind(err, pool.ErrNotFound, "Start of "+a.VID+", which the pool does not hold")
	e.kind(e.d.Verify(e.ctx, e.p, a), pool.ErrNotFound, "Verify of "+a.VID+", which the pool does not hold")
	e.kind(e.d.Resize(e.ctx, e.p, a, Size), pool.ErrNotFound, "Resize of "+a.VID+", which the pool does not hold")
	for i := range 2 {
		// pool.Driver: stopping a stopped volume does nothing; removing an
		// absent volume is not an error (a volume gone from the storage
		// must not keep its qube from stopping or being removed).
		e.ok(e.d.Stop(e.ctx, e.p, a), fmt.Sprintf("Stop of %s, which the pool does not hold (call %d of 2): it must succeed", a.VID, i+1))
		e.ok(e.d.Remove(e.ctx, e.p, a), fmt.Sprintf("Remove of %s, which the pool does not hold (call %d of 2): it must succeed", a.VID, i+1))
	}
	if _, ok := e.listed()[a.VID]; ok {
		e.t.Errorf("after Stop and Remove of %s, which the pool does not hold, ListVolumes lists it", a.VID)
	}
	// Last, as it may make the volume: Create either fails or the volume
	// is there afterwards.
	if err := e.d.Create(e.ctx, e.p, a); err != nil {
		e.t.Logf("Create of %s, which the pool does not hold: %v", a.VID, err)
	} else if _, err := e.d.VolumeInfo(e.ctx, e.p, a); err != nil {
		e.t.Errorf("Create of %s, which the pool does not hold, succeeded, but VolumeInfo then says %v: "+
			"Create must make the volume or fail", a.VID, err)
	}
}

// testROWritableSpec: a spec that would make a volume writable or
// committed is refused, and the volume stays as it was.
func testROWritableSpec(e *roEnv) {
	for _, fv := range e.fx.Volumes {
		v := fv.Spec
		want := e.state(v)
		rw, sos := v, v
		rw.RW = true
		sos.SaveOnStop = true
		for _, c := range []struct {
			what string
			v    pool.Volume
		}{{"rw", rw}, {"save_on_stop", sos}} {
			why := fmt.Sprintf(" of %s with %s: a read-only pool's volume cannot be %s", v.VID, c.what, c.what)
			e.kind(e.d.Create(e.ctx, e.p, c.v), pool.ErrInvalid, "Create"+why)
			_, err := e.d.Start(e.ctx, e.p, c.v)
			e.kind(err, pool.ErrInvalid, "Start"+why)
		}
		e.unchanged(v, want, "the refused Create and Start")
	}
}

// testROResize: pool.Driver says resizing a read-only volume is ErrInvalid.
func testROResize(e *roEnv) {
	for _, fv := range e.fx.Volumes {
		v := fv.Spec
		want := e.state(v)
		size := max(v.Size, want.Size) + Size
		e.kind(e.d.Resize(e.ctx, e.p, v, size), pool.ErrInvalid,
			"Resize of the read-only volume "+v.VID+" (pool.Driver: resizing a read-only volume is ErrInvalid)")
		e.unchanged(v, want, "the refused Resize")
	}
}

func testROVerify(e *roEnv) {
	for _, fv := range e.fx.Volumes {
		e.ok(e.d.Verify(e.ctx, e.p, fv.Spec), "Verify "+fv.Spec.VID)
	}
	if e.fx.Incomplete == nil {
		e.t.Skip("skipped the incomplete volume: the fixture gives none (ReadOnlyFixture.Incomplete)")
	}
	v := *e.fx.Incomplete
	if err := e.d.Verify(e.ctx, e.p, v); err != nil {
		e.t.Logf("Verify of the incomplete volume %s: %v", v.VID, err)
	} else {
		e.t.Errorf("Verify of %s, whose storage is incomplete: no error: Verify checks that the storage is complete and says what is wrong", v.VID)
	}
}

// testROConcurrent: a read-only pool's volume is shared (every qube using
// a kernel has its volume), so the daemon may start, stop and inspect one
// volume for several qubes at once. Each gets the device a lone Start gives.
func testROConcurrent(e *roEnv) {
	const users = 4
	devices := make([]pool.BlockDevice, len(e.fx.Volumes))
	for i, fv := range e.fx.Volumes {
		devices[i] = e.startRO(fv)
		e.ok(e.d.Stop(e.ctx, e.p, fv.Spec), "Stop "+fv.Spec.VID)
	}
	var uses []func() error
	for range users {
		for i, fv := range e.fx.Volumes {
			uses = append(uses, func() error { return e.share(fv.Spec, devices[i]) })
		}
		uses = append(uses, func() error {
			_, err := e.d.ListVolumes(e.ctx, e.p)
			return err
		})
	}
	e.parallel(uses...)
}

// share is one qube's use of a shared volume: it returns the first error
// (it runs outside the test goroutine, so it cannot fail the test).
func (e *roEnv) share(v pool.Volume, want pool.BlockDevice) error {
	bd, err := e.d.Start(e.ctx, e.p, v)
	if err != nil {
		return fmt.Errorf("Start %s: %w", v.VID, err)
	}
	if bd != want {
		return fmt.Errorf("concurrent Start %s: %+v, a lone Start gave %+v", v.VID, bd, want)
	}
	if _, err := e.d.VolumeInfo(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("VolumeInfo %s: %w", v.VID, err)
	}
	if err := e.d.Verify(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("Verify %s: %w", v.VID, err)
	}
	if err := e.d.Stop(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("Stop %s: %w", v.VID, err)
	}
	return nil
}

// testROVanish: pool.Driver says Open fails with ErrUnavailable when the
// pool's storage is not there (a disk not mounted, a broken install).
func testROVanish(e *roEnv) {
	if e.fx.Vanish == nil {
		e.t.Skip("skipped: the fixture cannot make the storage vanish (ReadOnlyFixture.Vanish)")
	}
	e.fx.Vanish()
	e.kind(e.d.Open(e.ctx, e.p), pool.ErrUnavailable, "Open after the pool's storage vanished")
}
