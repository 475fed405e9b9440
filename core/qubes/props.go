package qubes

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// The property tables of the qube classes (spec: core-model §3). Each class
// table is built from shared descriptor lists followed by the class's own
// overrides; a later descriptor with the same name wins.

type P = property.Descriptor

// qubeDefault adapts a default that needs the qube.
func qubeDefault(f func(q *Qube) (any, error)) property.Default {
	return func(h property.Holder) (any, error) { return f(h.(*Qube)) }
}

// withTemplate is a default taken from the qube's template when it has one,
// else from f.
func withTemplate(name string, f func(q *Qube) (any, error)) property.Default {
	return qubeDefault(func(q *Qube) (any, error) {
		if t := q.Template(); t != nil {
			return t.Get(name)
		}
		return f(q)
	})
}

func constant(v any) func(*Qube) (any, error) { return func(*Qube) (any, error) { return v, nil } }

func readOnly(name string, t property.Type, f func(q *Qube) (any, error)) *P {
	return &P{Name: name, Type: t, ReadOnly: true, Default: qubeDefault(f)}
}

func positiveInt(_ property.Holder, d *P, v any) (any, error) {
	if n, _ := v.(int); n <= 0 {
		return nil, qerr.New(qerr.PropertyValueError, "%s must be positive", d.Name)
	}
	return v, nil
}

func nonNegativeInt(_ property.Holder, d *P, v any) (any, error) {
	if n, _ := v.(int); n < 0 {
		return nil, qerr.New(qerr.PropertyValueError, "%s must be positive or zero", d.Name)
	}
	return v, nil
}

func setQID(_ property.Holder, d *P, v any) (any, error) {
	if n, _ := v.(int); n < 0 || n > MaxQID {
		return nil, qerr.New(qerr.ValueError, "%s value must be between 0 and %d", d.Name, MaxQID)
	}
	return v, nil
}

func setKernel(_ property.Holder, _ *P, v any) (any, error) {
	s, _ := v.(string)
	if strings.Contains(s, "/") {
		return nil, qerr.New(qerr.PropertyValueError, "Kernel name cannot contain '/'")
	}
	return s, nil
}

func setKernelopts(_ property.Holder, _ *P, v any) (any, error) {
	s, _ := v.(string)
	if len(s) > 512 {
		return nil, qerr.New(qerr.PropertyValueError, "Kernelopts value too long (512 chars max)")
	}
	return s, nil
}

const defaultUserChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,."

func setDefaultUser(_ property.Holder, _ *P, v any) (any, error) {
	s, _ := v.(string)
	for _, c := range s {
		if !strings.ContainsRune(defaultUserChars, c) {
			return nil, qerr.New(qerr.PropertyValueError, "Username can contain only those characters: %s", defaultUserChars)
		}
	}
	return s, nil
}

func setVirtMode(h property.Holder, _ *P, v any) (any, error) {
	s := strings.ToLower(property.FormatValue(v))
	if s != "hvm" && s != "pv" && s != "pvh" {
		return nil, qerr.New(qerr.PropertyValueError, "Invalid virtualization mode, supported values: hvm, pv, pvh")
	}
	if s == "pvh" && h.(*Qube).hasPCIAssigned() {
		return nil, qerr.New(qerr.PropertyValueError, "pvh mode can't be set if pci devices are assigned")
	}
	return s, nil
}

var (
	kbdVariant = regexp.MustCompile(`\A[a-zA-Z0-9_-]*\z`)
	kbdOptions = regexp.MustCompile(`\A[a-zA-Z0-9_:,-]*\z`)
)

