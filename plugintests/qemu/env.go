package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
)

// Env is a running private libvirtd.
type Env struct {
	// URI is the libvirt connection URI of the private daemon.
	URI string
	// Socket is the host path of its read-write socket.
	Socket string
	// Dir is the private root (see the package documentation).
	Dir string
}

// QemuLog is the host path of the qemu log libvirt keeps for domain name.
func (e *Env) QemuLog(name string) string {
	return filepath.Join(e.Dir, "log", "qemu", name+".log")
}

// Virsh runs "virsh -q -c URI args..." with a 60 s timeout and returns its
// standard output; the error carries the standard error.
func (e *Env) Virsh(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", e.URI}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("virsh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustVirsh is Virsh failing the test on error.
func (e *Env) MustVirsh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.Virsh(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Ensure returns the process's private libvirtd, setting it up (packages,
// user, configuration, daemons) on first use, and releases it when t ends.
// It skips t with the reason when that cannot be done.
func Ensure(t testing.TB) *Env {
	t.Helper()
	env, err := Start()
	if err != nil {
		skip(t, err)
	}
	t.Cleanup(Stop)
	return env
}

// Start takes a reference on the process's private libvirtd, starting it
// when there is none. Each successful Start must be paired with a Stop.
// A setup failure is remembered: later calls return the same error.
func Start() (*Env, error) {
	mu.Lock()
	defer mu.Unlock()
	if setupErr != nil {
		return nil, setupErr
	}
	if cur == nil {
		inst, err := startInstance()
		if err != nil {
			setupErr = err
			return nil, err
		}
		cur = inst
	}
	refs++
	return cur.env, nil
}

// Stop releases a reference taken by Start (or Ensure); the last one stops
// the daemons, the domains and removes the private directory.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if refs == 0 {
		return
	}
	refs--
	if refs == 0 && cur != nil {
		cur.stop()
		cur = nil
	}
}

var (
	mu       sync.Mutex
	cur      *instance
	refs     int
	setupErr error
)

// skip skips t, or fails it under QUBESD_QEMU_REQUIRE=1.
func skip(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("QUBESD_QEMU_REQUIRE") == "1" {
		t.Fatalf("real VMs unavailable (QUBESD_QEMU_REQUIRE=1): %v", err)
	}
	t.Skipf("real VMs unavailable: %v", err)
}

// packages are the Debian packages the harness needs.
var packages = []string{
	"qemu-system-x86",
	"libvirt-daemon",
	"libvirt-daemon-driver-qemu",
	"libvirt-clients",
	"linux-image-cloud-amd64",
	"busybox-static",
}

var (
	installOnce sync.Once
	installErr  error
)

// install makes sure the packages and the libvirt-qemu user exist.
func install() error {
	installOnce.Do(func() { installErr = doInstall() })
	return installErr
}

func doInstall() error {
	if os.Geteuid() != 0 {
		return errors.New("not root (needs to install packages and run libvirtd)")
	}
	var missing []string
	for _, p := range packages {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), " installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if _, err := exec.LookPath("apt-get"); err != nil {
			return fmt.Errorf("packages %v missing and no apt-get", missing)
		}
		if out, err := aptGet(append([]string{"install", "-y"}, missing...)...); err != nil {
			if uout, uerr := aptGet("update"); uerr != nil {
				return fmt.Errorf("apt-get install %v: %v\n%s\napt-get update: %v\n%s", missing, err, tail(out), uerr, tail(uout))
			}
			if out, err := aptGet(append([]string{"install", "-y"}, missing...)...); err != nil {
				return fmt.Errorf("apt-get install %v (after apt-get update): %v\n%s", missing, err, tail(out))
			}
		}
	}
	for _, b := range []string{"qemu-system-x86_64", "libvirtd", "virtlogd", "virsh", "unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not found after installing %v", b, packages)
		}
	}
	if exec.Command("getent", "passwd", "libvirt-qemu").Run() != nil {
		if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "libvirt-qemu").CombinedOutput(); err != nil {
			return fmt.Errorf("useradd libvirt-qemu: %v: %s", err, out)
		}
	}
	return nil
}

