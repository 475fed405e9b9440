package pooltest

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/pool"
)

const unknownKey = "pooltest-unknown-key"

func testInfo(e *env) {
	if e.info.Name == "" {
		e.t.Error("Info: empty driver name")
	}
	if v := e.info.ProtocolVersion; v != 0 && v != sdk.ProtocolVersion {
		e.t.Errorf("Info: protocol version %d, want %d", v, sdk.ProtocolVersion)
	}
	for _, k := range e.info.PoolConfig {
		if k.Name == "" {
			e.t.Errorf("Info: a pool config key without a name: %+v", k)
		}
	}
}

func testConfig(e *env) {
	cfg := maps.Clone(e.p.Config)
	if cfg == nil {
		cfg = map[string]string{}
	}
	cfg[unknownKey] = "x"
	err := e.d.ValidateConfig(e.ctx, cfg)
	e.kind(err, pool.ErrInvalid, "ValidateConfig with an unknown key")
	if err != nil && !strings.Contains(err.Error(), unknownKey) {
		e.t.Errorf("ValidateConfig with an unknown key: the error %q does not name the key %q", err, unknownKey)
	}
	for _, k := range e.info.PoolConfig {
		if k.Required {
			cfg := maps.Clone(e.p.Config)
			delete(cfg, k.Name)
			e.kind(e.d.ValidateConfig(e.ctx, cfg), pool.ErrInvalid, "ValidateConfig without the required key "+k.Name)
		}
	}
	// A call whose pool config the driver refuses never reaches it.
	bad := e.p
	bad.Config = cfg
	e.kind(e.d.Create(e.ctx, bad, origin("pooltest/bad-config", 1)), pool.ErrInvalid, "Create in a pool with an invalid config")

	err = e.d.Configure(e.ctx, []byte(`{"`+unknownKey+`": true}`))
	e.kind(err, pool.ErrInvalid, "Configure with an unknown key")
	e.kind(e.d.Configure(e.ctx, []byte(`{not json`)), pool.ErrInvalid, "Configure with malformed JSON")
}

func testPool(e *env) {
	e.poolCalls()
	vols, err := e.d.ListVolumes(e.ctx, e.p)
	e.ok(err, "ListVolumes")
	if len(vols) != 0 {
		e.t.Errorf("ListVolumes of a new pool: %v, want none", vols)
	}
}

// poolCalls checks the pool calls on an opened pool: Setup and Open again
// (idempotent: the storage is there), and Usage.
func (e *env) poolCalls() {
	e.t.Helper()
	e.ok(e.d.Setup(e.ctx, e.p), "Setup again")
	e.ok(e.d.Open(e.ctx, e.p), "Open again")
	u, err := e.d.Usage(e.ctx, e.p)
	e.ok(err, "Usage")
	if u.Size != 0 && u.Usage > u.Size {
		e.t.Errorf("Usage: usage %d > size %d", u.Usage, u.Size)
	}
}

func testVolatile(e *env) {
	v := volatile("pooltest/volatile")
	e.create(v)
	for i := range 2 {
		bd := e.start(v)
		if !bd.RW {
			e.t.Errorf("Start of a rw volume: device not rw")
		}
		if n := e.size(bd.Path); n != Size {
			e.t.Errorf("start %d: size %d, want %d", i, n, Size)
		}
		if got := e.read(bd.Path); got != "" {
			e.t.Errorf("start %d: a volatile volume holds %q, want zeros", i, got)
		}
		if e.state(v).Dirty {
			e.t.Errorf("VolumeInfo: a started volatile volume is dirty")
		}
		e.write(bd.Path, "volatile-data")
		e.stop(v, "")
	}
	if revs := e.revisions(v); len(revs) != 0 {
		e.t.Errorf("a volatile volume has revisions %v", revs)
	}
}

func testOrigin(e *env) {
	v := origin("pooltest/origin", 1)
	e.create(v)
	if e.state(v).Dirty {
		e.t.Error("VolumeInfo: a new volume is dirty")
	}
	bd := e.start(v)
	if n := e.size(bd.Path); n != Size {
		e.t.Errorf("size %d, want %d", n, Size)
	}
	if got := e.read(bd.Path); got != "" {
		e.t.Errorf("a new origin volume holds %q, want zeros", got)
	}
	if !e.state(v).Dirty {
		e.t.Error("VolumeInfo: a started origin volume is not dirty")
	}
	e.write(bd.Path, "origin-1")
	e.stop(v, "origin-1")
	if e.state(v).Dirty {
		e.t.Error("VolumeInfo: a stopped origin volume is dirty")
	}
	bd = e.start(v)
	if got := e.read(bd.Path); got != "origin-1" {
		e.t.Errorf("after a stop and a start: %q, want the committed %q", got, "origin-1")
	}
	e.write(bd.Path, "origin-2")
	e.stop(v, "origin-2")
	if got := e.committedContent(v); got != "origin-2" {
		e.t.Errorf("committed content %q, want %q", got, "origin-2")
	}
	// Create of an existing volume is a retry: it must not touch the data.
	e.ok(e.d.Create(e.ctx, e.p, v), "Create of an existing volume")
	if got := e.committedContent(v); got != "origin-2" {
		e.t.Errorf("Create of an existing volume changed its content to %q", got)
	}
}

