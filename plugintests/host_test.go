package plugintests

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/sdk/pool"
	"github.com/qubesgo/qubesd/sdk/pooltest"
)

// startHost runs a plugin host for one pool-driver plugin, binary in bin/,
// with extra TOML lines for its table.
func startHost(t testing.TB, binary, extra string, opts pluginhost.Options) (*pluginhost.Host, pool.Driver) {
	t.Helper()
	dir := t.TempDir()
	toml := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nplugin_dir = %q\n\n[plugins.p]\nkind = \"pool-driver\"\npath = %q\n%s",
		filepath.Join(dir, "data"), dir, bin, binary, extra)
	cfg, err := config.Parse([]byte(toml), "test")
	if err != nil {
		t.Fatal(err)
	}
	opts.RunDir = dir
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 50 * time.Millisecond
	}
	h, err := pluginhost.New(cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	t.Cleanup(h.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.WaitReady(ctx)
	d, err := h.PoolDriver("p")
	if err != nil {
		t.Fatal(err)
	}
	return h, d
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// kill sends sig to one plugin process; it refuses pid <= 0, which would
// signal a whole process group (the test's own).
func kill(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("refusing to signal pid %d", pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}

func TestExamplePluginRunsAndAnswers(t *testing.T) {
	h, d := startHost(t, "pool-dir", "", pluginhost.Options{})
	st := h.Status()[0]
	if st.State != pluginhost.Running || !alive(st.PID) || st.Restarts != 0 {
		t.Fatalf("status %+v", st)
	}
	info, err := d.Info(context.Background())
	if err != nil || info.Name == "" {
		t.Fatalf("Info: %+v %v", info, err)
	}
	// the plugin runs in its own process group
	if pgid, err := syscall.Getpgid(st.PID); err != nil || pgid != st.PID {
		t.Errorf("plugin process group %d (%v), want its own (%d)", pgid, err, st.PID)
	}
}

// TestExamplePluginPassesPooltest runs the conformance suite through the
// host's proxy: the path the core takes.
func TestExamplePluginPassesPooltest(t *testing.T) {
	_, d := startHost(t, "pool-dir", "", pluginhost.Options{})
	pooltest.Run(t, func(t *testing.T) (pool.Driver, pool.Pool) {
		return d, pool.Pool{Name: "pt", Config: map[string]string{"dir_path": filepath.Join(t.TempDir(), "pool")}}
	})
}

func TestRefusedPlugins(t *testing.T) {
	for _, tc := range []struct {
		name, binary, extra, want string
	}{
		{"checksum mismatch", "pool-dir", `sha256 = "` + strings.Repeat("0", 64) + `"`, "refusing to start it"},
		{"other protocol version", "otherproto", "", "speaks another plugin protocol version than this qubesd (1)"},
		{"missing binary", "no-such-plugin", "", "no-such-plugin"},
		{"another handshake cookie", "othercookie", "", "did not complete qubesd's plugin handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, d := startHost(t, tc.binary, tc.extra, pluginhost.Options{MinBackoff: time.Second})
			st := h.Status()[0]
			t.Logf("refusal: %s", st.LastError)
			if st.State != pluginhost.Unavailable || !strings.Contains(st.LastError, tc.want) {
				t.Fatalf("status %+v, want a refusal saying %q", st, tc.want)
			}
			_, err := d.Info(context.Background())
			if !errors.Is(err, pool.ErrUnavailable) || !strings.Contains(err.Error(), "plugin p is not running") {
				t.Errorf("a call to a refused plugin: %v", err)
			}
		})
	}
}

func TestStdoutNoiseBeforeHandshake(t *testing.T) {
	h, d := startHost(t, "noisy", "", pluginhost.Options{})
	if st := h.Status()[0]; st.State != pluginhost.Running {
		t.Fatalf("status %+v", st)
	}
	if info, err := d.Info(context.Background()); err != nil || info.Name != "noisy" {
		t.Fatalf("Info: %+v %v", info, err)
	}
}

func TestHungCallHitsDeadline(t *testing.T) {
	_, d := startHost(t, "hang", "", pluginhost.Options{CallTimeout: 300 * time.Millisecond})
	err := d.Create(context.Background(), pool.Pool{Name: "x", Config: map[string]string{}}, pool.Volume{VID: "a/b", Name: "private", Size: 1, RW: true, SaveOnStop: true})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "plugin p did not answer Create") {
		t.Fatalf("Create on a hung plugin: %v", err)
	}
}

// TestKilledMidCall: the plugin is SIGKILLed while a call runs; the call
// fails, and the plugin is back within seconds and answers again.
func TestKilledMidCall(t *testing.T) {
	h, d := startHost(t, "hang", "", pluginhost.Options{})
	first := h.Status()[0]
	errc := make(chan error, 1)
	go func() {
		errc <- d.Create(context.Background(), pool.Pool{Name: "x", Config: map[string]string{}}, pool.Volume{VID: "a/b", Name: "private", Size: 1, RW: true, SaveOnStop: true})
	}()
	time.Sleep(200 * time.Millisecond) // the call is in the plugin now
	kill(t, first.PID, syscall.SIGKILL)
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "plugin p") {
			t.Errorf("the call in flight: %v, want an error naming the plugin", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight did not fail after the plugin died")
	}
	waitFor(t, "the plugin to be restarted", func() bool {
		st := h.Status()[0]
		return st.State == pluginhost.Running && st.PID != first.PID && st.Restarts == 1
	})
	if _, err := d.Info(context.Background()); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	if alive(first.PID) {
		t.Errorf("the killed plugin %d is still there", first.PID)
	}
}

func TestStopLeavesNoProcess(t *testing.T) {
	h, _ := startHost(t, "pool-dir", "", pluginhost.Options{})
	pid := h.Status()[0].PID
	h.Stop()
	waitFor(t, "the plugin to exit", func() bool { return !alive(pid) })
	if st := h.Status()[0]; st.State != pluginhost.Stopped {
		t.Errorf("status after Stop: %+v", st)
	}
}

// BenchmarkPoolCallRoundTrip measures one storage call through the host's
// proxy to the example driver's process and back (gRPC over go-plugin's
// unix socket with mutual TLS): "info", the driver's Info, is the
// protocol's own cost; "volume-info", VolumeInfo of an existing volume,
// adds the driver's work (a stat of the volume's files).
func BenchmarkPoolCallRoundTrip(b *testing.B) {
	_, d := startHost(b, "pool-dir", "", pluginhost.Options{})
	ctx := context.Background()
	p := pool.Pool{Name: "bench", Config: map[string]string{"dir_path": filepath.Join(b.TempDir(), "pool")}}
	v := pool.Volume{VID: "appvms/bench/private", Name: "private", Size: 1 << 20, RW: true, SaveOnStop: true}
	if err := d.Setup(ctx, p); err != nil {
		b.Fatal(err)
	}
	if err := d.Create(ctx, p, v); err != nil {
		b.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"info", func() error { _, err := d.Info(ctx); return err }},
		{"volume-info", func() error { _, err := d.VolumeInfo(ctx, p, v); return err }},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := c.call(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}