func aptGet(args ...string) ([]byte, error) {
	// Wait for dpkg's lock: another test process may be installing too.
	cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// tail returns the last lines of a command's output.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// mounts are the libvirt directories a root libvirtd has compiled in,
// each replaced in the private namespace by a subdirectory of the
// instance's directory.
var mounts = []struct{ host, sub string }{
	{"/etc/libvirt", "etc"},
	{"/run/libvirt", "run"},
	{"/var/lib/libvirt", "lib"},
	{"/var/log/libvirt", "log"},
	{"/var/cache/libvirt", "cache"},
}

const dirPattern = "qubesd-libvirt-"

const qemuConf = `# written by the qubesd test harness (plugintests/qemu)
user = "root"
group = "root"
cgroup_controllers = [ ]
namespaces = [ ]
security_driver = "none"
`

type instance struct {
	env                *Env
	virtlogd, libvirtd *exec.Cmd
	vdone, ldone       chan struct{}
}

func startInstance() (inst *instance, err error) {
	if err := install(); err != nil {
		return nil, err
	}
	cleanStale()
	for _, m := range mounts {
		if err := os.MkdirAll(m.host, 0o755); err != nil {
			return nil, fmt.Errorf("mount point: %v", err)
		}
	}
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, err
	}
	inst = &instance{env: &Env{
		Dir:    dir,
		Socket: filepath.Join(dir, "run", "libvirt-sock"),
	}}
	inst.env.URI = "qemu+unix:///system?socket=" + inst.env.Socket
	defer func() {
		if err != nil {
			inst.stop()
		}
	}()
	for _, m := range mounts {
		if err := os.MkdirAll(filepath.Join(dir, m.sub), 0o755); err != nil {
			return inst, err
		}
	}
	// Seed the qemu capabilities cache from an earlier instance of this
	// process: probing the qemu binaries takes libvirtd seconds.
	capsDir := filepath.Join(dir, "cache", "qemu", "capabilities")
	if len(capsCache) > 0 {
		if err := os.MkdirAll(capsDir, 0o755); err != nil {
			return inst, err
		}
		for name, b := range capsCache {
			if err := os.WriteFile(filepath.Join(capsDir, name), b, 0o600); err != nil {
				return inst, err
			}
		}
	}
	files := map[string]string{
		"owner":             strconv.Itoa(os.Getpid()) + "\n",
		"etc/qemu.conf":     qemuConf,
		"etc/virtlogd.conf": fmt.Sprintf("log_outputs = \"3:file:%s/virtlogd.log\"\n", dir),
		"etc/libvirtd.conf": fmt.Sprintf(`unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:%s/libvirtd.log"
`, dir),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return inst, err
		}
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, m := range mounts {
		fmt.Fprintf(&script, "mount --bind '%s' '%s'\n", filepath.Join(dir, m.sub), m.host)
	}
	fmt.Fprintf(&script, "exec virtlogd -f /etc/libvirt/virtlogd.conf -p '%s/virtlogd.pid'\n", dir)

	inst.virtlogd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script.String())
	inst.vdone, err = spawn(inst.virtlogd, filepath.Join(dir, "virtlogd.out"))
	if err != nil {
		return inst, fmt.Errorf("starting virtlogd in a private mount namespace: %v", err)
	}
	if err := waitFor(10*time.Second, inst.vdone, dir, "virtlogd", func() bool {
		_, err := os.Stat(filepath.Join(dir, "run", "virtlogd-sock"))
		return err == nil
	}); err != nil {
		return inst, err
	}
	ns := fmt.Sprintf("/proc/%d/ns/mnt", inst.virtlogd.Process.Pid)
	inst.libvirtd = exec.Command("nsenter", "--mount="+ns, "--",
		"libvirtd", "-f", "/etc/libvirt/libvirtd.conf", "-p", filepath.Join(dir, "libvirtd.pid"))
	inst.ldone, err = spawn(inst.libvirtd, filepath.Join(dir, "libvirtd.out"))
	if err != nil {
		return inst, fmt.Errorf("starting libvirtd: %v", err)
	}
	if err := waitFor(30*time.Second, inst.ldone, dir, "libvirtd", func() bool {
		if _, err := os.Stat(inst.env.Socket); err != nil {
			return false
		}
		_, err := inst.env.Virsh("version")
		return err == nil
	}); err != nil {
		return inst, err
	}
	return inst, nil
}