func setKeyboardLayout(_ property.Holder, _ *P, v any) (any, error) {
	s, _ := v.(string)
	for _, c := range s {
		if c > unicode.MaxASCII {
			return nil, qerr.New(qerr.PropertyValueError, "Keyboard layouts must be ASCII")
		}
	}
	parts := strings.Split(s, "+")
	if len(parts) != 3 {
		return nil, qerr.New(qerr.PropertyValueError, "invalid number of keyboard layout parameters")
	}
	if parts[0] == "" || strings.IndexFunc(parts[0], func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
		return nil, qerr.New(qerr.PropertyValueError, "Invalid keyboard layout provided")
	}
	if !kbdVariant.MatchString(parts[1]) {
		return nil, qerr.New(qerr.PropertyValueError, "Invalid layout variant provided")
	}
	if !kbdOptions.MatchString(parts[2]) {
		return nil, qerr.New(qerr.PropertyValueError, "Invalid layout options provided")
	}
	return s, nil
}

var deniedListRe = regexp.MustCompile(`\A([bump*][0-9a-f*]{6})*\z`)

// setDevicesDenied normalises a list of 7-character device interface codes:
// duplicates removed, sorted.
func setDevicesDenied(_ property.Holder, _ *P, v any) (any, error) {
	s, _ := v.(string)
	if s == "" {
		return "", nil
	}
	if len(s)%7 != 0 {
		return nil, qerr.New(qerr.ValueError, "Invalid length of interfaces=%s (is %d, expected multiple of 7)", property.PyRepr(s), len(s))
	}
	var codes []string
	for i := 0; i < len(s); i += 7 {
		codes = append(codes, s[i:i+7])
	}
	slices.Sort(codes)
	s = strings.Join(slices.Compact(codes), "")
	if !deniedListRe.MatchString(s) {
		return nil, qerr.New(qerr.PropertyValueError, `Interface code list should be in the form chhhhhhchhhhhh...,where c is one of "b", "u", "m", "p", "*" and h is a hexdigit or "*".`)
	}
	return s, nil
}

var macRe = regexp.MustCompile(`\A([0-9a-f]{2}:){5}[0-9a-f]{2}\z`)

func setMAC(_ property.Holder, _ *P, v any) (any, error) {
	s := strings.ToLower(property.FormatValue(v))
	if !macRe.MatchString(s) {
		return nil, qerr.New(qerr.PropertyValueError, "Invalid MAC address value")
	}
	return s, nil
}

// setDisposableTemplate refuses a disposable template that is not one.
func setDisposableTemplate(h property.Holder, d *P, v any) (any, error) {
	q, _ := v.(*Qube)
	if q == nil {
		return v, nil
	}
	if !q.boolean("template_for_dispvms") {
		target := "system"
		if o, ok := h.(*Qube); ok {
			target = "qube " + property.PyRepr(o.name)
		}
		return nil, qerr.New(qerr.PropertyValueError, "Cannot set invalid property to %s, %s %s has template_for_dispvms set to False", target, d.Name, property.PyRepr(q.name))
	}
	return v, nil
}

// validateKernel checks that a kernel is installed: a directory of that
// name in the kernels directory, with a vmlinuz in it. Names with '/' are
// refused as not installed (they would point outside the directory).
func validateKernel(a *App, k string) error {
	if k == "" {
		return nil
	}
	dir := filepath.Join(a.KernelsDir(), k)
	if strings.Contains(k, "/") {
		return qerr.New(qerr.PropertyValueError, "Kernel %s not installed", property.PyRepr(k))
	}
	if _, err := os.Stat(dir); err != nil {
		return qerr.New(qerr.PropertyValueError, "Kernel %s not installed", property.PyRepr(k))
	}
	if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil {
		return qerr.New(qerr.PropertyValueError, "Kernel %s not properly installed: missing 'vmlinuz' file", property.PyRepr(k))
	}
	return nil
}

func docs(class, name string) string {
	if d, ok := classDocs[class][name]; ok {
		return d
	}
	return qubeDocs[name]
}

// withDocs copies descriptors and fills in each one's help text for class.
func withDocs(class string, ds ...*P) []*P {
	out := make([]*P, len(ds))
	for i, d := range ds {
		c := *d
		c.Doc = docs(class, d.Name)
		out[i] = &c
	}
	return out
}

