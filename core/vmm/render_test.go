package vmm

import (
	"encoding/xml"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current templates")

func appVM() DomainConfig {
	return DomainConfig{
		Name: "work", UUID: "6b5d4f8e-3c2a-4a1b-9f0e-1d2c3b4a5f60",
		MemoryMiB: 400, MaxMemMiB: 4000, VCPUs: 2, VirtMode: "pvh",
		Kernel:  "/var/lib/qubes/vm-kernels/6.6.1/vmlinuz",
		Initrd:  "/var/lib/qubes/vm-kernels/6.6.1/initramfs",
		Cmdline: "root=/dev/mapper/dmroot ro nomodeset console=hvc0 rd_NO_PLYMOUTH rd.plymouth.enable=0 plymouth.enable=0 xen_privcmd.unrestricted ",
		Disks: []Disk{
			{Path: "/dev/qubes_dom0/vm-work-root-snap", Target: "xvda", RW: true},
			{Path: "/dev/qubes_dom0/vm-work-private-snap", Target: "xvdb", RW: true},
			{Path: "/dev/qubes_dom0/vm-work-volatile", Target: "xvdc", RW: true},
			{Path: "/var/lib/qubes/vm-kernels/6.6.1/modules.img", Target: "xvdd"},
		},
		Interfaces: []Interface{{MAC: "00:16:3e:5e:6c:00", IP: "10.137.0.5", IP6: "fd09:24ef:4179::a89:5", Backend: "sys-firewall"}},
		LogDir:     "/var/lib/qubes/appvms/work",
	}
}

func hvmVM() DomainConfig {
	return DomainConfig{
		Name: "sys-net", UUID: "0e6d1f3a-2b4c-4d5e-8f90-a1b2c3d4e5f6",
		MemoryMiB: 400, MaxMemMiB: 4000, VCPUs: 2, VirtMode: "hvm",
		DisableRDRAND: true, PCIE820Host: true, Timezone: "localtime",
		Disks: []Disk{
			{Path: "/dev/qubes_dom0/vm-sys-net-root-snap", Target: "xvda", RW: true},
			{Path: "/dev/sdb1", Target: "xvdi", DevType: "cdrom", Backend: "sys-usb", NoScript: true},
		},
		PCI:        []PCIDevice{{Domain: "0000", Bus: "00", Slot: "14", Function: "3", Permissive: true}},
		Stubdom:    Stubdom{Linux: true, Cmdline: "-qubes-audio:audiovm_xid=-1", MemoryMiB: 144},
		HVMDevices: HVMDevices{AudioModel: "ich6", GUIDomain: "sys-gui"},
		LogDir:     "/var/lib/qubes/appvms/sys-net",
	}
}

func kvmVM() DomainConfig {
	c := appVM()
	c.Name = "work-kvm"
	c.Disks = []Disk{
		{Path: "/var/lib/qubes/appvms/work/root.img", Target: "vda", RW: true},
		{Path: "/dev/loop7", Target: "vdb", RW: true},
		{Path: "/var/lib/qubes/vm-kernels/6.6.1/modules.img", Target: "vdd"},
	}
	c.Cmdline = "root=/dev/vda ro quiet init=/init a=b&c<d" // escaping
	c.Emulator = "/usr/bin/qemu-system-x86_64"
	c.QubesDBSocket = "/var/lib/qubes/appvms/work/qubesdb.sock"
	return c
}

func testVM() DomainConfig {
	c := appVM()
	c.Name = "work-test"
	return c
}

func TestRenderGolden(t *testing.T) {
	kvmNative := kvmVM()
	kvmNative.DomainType = "kvm"
	kvmNative.Kernel, kvmNative.Cmdline, kvmNative.Emulator, kvmNative.QubesDBSocket = "", "", "", ""
	pv := appVM()
	pv.VirtMode, pv.MemoryHotplug = "pv", true
	pv.Interfaces = nil
	tests := []struct {
		golden  string
		flavour Flavour
		cfg     DomainConfig
	}{
		{"xen-pvh.golden", FlavourXen, appVM()},
		{"xen-pv-hotplug.golden", FlavourXen, pv},
		{"xen-hvm-pci.golden", FlavourXen, hvmVM()},
		{"kvm-qemu.golden", FlavourKVM, kvmVM()},
		{"kvm-native-nokernel.golden", FlavourKVM, kvmNative},
		{"test.golden", FlavourTest, testVM()},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			r, err := NewRenderer(tc.flavour, "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Render(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			wellFormed(t, got)
			checkGolden(t, tc.golden, got)
		})
	}
}