func testOriginReadOnly(e *env) {
	v := origin("pooltest/origin-ro", 1)
	e.create(v)
	e.cycle(v, "ro-1")
	ro := v
	ro.RW = false
	bd := e.start(ro)
	if bd.RW {
		e.t.Error("Start of a read-only volume: device is rw")
	}
	if got := e.read(bd.Path); got != "ro-1" {
		e.t.Errorf("read-only start: %q, want %q", got, "ro-1")
	}
	if f, err := os.OpenFile(bd.Path, os.O_WRONLY, 0); err == nil {
		f.Close()
		e.write(bd.Path, "ro-2") // what a buggy qube could do: it must not stick
	}
	e.stop(ro, "")
	if got := e.committedContent(ro); got != "ro-1" {
		e.t.Errorf("after a read-only start: %q, want %q unchanged", got, "ro-1")
	}
}

func testSnapshot(e *env) {
	src := origin("pooltest/template-root", 1)
	e.create(src)
	e.cycle(src, "template-1")
	s := snapshot("pooltest/app-root", src)
	e.create(s)
	for i := range 2 {
		bd := e.start(s)
		if got := e.read(bd.Path); got != "template-1" {
			e.t.Errorf("start %d: snapshot holds %q, want the source's %q", i, got, "template-1")
		}
		if e.state(s).Dirty {
			e.t.Error("VolumeInfo: a started snapshot volume is dirty")
		}
		e.write(bd.Path, "app-1")
		e.stop(s, "")
	}
	if got := e.committedContent(src); got != "template-1" {
		e.t.Errorf("source after the snapshot was written: %q, want %q", got, "template-1")
	}
	// A snapshot taken while the source runs sees the source's committed
	// content, not what its qube is writing.
	bdSrc := e.start(src)
	e.write(bdSrc.Path, "template-2")
	bd := e.start(s)
	if got := e.read(bd.Path); got != "template-1" {
		e.t.Errorf("snapshot of a started source: %q, want the committed %q", got, "template-1")
	}
	e.stop(s, "")
	e.stop(src, "template-2")
	bd = e.start(s)
	if got := e.read(bd.Path); got != "template-2" {
		e.t.Errorf("snapshot after the source committed: %q, want %q", got, "template-2")
	}
	e.stop(s, "")
}

func testOriginSnapshot(e *env) {
	e.need(e.caps.OriginSnapshot, "OriginSnapshot")
	src := origin("pooltest/os-source", 1)
	e.create(src)
	e.cycle(src, "os-base")
	v := pool.Volume{VID: "pooltest/os", Name: "root", Size: Size, RW: true, SnapOnStart: true, SaveOnStop: true, SourceVID: src.VID}
	e.ok(e.d.Create(e.ctx, e.p, v), "Create")
	bd := e.start(v)
	if got := e.read(bd.Path); got != "os-base" {
		e.t.Errorf("origin_snapshot start: %q, want the source's %q", got, "os-base")
	}
	e.ok(e.d.Stop(e.ctx, e.p, v), "Stop")
}

// testEphemeral: a volatile volume the driver encrypts with a throw-away
// key behaves as a volatile one (what the encryption does is not visible
// from here).
func testEphemeral(e *env) {
	e.need(e.caps.Ephemeral, "Ephemeral")
	v := volatile("pooltest/ephemeral")
	v.Ephemeral = true
	e.create(v)
	for i := range 2 {
		bd := e.start(v)
		if got := e.read(bd.Path); got != "" {
			e.t.Errorf("start %d: an ephemeral volume holds %q, want zeros", i, got)
		}
		e.write(bd.Path, "ephemeral-data")
		e.stop(v, "")
	}
}

var revisionID = regexp.MustCompile(`^[A-Za-z0-9:._-]+$`)

