package vmm

import (
	"bytes"
	"embed"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// Flavour is the hypervisor family a domain XML template is written for.
type Flavour string

const (
	FlavourXen  Flavour = "xen"  // templates/xen.xml: as Qubes renders it (spec/core-model.md §6)
	FlavourKVM  Flavour = "kvm"  // templates/kvm.xml: qemu/kvm, virtio disks, serial console to a file
	FlavourTest Flavour = "test" // templates/test.xml: what libvirt's test driver accepts
)

// FlavourForURI picks the flavour from a libvirt URI's scheme: xen → xen,
// qemu and kvm → kvm, test → test ("qemu+ssh://..." counts as qemu).
func FlavourForURI(uri string) (Flavour, error) {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok {
		return "", fmt.Errorf("libvirt URI %q has no scheme (e.g. \"test:///default\", \"qemu:///system\", \"xen:///\")", uri)
	}
	scheme, _, _ = strings.Cut(scheme, "+")
	switch strings.ToLower(scheme) {
	case "xen":
		return FlavourXen, nil
	case "qemu", "kvm":
		return FlavourKVM, nil
	case "test":
		return FlavourTest, nil
	}
	return "", fmt.Errorf("libvirt URI %q: no domain template for hypervisor %q (known: xen, qemu, kvm, test)", uri, scheme)
}

//go:embed templates/*.xml
var embedded embed.FS

// DomainConfig is everything a domain XML template may use. The lifecycle
// fills it from a qube's properties, features, volumes and devices; this
// package applies no Qubes policy beyond spec §6's element rules that live
// in the templates. Sizes are MiB.
type DomainConfig struct {
	Name string
	UUID string // empty: libvirt generates one

	MemoryMiB     int  // memory: initial (currentMemory)
	MaxMemMiB     int  // maxmem: 0 = no memory balancing
	MemoryHotplug bool // use_memory_hotplug
	VCPUs         int

	VirtMode string // "hvm", "pvh" or "pv" (xen); kvm and test ignore it

	// Kernel is the kernel image path ("" = none: hvm boots from disk);
	// Initrd the initramfs path ("" = none); Cmdline the full kernel command
	// line, already composed by the lifecycle (kernelopts_common + kernelopts +
	// bootmode, spec §6), rendered only when Kernel is set.
	Kernel, Initrd, Cmdline string

	Disks      []Disk      // storage volumes, then required block assignments
	Interfaces []Interface // at most one in Qubes: the uplink to the netvm
	PCI        []PCIDevice // required PCI assignments (xen)

	// LogDir is the qube's directory; kvm writes the serial console to
	// LogDir/console.log.
	LogDir string

	// xen only
	UEFI          bool   // feature uefi: OVMF instead of hvmloader
	DisableRDRAND bool   // host CPU (family, model) ∈ {(6,58), (6,62)}
	PCIE820Host   bool   // feature pci-e820-host (default true); used only with PCI
	Timezone      string // hvm clock: feature timezone ("localtime", seconds offset, or other → utc)
	Stubdom       Stubdom
	HVMDevices    HVMDevices

	// kvm only
	DomainType string // "qemu" (software emulation, the default) or "kvm"
	Emulator   string // qemu binary; "" = libvirt's default
	// QubesDBSocket is the host path of the unix socket qemu listens on
	// for the virtio-serial port "org.qubes-os.qubesdb" that carries the
	// qube's QubesDB to the guest ("" = no such port). The lifecycle
	// connects to it (core/lifecycle/guestdb.go documents the protocol);
	// a unix socket path has at most 107 bytes.
	QubesDBSocket string
}

// Disk is one block device of the domain.
type Disk struct {
	Path    string // block device (or, for kvm and test, a regular file)
	Target  string // xvda, xvdb... (xen); vda, vdb... (kvm)
	RW      bool
	DevType string // "disk" (default) or "cdrom"
	Backend string // xen: backend domain name ("" = dom0)
	// NoScript: xen, omit the qubes-block hotplug script (a block assignment
	// from a backend older than 4.2).
	NoScript bool
}

// Device is DevType with its default.
func (d Disk) Device() string {
	if d.DevType == "" {
		return "disk"
	}
	return d.DevType
}

// IsFile: the path is a regular file, not a device node (kvm and test then
// render <disk type="file">).
func (d Disk) IsFile() bool { return !strings.HasPrefix(d.Path, "/dev/") }

// Interface is a network interface: on xen the vif to the netvm.
type Interface struct {
	MAC     string
	IP      string
	IP6     string
	Backend string // the netvm's name
}

// PCIDevice is a PCI assignment; numbers are hex without 0x.
type PCIDevice struct {
	Domain, Bus, Slot, Function string
	NoStrictReset               bool // option no-strict-reset
	Permissive                  bool // option permissive
	NoPMFiltering               bool // dom0 feature suspend-s0ix
}

// Stubdom is the xen hvm device model.
type Stubdom struct {
	Linux     bool   // feature linux-stubdom (default true): stubdom-linux
	Cmdline   string // already composed (audiovm xid, qemu-extra-args, -qubes-net:...)
	MemoryMiB int    // stubdom_mem; 0 = default
	Full      bool   // feature audio-model or stubdom-qrexec: the full stubdom kernel
}

// HVMDevices are xen hvm extras.
type HVMDevices struct {
	AudioModel string // feature audio-model; "" = no <sound>
	VideoModel string // feature video-model; "" = vga, "none" = no video and graphics
	GUIDomain  string // the guivm's name when running and not dom0
	Debug      bool
}

// HVM, PVH, PV: virt_mode tests for the templates.
func (c DomainConfig) HVM() bool { return c.VirtMode == "hvm" }
func (c DomainConfig) PVH() bool { return c.VirtMode == "pvh" }
func (c DomainConfig) PV() bool  { return c.VirtMode == "pv" }

// MemoryElementMiB is <memory>'s value (spec §6): memory when hvm with PCI,
// or without balancing, or with hotplug (then <maxMemory> holds maxmem);
// maxmem otherwise.
func (c DomainConfig) MemoryElementMiB() int {
	if (c.HVM() && len(c.PCI) > 0) || c.MaxMemMiB == 0 || c.MemoryHotplug {
		return c.MemoryMiB
	}
	return c.MaxMemMiB
}

// MaxMemoryElement: whether <maxMemory> (hotplug) is rendered.
func (c DomainConfig) MaxMemoryElement() bool {
	return !(c.HVM() && len(c.PCI) > 0) && c.MaxMemMiB != 0 && c.MemoryHotplug
}

// Clock is the hvm <clock>'s attributes.
type Clock struct{ Offset, Adjustment, Basis string }

// HVMClock derives the hvm clock from Timezone (spec §6).
func (c DomainConfig) HVMClock() Clock {
	tz := strings.ToLower(c.Timezone)
	if tz == "localtime" {
		return Clock{"variable", "0", "localtime"}
	}
	if _, err := strconv.Atoi(tz); err == nil && tz != "" && tz[0] != '+' {
		return Clock{"variable", tz, "utc"}
	}
	return Clock{"variable", "0", "utc"}
}

// ConsoleLog is the file kvm's serial console writes to.
func (c DomainConfig) ConsoleLog() string { return filepath.Join(c.LogDir, "console.log") }

// KVMType is <domain type> for the kvm flavour: "qemu" unless "kvm" is asked for.
func (c DomainConfig) KVMType() string {
	if c.DomainType == "kvm" {
		return "kvm"
	}
	return "qemu"
}

// Renderer renders domain XML from one flavour's template.
type Renderer struct {
	flavour Flavour
	source  string // the file, for messages: a path, or "embedded <flavour>.xml"
	tmpl    *template.Template
}

var funcs = template.FuncMap{
	// x escapes a string for XML text and attribute values; every string
	// from the model goes through it (a kernel command line may hold & or <).
	"mul1024": func(n int) int { return n * 1024 },
	"x": func(s string) (string, error) {
		var b strings.Builder
		if err := xml.EscapeText(&b, []byte(s)); err != nil {
			return "", err
		}
		return b.String(), nil
	},
}

// NewRenderer parses the flavour's template: overrideDir/<flavour>.xml when
// overrideDir is set and holds that file, else the embedded one. A template
// that does not parse is an error naming the file and line.
func NewRenderer(flavour Flavour, overrideDir string) (*Renderer, error) {
	file := string(flavour) + ".xml"
	var text []byte
	var name, source string
	if overrideDir != "" {
		p := filepath.Join(overrideDir, file)
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			text, name, source = b, p, p
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("domain XML template override: %w", err)
		}
	}
	if text == nil {
		b, err := embedded.ReadFile("templates/" + file)
		if err != nil {
			return nil, fmt.Errorf("no domain XML template for flavour %q", flavour)
		}
		text, name, source = b, file, "embedded "+file
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(text))
	if err != nil {
		// text/template's message carries "name:line"
		return nil, fmt.Errorf("domain XML template %s does not parse: %w", source, err)
	}
	return &Renderer{flavour: flavour, source: source, tmpl: t}, nil
}