func TestRenderDevices(t *testing.T) {
	for _, f := range []Flavour{FlavourXen, FlavourKVM, FlavourTest} {
		t.Run(string(f), func(t *testing.T) {
			r, err := NewRenderer(f, "")
			if err != nil {
				t.Fatal(err)
			}
			d, err := r.RenderDisk(Disk{Path: "/dev/sdc", Target: "xvdi"})
			if err != nil {
				t.Fatal(err)
			}
			i, err := r.RenderInterface(Interface{MAC: "00:16:3e:5e:6c:01", IP: "10.137.0.6", Backend: "sys-firewall"})
			if err != nil {
				t.Fatal(err)
			}
			wellFormed(t, d)
			wellFormed(t, i)
			checkGolden(t, string(f)+"-devices.golden", d+"\n"+i+"\n")
		})
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./core/vmm -run Render -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendering (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
	}
}

func TestRenderEscapes(t *testing.T) {
	r, err := NewRenderer(FlavourKVM, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Render(kvmVM())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "a=b&amp;c&lt;d console=ttyS0</cmdline>") {
		t.Errorf("command line not escaped:\n%s", got)
	}
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	okPath := write("test.xml", `<domain type="test"><name>{{x .Name}}</name><!-- site override --></domain>`)
	brokenPath := write("xen.xml", "<domain type=\"xen\">\n  <name>{{x .Name}}</name>\n  <uuid>{{.UUID | nosuchfunc}}</uuid>\n</domain>\n")
	execPath := write("kvm.xml", "<domain>\n\n  <name>{{.NoSuchField}}</name>\n</domain>\n")

	t.Run("override wins", func(t *testing.T) {
		r, err := NewRenderer(FlavourTest, dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.Source() != okPath {
			t.Errorf("Source() = %q, want %q", r.Source(), okPath)
		}
		got, err := r.Render(testVM())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "site override") {
			t.Errorf("override not used: %s", got)
		}
		if _, err := r.RenderDisk(Disk{}); err == nil || !strings.Contains(err.Error(), `defines no "disk" block`) {
			t.Errorf("RenderDisk on an override without the block: %v", err)
		}
	})
	t.Run("parse error names file and line", func(t *testing.T) {
		_, err := NewRenderer(FlavourXen, dir)
		if err == nil || !strings.Contains(err.Error(), brokenPath+":3:") || !strings.Contains(err.Error(), "nosuchfunc") {
			t.Fatalf("err = %v, want it to name %s and a line", err, brokenPath)
		}
		t.Log(err)
	})
	t.Run("execution error names file and line", func(t *testing.T) {
		r, err := NewRenderer(FlavourKVM, dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Render(kvmVM())
		if err == nil || !strings.Contains(err.Error(), execPath+":3:") || !strings.Contains(err.Error(), "work-kvm") {
			t.Fatalf("err = %v, want %s:3 and the domain name", err, execPath)
		}
		t.Log(err)
	})
	t.Run("missing override falls back to embedded", func(t *testing.T) {
		r, err := NewRenderer(FlavourTest, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if r.Source() != "embedded test.xml" {
			t.Errorf("Source() = %q", r.Source())
		}
	})
	t.Run("unreadable override is an error", func(t *testing.T) {
		d := t.TempDir()
		if err := os.Mkdir(filepath.Join(d, "test.xml"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := NewRenderer(FlavourTest, d); err == nil {
			t.Fatal("a directory named test.xml was accepted as a template")
		}
	})
}

func TestFlavourForURI(t *testing.T) {
	tests := []struct {
		uri  string
		want Flavour
		err  bool
	}{
		{"test:///default", FlavourTest, false},
		{"xen:///", FlavourXen, false},
		{"qemu:///system", FlavourKVM, false},
		{"qemu+ssh://host/system", FlavourKVM, false},
		{"kvm:///system", FlavourKVM, false},
		{"lxc:///", "", true},
		{"nonsense", "", true},
	}
	for _, tc := range tests {
		got, err := FlavourForURI(tc.uri)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("FlavourForURI(%q) = %q, %v; want %q, error %v", tc.uri, got, err, tc.want, tc.err)
		}
	}
}

func TestMemoryAndClock(t *testing.T) {
	pci := []PCIDevice{{}}
	tests := []struct {
		name    string
		cfg     DomainConfig
		mem     int
		maxElem bool
	}{
		{"balanced", DomainConfig{MemoryMiB: 400, MaxMemMiB: 4000, VirtMode: "pvh"}, 4000, false},
		{"no balancing", DomainConfig{MemoryMiB: 400, VirtMode: "pvh"}, 400, false},
		{"hvm with pci", DomainConfig{MemoryMiB: 400, MaxMemMiB: 4000, VirtMode: "hvm", PCI: pci}, 400, false},
		{"pvh with pci balances", DomainConfig{MemoryMiB: 400, MaxMemMiB: 4000, VirtMode: "pvh", PCI: pci}, 4000, false},
		{"hotplug", DomainConfig{MemoryMiB: 400, MaxMemMiB: 4000, VirtMode: "pvh", MemoryHotplug: true}, 400, true},
	}
	for _, tc := range tests {
		if got := tc.cfg.MemoryElementMiB(); got != tc.mem {
			t.Errorf("%s: MemoryElementMiB = %d, want %d", tc.name, got, tc.mem)
		}
		if got := tc.cfg.MaxMemoryElement(); got != tc.maxElem {
			t.Errorf("%s: MaxMemoryElement = %v, want %v", tc.name, got, tc.maxElem)
		}
	}
	clocks := map[string]Clock{
		"localtime": {"variable", "0", "localtime"},
		"LocalTime": {"variable", "0", "localtime"},
		"3600":      {"variable", "3600", "utc"},
		"-7200":     {"variable", "-7200", "utc"},
		"Europe/X":  {"variable", "0", "utc"},
		"":          {"variable", "0", "utc"},
	}
	for tz, want := range clocks {
		if got := (DomainConfig{Timezone: tz}).HVMClock(); got != want {
			t.Errorf("HVMClock(%q) = %v, want %v", tz, got, want)
		}
	}
}

// TestGoldenValidatesAgainstLibvirtSchema checks the kvm and test renderings
// against libvirt's own RelaxNG schema. The xen ones use Qubes' libvirt
// extensions (the qubes-block disk script, stubdom-linux emulator, qubes
// graphics, a relative hvmloader) which upstream's schema rejects.
func TestGoldenValidatesAgainstLibvirtSchema(t *testing.T) {
	bin, err := exec.LookPath("virt-xml-validate")
	if err != nil {
		t.Skip("virt-xml-validate is not installed: `make deps` installs it (Debian package libvirt-clients)")
	}
	for _, g := range []string{"kvm-qemu.golden", "kvm-native-nokernel.golden", "test.golden"} {
		out, err := exec.Command(bin, filepath.Join("testdata", g), "domain").CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", g, err, out)
		}
	}
}
