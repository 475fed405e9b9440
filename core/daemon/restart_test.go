package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/daemon"
	"github.com/qubesgo/qubesd/core/daemon/daemontest"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/core/vmm"
	"github.com/qubesgo/qubesd/sdk/admin"
)

// hangGuard bounds every wait, so that a bug fails the test instead of
// hanging it; no test asserts on time.
const hangGuard = 30 * time.Second

// restartEnv is a daemon on the reference fixture that a test stops and
// starts again on the same data directory, in-memory pools and libvirt
// domains.
//
// libvirt's test:///default keeps its domains only while a connection to
// it is open in the process: hold is that connection, kept across the
// restart as libvirtd keeps a real host's domains across a qubesd restart.
// The test can also use it to act behind the daemon's back.
type restartEnv struct {
	hold *vmm.Conn
	d1   *daemontest.Daemon
}

func newRestartEnv(t *testing.T) *restartEnv {
	t.Helper()
	hold, err := vmm.Open(vmm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	dir, err := os.MkdirTemp("", "qd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	raw, err := os.ReadFile(qubestest.Fixture(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d1, err := daemontest.Launch(dir, qubestest.Mapped(raw, filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	return &restartEnv{hold: hold, d1: d1}
}

// call is an Admin API call to the first daemon; a failure ends the test.
func (e *restartEnv) call(t *testing.T, method, dest, arg, payload string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out, err := admin.New(e.d1.Config.Daemon.SocketPath()).Call(ctx, method, dest, arg, []byte(payload))
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, dest, arg, err)
	}
	return string(out)
}

// caller binds call to t.
func (e *restartEnv) caller(t *testing.T) func(method, dest, arg, payload string) string {
	return func(method, dest, arg, payload string) string {
		t.Helper()
		return e.call(t, method, dest, arg, payload)
	}
}

// stop shuts the first daemon down; the qubes it ran keep running.
func (e *restartEnv) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := e.d1.Shutdown(ctx); err != nil {
		t.Fatalf("stopping the first daemon: %v", err)
	}
}

// restart starts the second daemon on what the first left; it is shut
// down when the test ends.
func (e *restartEnv) restart(t *testing.T) *daemon.Daemon {
	t.Helper()
	d2, err := daemon.StartWith(e.d1.Config, hclog.NewNullLogger(), daemon.Options{
		PoolDrivers: storagetest.Drivers{"file-reflink": e.d1.Pool, "linux-kernel": e.d1.Kernels}})
	if err != nil {
		t.Fatalf("restarting the daemon: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := d2.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return d2
}