func testRevisions(e *env) {
	e.need(e.caps.Revisions, "Revisions")
	v := origin("pooltest/revisions", 2)
	e.create(v)
	for i := 1; i <= 4; i++ {
		before := e.revIDs(v)
		e.cycle(v, fmt.Sprintf("gen-%d", i))
		revs := e.revisions(v)
		if len(revs) != min(i, 2) {
			e.t.Fatalf("after commit %d with revisions_to_keep 2: %d revisions %v, want %d", i, len(revs), revs, min(i, 2))
		}
		seen := map[string]bool{}
		for j, r := range revs {
			if !revisionID.MatchString(r.ID) || seen[r.ID] {
				e.t.Errorf("revision id %q: not unique or not [A-Za-z0-9:._-]+", r.ID)
			}
			seen[r.ID] = true
			if r.Time.IsZero() {
				e.t.Errorf("revision %s has no time", r.ID)
			}
			if j > 0 && r.Time.Before(revs[j-1].Time) {
				e.t.Errorf("revisions not oldest first: %v", revs)
			}
		}
		if newest := revs[len(revs)-1].ID; slices.Contains(before, newest) {
			e.t.Errorf("after commit %d the newest revision %s is an old one (%v): the new revision must be listed last", i, newest, before)
		}
	}
	// Kept: the contents replaced by the last two commits, oldest first.
	revs := e.revisions(v)
	for j, want := range []string{"gen-2", "gen-3"} {
		if got := e.revs[v.VID][revs[j].ID]; got != want {
			e.t.Errorf("revision %d (%s) was made from %q, want %q", j, revs[j].ID, got, want)
		}
	}
}

func testRevisionsToKeep(e *env) {
	e.need(e.caps.Revisions, "Revisions")
	for _, keep := range []int{0, -1} {
		v := origin(fmt.Sprintf("pooltest/keep%d", keep), keep)
		e.create(v)
		e.cycle(v, "a")
		e.cycle(v, "b")
		if revs := e.revisions(v); len(revs) != 0 {
			e.t.Errorf("revisions_to_keep %d: %d revisions kept", keep, len(revs))
		}
		if got := e.committedContent(v); got != "b" {
			e.t.Errorf("revisions_to_keep %d: content %q, want %q", keep, got, "b")
		}
	}
	v := origin("pooltest/keep-lowered", 3)
	e.create(v)
	for _, m := range []string{"a", "b", "c"} {
		e.cycle(v, m)
	}
	if n := len(e.revisions(v)); n != 3 {
		e.t.Fatalf("revisions_to_keep 3 after 3 commits: %d revisions", n)
	}
	v.RevisionsToKeep = 1
	e.cycle(v, "d")
	if revs := e.revisions(v); len(revs) != 1 || e.revs[v.VID][revs[0].ID] != "c" {
		e.t.Errorf("revisions_to_keep lowered to 1: revisions %v, want one made from %q", revs, "c")
	}
}

func testRevert(e *env) {
	e.need(e.caps.Revisions, "Revisions")
	v := origin("pooltest/revert", 3)
	e.create(v)
	for _, m := range []string{"a", "b", "c"} {
		e.cycle(v, m)
	}
	revs := e.revisions(v)
	target := revs[1] // made from "a"
	if want := e.revs[v.VID][target.ID]; want != "a" {
		e.t.Fatalf("revision %s made from %q, want %q", target.ID, want, "a")
	}
	for i := range 2 { // twice: idempotent
		e.ok(e.d.Revert(e.ctx, e.p, v, target.ID), fmt.Sprintf("Revert %d to %s", i, target.ID))
		if ids := e.revIDs(v); !slices.Contains(ids, target.ID) {
			e.t.Fatalf("Revert consumed revision %s (left %v): the revision must stay", target.ID, ids)
		}
	}
	e.committed[v.VID] = "a"
	if got := e.committedContent(v); got != "a" {
		e.t.Errorf("after Revert: content %q, want %q", got, "a")
	}
	// "" means the latest revision.
	revs = e.revisions(v)
	latest := e.revs[v.VID][revs[len(revs)-1].ID]
	e.ok(e.d.Revert(e.ctx, e.p, v, ""), "Revert to the latest")
	e.committed[v.VID] = latest
	if got := e.committedContent(v); got != latest {
		e.t.Errorf("after Revert to the latest: content %q, want %q", got, latest)
	}

	e.start(v)
	e.kind(e.d.Revert(e.ctx, e.p, v, revs[0].ID), pool.ErrInUse, "Revert of a started volume")
	e.stop(v, e.committed[v.VID])
	e.kind(e.d.Revert(e.ctx, e.p, v, "pooltest-no-such-revision"), pool.ErrNotFound, "Revert to an unknown revision")

	none := origin("pooltest/revert-none", 0)
	e.create(none)
	e.kind(e.d.Revert(e.ctx, e.p, none, ""), pool.ErrNotFound, "Revert of a volume without revisions")
}

