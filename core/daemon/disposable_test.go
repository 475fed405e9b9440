package daemon_test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestRestartReapsDisposables stops a daemon with disposables in every
// state and starts a new one on the same data directory, storage and
// libvirt: the disposables with auto_cleanup that do not run (never
// started, or stopped while no daemon ran) are removed with their
// volumes; a running one is adopted and removed once it stops; one
// without auto_cleanup stays.
func TestRestartReapsDisposables(t *testing.T) {
	e := newRestartEnv(t)
	hold, d1 := e.hold, e.d1
	call := e.caller(t)

	call("admin.vm.Create.TemplateVM", "dom0", "", "name=reap-tpl label=black")
	call("admin.vm.property.Set", "reap-tpl", "kernel", "")
	call("admin.vm.Create.AppVM", "dom0", "reap-tpl", "name=reap-dvm label=red")
	call("admin.vm.property.Set", "reap-dvm", "template_for_dispvms", "True")
	call("admin.vm.property.Set", "reap-dvm", "netvm", "")

	type disp struct {
		name   string
		before func(name string) // with the first daemon
		reaped bool              // removed by the second daemon's start
	}
	disps := []*disp{
		{before: func(string) {}, reaped: true},                                      // created, never started
		{before: func(n string) { call("admin.vm.Start", n, "", "") }, reaped: true}, // stopped while no daemon ran, below
		{before: func(n string) { call("admin.vm.Start", n, "", "") }},               // running at the restart
		{before: func(n string) { call("admin.vm.property.Set", n, "auto_cleanup", "False") }},
	}
	stoppedWhileDown, running, kept := disps[1], disps[2], disps[3]
	for _, d := range disps {
		d.name = call("admin.vm.CreateDisposable", "reap-dvm", "", "")
		d.before(d.name)
	}
	defer func() {
		for _, d := range disps {
			_ = hold.Destroy(d.name)
			_ = hold.Undefine(d.name)
		}
	}()
	vids := map[string][]string{}
	for _, d := range disps {
		for _, v := range []string{"root", "private", "volatile"} {
			vids[d.name] = append(vids[d.name], "appvms/"+d.name+"/"+v)
		}
	}

	e.stop(t)
	if err := hold.Destroy(stoppedWhileDown.name); err != nil {
		t.Fatal(err)
	}

	d2 := e.restart(t)
	exists := func(name string) bool {
		return d2.App().Read(func() error { _, err := d2.App().Qube(name); return err }) == nil
	}
	saved := func(name string) bool {
		b, err := os.ReadFile(d1.Config.Daemon.StorePath())
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), `<property name="name">`+name+`</property>`)
	}
	waitGone := func(name string) {
		t.Helper()
		for end := time.Now().Add(hangGuard); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			if !exists(name) && !saved(name) {
				return
			}
		}
		t.Fatalf("%s is still there (model %v, qubes.xml %v)", name, exists(name), saved(name))
	}

	// the orphans go in the background, once the pools' drivers are up
	for _, d := range disps {
		if !d.reaped {
			continue
		}
		waitGone(d.name)
		for _, vid := range vids[d.name] {
			if d1.Pool.Has("varlibqubes", vid) {
				t.Errorf("volume %s of the reaped %s is left in the pool", vid, d.name)
			}
		}
		if _, err := hold.Lookup(d.name); err == nil {
			t.Errorf("the reaped %s is still defined in libvirt", d.name)
		}
	}
	if got := call("admin.vm.List", running.name, "", ""); !strings.Contains(got, " state=Running ") {
		t.Errorf("the running disposable after the restart: %q, want it adopted, Running", got)
	}
	if got := call("admin.vm.List", kept.name, "", ""); !strings.Contains(got, " state=Halted ") {
		t.Errorf("the disposable without auto_cleanup after the restart: %q, want it kept, Halted", got)
	}

	// the adopted one goes when it stops
	call("admin.vm.Kill", running.name, "", "")
	waitGone(running.name)
	for _, vid := range vids[running.name] {
		if d1.Pool.Has("varlibqubes", vid) {
			t.Errorf("volume %s of the adopted disposable is left in the pool after its stop", vid)
		}
	}
	if !exists(kept.name) {
		t.Errorf("the disposable without auto_cleanup was removed")
	}
}