// baseProps are the properties every class has (BaseVM).
func baseProps() []*P {
	return []*P{
		{Name: "uuid", Parse: parseUUIDProp, WriteOnce: true, NoClone: true},
		{Name: "name", WriteOnce: true, NoClone: true},
		{Name: "qid", Type: property.Int, Setter: setQID, WriteOnce: true, NoClone: true},
		labelProp(&P{Name: "label"}),
		readOnly("klass", property.Str, func(q *Qube) (any, error) { return q.class.Name, nil }),
		readOnly("icon", property.Str, qubeIcon),
	}
}

func qubeIcon(q *Qube) (any, error) {
	l := q.label()
	if l == nil {
		return nil, property.ErrNoValue
	}
	switch q.class.kind {
	case kindAdmin:
		return "adminvm-black", nil
	case kindTemplate:
		return "templatevm-" + l.Name, nil
	case kindApp:
		if q.boolean("template_for_dispvms") {
			return "templatevm-" + l.Name, nil
		}
	}
	if q.Features.Truthy("servicevm") {
		return "servicevm-" + l.Name, nil
	}
	switch q.class.kind {
	case kindDisp:
		return "dispvm-" + l.Name, nil
	case kindStandalone:
		return "standalonevm-" + l.Name, nil
	case kindRemote:
		return "remotevm-" + l.Name, nil
	}
	return "appvm-" + l.Name, nil
}

// localProps are shared by the AdminVM and the VM classes.
func localProps() []*P {
	return []*P{
		{Name: "include_in_backups", Type: property.Bool, Default: property.Const(true)},
		vmRef(&P{Name: "default_dispvm", Setter: setDisposableTemplate,
			Default: qubeDefault(func(q *Qube) (any, error) { return q.app.Get("default_dispvm") })}, true, anyLocalVM),
		{Name: "devices_denied", Default: property.Const(""), Setter: setDevicesDenied},
		{Name: "keyboard_layout", Setter: setKeyboardLayout, Default: qubeDefault(func(q *Qube) (any, error) {
			if g := q.vm("guivm"); g != nil && g != q {
				return g.Get("keyboard_layout")
			}
			return "us++", nil
		})},
	}
}

// vmProps are the properties of QubesVM (every class that is a real VM).
func vmProps() []*P {
	return []*P{
		{Name: "installed_by_rpm", Type: property.Bool, Default: property.Const(false)},
		{Name: "debug", Type: property.Bool, Default: property.Const(false)},
		{Name: "autostart", Type: property.Bool, Default: property.Const(false)},
		{Name: "backup_timestamp", Type: property.Int, Default: property.Const(nil)},
		{Name: "virt_mode", Setter: setVirtMode, Default: qubeDefault(func(q *Qube) (any, error) {
			if q.hasPCIAssigned() {
				return "hvm", nil
			}
			if t := q.Template(); t != nil {
				return t.Get("virt_mode")
			}
			return "pvh", nil
		})},
		{Name: "memory", Type: property.Int, Setter: positiveInt, Default: withTemplate("memory", constant(400))},
		{Name: "maxmem", Type: property.Int, Setter: nonNegativeInt, Default: qubeDefault(defaultMaxmem)},
		{Name: "stubdom_mem", Type: property.Int, Setter: positiveInt, Default: property.Const(nil)},
		{Name: "vcpus", Type: property.Int, Setter: positiveInt, Default: withTemplate("vcpus", constant(2))},
		{Name: "kernel", Setter: setKernel, Default: withTemplate("kernel", func(q *Qube) (any, error) {
			return q.app.Get("default_kernel")
		})},
		{Name: "kernelopts", LoadStage: 4, Setter: setKernelopts, Default: qubeDefault(defaultKernelopts)},
		{Name: "default_user", Setter: setDefaultUser, Default: withTemplate("default_user", constant("user"))},
		{Name: "qrexec_timeout", Type: property.Int, Setter: positiveInt, Default: withTemplate("qrexec_timeout", func(q *Qube) (any, error) {
			return q.app.Get("default_qrexec_timeout")
		})},
		{Name: "shutdown_timeout", Type: property.Int, Setter: positiveInt, Default: withTemplate("shutdown_timeout", func(q *Qube) (any, error) {
			return q.app.Get("default_shutdown_timeout")
		})},
		vmRef(&P{Name: "management_dispvm", Setter: setDisposableTemplate,
			Default: withTemplate("management_dispvm", func(q *Qube) (any, error) { return q.app.Get("management_dispvm") })}, true, anyLocalVM),
		vmRef(&P{Name: "guivm", Default: qubeDefault(func(q *Qube) (any, error) { return q.app.Get("default_guivm") })}, true, anyLocalVM),
		vmRef(&P{Name: "audiovm", Default: qubeDefault(func(q *Qube) (any, error) { return q.app.Get("default_audiovm") })}, true, anyLocalVM),
		{Name: "bootmode", LoadStage: 4, Default: qubeDefault(defaultBootmode)},
		readOnly("updateable", property.Bool, func(q *Qube) (any, error) { return !q.hasTemplateProp(), nil }),
		readOnly("xid", property.Int, constant(-1)),
		readOnly("stubdom_xid", property.Int, constant(-1)),
		readOnly("stubdom_uuid", property.Str, constant("")),
		readOnly("start_time", property.Str, constant(nil)),
	}
}