func testResize(e *env) {
	o := origin("pooltest/resize", 0)
	e.create(o)
	e.cycle(o, "resize-1")
	for i := range 2 { // twice: idempotent
		e.ok(e.d.Resize(e.ctx, e.p, o, 2*Size), fmt.Sprintf("Resize %d of a stopped volume", i))
	}
	o.Size = 2 * Size
	if n := e.state(o).Size; n != 2*Size {
		e.t.Errorf("VolumeInfo after Resize: size %d, want %d", n, 2*Size)
	}
	bd := e.start(o)
	if n := e.size(bd.Path); n != 2*Size {
		e.t.Errorf("started after Resize: size %d, want %d", n, 2*Size)
	}
	if got := e.read(bd.Path); got != "resize-1" {
		e.t.Errorf("after Resize: content %q, want %q", got, "resize-1")
	}
	if !e.zeroAt(bd.Path, Size+4096) {
		e.t.Error("after Resize: the new space is not zeros")
	}
	// Online: the running image grows, and the size sticks at stop.
	e.ok(e.d.Resize(e.ctx, e.p, o, 3*Size), "Resize of a started volume")
	if n := e.size(bd.Path); n != 3*Size {
		e.t.Errorf("started volume after Resize: device size %d, want %d", n, 3*Size)
	}
	e.stop(o, "resize-1")
	o.Size = 3 * Size
	bd = e.start(o)
	if n := e.size(bd.Path); n != 3*Size {
		e.t.Errorf("after an online Resize and a restart: size %d, want %d", n, 3*Size)
	}
	e.stop(o, "resize-1")

	vol := volatile("pooltest/resize-volatile")
	e.create(vol)
	e.ok(e.d.Resize(e.ctx, e.p, vol, 2*Size), "Resize of a stopped volatile volume")
	vol.Size = 2 * Size
	if n := e.size(e.start(vol).Path); n != 2*Size {
		e.t.Errorf("volatile volume after Resize: size %d, want %d", n, 2*Size)
	}
	e.stop(vol, "")

	src := origin("pooltest/resize-src", 0)
	e.create(src)
	s := snapshot("pooltest/resize-snap", src)
	e.create(s)
	bd = e.start(s)
	e.ok(e.d.Resize(e.ctx, e.p, s, 2*Size), "Resize of a started snapshot volume")
	if n := e.size(bd.Path); n != 2*Size {
		e.t.Errorf("started snapshot volume after Resize: size %d, want %d", n, 2*Size)
	}
	e.stop(s, "")

	ro := origin("pooltest/resize-ro", 0)
	ro.RW = false
	e.create(ro)
	e.kind(e.d.Resize(e.ctx, e.p, ro, 2*Size), pool.ErrInvalid, "Resize of a read-only volume")
	e.kind(e.d.Resize(e.ctx, e.p, o, 0), pool.ErrInvalid, "Resize to 0 bytes")
}

func testShrink(e *env) {
	o := origin("pooltest/shrink", 0)
	e.create(o)
	e.cycle(o, "shrink-1")
	e.ok(e.d.Resize(e.ctx, e.p, o, 2*Size), "Resize")
	o.Size = 2 * Size
	err := e.d.Resize(e.ctx, e.p, o, Size)
	if !e.caps.Shrink {
		e.kind(err, pool.ErrInvalid, "shrinking without the Shrink capability")
		if n := e.state(o).Size; n != 2*Size {
			e.t.Errorf("refused shrink changed the size to %d", n)
		}
		return
	}
	e.ok(err, "Resize smaller (the driver declares Shrink)")
	o.Size = Size
	if n := e.state(o).Size; n != Size {
		e.t.Errorf("after shrinking: size %d, want %d", n, Size)
	}
	bd := e.start(o)
	if n := e.size(bd.Path); n != Size {
		e.t.Errorf("started after shrinking: size %d, want %d", n, Size)
	}
	if got := e.read(bd.Path); got != "shrink-1" {
		e.t.Errorf("after shrinking: content %q, want %q", got, "shrink-1")
	}
	e.stop(o, "shrink-1")
}

