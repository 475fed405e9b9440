package storage

import (
	"slices"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func TestSpaceRefusal(t *testing.T) {
	e := newEnv(t)
	v := e.vol("vm0001", "private")
	e.ok(e.m.Create(e.ctx, v), "Create")
	const gib = 1 << 30
	e.d.SetUsage("varlibqubes", pool.Usage{Size: 10 * gib, Usage: 86 * gib / 10})
	_, err := e.m.ImportBegin(e.ctx, v, gib)
	wantErr(t, err, qerr.StoragePoolError,
		"pool varlibqubes: importing into vm0001:private needs 1.0 GiB but only 0.4 GiB is free above the 10% reserve (8.6 GiB of 10.0 GiB used)")
	if _, ok := e.m.ImportInProgress(v); ok {
		t.Error("a refused import is marked in progress")
	}
	_, err = e.m.ImportBegin(e.ctx, v, gib/4)
	e.ok(err, "ImportBegin that fits")
	e.ok(e.m.ImportEnd(e.ctx, v, false), "ImportEnd")

	src := e.origin("x")
	e.d.SetUsage("varlibqubes", pool.Usage{Size: 10 * gib, Usage: 9 * gib})
	err = e.m.Clone(e.ctx, e.vol("vm0002", "private"), src, nil)
	if err != nil { // src uses 4 KiB: it fits? no: nothing is free above the reserve
		wantErr(t, err, qerr.StoragePoolError, "pool varlibqubes: cloning needs", "but only 0 bytes is free")
	} else {
		t.Error("a clone into a pool at its reserve succeeded")
	}

	// Unknown size: no check.
	e.d.SetUsage("varlibqubes", pool.Usage{Usage: 100 * gib})
	_, err = e.m.ImportBegin(e.ctx, v, 50*gib)
	e.ok(err, "ImportBegin into a pool of unknown size")
}

func TestUsageWarning(t *testing.T) {
	e := newEnv(t)
	var got []int
	e.app.Bus().Subscribe("pool-usage-warning", events.Observer, func(ev *events.Event) error {
		p, _ := ev.Arg("pool")
		pct, _ := ev.Arg("usage_percent")
		if p != "varlibqubes" {
			t.Errorf("pool-usage-warning pool=%v", p)
		}
		got = append(got, pct.(int))
		return nil
	})
	p := e.pool("varlibqubes")
	for _, pct := range []uint64{50, 90, 95, 97, 40, 92} {
		e.d.SetUsage("varlibqubes", pool.Usage{Size: 100 << 30, Usage: pct << 30})
		_ = e.m.checkSpace(e.ctx, p, "testing", 1) // refused past the reserve; the warning is what counts
	}
	if want := []int{90, 92}; !slices.Equal(got, want) {
		t.Errorf("warnings at %v, want once per crossing: %v", got, want)
	}
}

func TestNewPoolRecord(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name   string
		driver string
		attrs  map[string]string
		kind   qerr.Kind
		msg    string
		want   []store.Attr
	}{
		{"ok", "file-reflink", map[string]string{"name": "extra", "dir_path": "/x", "revisions_to_keep": "3", "ephemeral_volatile": "true"}, "", "",
			[]store.Attr{{Name: "name", Value: "extra"}, {Name: "dir_path", Value: "/x"}, {Name: "driver", Value: "file-reflink"}, {Name: "revisions_to_keep", Value: "3"}, {Name: "ephemeral_volatile", Value: "True"}}},
		{"minimal", "file-reflink", map[string]string{"name": "m"}, "", "",
			[]store.Attr{{Name: "name", Value: "m"}, {Name: "driver", Value: "file-reflink"}}},
		{"no name", "file-reflink", map[string]string{"dir_path": "/x"}, qerr.ProtocolError, "must contain key: name", nil},
		{"bad name", "file-reflink", map[string]string{"name": "a b"}, qerr.ProtocolError, "safe set", nil},
		{"taken", "file-reflink", map[string]string{"name": "varlibqubes"}, qerr.PoolInUse, "exists already", nil},
		{"revisions", "file-reflink", map[string]string{"name": "r", "revisions_to_keep": "-2"}, qerr.ValueError, "lower than -1", nil},
		{"revisions not int", "file-reflink", map[string]string{"name": "r", "revisions_to_keep": "many"}, qerr.ValueError, "integer", nil},
		{"ephemeral", "file-reflink", map[string]string{"name": "r", "ephemeral_volatile": "maybe"}, qerr.ValueError, "boolean", nil},
		{"driver key", "file-reflink", map[string]string{"name": "r", "colour": "red"}, qerr.ValueError, "colour", nil},
		{"unknown driver", "zfs", map[string]string{"name": "z"}, qerr.PermissionDenied, `"zfs"`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec, err := e.m.NewPoolRecord(e.ctx, c.driver, c.attrs)
			if c.kind != "" {
				wantErr(t, err, c.kind, c.msg)
				return
			}
			e.ok(err, "NewPoolRecord")
			if !slices.Equal(rec.Attrs, c.want) {
				t.Errorf("record %v, want %v", rec.Attrs, c.want)
			}
		})
	}
}

