package storage

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func TestVolumesFromModel(t *testing.T) {
	e := newEnv(t)
	vs := e.vols("sys-net")
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	if want := []string{"root", "private", "volatile", "kernel"}; !slices.Equal(names, want) {
		t.Fatalf("volumes %v, want %v", names, want)
	}
	for _, c := range []struct {
		name string
		want pool.Volume
		pool string
	}{
		{"root", pool.Volume{VID: "appvms/sys-net/root", Name: "root", Size: 10 << 30, RW: true, SnapOnStart: true, RevisionsToKeep: 1, SourceVID: "vm-templates/debian-12-xfce/root"}, "varlibqubes"},
		{"private", pool.Volume{VID: "appvms/sys-net/private", Name: "private", Size: 2 << 30, RW: true, SaveOnStop: true, RevisionsToKeep: 1}, "varlibqubes"},
		{"volatile", pool.Volume{VID: "appvms/sys-net/volatile", Name: "volatile", Size: 10 << 30, RW: true, RevisionsToKeep: 1}, "varlibqubes"},
		{"kernel", pool.Volume{VID: qubestest.Kernel, Name: "kernel", RevisionsToKeep: 0}, "linux-kernel"},
	} {
		v := e.vol("sys-net", c.name)
		if v.Spec != c.want || v.Pool.Name != c.pool || v.Qube != "sys-net" {
			t.Errorf("%s: %+v in %s, want %+v in %s", c.name, v.Spec, v.Pool.Name, c.want, c.pool)
		}
	}
}

func TestKernelVolumeFollowsKernel(t *testing.T) {
	e := newEnv(t)
	if vid := e.vol("vm0001", "kernel").Spec.VID; vid != qubestest.Kernel {
		t.Fatalf("kernel vid %q, want %q", vid, qubestest.Kernel)
	}
	_, err := e.app.Write(func() error {
		q, _ := e.app.Qube("vm0001")
		d, _ := q.Table().Lookup("kernel")
		q.Store(d, "6.9.9-other")
		return nil
	})
	e.ok(err, "setting kernel")
	if vid := e.vol("vm0001", "kernel").Spec.VID; vid != "6.9.9-other" {
		t.Errorf("after kernel changed: kernel vid %q, want 6.9.9-other", vid)
	}
}

func TestCreateAllRollback(t *testing.T) {
	e := newEnv(t)
	vs := e.vols("vm0001")
	e.d.Fail("Create", vs[2].Spec.VID, errInjected)
	err := e.m.CreateAll(e.ctx, vs)
	wantErr(t, err, qerr.StoragePoolError, "varlibqubes", "vm0001:volatile", "injected failure")
	for _, v := range vs {
		if e.driverOf(v).Has(v.Pool.Name, v.Spec.VID) {
			t.Errorf("%s is left after the failed CreateAll", v.Name)
		}
	}
	for _, v := range vs[:2] {
		if n := e.d.Calls("Remove", v.Spec.VID); n != 1 {
			t.Errorf("%s removed %d times, want once", v.Name, n)
		}
	}
	if n := e.k.Calls("Create", ""); n != 0 {
		t.Errorf("the kernel volume after the failure was created (%d calls)", n)
	}
	e.d.Fail("Create", vs[2].Spec.VID, nil)
	e.ok(e.m.CreateAll(e.ctx, vs), "CreateAll")
	for _, v := range vs {
		if !e.driverOf(v).Has(v.Pool.Name, v.Spec.VID) {
			t.Errorf("%s not created", v.Name)
		}
	}
}

func TestRemoveAllGoesOn(t *testing.T) {
	e := newEnv(t)
	vs := e.vols("vm0001")
	e.ok(e.m.CreateAll(e.ctx, vs), "CreateAll")
	e.d.Fail("Remove", vs[1].Spec.VID, errInjected)
	err := e.m.RemoveAll(e.ctx, vs)
	wantErr(t, err, qerr.StoragePoolError, "vm0001:private", "injected failure")
	for i, v := range vs {
		if has := e.driverOf(v).Has(v.Pool.Name, v.Spec.VID); has != (i == 1) {
			t.Errorf("%s: present %v after RemoveAll", v.Name, has)
		}
	}
}

