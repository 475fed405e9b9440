package kernels_test

// conformance_test.go: the conformance suite for pools of read-only
// volumes, pooltest.RunReadOnly, in-process and over gRPC, against the
// fake kernels directory of helpers_test.go. The driver's own details
// (kernel files, version names, logging) are in driver_test.go.

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-kernels/kernels"
	"github.com/qubesgo/qubesd/sdk/pool"
	"github.com/qubesgo/qubesd/sdk/pooltest"
)

// withModules are the installed versions that have modules.img: Start
// gives them a disk, the others none.
var withModules = []string{full, link}

// factory gives each subtest a fresh kernels directory (kernelsDir) and
// the fixture describing it: the installed versions, one not there, one
// without vmlinuz.
func factory(d pool.Driver) pooltest.ReadOnlyFactory {
	return func(t *testing.T) (pool.Driver, pool.Pool, pooltest.ReadOnlyFixture) {
		dir := kernelsDir(t)
		incomplete := kernelVolume(noVmlinuz)
		fx := pooltest.ReadOnlyFixture{
			Absent:     kernelVolume(absentVer),
			Incomplete: &incomplete,
			Vanish:     func() { must(t, os.RemoveAll(dir)) },
		}
		for _, version := range installed {
			fx.Volumes = append(fx.Volumes, pooltest.FixtureVolume{Spec: kernelVolume(version), Disk: slices.Contains(withModules, version)})
		}
		return d, testPool(dir), fx
	}
}

func TestConformance(t *testing.T) {
	pooltest.RunReadOnly(t, factory(kernels.New(nil)))
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
	pooltest.RunReadOnly(t, factory(d))

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
