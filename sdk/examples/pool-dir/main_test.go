package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/plugin"
	"github.com/qubesgo/qubesd/sdk/pool"
	"github.com/qubesgo/qubesd/sdk/pooltest"
)

// testPool is a fresh pool in the test's temporary directory.
func testPool(t *testing.T) pool.Pool {
	return pool.Pool{Name: "pooltest", Config: map[string]string{"dir_path": filepath.Join(t.TempDir(), "pool")}}
}

// TestConformance runs the conformance suite on the driver in-process.
func TestConformance(t *testing.T) {
	pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) {
		return &Driver{}, testPool(t)
	})
}

// TestConformanceOverGRPC builds this plugin, launches it as qubesd does
// (go-plugin, the shared handshake, AutoMTLS, gRPC) and runs the
// conformance suite against the daemon-side client: the whole path from
// pool.Driver through storage.v1 to the plugin process and back.
func TestConformanceOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and launches the plugin binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: no go tool in PATH to build the plugin with")
	}
	bin := filepath.Join(t.TempDir(), "qubesd-pool-dir")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cfg := plugin.ClientConfig(plugin.KindPoolDriver, pool.NewGRPCPlugin(nil), exec.Command(bin))
	cfg.Managed = true
	cfg.StartTimeout = 30 * time.Second
	cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{TempDir: t.TempDir()}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "pool-dir", Level: hclog.Warn, Output: os.Stderr})
	client := goplugin.NewClient(cfg)
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting the plugin: %v", err)
	}
	pid, _ := strconv.Atoi(client.ID())
	if v := client.NegotiatedVersion(); v != sdk.ProtocolVersion {
		t.Errorf("negotiated protocol version %d, want %d", v, sdk.ProtocolVersion)
	}
	raw, err := rpc.Dispense(plugin.KindPoolDriver)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	drv, ok := raw.(pool.Driver)
	if !ok {
		t.Fatalf("Dispense returned %T, not a pool.Driver", raw)
	}
	ctx := context.Background()
	if err := drv.Configure(ctx, nil); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	info, err := drv.Info(ctx)
	if err != nil || info.Name != "dir" || info.ProtocolVersion != sdk.ProtocolVersion {
		t.Fatalf("Info over gRPC: %+v, %v", info, err)
	}

	pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) { return drv, testPool(t) })

	// The plugin dies with Kill, leaves no process behind, and a call
	// made afterwards says the plugin is unavailable.
	client.Kill()
	if !client.Exited() {
		t.Error("plugin not exited after Kill")
	}
	if pid > 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("plugin process %d still there after Kill (signal 0: %v)", pid, err)
		}
	}
	_, err = drv.Info(ctx)
	if !errors.Is(err, pool.ErrUnavailable) {
		t.Errorf("call after the plugin exited: %v, want an error of kind ErrUnavailable", err)
	}
}
