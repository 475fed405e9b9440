package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/qubesgo/qubesd/core/daemon/daemontest"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
)

// TestScriptsRealDaemon runs testdata/daemon/*.txtar against a real qubesd
// (core/daemon, in this process) on a temporary store loaded with the
// reference's qubes-n10.xml: the CLI and the daemon together, changes
// persisted to disk. $QUBESD_SOCKET points at it and $STORE at its
// qubes.xml. A file "quarantine" in the script names a qube whose record is
// broken before the daemon starts.
func TestScriptsRealDaemon(t *testing.T) {
	fixture, err := os.ReadFile(qubestest.Fixture(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:  filepath.Join("testdata", "daemon"),
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": cmdExits},
		Setup: func(e *testscript.Env) error {
			dir, err := os.MkdirTemp("", "qvm-daemon-") // short: socket paths are limited to 107 bytes
			if err != nil {
				return err
			}
			e.Defer(func() { os.RemoveAll(dir) })
			xml := string(qubestest.Mapped(fixture, filepath.Join(dir, "data")))
			// a script with a file "quarantine" naming a qube gets that
			// qube's record broken (memory = "lots")
			if b, err := os.ReadFile(filepath.Join(e.WorkDir, "quarantine")); err == nil {
				name := strings.TrimSpace(string(b))
				xml = strings.Replace(xml, `<property name="name">`+name+`</property>`,
					`<property name="name">`+name+`</property><property name="memory">lots</property>`, 1)
			}
			// in-process pool drivers (the real ones are plugins, tested end
			// to end in plugintests) and libvirt's test driver
			d, err := daemontest.Launch(dir, []byte(xml))
			if err != nil {
				return err
			}
			cfg := d.Config
			e.Defer(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := d.Shutdown(ctx); err != nil {
					e.T().Fatal(err)
				}
			})
			e.Setenv("QUBESD_SOCKET", cfg.Daemon.SocketPath())
			e.Setenv("STORE", cfg.Daemon.StorePath())
			return nil
		},
	})
}
