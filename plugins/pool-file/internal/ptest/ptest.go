// Package ptest holds what the pool-file tests share: a btrfs file system
// on a loop device (where reflinks work), and the plugin binaries built
// and launched as the daemon launches them.
package ptest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

// btrfsSize is the size of the btrfs image (sparse: it takes what the
// file system writes).
const btrfsSize = 2 << 30

var (
	installOnce sync.Once
	installErr  error
)

// installBtrfsProgs installs btrfs-progs with apt-get if mkfs.btrfs is
// missing (once per test binary; several test binaries may run at once,
// so apt-get waits for the dpkg lock).
func installBtrfsProgs() error {
	installOnce.Do(func() {
		if _, err := exec.LookPath("mkfs.btrfs"); err == nil {
			return
		}
		aptGet, err := exec.LookPath("apt-get")
		if err != nil {
			installErr = errors.New("no apt-get to install btrfs-progs with")
			return
		}
		run := func(args ...string) error {
			cmd := exec.Command(aptGet, append([]string{"-o", "DPkg::Lock::Timeout=300", "-qq"}, args...)...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return errors.New("apt-get " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out))
			}
			return nil
		}
		if run("install", "-y", "btrfs-progs") != nil { // the package lists may be missing or old
			if installErr = run("update"); installErr == nil {
				installErr = run("install", "-y", "btrfs-progs")
			}
		}
		if installErr == nil {
			_, installErr = exec.LookPath("mkfs.btrfs")
		}
	})
	return installErr
}

// Btrfs returns the mount point of a fresh btrfs file system, made in an
// image file in t.TempDir() and mounted on a loop device; t's cleanup
// unmounts it (which frees the loop device) and checks that no loop device
// is left on the image. The test is skipped, saying why, where that cannot
// be done: not Linux, not root, no btrfs in the kernel, no loop devices,
// mkfs.btrfs missing and not installable, mount refused.
func Btrfs(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("skipped: btrfs on a loop device needs Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a btrfs file system on a loop device needs root")
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "btrfs") {
		if exec.Command("modprobe", "btrfs").Run() != nil {
			t.Skip("skipped: the kernel has no btrfs (not in /proc/filesystems, modprobe btrfs failed)")
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("skipped: no loop devices (/dev/loop-control: %v)", err)
	}
	if err := installBtrfsProgs(); err != nil {
		t.Skipf("skipped: mkfs.btrfs is missing and could not be installed: %v", err)
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "btrfs.img"), filepath.Join(dir, "mnt")
	f, err := os.Create(img)
	if err == nil {
		err = errors.Join(f.Truncate(btrfsSize), f.Close())
	}
	if err == nil {
		err = os.Mkdir(mnt, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("skipped: mount -o loop of a btrfs image refused (no permission to mount here?): %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
		out, _ := exec.Command("losetup", "-j", img).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Errorf("loop device left on %s after umount: %s", img, s)
			for _, line := range strings.Split(s, "\n") {
				if dev, _, ok := strings.Cut(line, ":"); ok {
					exec.Command("losetup", "-d", dev).Run()
				}
			}
		}
	})
	return mnt
}

// Launch builds the plugin in the package directory pkgDir and launches
// it as qubesd does (go-plugin, the shared handshake, AutoMTLS, gRPC),
// returning the daemon-side client. t's cleanup stops the plugin and
// checks that its process is gone. Skipped in -short mode and without a go
// tool.
func Launch(t *testing.T, pkgDir string) pool.Driver {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and launches the plugin binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: no go tool in PATH to build the plugin with")
	}
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(abs)
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command(goTool, "build", "-o", bin, abs).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkgDir, err, out)
	}
	cfg := plugin.ClientConfig(plugin.KindPoolDriver, pool.NewGRPCPlugin(nil), exec.Command(bin))
	cfg.Managed = true
	cfg.StartTimeout = 30 * time.Second
	cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{TempDir: t.TempDir()}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: os.Stderr})
	client := goplugin.NewClient(cfg)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		t.Fatalf("starting the plugin: %v", err)
	}
	pid, _ := strconv.Atoi(client.ID())
	t.Cleanup(func() {
		client.Kill()
		if pid > 0 {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("plugin process %d still there after Kill (signal 0: %v)", pid, err)
			}
		}
	})
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
	if err := drv.Configure(context.Background(), nil); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return drv
}

// FS is a file system the tests put pools on.
type FS struct {
	Name string
	// Root returns a directory on it, removed by t's cleanup.
	Root func(t *testing.T) string
	// Reflinks: the file system makes reflinks (else file-reflink pools
	// get setup_check=False).
	Reflinks bool
}

// Filesystems are the machine's own (the test's temporary directory:
// ext4 or overlay here, where copies are sparse copies) and a btrfs on a
// loop device (where they are reflinks).
var Filesystems = []FS{
	{Name: "tmpdir", Root: func(t *testing.T) string { t.Helper(); return t.TempDir() }},
	{Name: "btrfs", Root: func(t *testing.T) string { t.Helper(); return Btrfs(t) }, Reflinks: true},
}

// Conformance runs the conformance suite on d, the driver named driver,
// with pools in root (each in a directory of its own, created by Setup).
func Conformance(t *testing.T, d pool.Driver, driver string, fs FS, root string) {
	t.Helper()
	n := 0
	var mu sync.Mutex
	pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) {
		mu.Lock()
		n++
		dir := filepath.Join(root, strconv.Itoa(n))
		mu.Unlock()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return d, pool.Pool{Name: "pooltest", Config: PoolConfig(driver, fs, filepath.Join(dir, "pool"))}
	})
}

// PoolConfig is the config of a pool of driver at dir on fs.
func PoolConfig(driver string, fs FS, dir string) map[string]string {
	cfg := map[string]string{"dir_path": dir}
	if driver == "file-reflink" && !fs.Reflinks {
		cfg["setup_check"] = "False"
	}
	return cfg
}