// netProps are the networking properties (NetVMMixin).
func netProps() []*P {
	return []*P{
		{Name: "mac", Setter: setMAC, Default: property.Const("00:16:3e:5e:6c:00")},
		{Name: "ip", Parse: parseIPv4, Default: qubeDefault(defaultIP)},
		{Name: "ip6", Parse: parseIPv6, Default: qubeDefault(defaultIP6)},
		vmRef(&P{Name: "netvm", Setter: setNetVM, Default: qubeDefault(func(q *Qube) (any, error) {
			return q.app.Get("default_netvm")
		})}, true, anyLocalVM),
		{Name: "provides_network", Type: property.Bool, Default: property.Const(false), Setter: setProvidesNetwork},
		readOnly("dns", property.Str, func(q *Qube) (any, error) {
			if q.isNetworked() {
				return "10.139.1.1 10.139.1.2", nil
			}
			return nil, nil
		}),
		readOnly("gateway", property.Str, func(q *Qube) (any, error) {
			if q.boolean("provides_network") {
				return q.Get("visible_ip")
			}
			return nil, nil
		}),
		readOnly("gateway6", property.Str, func(q *Qube) (any, error) {
			if q.ipv6Enabled() && q.boolean("provides_network") {
				return q.Get("visible_ip6")
			}
			return nil, nil
		}),
		readOnly("visible_ip", property.Str, func(q *Qube) (any, error) {
			if v, ok := q.Features.templateValue("net.fake-ip"); ok {
				return v, nil
			}
			return q.Get("ip")
		}),
		readOnly("visible_ip6", property.Str, func(q *Qube) (any, error) { return q.Get("ip6") }),
		readOnly("visible_gateway", property.Str, func(q *Qube) (any, error) {
			if v, ok := q.Features.templateValue("net.fake-gateway"); ok {
				return v, nil
			}
			if n := q.vm("netvm"); n != nil {
				return n.Get("gateway")
			}
			return nil, nil
		}),
		readOnly("visible_gateway6", property.Str, func(q *Qube) (any, error) {
			if n := q.vm("netvm"); n != nil && q.ipv6Enabled() {
				return n.Get("gateway6")
			}
			return nil, nil
		}),
		readOnly("visible_netmask", property.Str, func(q *Qube) (any, error) {
			if v, ok := q.Features.templateValue("net.fake-netmask"); ok {
				return v, nil
			}
			if n := q.vm("netvm"); n != nil {
				return n.netmask(), nil
			}
			return nil, nil
		}),
	}
}

