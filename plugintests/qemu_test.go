package plugintests

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/plugintests/qemu"
)

// TestQemuSmoke boots a real guest twice through the harness's private
// libvirtd: the first boot writes a token onto its virtio disk, the second
// reads it back; the second is stopped through ACPI (virsh shutdown).
func TestQemuSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("boots real VMs under qemu (software emulation): skipped under -short")
	}
	env := qemu.Ensure(t)
	vmlinuz, version := qemu.Kernel(t)
	initrd := qemu.Initramfs(t, "")
	t.Logf("libvirt %s, kernel %s", env.URI, version)

	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil { // sparse
		t.Fatal(err)
	}
	tok := make([]byte, 8)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	name := fmt.Sprintf("qubesd-smoke-%d", os.Getpid())

	boot := func(n int, cmdline string) (console string) {
		t.Helper()
		log := filepath.Join(dir, fmt.Sprintf("console%d.log", n))
		env.Define(t, qemu.Domain{
			Name:    name,
			Kernel:  vmlinuz,
			Initrd:  initrd,
			Cmdline: "qubes.name=" + name + " " + cmdline,
			Disks:   []string{disk},
			Console: log,
		})
		start := time.Now()
		env.MustVirsh(t, "start", name)
		console = qemu.WaitConsole(t, log, qemu.Marker(name), 60*time.Second, env.QemuLog(name))
		t.Logf("boot %d: start -> marker in %v", n, time.Since(start).Round(time.Millisecond))
		return console
	}

	// First boot: a zeroed disk; the guest writes the token.
	console := boot(1, "qubes.write="+token)
	if got, ok := qemu.ConsoleLine(console, "QUBESD-DISK-READ"); !ok || strings.TrimSpace(got) != "" {
		t.Errorf("first boot read %q (found %v), want an empty disk\n%s", got, ok, console)
	}
	if got, _ := qemu.ConsoleLine(console, "QUBESD-DISK-WROTE "); got != token {
		t.Errorf("first boot wrote %q, want %q\n%s", got, token, console)
	}
	env.MustVirsh(t, "destroy", name)
	env.MustVirsh(t, "undefine", name)
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if want := "QUBESD-DISK " + token + "\n"; !strings.HasPrefix(string(b), want) {
		t.Errorf("disk image starts with %q, want %q", b[:len(want)], want)
	}

	// Second boot: the token is still on the disk.
	console = boot(2, "")
	if got, _ := qemu.ConsoleLine(console, "QUBESD-DISK-READ "); got != "QUBESD-DISK "+token {
		t.Errorf("second boot read %q, want %q\n%s", got, "QUBESD-DISK "+token, console)
	}
	// ACPI shutdown: the guest powers off on the power button.
	start := time.Now()
	env.MustVirsh(t, "shutdown", name)
	for {
		state, err := env.Virsh("domstate", name)
		if err == nil && strings.TrimSpace(state) == "shut off" {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("still %q (%v) 30 s after virsh shutdown", strings.TrimSpace(state), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("ACPI shutdown in %v", time.Since(start).Round(time.Millisecond))
	env.MustVirsh(t, "undefine", name)
	if out := env.MustVirsh(t, "list", "--all", "--name"); strings.TrimSpace(out) != "" {
		t.Errorf("domains left: %q", out)
	}
}
