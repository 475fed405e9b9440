package lifecycle

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/core/vmm"
)

// defaultKernelOptsCommon is the reference's defaults['kernelopts_common'].
const defaultKernelOptsCommon = "root=/dev/mapper/dmroot ro nomodeset console=hvc0 rd_NO_PLYMOUTH rd.plymouth.enable=0 plymouth.enable=0 xen_privcmd.unrestricted "

func str(q *qubes.Qube, name string) string {
	v, err := q.Get(name)
	if err != nil {
		return ""
	}
	return property.FormatValue(v)
}

func integer(q *qubes.Qube, name string) int {
	v, err := q.Get(name)
	if err != nil {
		return 0
	}
	n, _ := v.(int)
	return n
}

func boolean(q *qubes.Qube, name string) bool {
	v, err := q.Get(name)
	if err != nil {
		return false
	}
	b, _ := v.(bool)
	return b
}

// domainConfig is the part of the domain's configuration read from the
// model (spec §6); disks and the kernel come from the started volumes.
// Call it under the model lock.
func (m *Manager) domainConfig(q *qubes.Qube) vmm.DomainConfig {
	cfg := vmm.DomainConfig{
		Name:      q.Name(),
		UUID:      q.UUID(),
		MemoryMiB: integer(q, "memory"),
		VCPUs:     integer(q, "vcpus"),
		VirtMode:  str(q, "virt_mode"),
		LogDir:    q.DirPath(),
		// kvm: the QubesDB channel (guestdb.go); "" for the other flavours
		QubesDBSocket: m.guestDBSocketFor(q.DirPath()),
		// MaxMemMiB stays 0 (no balancing) until the memory-balancing issue
		Cmdline: defaultKernelOptsCommon + str(q, "kernelopts"),
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 400
	}
	if cfg.VCPUs <= 0 {
		cfg.VCPUs = 1
	}
	if str(q, "kernel") == "" {
		cfg.Cmdline = ""
	}
	if n := netVM(q); n != nil {
		cfg.Interfaces = []vmm.Interface{uplink(q, n)}
	}
	return cfg
}

// netVM is q's effective netvm, nil for none. Call it under the model lock.
func netVM(q *qubes.Qube) *qubes.Qube {
	v, err := q.Get("netvm")
	if err != nil {
		return nil
	}
	n, _ := v.(*qubes.Qube)
	return n
}

// uplink is q's network interface to its netvm n (spec §6: the qube's
// MAC, its ip and ip6, the netvm as the backend).
func uplink(q, n *qubes.Qube) vmm.Interface {
	return vmm.Interface{MAC: str(q, "mac"), IP: str(q, "ip"), IP6: str(q, "ip6"), Backend: n.Name()}
}

type devInfo struct {
	vol     storage.Volume
	path    string
	rw      bool
	devType string
}

// fillDisks adds the started volumes' block devices (root xvda, private
// xvdb, volatile xvdc, kernel xvdd, others from xvde; vd* for kvm) and the
// kernel and initramfs of the kernel volume's version when its files are
// there.
func (m *Manager) fillDisks(cfg *vmm.DomainConfig, vols []storage.Volume, devs map[string]devInfo) {
	prefix := "xvd"
	if m.opts.Renderer != nil && m.opts.Renderer.Flavour() == vmm.FlavourKVM {
		prefix = "vd"
	}
	fixed := map[string]byte{"root": 'a', "private": 'b', "volatile": 'c', "kernel": 'd'}
	next := byte('e')
	for _, v := range vols {
		d := devs[v.Name]
		if v.Name == "kernel" {
			m.kernelFiles(cfg, v, d.path)
		}
		if d.path == "" {
			continue // a kernel without modules.img: no disk
		}
		letter, ok := fixed[v.Name]
		if !ok {
			letter = next
			next++
		}
		cfg.Disks = append(cfg.Disks, vmm.Disk{Path: d.path, Target: prefix + string(letter), RW: d.rw, DevType: d.devType})
	}
	if cfg.Kernel == "" {
		cfg.Cmdline = ""
	}
}

// kernelFiles finds vmlinuz and initramfs next to the kernel volume's
// modules.img, or in the pool's dir_path/<version>.
func (m *Manager) kernelFiles(cfg *vmm.DomainConfig, v storage.Volume, devPath string) {
	var dir string
	if devPath != "" {
		dir = filepath.Dir(devPath)
	} else if p := v.Pool.DriverConfig()["dir_path"]; p != "" && v.Spec.VID != "" {
		dir = filepath.Join(p, v.Spec.VID)
	}
	if dir == "" {
		return
	}
	if fi, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil || fi.IsDir() {
		return
	}
	cfg.Kernel = filepath.Join(dir, "vmlinuz")
	if fi, err := os.Stat(filepath.Join(dir, "initramfs")); err == nil && !fi.IsDir() {
		cfg.Initrd = filepath.Join(dir, "initramfs")
	}
}

type qdbEntry struct{ path, value string }