func testClone(e *env) {
	e.need(e.caps.FastClone, "FastClone")
	src := origin("pooltest/clone-src", 1)
	e.create(src)
	e.cycle(src, "clone-src")
	dst := origin("pooltest/clone-dst", 1)
	for i := range 2 { // twice: idempotent
		e.ok(e.d.CloneFrom(e.ctx, e.p, dst, src), fmt.Sprintf("CloneFrom %d", i))
	}
	e.committed[dst.VID] = "clone-src"
	if got := e.committedContent(dst); got != "clone-src" {
		e.t.Errorf("clone holds %q, want %q", got, "clone-src")
	}
	if n := e.state(dst).Size; n != Size {
		e.t.Errorf("clone size %d, want %d", n, Size)
	}
	e.cycle(dst, "clone-dst")
	if got := e.committedContent(src); got != "clone-src" {
		e.t.Errorf("writing the clone changed the source to %q", got)
	}
	// CloneFrom onto an existing volume is a retry: it must not touch it.
	e.ok(e.d.CloneFrom(e.ctx, e.p, dst, src), "CloneFrom onto an existing volume")
	if got := e.committedContent(dst); got != "clone-dst" {
		e.t.Errorf("CloneFrom onto an existing volume changed its content to %q", got)
	}
	// Cloning a started volume copies its committed content.
	bd := e.start(src)
	e.write(bd.Path, "src-running")
	dst2 := origin("pooltest/clone-dst2", 1)
	e.ok(e.d.CloneFrom(e.ctx, e.p, dst2, src), "CloneFrom a started volume")
	e.committed[dst2.VID] = "clone-src"
	e.stop(src, "src-running")
	if got := e.committedContent(dst2); got != "clone-src" {
		e.t.Errorf("clone of a started volume holds %q, want the committed %q", got, "clone-src")
	}
	e.kind(e.d.CloneFrom(e.ctx, e.p, origin("pooltest/clone-dst3", 1), origin("pooltest/no-such-volume", 1)),
		pool.ErrNotFound, "CloneFrom an unknown volume")
	if _, err := e.d.VolumeInfo(e.ctx, e.p, origin("pooltest/clone-dst3", 1)); !errors.Is(err, pool.ErrNotFound) {
		e.t.Errorf("a failed CloneFrom left a volume behind (VolumeInfo: %v)", err)
	}
}

func testImport(e *env) {
	e.need(e.caps.Import, "Import")
	v := origin("pooltest/import", 1)
	e.create(v)
	e.cycle(v, "before-import")
	var path string
	for i := range 2 { // twice: the second starts afresh
		p, err := e.d.ImportBegin(e.ctx, e.p, v, 2*Size)
		e.ok(err, fmt.Sprintf("ImportBegin %d", i))
		path = p
	}
	if n := e.size(path); n != 2*Size {
		e.t.Errorf("import path: size %d, want %d", n, 2*Size)
	}
	e.write(path, "imported")
	before := e.revIDs(v)
	e.ok(e.d.ImportEnd(e.ctx, e.p, v, true), "ImportEnd(true)")
	e.recordCommit(v, before, "imported")
	revs := e.revIDs(v)
	e.ok(e.d.ImportEnd(e.ctx, e.p, v, true), "ImportEnd(true) again")
	if again := e.revIDs(v); !slices.Equal(revs, again) {
		e.t.Errorf("a second ImportEnd changed the revisions from %v to %v", revs, again)
	}
	v.Size = 2 * Size
	if n := e.state(v).Size; n != 2*Size {
		e.t.Errorf("after the import: size %d, want %d", n, 2*Size)
	}
	if got := e.committedContent(v); got != "imported" {
		e.t.Errorf("after the import: content %q, want %q", got, "imported")
	}
	if e.caps.Revisions {
		if revs := e.revisions(v); len(revs) == 0 || e.revs[v.VID][revs[len(revs)-1].ID] != "before-import" {
			e.t.Errorf("after the import: the latest revision should hold the content from before it")
		}
	}
	// Abort.
	path, err := e.d.ImportBegin(e.ctx, e.p, v, 2*Size)
	e.ok(err, "ImportBegin")
	e.write(path, "aborted")
	e.ok(e.d.ImportEnd(e.ctx, e.p, v, false), "ImportEnd(false)")
	e.ok(e.d.ImportEnd(e.ctx, e.p, v, false), "ImportEnd(false) again")
	if got := e.committedContent(v); got != "imported" {
		e.t.Errorf("after an aborted import: content %q, want %q", got, "imported")
	}
	e.start(v)
	_, err = e.d.ImportBegin(e.ctx, e.p, v, Size)
	e.kind(err, pool.ErrInUse, "ImportBegin into a started volume")
	e.stop(v, e.committed[v.VID])
	_, err = e.d.ImportBegin(e.ctx, e.p, origin("pooltest/no-such-volume", 1), Size)
	e.kind(err, pool.ErrNotFound, "ImportBegin into an unknown volume")
}

