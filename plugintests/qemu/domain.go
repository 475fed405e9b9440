package qemu

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Domain describes a direct-kernel-boot guest for libvirt.
type Domain struct {
	Name      string
	Kernel    string   // vmlinuz path
	Initrd    string   // initramfs path
	Cmdline   string   // kernel command line; "console=ttyS0" is prepended
	MemoryMiB int      // 256 when 0
	Disks     []string // raw image files, attached as virtio vda, vdb, ...
	Console   string   // file receiving the serial console (ttyS0)
}

// XML renders the domain as libvirt domain XML: type "qemu" (software
// emulation), machine "pc", one vCPU, no balloon, on_poweroff destroy.
func (d Domain) XML() string {
	esc := func(s string) string {
		var b bytes.Buffer
		xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	mem := d.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>%s</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
`, esc(d.Name), mem, esc(d.Kernel), esc(d.Initrd), esc(strings.TrimSpace("console=ttyS0 "+d.Cmdline)))
	for i, disk := range d.Disks {
		fmt.Fprintf(&b, `    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='%s'/>
      <target dev='vd%c' bus='virtio'/>
    </disk>
`, esc(disk), 'a'+i)
	}
	if d.Console != "" {
		fmt.Fprintf(&b, `    <serial type='file'>
      <source path='%s'/>
      <target port='0'/>
    </serial>
`, esc(d.Console))
	}
	b.WriteString(`    <memballoon model='none'/>
  </devices>
</domain>
`)
	return b.String()
}

// Define writes d's XML to a temporary file and defines it with virsh; a
// cleanup of t destroys and undefines it (ignoring errors).
func (e *Env) Define(t testing.TB, d Domain) {
	t.Helper()
	f, err := os.CreateTemp("", "domain-*.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(d.XML()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.MustVirsh(t, "define", f.Name())
	t.Cleanup(func() {
		e.Virsh("destroy", d.Name)
		e.Virsh("undefine", d.Name)
	})
}

// WaitConsole polls the file at path (every 50 ms, until timeout) for a
// line containing want, and returns the file's content. It fails t on
// timeout, showing the console and logTail (e.g. Env.QemuLog's path) when
// given.
func WaitConsole(t testing.TB, path, want string, timeout time.Duration, logs ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(strings.TrimRight(l, "\r"), want) {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%q not on the console %s after %v:\n%s", want, path, timeout, b)
			for _, l := range logs {
				msg += readTail(l)
			}
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ConsoleLine returns the rest of the first console line starting with
// prefix, and whether there is one.
func ConsoleLine(console, prefix string) (string, bool) {
	for _, l := range strings.Split(console, "\n") {
		l = strings.TrimRight(l, "\r")
		if i := strings.Index(l, prefix); i >= 0 {
			return l[i+len(prefix):], true
		}
	}
	return "", false
}
