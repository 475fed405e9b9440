package plugintests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/qubesgo/qubesd/sdk/admin"
)

var pluginLine = regexp.MustCompile(`^file kind=pool-driver state=running pid=([0-9]+) restarts=0 last_error=\n$`)

// TestDaemonKilledTakesPluginsDown starts qubesd with a pool-driver plugin,
// sees it through admin.plugin.List, SIGKILLs qubesd and checks that the
// plugin process does not survive it.
func TestDaemonKilledTakesPluginsDown(t *testing.T) {
	dir, err := os.MkdirTemp("", "qd-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "qubesd.toml")
	toml := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nplugin_dir = %q\nlog_level = \"warn\"\n\n[plugins.file]\nkind = \"pool-driver\"\npath = \"pool-dir\"\n",
		filepath.Join(dir, "data"), dir, bin)
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	qubesd := exec.Command(filepath.Join(bin, "qubesd"), "--config", cfg)
	qubesd.Stderr = testWriter{t}
	if err := qubesd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = qubesd.Process.Kill()
			_ = qubesd.Wait()
		}
	}()

	c := admin.New(filepath.Join(dir, "qubesd.sock"))
	var pid int
	waitFor(t, "the plugin to run", func() bool {
		out, err := c.Call(context.Background(), "admin.plugin.List", "dom0", "", nil)
		if err != nil {
			return false
		}
		m := pluginLine.FindStringSubmatch(string(out))
		if m == nil {
			return false
		}
		pid, _ = strconv.Atoi(m[1])
		return alive(pid)
	})

	ls := exec.Command(filepath.Join(bin, "qvm"), "plugin", "list")
	ls.Env = append(os.Environ(), "QUBESD_SOCKET="+filepath.Join(dir, "qubesd.sock"))
	out, err := ls.Output()
	if want := regexp.MustCompile(`(?m)^file +pool-driver +running +` + strconv.Itoa(pid) + ` +0 +-$`); err != nil || !want.Match(out) {
		t.Errorf("qvm plugin list: %v\n%s", err, out)
	}

	kill(t, qubesd.Process.Pid, syscall.SIGKILL)
	_ = qubesd.Wait()
	killed = true
	waitFor(t, "the plugin to die with the daemon", func() bool { return !alive(pid) })
}

// TestDaemonWithExtension runs qubesd with ext-hello: its Admin API method
// is served through the daemon's socket (after the core's checks), and a
// feature set through the API gets the extension's tag, durably.
func TestDaemonWithExtension(t *testing.T) {
	dir, err := os.MkdirTemp("", "qd-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "qubesd.toml")
	toml := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nplugin_dir = %q\nlog_level = \"warn\"\n\n[plugins.hello]\nkind = \"extension\"\npath = \"ext-hello\"\n"+
		// the new system's pool varlibqubes (driver file) gets its volumes
		"\n[plugins.file]\nkind = \"pool-driver\"\npath = \"pool-dir\"\n",
		filepath.Join(dir, "data"), dir, bin)
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	qubesd := exec.Command(filepath.Join(bin, "qubesd"), "--config", cfg)
	qubesd.Stderr = testWriter{t}
	if err := qubesd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = qubesd.Process.Signal(syscall.SIGTERM)
		_ = qubesd.Wait()
	}()
	c := admin.New(filepath.Join(dir, "qubesd.sock"))
	ctx := context.Background()
	waitFor(t, "the extension and the pool driver to run", func() bool {
		ps, err := c.Plugins(ctx)
		return err == nil && len(ps) == 2 && ps[0].State == "running" && ps[1].State == "running"
	})
	if err := c.Create(ctx, "StandaloneVM", "", "work", "red"); err != nil {
		t.Fatal(err)
	}
	out, err := c.Call(ctx, "admin.vm.hello.Get", "work", "", nil)
	if err != nil || string(out) != "hello work" {
		t.Errorf("admin.vm.hello.Get: %q %v", out, err)
	}
	// the core's checks come first: the method refuses dom0 as destination
	if _, err := c.Call(ctx, "admin.vm.hello.Get", "dom0", "", nil); !admin.IsType(err, "ProtocolError") {
		t.Errorf("admin.vm.hello.Get on dom0: %v, want ProtocolError", err)
	}
	if err := c.SetFeature(ctx, "work", "hello", "1"); err != nil {
		t.Fatal(err)
	}
	if has, err := c.HasTag(ctx, "work", "hello-seen"); err != nil || !has {
		t.Errorf("the extension's tag: %v %v", has, err)
	}
	if err := c.SetFeature(ctx, "work", "forbidden", "1"); err == nil {
		t.Error("the extension's veto did not reach the caller")
	}
	store, err := os.ReadFile(filepath.Join(dir, "data", "qubes.xml"))
	if err != nil || !strings.Contains(string(store), `<tag name="hello-seen"/>`) {
		t.Errorf("the extension's change is not in qubes.xml (%v)", err)
	}
}