func testExport(e *env) {
	e.need(e.caps.Export, "Export")
	v := origin("pooltest/export", 1)
	e.create(v)
	e.cycle(v, "export-1")
	path, err := e.d.ExportBegin(e.ctx, e.p, v)
	e.ok(err, "ExportBegin")
	if got := e.read(path); got != "export-1" {
		e.t.Errorf("export: %q, want %q", got, "export-1")
	}
	e.ok(e.d.ExportEnd(e.ctx, e.p, v, path), "ExportEnd")
	e.ok(e.d.ExportEnd(e.ctx, e.p, v, path), "ExportEnd again")
	// While started: the content from before the start.
	bd := e.start(v)
	e.write(bd.Path, "export-2")
	path, err = e.d.ExportBegin(e.ctx, e.p, v)
	e.ok(err, "ExportBegin of a started volume")
	if got := e.read(path); got != "export-1" {
		e.t.Errorf("export of a started volume: %q, want the committed %q", got, "export-1")
	}
	e.ok(e.d.ExportEnd(e.ctx, e.p, v, path), "ExportEnd")
	e.stop(v, "export-2")
	if got := e.committedContent(v); got != "export-2" {
		e.t.Errorf("export after the commit: %q, want %q", got, "export-2")
	}
	_, err = e.d.ExportBegin(e.ctx, e.p, origin("pooltest/no-such-volume", 1))
	e.kind(err, pool.ErrNotFound, "ExportBegin of an unknown volume")
}

func testRemove(e *env) {
	src := origin("pooltest/remove", 1)
	started := origin("pooltest/remove-started", 1)
	vols := []pool.Volume{src, started, volatile("pooltest/remove-volatile"), snapshot("pooltest/remove-snap", src)}
	for _, v := range vols {
		e.create(v)
	}
	e.cycle(src, "remove")
	e.start(started)
	for _, v := range slices.Backward(vols) {
		for i := range 2 { // twice: the second finds nothing to remove
			e.ok(e.d.Remove(e.ctx, e.p, v), fmt.Sprintf("Remove %d of %s", i, v.VID))
		}
		_, err := e.d.VolumeInfo(e.ctx, e.p, v)
		e.kind(err, pool.ErrNotFound, "VolumeInfo of a removed volume "+v.VID)
	}
}

func testListVolumes(e *env) {
	a, b := origin("pooltest/list-a", 1), origin("pooltest/list-b", 1)
	e.create(a)
	e.create(b)
	list := func() []string { return slices.Sorted(maps.Keys(e.listed())) }
	if vids := list(); !slices.Contains(vids, a.VID) || !slices.Contains(vids, b.VID) {
		e.t.Errorf("ListVolumes: %v, want %s and %s in it", vids, a.VID, b.VID)
	}
	e.ok(e.d.Remove(e.ctx, e.p, a), "Remove")
	if vids := list(); slices.Contains(vids, a.VID) || !slices.Contains(vids, b.VID) {
		e.t.Errorf("ListVolumes after removing %s: %v", a.VID, vids)
	}
}

// listed returns what ListVolumes lists, by vid; a vid listed twice fails
// the test.
func (e *env) listed() map[string]pool.VolumeState {
	e.t.Helper()
	vols, err := e.d.ListVolumes(e.ctx, e.p)
	e.ok(err, "ListVolumes")
	byVID := make(map[string]pool.VolumeState, len(vols))
	for _, v := range vols {
		if _, dup := byVID[v.VID]; dup {
			e.t.Errorf("ListVolumes lists %s twice: %v", v.VID, vols)
		}
		byVID[v.VID] = v
	}
	return byVID
}

func testVerify(e *env) {
	src := origin("pooltest/verify", 1)
	e.create(src)
	vol := volatile("pooltest/verify-volatile")
	e.create(vol)
	s := snapshot("pooltest/verify-snap", src)
	e.create(s)
	for _, v := range []pool.Volume{src, vol, s} {
		e.ok(e.d.Verify(e.ctx, e.p, v), "Verify "+v.VID)
	}
	orphan := snapshot("pooltest/verify-orphan", origin("pooltest/no-such-volume", 1))
	if e.d.Create(e.ctx, e.p, orphan) == nil { // a driver may refuse it already
		if err := e.d.Verify(e.ctx, e.p, orphan); err == nil {
			e.t.Error("Verify of a snapshot volume whose source does not exist: no error")
		}
	}
	e.kind(e.d.Verify(e.ctx, e.p, origin("pooltest/no-such-volume", 1)), pool.ErrNotFound, "Verify of an unknown volume")
}

