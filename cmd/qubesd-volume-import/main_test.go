package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/daemon/daemontest"
	"github.com/qubesgo/qubesd/core/storage/storagetest"
	"github.com/qubesgo/qubesd/sdk/admin"
)

// startDaemon runs a daemon on the fixture with in-process drivers and
// creates the AppVM "imp" to import into; it returns the internal socket,
// the driver of the varlibqubes pool and a client.
func startDaemon(t *testing.T) (string, *storagetest.MemDriver, *admin.Client) {
	t.Helper()
	d := daemontest.Start(t)
	c := admin.New(d.Config.Daemon.SocketPath())
	if _, err := c.Call(context.Background(), "admin.vm.Create.AppVM", "dom0", "debian-12-xfce", []byte("name=imp label=red")); err != nil {
		t.Fatal(err)
	}
	return d.Config.Daemon.InternalSocketPath(), d.Pool, c
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
