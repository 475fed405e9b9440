package plugintests

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
)

// fixtureModel loads the reference's qubes-n10.xml.
func fixtureModel(t testing.TB) *qubes.App {
	a, _ := qubestest.FixtureModel(t, "qubes-n10.xml")
	return a
}

// startExtensions runs a plugin host with the given extensions (binaries
// in bin/, in this order) subscribed to app.
func startExtensions(t testing.TB, app *qubes.App, names ...string) *pluginhost.Host {
	t.Helper()
	return startExtensionsWith(t, app, pluginhost.Options{}, names...)
}

// startExtensionsWith is startExtensions with options for the host (its
// RunDir, Model and MinBackoff are set here).
func startExtensionsWith(t testing.TB, app *qubes.App, opts pluginhost.Options, names ...string) *pluginhost.Host {
	t.Helper()
	dir := t.TempDir()
	toml := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nplugin_dir = %q\n", filepath.Join(dir, "data"), dir, bin)
	for i, n := range names {
		// the same binary may run several times: NAME#i
		bin, _, _ := strings.Cut(n, "#")
		toml += fmt.Sprintf("\n[plugins.p%d]\nkind = \"extension\"\npath = %q\n", i, bin)
	}
	cfg, err := config.Parse([]byte(toml), "test")
	if err != nil {
		t.Fatal(err)
	}
	opts.RunDir, opts.Model, opts.MinBackoff = dir, app, 50*time.Millisecond
	h, err := pluginhost.New(cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	t.Cleanup(h.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.WaitReady(ctx)
	for _, st := range h.Status() {
		if st.State != pluginhost.Running {
			t.Fatalf("extension not running: %+v", st)
		}
	}
	return h
}

// setFeature sets a feature as an Admin API call would, with a deadline
// so that a deadlock fails the test instead of hanging it.
func setFeature(t *testing.T, app *qubes.App, vm, name, value string) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := app.Write(func() error {
			q, err := app.Qube(vm)
			if err != nil {
				return err
			}
			return q.Features.Set(name, value)
		})
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("deadlock: setting a feature did not return")
		return nil
	}
}

func has(app *qubes.App, vm string, check func(q *qubes.Qube) bool) bool {
	ok := false
	_ = app.Read(func() error {
		q, err := app.Qube(vm)
		ok = err == nil && check(q)
		return nil
	})
	return ok
}

func TestExtensionSyncCallsBack(t *testing.T) {
	app := fixtureModel(t)
	startExtensions(t, app, "ext-hello")
	if err := setFeature(t, app, "vm0001", "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if !has(app, "vm0001", func(q *qubes.Qube) bool { return q.Tags.Has("hello-seen") }) {
		t.Error("the extension's callback (a tag) is missing")
	}
}

func TestExtensionVeto(t *testing.T) {
	app := fixtureModel(t)
	h := startExtensions(t, app, "ext-hello")
	err := setFeature(t, app, "vm0001", "forbidden", "1")
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("setting a vetoed feature: %v", err)
	}
	if has(app, "vm0001", func(q *qubes.Qube) bool { _, ok := q.Features.Get("forbidden"); return ok }) {
		t.Error("a vetoed feature was set")
	}
	// a PreVeto extension that is down fails closed
	pid := h.Status()[0].PID
	kill(t, pid, syscall.SIGKILL)
	waitFor(t, "the extension to be seen down", func() bool { return h.Status()[0].PID != pid })
	if st := h.Status()[0]; st.State != pluginhost.Running {
		if err := setFeature(t, app, "vm0002", "forbidden", "1"); qerr.KindOf(err) != qerr.PermissionDenied {
			t.Errorf("with the vetoing extension down: %v, want a refusal", err)
		}
	}
	waitFor(t, "the extension to be back", func() bool { st := h.Status()[0]; return st.State == pluginhost.Running && st.Restarts == 1 })
	if err := setFeature(t, app, "vm0003", "hello", "1"); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	if !has(app, "vm0003", func(q *qubes.Qube) bool { return q.Tags.Has("hello-seen") }) {
		t.Error("after the restart the extension does not call back")
	}
}

// TestExtensionReentrancy: the handler's Host call fires an event the same
// extension handles, inside the first dispatch — no deadlock.
func TestExtensionReentrancy(t *testing.T) {
	app := fixtureModel(t)
	startExtensions(t, app, "reenter")
	if err := setFeature(t, app, "vm0001", "ping", "1"); err != nil {
		t.Fatal(err)
	}
	if !has(app, "vm0001", func(q *qubes.Qube) bool { v, ok := q.Features.Get("echo-ping"); return ok && v == "1" }) {
		t.Error("the nested change is missing")
	}
}

// TestTwoExtensionsOnOneEvent: two extensions subscribed to the same event
// both handle it.
func TestTwoExtensionsOnOneEvent(t *testing.T) {
	app := fixtureModel(t)
	startExtensions(t, app, "ext-hello", "reenter")
	if err := setFeature(t, app, "vm0004", "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if !has(app, "vm0004", func(q *qubes.Qube) bool {
		_, echo := q.Features.Get("echo-hello")
		return q.Tags.Has("hello-seen") && echo
	}) {
		t.Error("not every extension handled the event")
	}
}
