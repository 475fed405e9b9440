package pluginhost

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/sdk/extension"
)

// fixtureApp loads the reference's qubes-n10.xml into a model.
func fixtureApp(t *testing.T) *qubes.App {
	a, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	return a
}

func TestHostServiceOutsideDispatch(t *testing.T) {
	a := fixtureApp(t)
	committed := uint64(0)
	h := &HostService{App: a, Commit: func(_ context.Context, v uint64) error { committed = v; return nil }}
	ctx := context.Background()

	p, err := h.GetProperty(ctx, 0, "vm0001", "netvm")
	if err != nil || p != (extension.Property{Value: "sys-firewall", IsDefault: true, Type: "vm"}) {
		t.Fatalf("GetProperty: %+v %v", p, err)
	}
	if p, err := h.GetProperty(ctx, 0, "", "default_template"); err != nil || p.Value != "debian-12-xfce" {
		t.Fatalf("global GetProperty: %+v %v", p, err)
	}
	if err := h.SetProperty(ctx, 0, "vm0001", "memory", "600"); err != nil || committed == 0 {
		t.Fatalf("SetProperty: %v (committed version %d)", err, committed)
	}
	if err := h.SetFeature(ctx, 0, "vm0001", "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := h.GetFeature(ctx, 0, "vm0001", "hello"); err != nil || !ok || v != "1" {
		t.Fatalf("GetFeature: %q %v %v", v, ok, err)
	}
	if err := h.AddTag(ctx, 0, "vm0001", "seen"); err != nil {
		t.Fatal(err)
	}
	if tags, _ := h.ListTags(ctx, 0, "vm0001"); !strings.Contains(strings.Join(tags, " "), "seen") {
		t.Errorf("ListTags: %v", tags)
	}
	if qs, err := h.ListQubes(ctx, 0); err != nil || len(qs) != 14 || qs[0].Name != "dom0" {
		t.Errorf("ListQubes: %d qubes, %v", len(qs), err)
	}

	// errors keep their Qubes exception class
	err = h.SetProperty(ctx, 0, "vm0001", "memory", "-1")
	if typ, msg := extension.ExceptionOf(err); typ != "QubesPropertyValueError" || msg != "memory must be positive" {
		t.Errorf("a refused value: %q %q", typ, msg)
	}
	if _, err := h.GetProperty(ctx, 0, "nosuch", "label"); !errors.Is(err, extension.ErrNotFound) {
		t.Errorf("unknown qube: %v", err)
	}
	if err := h.QdbWrite(ctx, 0, "vm0001", "/x", nil); !errors.Is(err, extension.ErrUnimplemented) {
		t.Errorf("QdbWrite: %v", err)
	}
}

// TestHostServiceInsideDispatch: an extension handling an event fired under
// the write lock calls back with the dispatch id — from another goroutine,
// as a plugin's call arrives — and its change is made inside the lock.
func TestHostServiceInsideDispatch(t *testing.T) {
	a := fixtureApp(t)
	h := &HostService{App: a}
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(func() error {
			id, end := a.BeginDispatch(true)
			defer end()
			res := make(chan error)
			go func() { res <- h.AddTag(context.Background(), id, "vm0002", "from-extension") }()
			return <-res
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the callback waited for its dispatcher's lock")
	}
	if tags, _ := h.ListTags(context.Background(), 0, "vm0002"); !strings.Contains(strings.Join(tags, " "), "from-extension") {
		t.Errorf("the tag made inside the dispatch is missing: %v", tags)
	}
}