func dvmTemplateProps() []*P {
	return []*P{{Name: "template_for_dispvms", Type: property.Bool, Default: property.Const(false)}}
}

func defaultMaxmem(q *Qube) (any, error) {
	if !q.memoryBalancingPossible() {
		return 0, nil
	}
	if t := q.Template(); t != nil {
		return t.Get("maxmem")
	}
	m := 4000
	if v, _ := q.Features.Get("os"); v == "Linux" {
		m = q.integer("memory") * 10
	}
	return min(m, q.app.opts.HostMemoryMiB/2), nil
}

// memoryBalancingPossible: only on Xen, without PCI devices, and for HVM
// only with the qube's tools installed.
func (q *Qube) memoryBalancingPossible() bool {
	if !q.app.opts.Xen || q.hasPCIAssigned() {
		return false
	}
	if q.str("virt_mode") == "hvm" {
		if !q.Features.templateTruthy("qrexec") {
			return false
		}
		hasServices := false
		for t := q; t != nil; t = t.Template() {
			for _, n := range t.Features.Names() {
				if strings.HasPrefix(n, "supported-service.") {
					hasServices = true
				}
			}
		}
		if hasServices && !q.Features.templateTruthy("supported-service.meminfo-writer") {
			return false
		}
	}
	return true
}

func defaultKernelopts(q *Qube) (any, error) {
	k := q.str("kernel")
	if k == "" {
		return "", nil
	}
	files := q.app.kernelFiles(k)
	if q.hasPCIAssigned() {
		return files.pci, nil // "" when the kernel has no such file
	}
	if t := q.Template(); t != nil {
		return t.Get("kernelopts")
	}
	if files.hasNoPCI {
		return files.noPCI, nil
	}
	return "swiotlb=2048", nil
}

// kernelFiles are the default command lines a kernel package may ship.
type kernelFiles struct {
	noPCI, pci string
	hasNoPCI   bool
	read       time.Time
}

// kernelFilesTTL bounds how long the kernel's default command lines are
// cached: property reads would otherwise open two files per qube, and a
// kernel package is installed rarely.
const kernelFilesTTL = 2 * time.Second

// kernelFiles returns the default-kernelopts-{nopci,pci}.txt of kernel k.
func (a *App) kernelFiles(k string) kernelFiles {
	a.kernelMu.Lock()
	defer a.kernelMu.Unlock()
	now := a.opts.Now()
	if f, ok := a.kernelCache[k]; ok && now.Sub(f.read) < kernelFilesTTL {
		return f
	}
	dir := filepath.Join(a.KernelsDir(), k)
	f := kernelFiles{read: now}
	if b, err := os.ReadFile(filepath.Join(dir, "default-kernelopts-nopci.txt")); err == nil {
		f.noPCI, f.hasNoPCI = strings.TrimRight(string(b), "\n"), true
	}
	if b, err := os.ReadFile(filepath.Join(dir, "default-kernelopts-pci.txt")); err == nil {
		f.pci = strings.TrimRight(string(b), "\n")
	}
	if a.kernelCache == nil {
		a.kernelCache = map[string]kernelFiles{}
	}
	a.kernelCache[k] = f
	return f
}

// defaultBootmode: the qube's own boot-mode.active feature if that mode
// exists, else the nearest template's appvm_default_bootmode, else "default".
func defaultBootmode(q *Qube) (any, error) {
	valid := func(s *Qube, mode string) bool {
		_, ok := s.Features.templateValue("boot-mode.kernelopts." + mode)
		return ok
	}
	if v, ok := q.Features.Get("boot-mode.active"); ok {
		if v == "default" || valid(q, v) {
			return v, nil
		}
	}
	for s := q; s.Template() != nil; s = s.Template() {
		t := s.Template()
		if !t.Has("appvm_default_bootmode") {
			continue
		}
		v := t.str("appvm_default_bootmode")
		if v == "default" || valid(s, v) {
			return v, nil
		}
	}
	return "default", nil
}

