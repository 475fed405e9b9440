// Package daemontest runs a real qubesd in the test's process: a given
// qubes.xml (usually the reference fixture) in a fresh data directory,
// in-memory pools (storagetest.MemDriver) serving its pools' drivers
// file-reflink and linux-kernel, and libvirt's test driver. Tests of the
// API, the lifecycle and the CLI share it, so that each tests behaviour
// rather than its own copy of the set-up.
package daemontest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/daemon"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// Daemon is a running in-process daemon and its test drivers.
type Daemon struct {
	*daemon.Daemon
	Config *config.Config
	// Pool serves the pool varlibqubes (driver file-reflink), Kernels the
	// pool linux-kernel.
	Pool, Kernels *storagetest.MemDriver
}

// Launch starts a daemon with its state in dir (keep it short: unix
// socket paths are limited to 107 bytes) and xml as its qubes.xml, paths
// already mapped to dir/data. Stop it with Shutdown.
func Launch(dir string, xml []byte) (*Daemon, error) {
	data := filepath.Join(dir, "data")
	if err := qubestest.MakeDataDir(data); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(data, "qubes.xml"), xml, 0o660); err != nil {
		return nil, err
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nlibvirt_uri = \"test:///default\"\n\n[plugins]\n", data, dir)), "daemontest")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Config: cfg}
	pools := []struct {
		pool, sub string
		drv       **storagetest.MemDriver
	}{{"varlibqubes", "mem", &d.Pool}, {"linux-kernel", "kernels", &d.Kernels}}
	for _, p := range pools {
		sub := filepath.Join(dir, p.sub)
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return nil, err
		}
		*p.drv = storagetest.NewMemDriver(sub)
		if err := (*p.drv).Setup(context.Background(), pool.Pool{Name: p.pool, Config: map[string]string{}}); err != nil {
			return nil, err
		}
	}
	d.Daemon, err = daemon.StartWith(cfg, hclog.NewNullLogger(), daemon.Options{
		PoolDrivers: storagetest.Drivers{"file-reflink": d.Pool, "linux-kernel": d.Kernels}})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Start launches a daemon on the reference fixture qubes-n10.xml in a
// temporary directory, and shuts it down when t ends.
func Start(t testing.TB) *Daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "qd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	xml, err := os.ReadFile(qubestest.Fixture(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Launch(dir, qubestest.Mapped(xml, filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return d
}
