package qemu

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Marker is the line DefaultInit prints on the serial console once the
// guest is up (after its disk work), for the guest started with
// qubes.name=name on its kernel command line.
func Marker(name string) string { return "QUBESD-GUEST-UP name=" + name }

// DefaultInit is an /init for Initramfs. It mounts /proc, /sys and
// devtmpfs, loads the modules Initramfs packed, and reads these words of
// the kernel command line:
//
//	qubes.name=NAME    the name it reports in the marker
//	qubes.write=TOKEN  write "QUBESD-DISK TOKEN" and a newline at the
//	                   start of /dev/vda (raw, no file system), fsync'd
//	qubes.poweroff=1   power off right after the marker
//
// When /dev/vda exists it first prints "QUBESD-DISK-READ " followed by the
// first line found at the start of the disk (empty on a zeroed disk), then
// after a write "QUBESD-DISK-WROTE TOKEN", then Marker(NAME) — all on the
// console (console=ttyS0 on the command line). Then it waits; an ACPI
// power-button press (virsh shutdown) powers the guest off.
const DefaultInit = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko 2>/dev/null; done
name=; write=; off=
for w in $(cat /proc/cmdline); do
	case "$w" in
	qubes.name=*) name="${w#qubes.name=}" ;;
	qubes.write=*) write="${w#qubes.write=}" ;;
	qubes.poweroff=1) off=1 ;;
	esac
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ] && grep -qs 0x0002 /sys/bus/virtio/devices/*/device; do
	sleep 0.1; i=$((i+1))
done
if [ -b /dev/vda ]; then
	echo "QUBESD-DISK-READ $(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1)"
	if [ -n "$write" ]; then
		echo "QUBESD-DISK $write" | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null
		echo "QUBESD-DISK-WROTE $write"
	fi
fi
acpid -d -c /etc/acpi 2>&1 &
echo "QUBESD-GUEST-UP name=$name"
if [ -n "$off" ]; then sync; poweroff -f; fi
while true; do sleep 3600; done
`

// Kernel returns the newest Debian cloud kernel in /boot (installing
// linux-image-cloud-amd64 if needed) and its version.
func Kernel(t testing.TB) (vmlinuz, version string) {
	t.Helper()
	if err := install(); err != nil {
		skip(t, err)
	}
	v, err := kernel()
	if err != nil {
		skip(t, err)
	}
	return "/boot/vmlinuz-" + v, v
}

func kernel() (string, error) {
	files, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	if len(files) == 0 {
		return "", fmt.Errorf("no /boot/vmlinuz-*-cloud-amd64")
	}
	var versions []string
	for _, f := range files {
		versions = append(versions, strings.TrimPrefix(filepath.Base(f), "vmlinuz-"))
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	return versions[len(versions)-1], nil
}

// versionLess compares dotted/dashed versions numerically where possible.
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	}
	as, bs := split(a), split(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		switch {
		case aerr == nil && berr == nil && ai != bi:
			return ai < bi
		case (aerr != nil || berr != nil) && as[i] != bs[i]:
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// guestModules are the modules (with their dependencies) Initramfs packs
// and lists, in load order, in /etc/modules.
var guestModules = []string{"virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "button", "evdev"}

// Initramfs builds, in a temporary directory of t, a gzip-compressed newc
// cpio initramfs for Kernel(t): busybox-static in /bin with a link for
// each of its applets, /dev (console, null, ttyS0), /proc, /sys, /mnt,
// /tmp, the modules of guestModules under /lib/modules with /etc/modules
// listing them, /etc/acpi/PWRF/00000080 (power off on the power button)
// and the given /init script (DefaultInit when empty). It returns the
// archive's path.
func Initramfs(t testing.TB, init string) string {
	t.Helper()
	_, version := Kernel(t)
	if init == "" {
		init = DefaultInit
	}
	data, err := buildInitramfs(version, init)
	if err != nil {
		skip(t, err)
	}
	path := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const busyboxPath = "/bin/busybox"

func buildInitramfs(version, init string) ([]byte, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	if f, err := elf.NewFile(bytes.NewReader(bb)); err != nil {
		return nil, fmt.Errorf("%s: %v", busyboxPath, err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				return nil, fmt.Errorf("%s is dynamically linked (busybox-static expected)", busyboxPath)
			}
		}
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %v", err)
	}
	applets := strings.Fields(string(out))
	mods, err := moduleOrder(version, guestModules)
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "tmp", "root", "etc", "etc/acpi", "etc/acpi/PWRF", "lib", "lib/modules"} {
		w.dir(d)
	}
	w.dev("dev/console", 5, 1, 0o600)
	w.dev("dev/null", 1, 3, 0o666)
	w.dev("dev/ttyS0", 4, 64, 0o600)
	w.file("bin/busybox", bb, 0o755)
	for _, a := range applets {
		if a != "busybox" {
			w.symlink("bin/"+a, "busybox")
		}
	}
	w.symlink("sbin", "bin")
	var names []string
	for _, m := range mods {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(m), ".ko")
		names = append(names, name)
		w.file("lib/modules/"+name+".ko", b, 0o644)
	}
	w.file("etc/modules", []byte(strings.Join(names, "\n")+"\n"), 0o644)
	w.file("etc/acpi/PWRF/00000080", []byte("#!/bin/sh\nsync\npoweroff -f\n"), 0o755)
	w.file("init", []byte(init), 0o755)
	w.trailer()
	if w.err != nil {
		return nil, w.err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// moduleOrder returns the paths of the given modules and of their
// dependencies (from modules.dep), dependencies first. Modules built into
// the kernel are left out; a module neither built in nor found is an
// error.
func moduleOrder(version string, want []string) ([]string, error) {
	base := filepath.Join("/lib/modules", version)
	f, err := os.Open(filepath.Join(base, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // module name -> relative paths: itself, then its deps
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[modName(mod)] = append([]string{mod}, strings.Fields(rest)...)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(base, "modules.builtin"))
	isBuiltin := map[string]bool{}
	for _, l := range strings.Fields(string(builtin)) {
		isBuiltin[modName(l)] = true
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] || isBuiltin[name] {
			return nil
		}
		seen[name] = true
		d, ok := deps[name]
		if !ok {
			return fmt.Errorf("module %s not in %s/modules.dep", name, base)
		}
		for _, dep := range d[1:] {
			if err := visit(modName(dep)); err != nil {
				return err
			}
		}
		order = append(order, filepath.Join(base, d[0]))
		return nil
	}
	for _, m := range want {
		if err := visit(strings.ReplaceAll(m, "-", "_")); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modName turns kernel/drivers/block/virtio_blk.ko(.xz) into virtio_blk.
func modName(path string) string {
	n := filepath.Base(path)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

// cpioWriter writes the "newc" (070701) cpio format the kernel unpacks.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

func (c *cpioWriter) entry(name string, mode, rmajor, rminor int, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == sIFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	pad(&b)
	b.Write(data)
	pad(&b)
	_, c.err = c.w.Write(b.Bytes())
}

func pad(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string) { c.entry(name, sIFDIR|0o755, 0, 0, nil) }
func (c *cpioWriter) file(name string, data []byte, perm int) {
	c.entry(name, sIFREG|perm, 0, 0, data)
}
func (c *cpioWriter) symlink(name, target string) {
	c.entry(name, sIFLNK|0o777, 0, 0, []byte(target))
}
func (c *cpioWriter) dev(name string, major, minor, perm int) {
	c.entry(name, sIFCHR|perm, major, minor, nil)
}
func (c *cpioWriter) trailer() { c.entry("TRAILER!!!", 0, 0, 0, nil) }