func init() {
	AdminVMClass.table = property.NewTable(withDocs("AdminVM", slices.Concat(baseProps(), localProps(), []*P{
		{Name: "name", ReadOnly: true, Default: property.Const("dom0")},
		{Name: "qid", Type: property.Int, ReadOnly: true, Default: property.Const(0)},
		{Name: "uuid", ReadOnly: true, Default: property.Const("00000000-0000-0000-0000-000000000000")},
		readOnly("updateable", property.Bool, constant(true)),
		{Name: "keyboard_layout", Setter: setKeyboardLayout, Default: property.Const("us++")},
		readOnly("maxmem", property.Int, func(q *Qube) (any, error) { return q.app.opts.AdminMaxMemMiB, nil }),
	})...)...)

	vm := slices.Concat(baseProps(), localProps(), vmProps(), netProps())
	AppVMClass.table = property.NewTable(withDocs("AppVM", slices.Concat(vm, dvmTemplateProps(), []*P{
		vmRef(&P{Name: "template"}, false, templateVM),
	})...)...)
	StandaloneVMClass.table = property.NewTable(withDocs("StandaloneVM", slices.Concat(vm, dvmTemplateProps())...)...)
	TemplateVMClass.table = property.NewTable(withDocs("TemplateVM", slices.Concat(vm, []*P{
		vmRef(&P{Name: "netvm", Setter: setNetVM, Default: property.Const(nil)}, true, anyLocalVM),
		{Name: "appvm_default_bootmode", LoadStage: 4, Default: qubeDefault(func(q *Qube) (any, error) {
			if v, ok := q.Features.Get("boot-mode.appvm-default"); ok {
				return v, nil
			}
			return "default", nil
		})},
	})...)...)
	DispVMClass.table = property.NewTable(withDocs("DispVM", slices.Concat(vm, []*P{
		vmRef(&P{Name: "template", Setter: setDispVMTemplate}, false, anyLocalVM),
		{Name: "dispid", Type: property.Int, WriteOnce: true, NoClone: true},
		{Name: "auto_cleanup", Type: property.Bool, Default: property.Const(false)},
		{Name: "include_in_backups", Type: property.Bool, Default: qubeDefault(func(q *Qube) (any, error) {
			return !q.boolean("auto_cleanup"), nil
		})},
		vmRef(&P{Name: "default_dispvm", Setter: setDisposableTemplate,
			Default: qubeDefault(func(q *Qube) (any, error) { return q.Get("template") })}, true, anyLocalVM),
		readOnly("is_preload", property.Bool, func(q *Qube) (any, error) { return q.isPreload(), nil }),
	})...)...)
	RemoteVMClass.table = property.NewTable(withDocs("RemoteVM", slices.Concat(baseProps(), []*P{
		{Name: "include_in_backups", Type: property.Bool, Default: property.Const(false)},
		vmRef(&P{Name: "relayvm", Default: property.Const(nil)}, true, anyLocalVM),
		{Name: "transport_rpc", Default: property.Const(nil)},
		{Name: "remote_name", Default: property.Const(nil)},
	})...)...)
}

// The qube classes.
var (
	AdminVMClass      = &Class{Name: "AdminVM", kind: kindAdmin}
	AppVMClass        = &Class{Name: "AppVM", kind: kindApp}
	TemplateVMClass   = &Class{Name: "TemplateVM", kind: kindTemplate}
	StandaloneVMClass = &Class{Name: "StandaloneVM", kind: kindStandalone}
	DispVMClass       = &Class{Name: "DispVM", kind: kindDisp}
	RemoteVMClass     = &Class{Name: "RemoteVM", kind: kindRemote}
)