// Flavour is the renderer's flavour.
func (r *Renderer) Flavour() Flavour { return r.flavour }

// Source names the template file in use ("embedded xen.xml" or a path).
func (r *Renderer) Source() string { return r.source }

// Render is the domain XML for cfg.
func (r *Renderer) Render(cfg DomainConfig) (string, error) {
	return r.exec(r.tmpl.Name(), cfg, cfg.Name)
}

// RenderDisk is one <disk> element, for hot attachment (AttachDevice); the
// template's "disk" block, the one Render uses.
func (r *Renderer) RenderDisk(d Disk) (string, error) { return r.exec("disk", d, "") }

// RenderInterface is one <interface> element, for attaching a qube's uplink
// when its netvm changes while it runs; the template's "interface" block.
func (r *Renderer) RenderInterface(i Interface) (string, error) {
	return r.exec("interface", i, "")
}

func (r *Renderer) exec(block string, data any, domain string) (string, error) {
	t := r.tmpl.Lookup(block)
	if t == nil {
		return "", fmt.Errorf("domain XML template %s defines no %q block", r.source, block)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		if domain != "" {
			return "", fmt.Errorf("rendering the domain XML of %s with %s: %w", domain, r.source, err)
		}
		return "", fmt.Errorf("rendering %q with %s: %w", block, r.source, err)
	}
	return b.String(), nil
}
