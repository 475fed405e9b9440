package kernels_test

// conformance_test.go: the conformance suite, sdk/pooltest, in-process and
// over gRPC — the part of it that applies to a pool of read-only volumes
// that exist before the suite starts.
//
// pooltest makes every volume it tests itself (Create of volatile, origin
// and snapshot volumes, all rw) and writes to them through Start's path; it
// has no mode for a driver whose volumes are read-only and already on disk,
// and no way to run a subset but go test's -run. So the factory skips, with
// the reason, every subtest but those that need no volume: Info, Config and
// Pool. The rest of the contract is in driver_test.go.

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-kernels/kernels"
	"github.com/qubesgo/qubesd/sdk/pool"
	"github.com/qubesgo/qubesd/sdk/pooltest"
)

// applicable are the pooltest subtests that apply to this driver.
var applicable = map[string]bool{"Info": true, "Config": true, "Pool": true}

// factory gives each pooltest subtest a fresh, empty kernels directory, and
// skips the subtests that need volumes the suite creates. outer is the test
// that calls pooltest.Run: Run calls the factory once with it, to read Info.
func factory(outer *testing.T, d pool.Driver) pooltest.Factory {
	return func(t *testing.T) (pool.Driver, pool.Pool) {
		name := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
		if t != outer && !applicable[name] {
			t.Skipf("skipped: pooltest's %s creates rw volumes and writes to them; linux-kernel volumes are read-only kernels "+
				"installed on disk, which Create cannot make (the driver's contract is checked by the tests in driver_test.go)", name)
		}
		return d, testPool(filepath.Join(t.TempDir(), "vm-kernels"))
	}
}

func TestConformance(t *testing.T) {
	pooltest.Run(t, factory(t, kernels.New(nil)))
}

// TestConformanceOverGRPC runs the suite through the plugin binary, as the
// daemon reaches it, then checks that the plugin dies with Kill and that
// a call made afterwards says the driver is unavailable.
func TestConformanceOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and launches the plugin binary")
	}
	d, client := launchClient(t)
	pid, _ := strconv.Atoi(client.ID())
	pooltest.Run(t, factory(t, d))

	client.Kill()
	if !client.Exited() {
		t.Error("plugin not exited after Kill")
	}
	if pid > 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("plugin process %d still there after Kill (signal 0: %v)", pid, err)
		}
	}
	if _, err := d.Info(t.Context()); !errors.Is(err, pool.ErrUnavailable) {
		t.Errorf("call after the plugin exited: %v, want an error of kind ErrUnavailable", err)
	}
}