// qdbEntries are the QubesDB entries written at start (spec §4.7) that
// this slice can fill. Call it under the model lock.
func qdbEntries(q *qubes.Qube) []qdbEntry {
	var e []qdbEntry
	add := func(p, v string) { e = append(e, qdbEntry{p, v}) }
	add("/name", q.Name())
	add("/type", q.ClassName())
	add("/default-user", str(q, "default_user"))
	upd := boolean(q, "updateable")
	add("/qubes-vm-updateable", property.FormatValue(upd))
	switch {
	case q.IsDisposable():
		add("/qubes-vm-persistence", "none")
	case upd:
		add("/qubes-vm-persistence", "full")
	default:
		add("/qubes-vm-persistence", "rw-only")
	}
	debug := "0"
	if boolean(q, "debug") {
		debug = "1"
	}
	add("/qubes-debug-mode", debug)
	base := ""
	if t := q.Template(); t != nil {
		base = t.Name()
	}
	add("/qubes-base-template", base)
	var seed [64]byte
	_, _ = rand.Read(seed[:])
	add("/qubes-random-seed", base64.StdEncoding.EncodeToString(seed[:]))

	dns := strings.Fields(str(q, "dns"))
	dnsAt := func(i int) string {
		if i < len(dns) {
			return dns[i]
		}
		return ""
	}
	if boolean(q, "provides_network") {
		gw := str(q, "gateway")
		add("/qubes-netvm-network", gw)
		add("/qubes-netvm-gateway", gw)
		if g6 := str(q, "gateway6"); g6 != "" {
			add("/qubes-netvm-gateway6", g6)
		}
		add("/qubes-netvm-netmask", "255.255.255.255")
		add("/qubes-netvm-primary-dns", dnsAt(0))
		add("/qubes-netvm-secondary-dns", dnsAt(1))
	}
	if str(q, "netvm") != "" {
		add("/qubes-mac", str(q, "mac"))
		add("/qubes-ip", str(q, "visible_ip"))
		add("/qubes-netmask", str(q, "visible_netmask"))
		add("/qubes-gateway", str(q, "visible_gateway"))
		add("/qubes-primary-dns", dnsAt(0))
		add("/qubes-secondary-dns", dnsAt(1))
		if ip6 := str(q, "visible_ip6"); ip6 != "" {
			add("/qubes-ip6", ip6)
		}
		if g6 := str(q, "visible_gateway6"); g6 != "" {
			add("/qubes-gateway6", g6)
		}
	}
	// the host's time zone, unless the qube (or its template) hides it
	if v, err := q.Features.CheckWithTemplate("anon-timezone"); err != nil || v == "" {
		if tz := hostTimezone(); tz != "" {
			add("/qubes-timezone", tz)
		}
	}
	add("/qubes-block-devices", "")
	add("/qubes-usb-devices", "")
	return e
}

// localtime is the host's time zone link (a variable for tests).
var localtime = "/etc/localtime"

// hostTimezone is the host's time zone name, from the target of the
// /etc/localtime link (".../zoneinfo/Europe/Warsaw" → "Europe/Warsaw"), as
// the reference reads it; "" when it is not such a link.
func hostTimezone() string {
	target, err := os.Readlink(localtime)
	if err != nil {
		return ""
	}
	_, name, ok := strings.Cut(target, "zoneinfo/")
	if !ok {
		return ""
	}
	return name
}

// State is admin.vm.CurrentState's answer.
type State struct {
	Mem, MemStaticMax, CPUTime uint64
	Power                      string
}

// String is the reply: "mem=<n> mem_static_max=<n> cputime=<n> power_state=<s>".
func (s State) String() string {
	return fmt.Sprintf("mem=%d mem_static_max=%d cputime=%d power_state=%s", s.Mem, s.MemStaticMax, s.CPUTime, s.Power)
}

// CurrentState is admin.vm.CurrentState's reply for q.
func (m *Manager) CurrentState(q *qubes.Qube) string { return m.State(q).String() }

// State is q's state for admin.vm.CurrentState: memory and CPU time as
// libvirt reports them for a running qube (KiB, nanoseconds) and for dom0
// where it is a domain (Xen's Domain-0); zeros for a halted qube, a remote
// one, and dom0 elsewhere.
// Call it without the model lock.
func (m *Manager) State(q *qubes.Qube) State {
	s := State{Power: m.PowerState(q)}
	domain := q.Name()
	switch {
	case q.IsAdminVM():
		// dom0 is a domain on Xen ("Domain-0"); elsewhere it has none
		domain = "Domain-0"
	case !q.HasVM() || s.Power == string(vmm.Halted) || s.Power == string(vmm.NA):
		return s
	}
	st, err := m.opts.Conn.Stats(domain)
	if err != nil {
		return s
	}
	s.Mem, s.MemStaticMax, s.CPUTime = st.MemKiB, st.MaxMemKiB, st.CPUTimeNs
	return s
}