// waitFor polls ready until it holds, the daemon exits or the timeout.
func waitFor(timeout time.Duration, done chan struct{}, dir, name string, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-done:
			return fmt.Errorf("%s exited at start-up: %s%s", name,
				readTail(filepath.Join(dir, name+".out")), readTail(filepath.Join(dir, name+".log")))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %s", name, timeout, readTail(filepath.Join(dir, name+".log")))
		}
	}
	return nil
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) == 0 {
		return ""
	}
	return "\n" + path + ":\n" + tail(b)
}

// spawner starts the daemons from one OS thread that stays alive for the
// whole process: a parent-death signal fires when the thread that forked
// the child exits, not the process.
var spawner = sync.OnceValue(func() chan func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must live on
		for f := range ch {
			f()
		}
	}()
	return ch
})

// spawn starts cmd with its output in logPath and a parent-death signal,
// and returns a channel closed when it has exited (and been reaped).
func spawn(cmd *exec.Cmd, logPath string) (chan struct{}, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	errc := make(chan error)
	spawner() <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		out.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(done)
	}()
	return done, nil
}

func (inst *instance) stop() {
	if inst.ldone != nil && !closed(inst.ldone) {
		inst.destroyDomains()
		terminate(inst.libvirtd, inst.ldone)
	}
	if inst.vdone != nil {
		terminate(inst.virtlogd, inst.vdone)
	}
	killQemus(inst.env.Dir)
	saveCaps(inst.env.Dir)
	os.RemoveAll(inst.env.Dir)
}

// capsCache holds the qemu capabilities libvirtd probed (file name ->
// content), kept in memory for the next instance of this process (libvirtd
// checks that they still match the binaries).
var capsCache map[string][]byte

func saveCaps(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "cache", "qemu", "capabilities", "*.xml"))
	if len(files) == 0 {
		return
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return
		}
		m[filepath.Base(f)] = b
	}
	capsCache = m
}

// destroyDomains destroys and undefines every domain of the instance.
func (inst *instance) destroyDomains() {
	out, err := inst.env.Virsh("list", "--all", "--name")
	if err != nil {
		return
	}
	for _, name := range strings.Fields(out) {
		inst.env.Virsh("destroy", name)
		if _, err := inst.env.Virsh("undefine", "--nvram", name); err != nil {
			inst.env.Virsh("undefine", name)
		}
	}
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// terminate stops a process this package started: SIGTERM, then SIGKILL
// after 10 s.
func terminate(cmd *exec.Cmd, done chan struct{}) {
	if cmd == nil || cmd.Process == nil || cmd.Process.Pid <= 1 || closed(done) {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(10 * time.Second):
	}
	cmd.Process.Kill()
	<-done
}

// killQemus kills the qemu processes named in dir/run/qemu/*.pid, if they
// still run a qemu binary.
func killQemus(dir string) {
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "run", "qemu", "*.pid"))
	for _, f := range pidfiles {
		killIf(f, "qemu-system-")
	}
}

// killIf kills the process whose PID is in pidfile if its executable's
// name starts with prefix, and waits (up to 10 s) for it to go.
func killIf(pidfile, prefix string) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || !strings.HasPrefix(filepath.Base(exe), prefix) {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cleanStale stops and removes instances left by test processes that died.
func cleanStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || owner <= 1 || owner == os.Getpid() || syscall.Kill(owner, 0) == nil {
			continue
		}
		killIf(filepath.Join(dir, "libvirtd.pid"), "libvirtd")
		killIf(filepath.Join(dir, "virtlogd.pid"), "virtlogd")
		killQemus(dir)
		os.RemoveAll(dir)
	}
}