// testIdempotent calls every mutating call twice in a row: both calls
// succeed and the second leaves the state the first left.
func testIdempotent(e *env) {
	type step struct {
		name string
		need bool
		prep func() pool.Volume
		call func(v pool.Volume) error
	}
	n := 0
	fresh := func(keep int) pool.Volume {
		n++
		v := origin(fmt.Sprintf("pooltest/idem-%d", n), keep)
		e.create(v)
		return v
	}
	withRevisions := func() pool.Volume {
		v := fresh(2)
		e.cycle(v, "r1")
		e.cycle(v, "r2")
		return v
	}
	started := func() pool.Volume {
		v := fresh(1)
		e.write(e.start(v).Path, "running")
		return v
	}
	src := fresh(1)
	e.cycle(src, "source")
	steps := []step{
		{"Setup", true, func() pool.Volume { return src }, func(pool.Volume) error { return e.d.Setup(e.ctx, e.p) }},
		{"Create", true, func() pool.Volume { n++; return origin(fmt.Sprintf("pooltest/idem-%d", n), 1) },
			func(v pool.Volume) error { return e.d.Create(e.ctx, e.p, v) }},
		{"Create volatile", true, func() pool.Volume { n++; return volatile(fmt.Sprintf("pooltest/idem-%d", n)) },
			func(v pool.Volume) error { return e.d.Create(e.ctx, e.p, v) }},
		{"Create snapshot", true, func() pool.Volume { n++; return snapshot(fmt.Sprintf("pooltest/idem-%d", n), src) },
			func(v pool.Volume) error { return e.d.Create(e.ctx, e.p, v) }},
		{"Remove", true, func() pool.Volume { return fresh(1) }, func(v pool.Volume) error { return e.d.Remove(e.ctx, e.p, v) }},
		{"Start", true, started, func(v pool.Volume) error {
			bd, err := e.d.Start(e.ctx, e.p, v)
			if err == nil && e.read(bd.Path) != "running" {
				err = errors.New("Start of a started volume reset its running image")
			}
			return err
		}},
		{"Stop", true, started, func(v pool.Volume) error { return e.d.Stop(e.ctx, e.p, v) }},
		{"Resize", true, func() pool.Volume { return fresh(1) }, func(v pool.Volume) error { return e.d.Resize(e.ctx, e.p, v, 2*Size) }},
		{"Revert", e.caps.Revisions, withRevisions, func(v pool.Volume) error {
			return e.d.Revert(e.ctx, e.p, v, "")
		}},
		{"CloneFrom", e.caps.FastClone, func() pool.Volume { n++; return origin(fmt.Sprintf("pooltest/idem-%d", n), 1) },
			func(v pool.Volume) error { return e.d.CloneFrom(e.ctx, e.p, v, src) }},
		{"ImportBegin", e.caps.Import, func() pool.Volume { return fresh(1) },
			func(v pool.Volume) error { _, err := e.d.ImportBegin(e.ctx, e.p, v, Size); return err }},
		{"ImportEnd(true)", e.caps.Import, func() pool.Volume {
			v := fresh(1)
			path, err := e.d.ImportBegin(e.ctx, e.p, v, Size)
			e.ok(err, "ImportBegin")
			e.write(path, "imported")
			return v
		}, func(v pool.Volume) error { return e.d.ImportEnd(e.ctx, e.p, v, true) }},
		{"ImportEnd(false)", e.caps.Import, func() pool.Volume {
			v := fresh(1)
			_, err := e.d.ImportBegin(e.ctx, e.p, v, Size)
			e.ok(err, "ImportBegin")
			return v
		}, func(v pool.Volume) error { return e.d.ImportEnd(e.ctx, e.p, v, false) }},
		{"ExportEnd", e.caps.Export, func() pool.Volume { return src }, func(v pool.Volume) error {
			path, err := e.d.ExportBegin(e.ctx, e.p, v)
			return errors.Join(err, e.d.ExportEnd(e.ctx, e.p, v, path))
		}},
	}
	for _, s := range steps {
		if !s.need {
			e.t.Logf("%s: skipped, the driver lacks the capability", s.name)
			continue
		}
		v := s.prep()
		e.ok(s.call(v), s.name)
		once := e.observe(v)
		e.ok(s.call(v), s.name+" again")
		if twice := e.observe(v); twice != once {
			e.t.Errorf("%s twice: the state after the first call\n\t%s\ndiffers from the state after the second\n\t%s", s.name, once, twice)
		}
	}
}

// observe describes a volume's state without changing it.
func (e *env) observe(v pool.Volume) string {
	e.t.Helper()
	st, err := e.d.VolumeInfo(e.ctx, e.p, v)
	if errors.Is(err, pool.ErrNotFound) {
		return "absent"
	}
	e.ok(err, "VolumeInfo")
	desc := fmt.Sprintf("size=%d dirty=%v revisions=%v", st.Size, st.Dirty, e.revIDs(v))
	if e.caps.Export && v.SaveOnStop {
		path, err := e.d.ExportBegin(e.ctx, e.p, v)
		if err == nil {
			desc += fmt.Sprintf(" content=%q", e.read(path))
			e.ok(e.d.ExportEnd(e.ctx, e.p, v, path), "ExportEnd")
		}
	}
	return desc
}

