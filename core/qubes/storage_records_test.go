package qubes_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/store"
)

func write(t *testing.T, app *qubes.App, fn func() error) error {
	t.Helper()
	_, err := app.Write(fn)
	return err
}

func TestPoolRecords(t *testing.T) {
	app, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	var fired []string
	app.Bus().Subscribe("pool-*", events.Observer, func(e *events.Event) error {
		p, _ := e.Arg("pool")
		fired = append(fired, e.Name+"="+p.(string))
		return nil
	})
	rec := store.Pool{Attrs: []store.Attr{{Name: "name", Value: "extra"}, {Name: "driver", Value: "file"}}}
	if err := write(t, app, func() error { return app.AddPoolRecord(rec) }); err != nil {
		t.Fatal(err)
	}
	before := app.Document() // a saved snapshot must not change under later edits
	if err := write(t, app, func() error { return app.SetPoolAttr("extra", "revisions_to_keep", "3") }); err != nil {
		t.Fatal(err)
	}
	if err := write(t, app, func() error { return app.SetPoolAttr("extra", "driver", "lvm") }); qerr.KindOf(err) != qerr.ValueError {
		t.Errorf("changing the driver: %v", err)
	}
	if err := write(t, app, func() error { return app.SetPoolAttr("nope", "x", "y") }); qerr.KindOf(err) != qerr.StoragePoolError {
		t.Errorf("an unknown pool: %v", err)
	}
	doc := app.Document()
	got := doc.Pools[len(doc.Pools)-1].Attrs
	if want := append(slices.Clone(rec.Attrs), store.Attr{Name: "revisions_to_keep", Value: "3"}); !slices.Equal(got, want) {
		t.Errorf("record %v, want %v", got, want)
	}
	if old := before.Pools[len(before.Pools)-1].Attrs; len(old) != 2 {
		t.Errorf("an earlier snapshot changed: %v", old)
	}

	users := app.PoolUsers("varlibqubes")
	if !slices.Contains(users, "vm0001:private") || !slices.Contains(users, "@GLOBAL:default_pool") {
		t.Errorf("users of varlibqubes: %v", users)
	}
	err := write(t, app, func() error { return app.RemovePoolRecord("varlibqubes") })
	if qerr.KindOf(err) != qerr.PoolInUse || !strings.Contains(err.Error(), "@GLOBAL:default_pool, ") || !strings.Contains(err.Error(), "more volumes") {
		t.Errorf("removing a pool in use: %v", err)
	}
	if err := write(t, app, func() error { return app.RemovePoolRecord("extra") }); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(app.PoolNames(), "extra") {
		t.Error("the pool is still there")
	}
	if err := write(t, app, func() error { return app.RemovePoolRecord("extra") }); qerr.KindOf(err) != qerr.StoragePoolError {
		t.Errorf("removing it again: %v", err)
	}
	if want := []string{"pool-add=extra", "pool-pre-delete=extra", "pool-delete=extra"}; !slices.Equal(fired, want) {
		t.Errorf("events %v, want %v", fired, want)
	}
}

func TestPoolRemovalVeto(t *testing.T) {
	app, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	rec := store.Pool{Attrs: []store.Attr{{Name: "name", Value: "extra"}, {Name: "driver", Value: "file"}}}
	if err := write(t, app, func() error { return app.AddPoolRecord(rec) }); err != nil {
		t.Fatal(err)
	}
	app.Bus().Subscribe("pool-pre-delete", events.Extension, func(*events.Event) error {
		return qerr.New(qerr.PermissionDenied, "vetoed")
	})
	if err := write(t, app, func() error { return app.RemovePoolRecord("extra") }); err == nil || !slices.Contains(app.PoolNames(), "extra") {
		t.Errorf("a vetoed removal: %v, pools %v", err, app.PoolNames())
	}
}

func TestSetVolumeAttr(t *testing.T) {
	app, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	q, err := app.Qube("vm0001")
	if err != nil {
		t.Fatal(err)
	}
	before := app.Document()
	for _, c := range []struct{ key, value string }{{"size", "4294967296"}, {"ephemeral", "True"}, {"ephemeral", ""}} {
		if err := write(t, app, func() error { return q.SetVolumeAttr("private", c.key, c.value) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := write(t, app, func() error { return q.SetVolumeAttr("nope", "size", "1") }); qerr.KindOf(err) != qerr.PermissionDenied {
		t.Errorf("an unknown volume: %v", err)
	}
	if err := write(t, app, func() error { return q.SetVolumeAttr("private", "name", "x") }); qerr.KindOf(err) != qerr.ValueError {
		t.Errorf("renaming: %v", err)
	}
	attrs := func(doc *store.Document) map[string]string {
		for _, d := range doc.Domains {
			for _, p := range d.Properties {
				if p.Name == "name" && p.Value == "vm0001" {
					for _, v := range d.VolumeConfig {
						m := map[string]string{}
						for _, a := range v.Attrs {
							m[a.Name] = a.Value
						}
						if m["name"] == "private" {
							return m
						}
					}
				}
			}
		}
		return nil
	}
	got := attrs(app.Document())
	if got["size"] != "4294967296" {
		t.Errorf("size %q", got["size"])
	}
	if _, ok := got["ephemeral"]; ok {
		t.Error("an emptied attribute is still written")
	}
	if attrs(before)["size"] != "2147483648" {
		t.Errorf("an earlier snapshot changed: %v", attrs(before))
	}
}

// KernelsDir follows default_pool_kernel to the pool whose kernels a qube
// may use, not the first linux-kernel pool.
func TestKernelsDirFollowsDefaultPoolKernel(t *testing.T) {
	app, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	first := app.KernelsDir()
	rec := store.Pool{Attrs: []store.Attr{{Name: "name", Value: "kernels2"}, {Name: "driver", Value: "linux-kernel"}, {Name: "dir_path", Value: "/srv/kernels2"}}}
	if err := write(t, app, func() error { return app.AddPoolRecord(rec) }); err != nil {
		t.Fatal(err)
	}
	if got := app.KernelsDir(); got != first {
		t.Errorf("a second kernels pool changed KernelsDir to %s (default_pool_kernel still names the first, %s)", got, first)
	}
	if err := write(t, app, func() error {
		d, err := app.Descriptor("default_pool_kernel")
		if err != nil {
			return err
		}
		return app.SetText(d, "kernels2")
	}); err != nil {
		t.Fatal(err)
	}
	if got := app.KernelsDir(); got != "/srv/kernels2" {
		t.Errorf("KernelsDir = %s, want the dir of default_pool_kernel's pool, /srv/kernels2", got)
	}
}
