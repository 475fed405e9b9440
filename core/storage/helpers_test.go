package storage

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
)

// env is a model loaded from the reference fixture, with its two pools
// (varlibqubes: file-reflink, linux-kernel) served by MemDrivers.
type env struct {
	t        *testing.T
	ctx      context.Context
	app      *qubes.App
	d, k     *storagetest.MemDriver
	drivers  storagetest.Drivers
	m        *Manager
	stateDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	app, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	d := storagetest.NewMemDriver(t.TempDir())
	d.Name = "file-reflink"
	k := storagetest.NewMemDriver(t.TempDir())
	k.Name = "linux-kernel"
	e := &env{t: t, ctx: t.Context(), app: app, d: d, k: k,
		drivers:  storagetest.Drivers{"file-reflink": d, "linux-kernel": k},
		stateDir: t.TempDir()}
	e.m = e.newManager()
	for _, p := range e.pools() {
		if err := e.m.SetupPool(e.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) newManager() *Manager {
	return New(e.app, e.drivers, Options{ReservePercent: 10, StateDir: e.stateDir})
}

func (e *env) pools() []Pool {
	var ps []Pool
	_ = e.app.Read(func() error { ps = e.m.Pools(); return nil })
	return ps
}

func (e *env) pool(name string) Pool {
	e.t.Helper()
	var p Pool
	err := e.app.Read(func() error {
		var err error
		p, err = e.m.Pool(name)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// vols returns a qube's volumes.
func (e *env) vols(qube string) []Volume {
	e.t.Helper()
	var vs []Volume
	err := e.app.Read(func() error {
		q, err := e.app.Qube(qube)
		if err != nil {
			return err
		}
		vs, err = e.m.Volumes(q)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return vs
}

// vol returns a qube's volume.
func (e *env) vol(qube, name string) Volume {
	e.t.Helper()
	for _, v := range e.vols(qube) {
		if v.Name == name {
			return v
		}
	}
	e.t.Fatalf("%s has no volume %s", qube, name)
	return Volume{}
}

// driverOf returns the MemDriver serving v.
func (e *env) driverOf(v Volume) *storagetest.MemDriver {
	if v.Pool.Driver == "linux-kernel" {
		return e.k
	}
	return e.d
}

func (e *env) ok(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

// wantErr checks err's kind and that its message holds every part.
func wantErr(t *testing.T, err error, kind qerr.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want a %s", kind)
	}
	if got := qerr.KindOf(err); got != kind {
		t.Errorf("error %q is a %s, want a %s", err, got, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

var errInjected = errors.New("injected failure")