func testErrors(e *env) {
	unknown := origin("pooltest/no-such-volume", 1)
	_, err := e.d.Start(e.ctx, e.p, unknown)
	e.kind(err, pool.ErrNotFound, "Start of an unknown volume")
	_, err = e.d.VolumeInfo(e.ctx, e.p, unknown)
	e.kind(err, pool.ErrNotFound, "VolumeInfo of an unknown volume")
	e.kind(e.d.Resize(e.ctx, e.p, unknown, 2*Size), pool.ErrNotFound, "Resize of an unknown volume")
	if e.caps.Revisions {
		_, err = e.d.ListRevisions(e.ctx, e.p, unknown)
		e.kind(err, pool.ErrNotFound, "ListRevisions of an unknown volume")
		e.kind(e.d.Revert(e.ctx, e.p, unknown, ""), pool.ErrNotFound, "Revert of an unknown volume")
	}
	e.ok(e.d.Stop(e.ctx, e.p, unknown), "Stop of an unknown volume")
	e.ok(e.d.Remove(e.ctx, e.p, unknown), "Remove of an unknown volume")

	// A snapshot of a volume that does not exist: Create may refuse it
	// (ErrNotFound); if it does not, Start does.
	orphan := snapshot("pooltest/orphan", unknown)
	if err := e.d.Create(e.ctx, e.p, orphan); err != nil {
		e.kind(err, pool.ErrNotFound, "Create of a snapshot volume whose source does not exist")
	} else {
		_, err = e.d.Start(e.ctx, e.p, orphan)
		e.kind(err, pool.ErrNotFound, "Start of a snapshot volume whose source does not exist")
	}

	// Refused by the SDK's checks before the driver sees them.
	good := origin("pooltest/good", 1)
	for _, c := range []struct {
		what string
		p    pool.Pool
		v    pool.Volume
	}{
		{"an escaping vid", e.p, origin("../escape", 1)},
		{"an absolute vid", e.p, origin("/abs", 1)},
		{"an empty vid", e.p, origin("", 1)},
		{"revisions_to_keep -2", e.p, origin("pooltest/keep", -2)},
		{"snap_on_start without a source", e.p, pool.Volume{VID: "pooltest/nosrc", Size: Size, SnapOnStart: true}},
		{"a source without snap_on_start", e.p, pool.Volume{VID: "pooltest/nosnap", Size: Size, SourceVID: good.VID}},
		{"an empty pool name", pool.Pool{Config: e.p.Config}, good},
	} {
		e.kind(e.d.Create(e.ctx, c.p, c.v), pool.ErrInvalid, "Create with "+c.what)
	}
	e.create(good)
	if e.caps.Revisions {
		e.kind(e.d.Revert(e.ctx, e.p, good, "../x"), pool.ErrInvalid, "Revert to a malformed revision id")
	}
}

// testConcurrent runs whole volume lives on several volumes at once, as
// the daemon does for the volumes of several qubes.
func testConcurrent(e *env) {
	var lives []func() error
	for i := range 4 {
		lives = append(lives, func() error {
			return e.life(origin(fmt.Sprintf("pooltest/concurrent-%d", i), 1), fmt.Sprintf("concurrent-%d", i))
		})
	}
	e.parallel(lives...)
}

// parallel runs fns at once and fails the test with the errors they
// return (they run outside the test goroutine, so they cannot fail it).
func (e *env) parallel(fns ...func() error) {
	e.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		wg.Go(func() { errs <- fn() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			e.t.Error(err)
		}
	}
}

// life creates, writes, commits, checks and removes v, returning the first
// error (it runs outside the test goroutine, so it cannot fail the test).
func (e *env) life(v pool.Volume, marker string) error {
	if err := e.d.Create(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("Create %s: %w", v.VID, err)
	}
	bd, err := e.d.Start(e.ctx, e.p, v)
	if err != nil {
		return fmt.Errorf("Start %s: %w", v.VID, err)
	}
	f, err := os.OpenFile(bd.Path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt([]byte(marker), 0)
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := e.d.Stop(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("Stop %s: %w", v.VID, err)
	}
	if bd, err = e.d.Start(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("Start %s again: %w", v.VID, err)
	}
	got := make([]byte, len(marker))
	f, err = os.Open(bd.Path)
	if err != nil {
		return err
	}
	_, err = f.ReadAt(got, 0)
	f.Close()
	if err != nil || string(got) != marker {
		return fmt.Errorf("%s: read %q (%v), want %q", v.VID, got, err, marker)
	}
	if err := e.d.Stop(e.ctx, e.p, v); err != nil {
		return fmt.Errorf("Stop %s: %w", v.VID, err)
	}
	return e.d.Remove(e.ctx, e.p, v)
}