func TestPoolLifecycleAndUsers(t *testing.T) {
	e := newEnv(t)
	rec, err := e.m.NewPoolRecord(e.ctx, "file-reflink", map[string]string{"name": "extra"})
	e.ok(err, "NewPoolRecord")
	p := PoolFromRecord(rec)
	e.ok(e.m.SetupPool(e.ctx, p), "SetupPool")
	_, err = e.app.Write(func() error { return e.app.AddPoolRecord(rec) })
	e.ok(err, "AddPoolRecord")

	users := func(name string) []string {
		var u []string
		_ = e.app.Read(func() error { u = e.m.PoolUsers(e.pool(name)); return nil })
		return u
	}
	if u := users("extra"); len(u) != 0 {
		t.Errorf("users of a new pool: %v", u)
	}
	vu := users("varlibqubes")
	for _, want := range []string{"sys-net:private", "debian-12-xfce:root", "@GLOBAL:default_pool", "@GLOBAL:default_pool_root"} {
		if !slices.Contains(vu, want) {
			t.Errorf("users of varlibqubes %v: %s missing", vu, want)
		}
	}
	if slices.Contains(vu, "@GLOBAL:default_pool_kernel") || slices.Contains(vu, "sys-net:kernel") {
		t.Errorf("users of varlibqubes %v include the kernel's", vu)
	}
	if ku := users("linux-kernel"); !slices.Contains(ku, "@GLOBAL:default_pool_kernel") || !slices.Contains(ku, "vm0001:kernel") {
		t.Errorf("users of linux-kernel: %v", ku)
	}

	// A pool in use can be neither destroyed nor removed.
	wantErr(t, e.m.DestroyPool(e.ctx, e.pool("varlibqubes")), qerr.PoolInUse, "sys-net:private")
	_, err = e.app.Write(func() error { return e.app.RemovePoolRecord("varlibqubes") })
	wantErr(t, err, qerr.PoolInUse, "Storage pool is in use: 'varlibqubes'")

	// Once a default names it, it is in use too.
	_, err = e.app.Write(func() error {
		d, _ := e.app.Table().Lookup("default_pool_private")
		return e.app.SetText(d, "extra")
	})
	e.ok(err, "setting default_pool_private")
	if u := users("extra"); !slices.Equal(u, []string{"@GLOBAL:default_pool_private"}) {
		t.Errorf("users of extra: %v", u)
	}
	_, err = e.app.Write(func() error {
		d, _ := e.app.Table().Lookup("default_pool_private")
		return e.app.Reset(d)
	})
	e.ok(err, "resetting default_pool_private")

	e.ok(e.m.DestroyPool(e.ctx, p), "DestroyPool")
	if st := e.m.PoolState(e.ctx, p); st.Online {
		t.Error("a destroyed pool is online")
	}
	_, err = e.app.Write(func() error { return e.app.RemovePoolRecord("extra") })
	e.ok(err, "RemovePoolRecord")
	var names []string
	_ = e.app.Read(func() error { names = e.app.PoolNames(); return nil })
	if slices.Contains(names, "extra") {
		t.Errorf("pools after the removal: %v", names)
	}
}

func TestValidatePoolAttr(t *testing.T) {
	for _, c := range []struct{ key, in, want string }{
		{"revisions_to_keep", "-1", "-1"},
		{"revisions_to_keep", " 5", "5"},
		{"ephemeral_volatile", "False", "False"},
		{"ephemeral_volatile", "on", "True"},
		{"revisions_to_keep", "-5", ""},
		{"dir_path", "/x", ""},
	} {
		got, err := ValidatePoolAttr(c.key, c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ValidatePoolAttr(%s, %q) = %q, %v; want %q", c.key, c.in, got, err, c.want)
		}
	}
}