// origin returns the template's private volume, created, with content.
func (e *env) origin(content string) Volume {
	e.t.Helper()
	v := e.vol("debian-12-xfce", "private")
	e.ok(e.m.Create(e.ctx, v), "Create")
	e.ok(e.d.SetContent(v.Pool.Name, v.Spec.VID, []byte(content)), "SetContent")
	return v
}

func TestRevisionsAndRevert(t *testing.T) {
	e := newEnv(t)
	v := e.origin("current")
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, r := range []struct{ id, content string }{{"b-old", "oldest"}, {"a-mid", "middle"}, {"c-new", "newest"}} {
		e.ok(e.d.SetContent(v.Pool.Name, v.Spec.VID, []byte(r.content)), "SetContent")
		e.ok(e.d.AddRevision(v.Pool.Name, v.Spec.VID, r.id, t0.Add(time.Duration(i)*time.Hour)), "AddRevision")
	}
	e.d.RevisionOrder = func(revs []pool.Revision) []pool.Revision { // shuffled
		if len(revs) < 3 {
			return revs
		}
		return append(slices.Clone(revs[1:]), revs[0])
	}
	revs, err := e.m.Revisions(e.ctx, v)
	e.ok(err, "Revisions")
	var ids []string
	for _, r := range revs {
		ids = append(ids, r.ID)
	}
	if want := []string{"b-old", "a-mid", "c-new"}; !slices.Equal(ids, want) {
		t.Errorf("Revisions %v, want oldest first %v", ids, want)
	}

	content := func() string { return string(bytes.TrimRight(e.d.Content(v.Pool.Name, v.Spec.VID), "\x00")) }
	for _, c := range []struct {
		rev, want string
	}{
		{"b-old", "oldest"},
		{"", "newest"}, // the newest by default
		{"a-mid", "middle"},
	} {
		e.ok(e.m.Revert(e.ctx, v, c.rev), "Revert "+c.rev)
		if got := content(); got != c.want {
			t.Errorf("Revert %q: content %q, want %q", c.rev, got, c.want)
		}
	}
	err = e.m.Revert(e.ctx, v, "no-such")
	wantErr(t, err, qerr.VolumeRevisionNotFound, `no revision "no-such"`, "debian-12-xfce")

	none := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, none), "Create")
	wantErr(t, e.m.Revert(e.ctx, none, ""), qerr.VolumeRevisionNotFound, "no revisions")
}

func TestResizeReadOnly(t *testing.T) {
	e := newEnv(t)
	v := e.vol("vm0001", "kernel")
	err := e.m.Resize(e.ctx, v, 1<<30)
	wantErr(t, err, qerr.StoragePoolError, "Can not resize readonly volume vm0001:kernel")
	if n := e.k.Calls("Resize", ""); n != 0 {
		t.Errorf("the driver was asked to resize (%d calls)", n)
	}
	p := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, p), "Create")
	e.ok(e.m.Resize(e.ctx, p, 3<<30), "Resize")
	e.ok(e.m.Resize(e.ctx, p, p.Spec.Size), "Resize to the same size")
	if n := e.d.Calls("Resize", ""); n != 1 {
		t.Errorf("driver Resize called %d times, want 1 (same size is a no-op)", n)
	}
}

