package plugintests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
