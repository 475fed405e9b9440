package kernels_test

// helpers_test.go: the fake kernels directory the tests use, and the two
// ways of reaching the driver they run against: in-process (behind the
// SDK's request checks, as pool.Serve puts it) and through the plugin
// binary over gRPC, as the daemon does.

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/plugins/pool-kernels/kernels"
	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/plugin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// The fake kernels directory (kernelsDir).
const (
	full       = "6.6.63-1.qubes.fc37.x86_64" // every file
	noModules  = "5.15.0-nomodules"           // vmlinuz and initramfs: no disk
	bare       = "pvgrub2"                    // vmlinuz only
	link       = "latest"                     // a symbolic link to full
	noVmlinuz  = "broken-1.0"                 // initramfs and modules.img, no vmlinuz
	vmlinuzDir = "vmlinuz-is-a-dir"           // vmlinuz is a directory
	plainFile  = "README"                     // a file, not a directory
	dangling   = "dangling"                   // a link to nothing
	badName    = "bad name"                   // has vmlinuz, but a space in its name
	nested     = "nested"                     // nested/deeper/vmlinuz: only reachable as "nested/deeper"
	absentVer  = "7.0.0-absent"               // not there at all
)

// installed are the versions ListVolumes lists, in its order.
var installed = []string{noModules, full, link, bare}

const modulesSize = 8192

// kernelsDir makes a kernels directory with every case above and returns
// its path.
func kernelsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vm-kernels")
	files := map[string]string{
		full + "/vmlinuz":                       "vmlinuz " + full,
		full + "/initramfs":                     "initramfs " + full,
		full + "/default-kernelopts-pci.txt":    "pci-opts\n",
		full + "/default-kernelopts-nopci.txt":  "nopci-opts\n",
		full + "/default-kernelopts-common.txt": "common-opts\n",
		full + "/memory-hotplug-supported":      "",
		noModules + "/vmlinuz":                  "vmlinuz " + noModules,
		noModules + "/initramfs":                "initramfs " + noModules,
		bare + "/vmlinuz":                       "vmlinuz " + bare,
		noVmlinuz + "/initramfs":                "initramfs",
		noVmlinuz + "/modules.img":              "modules",
		vmlinuzDir + "/vmlinuz/file":            "not a kernel",
		plainFile:                               "kernels live here",
		badName + "/vmlinuz":                    "vmlinuz",
		nested + "/deeper/vmlinuz":              "vmlinuz",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, []byte(content), 0o644))
	}
	modules := make([]byte, modulesSize)
	copy(modules, "modules "+full)
	must(t, os.WriteFile(filepath.Join(dir, full, "modules.img"), modules, 0o644))
	must(t, os.Symlink(full, filepath.Join(dir, link)))
	must(t, os.Symlink("nowhere", filepath.Join(dir, dangling)))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testPool(dir string) pool.Pool {
	return pool.Pool{Name: "linux-kernel", Config: map[string]string{kernels.KeyDirPath: dir}}
}

// kernelVolume is a kernel volume's spec as the daemon keeps it.
func kernelVolume(version string) pool.Volume {
	return pool.Volume{VID: version, Name: "kernel"}
}

// impl is one way of reaching the driver.
type impl struct {
	name string
	d    pool.Driver
	// log holds what the in-process driver logged (nil over gRPC).
	log *syncBuffer
}

// impls returns the driver in-process and, unless -short, over gRPC.
func impls(t *testing.T) []impl {
	t.Helper()
	log := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: log})
	is := []impl{{name: "in-process", d: pool.Check(kernels.New(logger)), log: log}}
	if d := launch(t); d != nil {
		is = append(is, impl{name: "gRPC", d: d})
	}
	return is
}

// eachImpl runs fn as a subtest for each way of reaching the driver.
func eachImpl(t *testing.T, fn func(t *testing.T, im impl)) {
	t.Helper()
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) { fn(t, im) })
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// TestMain removes the plugin binary built for the gRPC tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// pluginBinary builds cmd/qubesd-pool-kernels once per test run.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "pool-kernels-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "qubesd-pool-kernels")
		out, err := exec.Command(goTool, "build", "-o", binPath,
			"github.com/qubesgo/qubesd/plugins/pool-kernels/cmd/qubesd-pool-kernels").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if _, ok := buildErr.(*exec.Error); ok {
		t.Skipf("skipped: no go tool to build the plugin with: %v", buildErr)
	}
	if buildErr != nil {
		t.Fatalf("building the plugin: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// launchClient starts the plugin as qubesd does (go-plugin, the shared
// handshake, AutoMTLS, gRPC) and returns the daemon-side driver and the
// go-plugin client; the plugin is killed when the test ends.
func launchClient(t *testing.T) (pool.Driver, *goplugin.Client) {
	t.Helper()
	bin := pluginBinary(t)
	cfg := plugin.ClientConfig(plugin.KindPoolDriver, pool.NewGRPCPlugin(nil), exec.Command(bin))
	cfg.Managed = true
	cfg.StartTimeout = 30 * time.Second
	cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{TempDir: t.TempDir()}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "pool-kernels", Level: hclog.Warn, Output: os.Stderr})
	client := goplugin.NewClient(cfg)
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting the plugin: %v", err)
	}
	if v := client.NegotiatedVersion(); v != sdk.ProtocolVersion {
		t.Errorf("negotiated protocol version %d, want %d", v, sdk.ProtocolVersion)
	}
	raw, err := rpc.Dispense(plugin.KindPoolDriver)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	d, ok := raw.(pool.Driver)
	if !ok {
		t.Fatalf("Dispense returned %T, not a pool.Driver", raw)
	}
	if err := d.Configure(context.Background(), nil); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return d, client
}

// launch is launchClient, or nil in -short mode.
func launch(t *testing.T) pool.Driver {
	t.Helper()
	if testing.Short() {
		t.Log("gRPC: skipped in -short mode (builds and launches the plugin binary)")
		return nil
	}
	d, _ := launchClient(t)
	return d
}

// tree describes every file under dir (name, type, size, content hash
// stand-in: modification time), to check that calls leave it untouched.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b.WriteString(rel + " " + fi.Mode().String() + " " + fi.ModTime().String())
		if fi.Mode().IsRegular() {
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(content))
		}
		b.WriteString("\n")
		return nil
	})
	must(t, err)
	return b.String()
}