func TestUnavailable(t *testing.T) {
	e := newEnv(t)
	v := e.vol("vm0001", "private")
	delete(e.drivers, "file-reflink")
	_, err := e.m.Info(e.ctx, v)
	wantErr(t, err, qerr.StoragePoolError, "pool varlibqubes is unavailable", "file-reflink")
	if st := e.m.PoolState(e.ctx, v.Pool); st.Online || !strings.Contains(st.Reason, "varlibqubes") {
		t.Errorf("PoolState %+v, want offline naming the pool", st)
	}

	e.drivers["file-reflink"] = e.d
	e.d.SetOffline("varlibqubes", true)
	err = e.m.Create(e.ctx, v)
	wantErr(t, err, qerr.StoragePoolError, "pool varlibqubes (driver file-reflink)", "vm0001:private", "unavailable")
	if st := e.m.PoolState(e.ctx, v.Pool); st.Online {
		t.Errorf("PoolState %+v of an offline pool", st)
	}
	e.d.SetOffline("varlibqubes", false)
	e.ok(e.m.Create(e.ctx, v), "Create once back")
}

// waitQueued waits until n operations hold or wait for v's lock (a
// condition, not a timing).
func (e *env) waitQueued(v Volume, n int) {
	e.t.Helper()
	for {
		e.m.locks.mu.Lock()
		l := e.m.locks.locks[v.key()]
		users := 0
		if l != nil {
			users = l.users
		}
		e.m.locks.mu.Unlock()
		if users >= n {
			return
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatal("test ended before the operations queued")
		default:
			runtime.Gosched()
		}
	}
}

func TestLocksSerializeOneVolume(t *testing.T) {
	e := newEnv(t)
	v := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, v), "Create")
	gate := e.d.Block("VolumeInfo", v.Spec.VID)
	done := make(chan error, 2)
	go func() { _, err := e.m.Info(e.ctx, v); done <- err }()
	<-gate.Entered() // the first holds the lock, inside the driver
	go func() { _, err := e.m.Info(e.ctx, v); done <- err }()
	e.waitQueued(v, 2) // the second waits for the lock
	select {
	case <-gate.Entered():
		t.Fatal("a second operation on the same volume reached the driver while the first ran")
	default:
	}
	gate.Release()
	<-gate.Entered() // now the second gets in
	for range 2 {
		e.ok(<-done, "Info")
	}
}

func TestLocksParallelVolumes(t *testing.T) {
	e := newEnv(t)
	a, b := e.vol("vm0001", "private"), e.vol("vm0002", "private")
	e.ok(e.m.CreateAll(e.ctx, []Volume{a, b}), "CreateAll")
	gate := e.d.Block("VolumeInfo", "")
	done := make(chan error, 2)
	for _, v := range []Volume{a, b} {
		go func() { _, err := e.m.Info(e.ctx, v); done <- err }()
	}
	// Both reach the driver while neither can leave it.
	got := []string{<-gate.Entered(), <-gate.Entered()}
	slices.Sort(got)
	if want := []string{a.Spec.VID, b.Spec.VID}; !slices.Equal(got, want) {
		t.Errorf("entered %v, want %v", got, want)
	}
	gate.Release()
	for range 2 {
		e.ok(<-done, "Info")
	}
}

func TestLockWaitCancelled(t *testing.T) {
	e := newEnv(t)
	v := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, v), "Create")
	gate := e.d.Block("VolumeInfo", v.Spec.VID)
	defer gate.Release()
	go func() { _, _ = e.m.Info(e.ctx, v) }()
	<-gate.Entered()
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.m.Info(ctx, v)
	wantErr(t, err, qerr.StoragePoolError, "busy")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

func TestRemoveAllKeepsGoingWhenPoolUnavailable(t *testing.T) {
	e := newEnv(t)
	vs := e.vols("vm0001")
	e.ok(e.m.CreateAll(e.ctx, vs), "CreateAll")
	e.k.SetOffline("linux-kernel", true)
	err := e.m.RemoveAll(e.ctx, vs)
	wantErr(t, err, qerr.StoragePoolError, "linux-kernel")
	for _, v := range vs[:3] {
		if e.d.Has(v.Pool.Name, v.Spec.VID) {
			t.Errorf("%s left", v.Name)
		}
	}
}

var _ = storagetest.KeySize
