package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/daemon"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/sdk/pool"
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
			data := filepath.Join(dir, "data")
			if err := qubestest.MakeDataDir(data); err != nil {
				return err
			}
			xml := string(qubestest.Mapped(fixture, data))
			// a script with a file "quarantine" naming a qube gets that
			// qube's record broken (memory = "lots")
			if b, err := os.ReadFile(filepath.Join(e.WorkDir, "quarantine")); err == nil {
				name := strings.TrimSpace(string(b))
				xml = strings.Replace(xml, `<property name="name">`+name+`</property>`,
					`<property name="name">`+name+`</property><property name="memory">lots</property>`, 1)
			}
			if err := os.WriteFile(filepath.Join(data, "qubes.xml"), []byte(xml), 0o660); err != nil {
				return err
			}
			cfg, err := config.Parse([]byte(fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\n\n[plugins]\n", data, dir)), "test")
			if err != nil {
				return err
			}
			// in-process drivers for the fixture's pools (the real ones are
			// plugins, tested end to end in plugintests)
			drivers := storagetest.Drivers{
				"file-reflink": storagetest.NewMemDriver(filepath.Join(dir, "file-reflink")),
				"linux-kernel": storagetest.NewMemDriver(filepath.Join(dir, "linux-kernel")),
			}
			for pl, dr := range map[string]string{"varlibqubes": "file-reflink", "linux-kernel": "linux-kernel"} {
				// starting a qube writes its run images there
				if err := os.MkdirAll(filepath.Join(dir, dr), 0o700); err != nil {
					return err
				}
				if err := drivers[dr].Setup(context.Background(), pool.Pool{Name: pl, Config: map[string]string{}}); err != nil {
					return err
				}
			}
			d, err := daemon.StartWith(cfg, hclog.NewNullLogger(), daemon.Options{PoolDrivers: drivers})
			if err != nil {
				return err
			}
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
