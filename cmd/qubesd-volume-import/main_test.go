package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/daemon"
	"github.com/qubesgo/qubesd/core/qubes/qubestest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/sdk/admin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// startDaemon runs a daemon on the fixture with in-process drivers and
// returns its internal socket and the driver of the varlibqubes pool.
func startDaemon(t *testing.T) (string, *storagetest.MemDriver, *admin.Client) {
	t.Helper()
	dir, err := os.MkdirTemp("", "qvi-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if err := qubestest.MakeDataDir(data); err != nil {
		t.Fatal(err)
	}
	xml, err := os.ReadFile(qubestest.Fixture(t, "qubes-n10.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "qubes.xml"), qubestest.Mapped(xml, data), 0o660); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\n\n[plugins]\n", data, dir)), "test")
	if err != nil {
		t.Fatal(err)
	}
	mem := storagetest.NewMemDriver(filepath.Join(dir, "mem"))
	kernels := storagetest.NewMemDriver(filepath.Join(dir, "kernels"))
	for _, sub := range []string{"mem", "kernels"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, d := range map[string]*storagetest.MemDriver{"varlibqubes": mem, "linux-kernel": kernels} {
		if err := d.Setup(context.Background(), pool.Pool{Name: name, Config: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := daemon.StartWith(cfg, hclog.NewNullLogger(), daemon.Options{PoolDrivers: storagetest.Drivers{"file-reflink": mem, "linux-kernel": kernels}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	c := admin.New(cfg.Daemon.SocketPath())
	if _, err := c.Call(context.Background(), "admin.vm.Create.AppVM", "dom0", "debian-12-xfce", []byte("name=imp label=red")); err != nil {
		t.Fatal(err)
	}
	return cfg.Daemon.InternalSocketPath(), mem, c
}

func TestService(t *testing.T) {
	socket, mem, c := startDaemon(t)
	data := bytes.Repeat([]byte("qubes"), 1000)
	tests := []struct {
		name      string
		service   string
		volume    string
		stdin     string
		code      int
		replyHead string // what stdout starts with
		content   []byte // the private volume's content afterwards (nil: not checked)
	}{
		{"with size", "admin.vm.volume.ImportWithSize", "private", fmt.Sprintf("%d\n%s", len(data), data), 0, "0\x00", data},
		{"not enough data", "admin.vm.volume.ImportWithSize", "private", "100\nabc", 1,
			"2\x00QubesException\x00\x00Data import failed: not enough data (copied 3 bytes, expected 100 bytes)\x00", data},
		{"too much data", "admin.vm.volume.ImportWithSize", "private", "2\nabc", 1,
			"2\x00QubesException\x00\x00Data import failed: too much data (expected 2 bytes)\x00", data},
		{"no size: the volume's size, and too little data", "admin.vm.volume.Import", "private", "abc", 1,
			"2\x00QubesException\x00\x00Data import failed: not enough data", data},
		{"not a volume of the qube", "admin.vm.volume.ImportWithSize", "nosuch", "3\nabc", 1, "2\x00", nil},
		{"a size that is not a number", "admin.vm.volume.ImportWithSize", "private", "lots\nabc", 1, "2\x00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := map[string]string{"QREXEC_REMOTE_DOMAIN": "dom0", "QREXEC_REQUESTED_TARGET": "imp", "QUBESD_INTERNAL_SOCKET": socket}
			code := run(context.Background(), []string{"/etc/qubes-rpc/" + tt.service, tt.volume}, func(k string) string { return env[k] },
				strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code || !strings.HasPrefix(stdout.String(), tt.replyHead) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and stdout starting %q", code, stdout.String(), stderr.String(), tt.code, tt.replyHead)
			}
			if tt.content != nil {
				if got := mem.Content("varlibqubes", "appvms/imp/private"); !bytes.Equal(got, tt.content) {
					t.Errorf("volume content: %d bytes, want %d", len(got), len(tt.content))
				}
			}
		})
	}
	// The size was recorded: the volume is as big as the data.
	info, err := c.VolumeInfo(context.Background(), "imp", "private")
	if err != nil || info.Size != int64(len(data)) {
		t.Errorf("volume info after the import: size %d, %v; want %d", info.Size, err, len(data))
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	none := func(string) string { return "" }
	if code := run(context.Background(), []string{"admin.vm.volume.Import"}, none, strings.NewReader(""), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("no volume: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"admin.vm.volume.Import", "private"}, none, strings.NewReader(""), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "QREXEC_REMOTE_DOMAIN") {
		t.Errorf("no qrexec environment: exit %d, %q", code, stderr.String())
	}
}
