package qubes

// Table-driven tests of every property of every qube class and of every
// global property (spec: core-model §3.2–§3.4, §5.1): the default on a fresh
// holder, values accepted through SetText (the Admin API's path), values
// rejected with the reference's error kind and message (and the value left
// as it was), and Reset. TestPropertyTableCoverage fails when a class or the
// application gains a property that has no row here.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// ---------------------------------------------------------------------------
// Subjects

// ptGlobal names the application (global properties) in the tables.
const ptGlobal = "Qubes"

// ptClasses are the holders under test, in test order.
var ptClasses = []string{"AdminVM", "AppVM", "TemplateVM", "StandaloneVM", "DispVM", "RemoteVM", ptGlobal}

// ptSubject is the fresh qube of each class: dom0 from the fixture, the
// others created by newPropEnv.
var ptSubject = map[string]string{
	"AdminVM":      "dom0",
	"AppVM":        "fresh-app",
	"TemplateVM":   "fresh-tpl",
	"StandaloneVM": "fresh-sa",
	"DispVM":       "fresh-disp",
	"RemoteVM":     "fresh-remote",
}

// ptHolder is what the tests use of a qube or of the application.
type ptHolder interface {
	Descriptor(string) (*P, error)
	Value(*P) (any, error)
	DefaultValue(*P) (any, error)
	Explicit(*P) (any, bool)
	IsDefault(*P) bool
	SetText(*P, string) error
	Reset(*P) error
	Table() *property.Table
}

// ptEnv is the fixture model with one fresh qube of every class added:
//
//	fresh-app    AppVM on debian-12-xfce, label red        (qid 14)
//	fresh-tpl    TemplateVM, label black                   (qid 15)
//	fresh-sa     StandaloneVM, label gray                  (qid 16)
//	fresh-dvm    AppVM, template_for_dispvms=True, purple  (qid 17)
//	fresh-disp   DispVM from fresh-dvm, label red          (qid 18)
//	fresh-remote RemoteVM, label orange                    (qid 19)
type ptEnv struct {
	a   *App
	dir string
}

func newPropEnv(t testing.TB) *ptEnv {
	t.Helper()
	a, _, dir := loadFixture(t)
	e := &ptEnv{a: a, dir: dir}
	_, err := a.Write(func() error {
		tpl, err := a.Qube("debian-12-xfce")
		if err != nil {
			return err
		}
		create := func(c *Class, name, label string, template *Qube, qid int) (*Qube, error) {
			l, err := a.Label(label)
			if err != nil {
				return nil, err
			}
			q, err := a.Create(c, CreateOptions{Name: name, Label: l, Template: template})
			if err != nil {
				return nil, fmt.Errorf("create %s %s: %w", c.Name, name, err)
			}
			if q.QID() != qid {
				return nil, fmt.Errorf("create %s: qid %d, want %d", name, q.QID(), qid)
			}
			return q, nil
		}
		if _, err := create(AppVMClass, "fresh-app", "red", tpl, 14); err != nil {
			return err
		}
		if _, err := create(TemplateVMClass, "fresh-tpl", "black", nil, 15); err != nil {
			return err
		}
		if _, err := create(StandaloneVMClass, "fresh-sa", "gray", nil, 16); err != nil {
			return err
		}
		dvm, err := create(AppVMClass, "fresh-dvm", "purple", tpl, 17)
		if err != nil {
			return err
		}
		if err := e.set("fresh-dvm", "template_for_dispvms", "True"); err != nil {
			return err
		}
		if _, err := create(DispVMClass, "fresh-disp", "red", dvm, 18); err != nil {
			return err
		}
		_, err = create(RemoteVMClass, "fresh-remote", "orange", nil, 19)
		return err
	})
	if err != nil {
		t.Fatalf("building the test model: %v", err)
	}
	return e
}

// holder returns the application for "Qubes", else the named qube.
func (e *ptEnv) holder(owner string) (ptHolder, error) {
	if owner == ptGlobal {
		return e.a, nil
	}
	return e.a.Qube(owner)
}

// subject returns the fresh holder of a class.
func (e *ptEnv) subject(class string) (ptHolder, error) {
	if class == ptGlobal {
		return e.a, nil
	}
	return e.holder(ptSubject[class])
}

// set sets a property through SetText; for setups, inside Write.
func (e *ptEnv) set(owner, prop, text string) error {
	h, err := e.holder(owner)
	if err != nil {
		return err
	}
	d, err := h.Descriptor(prop)
	if err != nil {
		return err
	}
	if err := h.SetText(d, text); err != nil {
		return fmt.Errorf("setup %s.%s = %q: %w", owner, prop, text, err)
	}
	return nil
}

// ptSets returns a setup that sets (owner, property, text) triples in order.
func ptSets(triples ...string) func(*ptEnv) error {
	if len(triples)%3 != 0 {
		panic("ptSets takes (owner, property, text) triples")
	}
	return func(e *ptEnv) error {
		for i := 0; i < len(triples); i += 3 {
			if err := e.set(triples[i], triples[i+1], triples[i+2]); err != nil {
				return err
			}
		}
		return nil
	}
}

// ptSeq runs setups in order.
func ptSeq(fs ...func(*ptEnv) error) func(*ptEnv) error {
	return func(e *ptEnv) error {
		for _, f := range fs {
			if err := f(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// ptKernelDir makes a directory in the kernels directory, with or without
// a vmlinuz file.
func ptKernelDir(name string, withVmlinuz bool) func(*ptEnv) error {
	return func(e *ptEnv) error {
		dir := filepath.Join(e.a.KernelsDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if withVmlinuz {
			return os.WriteFile(filepath.Join(dir, "vmlinuz"), nil, 0o644)
		}
		return nil
	}
}

// ptState is what a read of a property shows.
type ptState struct {
	text      string
	isDefault bool
	noValue   bool // the read failed with ErrNoValue
}

func (s ptState) String() string {
	if s.noValue {
		return fmt.Sprintf("<no value> (default=%v)", s.isDefault)
	}
	return fmt.Sprintf("%q (default=%v)", s.text, s.isDefault)
}

// ptRead reads a property's effective value text and default flag. A read
// failing with anything but ErrNoValue is returned as an error.
func ptRead(h ptHolder, d *P) (ptState, error) {
	s := ptState{isDefault: h.IsDefault(d)}
	v, err := h.Value(d)
	switch {
	case errors.Is(err, property.ErrNoValue):
		s.noValue = true
	case err != nil:
		return s, err
	default:
		s.text = d.Text(v)
	}
	return s, nil
}

// ---------------------------------------------------------------------------
// Rows

// ptOK is a value SetText must accept, storing the value whose text is want.
type ptOK struct {
	in, want string
	setup    func(*ptEnv) error // runs inside the same Write, before SetText
}

// ptBad is a value SetText must refuse with kind and msg (msg a prefix when
// prefix is set), leaving the property as it was.
type ptBad struct {
	in     string
	kind   qerr.Kind
	msg    string
	prefix bool
	setup  func(*ptEnv) error
}

// ptReset says what Reset does when it is not simply "back to the row's
// default": a default other than the fresh value, no value at all, or an
// error (kind non-empty).
type ptReset struct {
	want    string
	noValue bool
	kind    qerr.Kind
	msg     string
}

// ptRow is one property of one class.
type ptRow struct {
	name string
	// The fresh holder's value: want, or wantFn when it depends on the
	// model, or a pattern for random values; noValue when it has none.
	want    string
	wantFn  func(*ptEnv) (string, error)
	wantRe  string
	noValue bool
	// explicit: the fresh holder has an explicit value (identity, label,
	// template, and global values set in the fixture).
	explicit bool
	readOnly bool
	ok       []ptOK
	bad      []ptBad
	// reset must be given for explicit rows; nil means back to the fresh
	// default.
	reset *ptReset
}

func (r ptRow) expected(e *ptEnv) (ptState, string, error) {
	s := ptState{isDefault: !r.explicit, noValue: r.noValue, text: r.want}
	if r.wantFn != nil {
		w, err := r.wantFn(e)
		if err != nil {
			return s, "", err
		}
		s.text = w
	}
	return s, r.wantRe, nil
}

// Common messages.
const (
	ptMsgInt  = "Failed to parse property value as int"
	ptMsgIPv4 = "Failed to parse property value as IPv4Address"
	ptMsgIPv6 = "Failed to parse property value as IPv6Address"
)

func ptMsgRO(prop, class string) string {
	return fmt.Sprintf("property '%s' on %s instance cannot be set", prop, class)
}

func ptMsgWriteOnce(prop string) string {
	return fmt.Sprintf("property '%s' is write-once and already set", prop)
}

func ptMsgNoQube(prop string) string {
	return "Can't set " + prop + " to non-existing qube nonexistent"
}

func ptMsgWrongClass(qube, class, want string) string {
	return fmt.Sprintf("wrong VM class: domains['%s'] is of type %s and not %s", qube, class, want)
}

func ptMsgNotDVM(target, prop, qube string) string {
	return fmt.Sprintf("Cannot set invalid property to %s, %s '%s' has template_for_dispvms set to False", target, prop, qube)
}

func ptMsgBool(in string) string {
	return "Invalid literal for boolean property: " + property.PyRepr(in)
}

// Row builders.

func ptBoolRow(name string, def bool) ptRow {
	r := ptRow{name: name, want: property.FormatValue(def)}
	if def {
		r.ok = []ptOK{{in: "False", want: "False"}, {in: "no", want: "False"}, {in: "TRUE", want: "True"}, {in: "on", want: "True"}, {in: "0", want: "False"}}
	} else {
		r.ok = []ptOK{{in: "True", want: "True"}, {in: "yes", want: "True"}, {in: "FALSE", want: "False"}, {in: "off", want: "False"}, {in: "1", want: "True"}}
	}
	r.bad = []ptBad{
		{in: "maybe", kind: qerr.ValueError, msg: ptMsgBool("maybe")},
		{in: "", kind: qerr.ValueError, msg: ptMsgBool("")},
		{in: "2", kind: qerr.ValueError, msg: ptMsgBool("2")},
	}
	return r
}

// ptPositiveRow is an int property whose values must be > 0.
func ptPositiveRow(name, def string) ptRow {
	return ptRow{name: name, want: def,
		ok: []ptOK{{in: "1000", want: "1000"}, {in: "1", want: "1"}, {in: " 42 ", want: "42"}, {in: "+7", want: "7"}},
		bad: []ptBad{
			{in: "0", kind: qerr.PropertyValueError, msg: name + " must be positive"},
			{in: "-1", kind: qerr.PropertyValueError, msg: name + " must be positive"},
			{in: "abc", kind: qerr.ValueError, msg: ptMsgInt},
			{in: "", kind: qerr.ValueError, msg: ptMsgInt},
			{in: "1.5", kind: qerr.ValueError, msg: ptMsgInt},
		}}
}

// ptIntRow is an int property without constraints.
func ptIntRow(name, def string, ok ...ptOK) ptRow {
	return ptRow{name: name, want: def, ok: ok,
		bad: []ptBad{
			{in: "abc", kind: qerr.ValueError, msg: ptMsgInt},
			{in: "", kind: qerr.ValueError, msg: ptMsgInt},
		}}
}

// ptVMRow is a VM-typed property of any local qube, none allowed.
func ptVMRow(name, def string, ok ...ptOK) ptRow {
	r := ptRow{name: name, want: def}
	r.ok = append(ok, ptOK{in: "", want: ""})
	r.bad = []ptBad{
		{in: "nonexistent", kind: qerr.PropertyValueError, msg: ptMsgNoQube(name)},
		{in: "fresh-remote", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("fresh-remote", "RemoteVM", "LocalVM")},
	}
	return r
}

// ptDispvmRow is a disposable-template property (default_dispvm,
// management_dispvm) of holder target ("system" or "qube 'x'").
func ptDispvmRow(name, def, target string) ptRow {
	r := ptVMRow(name, def, ptOK{in: "fresh-dvm", want: "fresh-dvm"})
	r.bad = append(r.bad,
		ptBad{in: "vm0001", kind: qerr.PropertyValueError, msg: ptMsgNotDVM(target, name, "vm0001")},
		ptBad{in: "fresh-tpl", kind: qerr.PropertyValueError, msg: ptMsgNotDVM(target, name, "fresh-tpl")},
		ptBad{in: "fresh-disp", kind: qerr.PropertyValueError, msg: ptMsgNotDVM(target, name, "fresh-disp")},
	)
	return r
}

// ptRORow is a read-only property; more are further refused values.
func ptRORow(name, class, want string, more ...ptBad) ptRow {
	return ptRow{name: name, want: want, readOnly: true,
		bad: append([]ptBad{{in: "1", kind: qerr.PropertyValueError, msg: ptMsgRO(name, class)}}, more...)}
}

// ptWriteOnceRow is an identity property the fresh qube already has: a
// valid other value is refused as write-once (the reference raises a plain
// AttributeError, and its Admin API drops the connection; the model answers
// with a typed error). more are further refused values.
func ptWriteOnceRow(name string, want, wantRe string, other string, more ...ptBad) ptRow {
	return ptRow{name: name, want: want, wantRe: wantRe, explicit: true,
		bad: append([]ptBad{
			{in: other, kind: qerr.PropertyValueError, msg: ptMsgWriteOnce(name)},
		}, more...),
		reset: &ptReset{kind: qerr.PropertyValueError, msg: ptMsgWriteOnce(name)},
	}
}

func ptStrRow(name, def string, ok ...ptOK) ptRow {
	return ptRow{name: name, want: def, ok: ok}
}

// ptMerge concatenates row lists; a later row replaces an earlier one of
// the same name (as class tables override their parents').
func ptMerge(lists ...[]ptRow) []ptRow {
	var out []ptRow
	at := map[string]int{}
	for _, l := range lists {
		for _, r := range l {
			if i, ok := at[r.name]; ok {
				out[i] = r
				continue
			}
			at[r.name] = len(out)
			out = append(out, r)
		}
	}
	return out
}

// ptSpec describes the fresh qube of a class.
type ptSpec struct {
	class, subject, label, qid, icon, updateable string
}

var ptSpecs = map[string]ptSpec{
	"AdminVM":      {"AdminVM", "dom0", "black", "0", "adminvm-black", "True"},
	"AppVM":        {"AppVM", "fresh-app", "red", "14", "appvm-red", "False"},
	"TemplateVM":   {"TemplateVM", "fresh-tpl", "black", "15", "templatevm-black", "True"},
	"StandaloneVM": {"StandaloneVM", "fresh-sa", "gray", "16", "standalonevm-gray", "True"},
	"DispVM":       {"DispVM", "fresh-disp", "red", "18", "dispvm-red", "False"},
	"RemoteVM":     {"RemoteVM", "fresh-remote", "orange", "19", "remotevm-orange", ""},
}

const ptUUIDRe = `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`

// ptBaseRows: BaseVM (every class).
func ptBaseRows(s ptSpec) []ptRow {
	return []ptRow{
		ptWriteOnceRow("uuid", "", ptUUIDRe, "00000000-0000-0000-0000-000000000099",
			ptBad{in: "not-a-uuid", kind: qerr.ValueError, msg: "Failed to parse property value as UUID"}),
		ptWriteOnceRow("name", s.subject, "", "renamed",
			ptBad{in: "", kind: qerr.PropertyValueError, msg: ptMsgWriteOnce("name")}),
		ptWriteOnceRow("qid", s.qid, "", "99",
			ptBad{in: "abc", kind: qerr.ValueError, msg: ptMsgInt}),
		{name: "label", want: s.label, explicit: true,
			ok: []ptOK{
				{in: "label-2", want: "orange"},
				{in: "orange", want: "orange"},
				{in: "2", want: "orange"},
				{in: "blue", want: "blue"},
				{in: "label-8", want: "black"},
			},
			bad: []ptBad{
				{in: "nosuch", kind: qerr.LabelNotFound, msg: "Label does not exist: nosuch"},
				{in: "99", kind: qerr.LabelNotFound, msg: "Label does not exist: 99"},
				{in: "", kind: qerr.LabelNotFound, msg: "Label does not exist: "},
				{in: "label-99", kind: qerr.LabelNotFound, msg: "Label does not exist: 99"},
			},
			// The label has no default: after Reset the qube has none.
			reset: &ptReset{noValue: true},
		},
		ptRORow("klass", s.class, s.class),
		ptRORow("icon", s.class, s.icon),
	}
}

// ptLocalRows: properties of the AdminVM and of every VM class.
func ptLocalRows(s ptSpec) []ptRow {
	return []ptRow{
		ptBoolRow("include_in_backups", true),
		ptDispvmRow("default_dispvm", "", "qube '"+s.subject+"'"),
		{name: "devices_denied", want: "",
			ok: []ptOK{
				{in: "u03****p0200**u03****", want: "p0200**u03****"},
				{in: "", want: ""},
				{in: "*******", want: "*******"},
				{in: "m******b******b******", want: "b******m******"},
			},
			bad: []ptBad{
				{in: "u03", kind: qerr.ValueError, msg: "Invalid length of interfaces='u03' (is 3, expected multiple of 7)"},
				{in: "u03****p02", kind: qerr.ValueError, msg: "Invalid length of interfaces='u03****p02' (is 10, expected multiple of 7)"},
				{in: "x000000", kind: qerr.PropertyValueError, msg: `Interface code list should be in the form chhhhhhchhhhhh...,where c is one of "b", "u", "m", "p", "*" and h is a hexdigit or "*".`},
				{in: "U03****", kind: qerr.PropertyValueError, msg: `Interface code list should be in the form chhhhhhchhhhhh...,where c is one of "b", "u", "m", "p", "*" and h is a hexdigit or "*".`},
				{in: "u03g***", kind: qerr.PropertyValueError, msg: `Interface code list should be in the form chhhhhhchhhhhh...,where c is one of "b", "u", "m", "p", "*" and h is a hexdigit or "*".`},
			}},
		{name: "keyboard_layout", want: "us++",
			ok: []ptOK{
				{in: "de+neo+", want: "de+neo+"},
				{in: "us+intl+grp:alt_shift_toggle,ctrl:nocaps", want: "us+intl+grp:alt_shift_toggle,ctrl:nocaps"},
				{in: "fr+bepo_afnor-x+", want: "fr+bepo_afnor-x+"},
			},
			bad: []ptBad{
				{in: "us", kind: qerr.PropertyValueError, msg: "invalid number of keyboard layout parameters"},
				{in: "", kind: qerr.PropertyValueError, msg: "invalid number of keyboard layout parameters"},
				{in: "us+a+b+c", kind: qerr.PropertyValueError, msg: "invalid number of keyboard layout parameters"},
				{in: "u1++", kind: qerr.PropertyValueError, msg: "Invalid keyboard layout provided"},
				{in: "+neo+", kind: qerr.PropertyValueError, msg: "Invalid keyboard layout provided"},
				{in: "us+ne o+", kind: qerr.PropertyValueError, msg: "Invalid layout variant provided"},
				{in: "us+neo/x+", kind: qerr.PropertyValueError, msg: "Invalid layout variant provided"},
				{in: "us++a b", kind: qerr.PropertyValueError, msg: "Invalid layout options provided"},
				{in: "us++grp;x", kind: qerr.PropertyValueError, msg: "Invalid layout options provided"},
				{in: "üs++", kind: qerr.PropertyValueError, msg: "Keyboard layouts must be ASCII"},
			}},
	}
}

// ptVMRows: QubesVM (AppVM, TemplateVM, StandaloneVM, DispVM).
func ptVMRows(s ptSpec) []ptRow {
	memory := ptPositiveRow("memory", "400")
	memory.ok = append(memory.ok, ptOK{in: "1_024", want: "1024"})
	kernelDenied := []ptBad{
		{in: "../../etc", kind: qerr.PropertyValueError, msg: "Kernel name cannot contain '/'"},
		{in: "a/b", kind: qerr.PropertyValueError, msg: "Kernel name cannot contain '/'"},
		{in: "nosuchkernel", kind: qerr.PropertyValueError, msg: "Kernel 'nosuchkernel' not installed"},
		{in: "broken", kind: qerr.PropertyValueError, msg: "Kernel 'broken' not properly installed: missing 'vmlinuz' file",
			setup: ptKernelDir("broken", false)},
	}
	return []ptRow{
		ptBoolRow("installed_by_rpm", false),
		ptBoolRow("debug", false),
		ptBoolRow("autostart", false),
		ptIntRow("backup_timestamp", "", ptOK{in: "1700000000", want: "1700000000"}, ptOK{in: "-5", want: "-5"}, ptOK{in: "0", want: "0"}),
		{name: "virt_mode", want: "pvh",
			ok: []ptOK{{in: "HVM", want: "hvm"}, {in: "pv", want: "pv"}, {in: "PVH", want: "pvh"}, {in: "hvm", want: "hvm"}},
			bad: []ptBad{
				{in: "nosuchmode", kind: qerr.PropertyValueError, msg: "Invalid virtualization mode, supported values: hvm, pv, pvh"},
				{in: "", kind: qerr.PropertyValueError, msg: "Invalid virtualization mode, supported values: hvm, pv, pvh"},
			}},
		memory,
		{name: "maxmem", want: "0",
			ok: []ptOK{{in: "4000", want: "4000"}, {in: "0", want: "0"}},
			bad: []ptBad{
				{in: "-1", kind: qerr.PropertyValueError, msg: "maxmem must be positive or zero"},
				{in: "abc", kind: qerr.ValueError, msg: ptMsgInt},
				{in: "", kind: qerr.ValueError, msg: ptMsgInt},
			}},
		ptPositiveRow("stubdom_mem", ""),
		ptPositiveRow("vcpus", "2"),
		{name: "kernel", want: "6.6.0-baseline",
			ok: []ptOK{
				{in: "", want: ""},
				{in: "6.6.0-baseline", want: "6.6.0-baseline"},
				{in: "6.7.1", want: "6.7.1", setup: ptKernelDir("6.7.1", true)},
			},
			bad: kernelDenied},
		{name: "kernelopts", want: "swiotlb=2048",
			ok: []ptOK{
				{in: "nopat quiet", want: "nopat quiet"},
				{in: "", want: ""},
				{in: strings.Repeat("x", 512), want: strings.Repeat("x", 512)},
			},
			bad: []ptBad{
				{in: strings.Repeat("x", 513), kind: qerr.PropertyValueError, msg: "Kernelopts value too long (512 chars max)"},
			}},
		{name: "default_user", want: "user",
			ok: []ptOK{{in: "alice", want: "alice"}, {in: "a_b-c+d,e.F9", want: "a_b-c+d,e.F9"}, {in: "", want: ""}},
			bad: []ptBad{
				{in: "a b", kind: qerr.PropertyValueError, msg: "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,."},
				{in: "a:b", kind: qerr.PropertyValueError, msg: "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,."},
				{in: `a"b`, kind: qerr.PropertyValueError, msg: "Username can contain only those characters: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+,."},
			}},
		ptPositiveRow("qrexec_timeout", "60"),
		ptPositiveRow("shutdown_timeout", "60"),
		ptDispvmRow("management_dispvm", "", "qube '"+s.subject+"'"),
		ptVMRow("guivm", "dom0", ptOK{in: "sys-net", want: "sys-net"}, ptOK{in: "dom0", want: "dom0"}),
		ptVMRow("audiovm", "dom0", ptOK{in: "sys-firewall", want: "sys-firewall"}, ptOK{in: "dom0", want: "dom0"}),
		ptStrRow("bootmode", "default", ptOK{in: "rescue", want: "rescue"}, ptOK{in: "default", want: "default"}),
		ptRORow("updateable", s.class, s.updateable),
		ptRORow("xid", s.class, "-1"),
		ptRORow("stubdom_xid", s.class, "-1"),
		ptRORow("stubdom_uuid", s.class, ""),
		ptRORow("start_time", s.class, ""),
	}
}

// ptDispIP is the reference's vmid_to_ipv4("10.138", dispid).
func ptDispIP(id int) string {
	if id < 255 {
		return fmt.Sprintf("10.138.%d.%d", (id>>8)&0xff, id&0xff)
	}
	id--
	return fmt.Sprintf("10.138.%d.%d", id/254, id%254+1)
}

func ptDispID(e *ptEnv) (int, error) {
	q, err := e.a.Qube("fresh-disp")
	if err != nil {
		return 0, err
	}
	v, err := q.Get("dispid")
	if err != nil {
		return 0, err
	}
	id, ok := v.(int)
	if !ok {
		return 0, fmt.Errorf("dispid is %T", v)
	}
	return id, nil
}

// ptNetRows: NetVMMixin.
func ptNetRows(s ptSpec) []ptRow {
	networked := s.class != "TemplateVM"
	ifNet := func(v string) string {
		if networked {
			return v
		}
		return ""
	}
	ip := ptRow{name: "ip", want: ifNet("10.137.0." + s.qid)}
	if s.class == "DispVM" {
		ip.wantFn = func(e *ptEnv) (string, error) {
			id, err := ptDispID(e)
			return ptDispIP(id), err
		}
	}
	visibleIP := ip
	visibleIP.name = "visible_ip"
	visibleIP.readOnly = true
	visibleIP.bad = []ptBad{{in: "1", kind: qerr.PropertyValueError, msg: ptMsgRO("visible_ip", s.class)}}
	ip.ok = []ptOK{
		{in: "10.1.2.3", want: "10.1.2.3"},
		{in: "10.137.0.200", want: "10.137.0.200"},
	}
	ip.bad = []ptBad{
		{in: "300.1.2.3", kind: qerr.ValueError, msg: ptMsgIPv4},
		{in: "10.1.2", kind: qerr.ValueError, msg: ptMsgIPv4},
		{in: "::1", kind: qerr.ValueError, msg: ptMsgIPv4},
		{in: "abc", kind: qerr.ValueError, msg: ptMsgIPv4},
		{in: "", kind: qerr.ValueError, msg: ptMsgIPv4},
	}

	netvmDefault := ifNet("sys-firewall")
	netvm := ptVMRow("netvm", netvmDefault, ptOK{in: "sys-net", want: "sys-net"}, ptOK{in: "sys-firewall", want: "sys-firewall"})
	netvm.bad = append(netvm.bad,
		ptBad{in: "vm0002", kind: qerr.ValueError, msg: "The vm0002 qube does not provide network"},
		ptBad{in: "dom0", kind: qerr.ValueError, msg: "The dom0 qube does not provide network"},
		ptBad{in: "fresh-tpl", kind: qerr.ValueError, msg: "The fresh-tpl qube does not provide network"},
		// A qube cannot be its own netvm.
		ptBad{in: s.subject, kind: qerr.ValueError, msg: "Loops in network are unsupported",
			setup: ptSets(s.subject, "provides_network", "True")},
		// Nor use a qube downstream of it.
		ptBad{in: "vm0001", kind: qerr.ValueError, msg: "Loops in network are unsupported",
			setup: ptSets(s.subject, "provides_network", "True", "vm0001", "provides_network", "True", "vm0001", "netvm", s.subject)},
	)

	providesNetwork := ptBoolRow("provides_network", false)
	providesNetwork.bad = append(providesNetwork.bad,
		ptBad{in: "False", kind: qerr.ValueError, msg: "The qube is still used by other qubes, change theirs 'netvm' first",
			setup: ptSets(s.subject, "provides_network", "True", "vm0001", "netvm", s.subject)},
		// Qubes that follow the default netvm use it too.
		ptBad{in: "0", kind: qerr.ValueError, msg: "The qube is still used by other qubes, change theirs 'netvm' first",
			setup: ptSets(s.subject, "provides_network", "True", s.subject, "netvm", "sys-net", ptGlobal, "default_netvm", s.subject)})

	return []ptRow{
		{name: "mac", want: "00:16:3e:5e:6c:00",
			ok: []ptOK{{in: "00:16:3E:00:00:01", want: "00:16:3e:00:00:01"}, {in: "aa:bb:cc:dd:ee:ff", want: "aa:bb:cc:dd:ee:ff"}},
			// The reference raises a plain ValueError (the Admin API
			// drops the connection); the model answers with a typed error.
			bad: []ptBad{
				{in: "zz:zz:zz", kind: qerr.PropertyValueError, msg: "Invalid MAC address value"},
				{in: "00:16:3e:00:00", kind: qerr.PropertyValueError, msg: "Invalid MAC address value"},
				{in: "00-16-3e-00-00-01", kind: qerr.PropertyValueError, msg: "Invalid MAC address value"},
				{in: "", kind: qerr.PropertyValueError, msg: "Invalid MAC address value"},
			}},
		ip,
		{name: "ip6", want: "",
			ok: []ptOK{
				{in: "fd09:24ef:4179::a89:e", want: "fd09:24ef:4179::a89:e"},
				{in: "FD09:24EF:4179:0000::A89:E", want: "fd09:24ef:4179::a89:e"},
			},
			bad: []ptBad{
				// deliberate: a link-local scope makes no sense for a
				// qube's address (the reference accepts it)
				{in: "fe80::1%eth0", kind: qerr.ValueError, msg: ptMsgIPv6},
				{in: "10.1.2.3", kind: qerr.ValueError, msg: ptMsgIPv6},
				{in: "fd09::g", kind: qerr.ValueError, msg: ptMsgIPv6},
				{in: "", kind: qerr.ValueError, msg: ptMsgIPv6},
			}},
		netvm,
		providesNetwork,
		ptRORow("dns", s.class, ifNet("10.139.1.1 10.139.1.2")),
		ptRORow("gateway", s.class, ""),
		ptRORow("gateway6", s.class, ""),
		visibleIP,
		ptRORow("visible_ip6", s.class, ""),
		ptRORow("visible_gateway", s.class, ifNet("10.137.0.3")),
		ptRORow("visible_gateway6", s.class, ""),
		ptRORow("visible_netmask", s.class, ifNet("255.255.255.255")),
	}
}

// ptDVMTemplateRows: DVMTemplateMixin (AppVM, StandaloneVM).
func ptDVMTemplateRows(s ptSpec) []ptRow {
	r := ptBoolRow("template_for_dispvms", false)
	r.bad = append(r.bad,
		ptBad{in: "False", kind: qerr.VMInUse,
			msg:   "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template",
			setup: ptSets(s.subject, "template_for_dispvms", "True", "vm0001", "default_dispvm", s.subject)},
		ptBad{in: "no", kind: qerr.VMInUse,
			msg:   "Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm",
			setup: ptSets(s.subject, "template_for_dispvms", "True", ptGlobal, "management_dispvm", s.subject)},
	)
	return []ptRow{r}
}

func ptClassRows(class string) []ptRow {
	s := ptSpecs[class]
	switch class {
	case "AdminVM":
		return ptMerge(ptBaseRows(s), ptLocalRows(s), []ptRow{
			ptRORow("name", "AdminVM", "dom0"),
			ptRORow("qid", "AdminVM", "0",
				ptBad{in: "abc", kind: qerr.ValueError, msg: ptMsgInt}),
			ptRORow("uuid", "AdminVM", "00000000-0000-0000-0000-000000000000"),
			ptRORow("maxmem", "AdminVM", "4096"),
			ptRORow("updateable", "AdminVM", "True"),
		})
	case "AppVM":
		return ptMerge(ptBaseRows(s), ptLocalRows(s), ptVMRows(s), ptNetRows(s), ptDVMTemplateRows(s), []ptRow{
			{name: "template", want: "debian-12-xfce", explicit: true,
				ok: []ptOK{{in: "fresh-tpl", want: "fresh-tpl"}, {in: "debian-12-xfce", want: "debian-12-xfce"}},
				bad: []ptBad{
					{in: "sys-net", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("sys-net", "AppVM", "TemplateVM")},
					{in: "fresh-sa", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("fresh-sa", "StandaloneVM", "TemplateVM")},
					{in: "dom0", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("dom0", "AdminVM", "TemplateVM")},
					{in: "nonexistent", kind: qerr.PropertyValueError, msg: ptMsgNoQube("template")},
					// The reference's message ends with the qube's repr.
					{in: "", kind: qerr.PropertyValueError, msg: "Invalid value None for property 'template' of ", prefix: true},
				},
				reset: &ptReset{kind: qerr.ValueError, msg: "Cannot unset template. You can set it to the current default (debian-12-xfce) instead"}},
		})
	case "TemplateVM":
		return ptMerge(ptBaseRows(s), ptLocalRows(s), ptVMRows(s), ptNetRows(s), []ptRow{
			ptStrRow("appvm_default_bootmode", "default", ptOK{in: "rescue", want: "rescue"}),
		})
	case "StandaloneVM":
		return ptMerge(ptBaseRows(s), ptLocalRows(s), ptVMRows(s), ptNetRows(s), ptDVMTemplateRows(s))
	case "DispVM":
		defaultDispvm := ptDispvmRow("default_dispvm", "fresh-dvm", "qube 'fresh-disp'")
		return ptMerge(ptBaseRows(s), ptLocalRows(s), ptVMRows(s), ptNetRows(s), []ptRow{
			{name: "template", want: "fresh-dvm", explicit: true,
				ok: []ptOK{
					{in: "fresh-dvm", want: "fresh-dvm"},
					{in: "fresh-app", want: "fresh-app", setup: ptSets("fresh-app", "template_for_dispvms", "True")},
					{in: "fresh-sa", want: "fresh-sa", setup: ptSets("fresh-sa", "template_for_dispvms", "True")},
				},
				bad: []ptBad{
					{in: "vm0001", kind: qerr.PropertyValueError, msg: "template for disposable must have template_for_dispvms=True"},
					{in: "fresh-tpl", kind: qerr.PropertyValueError, msg: "template for disposable must have template_for_dispvms=True"},
					{in: "fresh-remote", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("fresh-remote", "RemoteVM", "LocalVM")},
					{in: "nonexistent", kind: qerr.PropertyValueError, msg: ptMsgNoQube("template")},
					{in: "", kind: qerr.PropertyValueError, msg: "Invalid value None for property 'template' of ", prefix: true},
				},
				reset: &ptReset{kind: qerr.ValueError, msg: "Cannot unset template"}},
			ptWriteOnceRow("dispid", "", `^[0-9]+$`, "5",
				ptBad{in: "", kind: qerr.ValueError, msg: ptMsgInt}),
			ptBoolRow("auto_cleanup", false),
			defaultDispvm,
			ptRORow("is_preload", "DispVM", "False"),
		})
	case "RemoteVM":
		return ptMerge(ptBaseRows(s), []ptRow{
			ptBoolRow("include_in_backups", false),
			ptVMRow("relayvm", "", ptOK{in: "sys-net", want: "sys-net"}, ptOK{in: "vm0001", want: "vm0001"}),
			ptStrRow("transport_rpc", "", ptOK{in: "qubes.RemoteRelay", want: "qubes.RemoteRelay"}, ptOK{in: "", want: ""}),
			ptStrRow("remote_name", "", ptOK{in: "work-remote", want: "work-remote"}, ptOK{in: "", want: ""}),
		})
	case ptGlobal:
		return ptGlobalRows()
	}
	panic("no rows for class " + class)
}

// ptGlobalRows: the application's properties (§5.1). Values the fixture sets
// are explicit.
func ptGlobalRows() []ptRow {
	pool := func(name string) ptRow {
		return ptRow{name: name, want: "varlibqubes",
			ok: []ptOK{{in: "linux-kernel", want: "linux-kernel"}, {in: "varlibqubes", want: "varlibqubes"}},
			bad: []ptBad{
				{in: "nosuchpool", kind: qerr.PropertyValueError, msg: "No such storage pool"},
				{in: "", kind: qerr.PropertyValueError, msg: "No such storage pool"},
			}}
	}
	poolKernel := pool("default_pool_kernel")
	poolKernel.want, poolKernel.explicit = "linux-kernel", true
	poolKernel.ok = []ptOK{{in: "varlibqubes", want: "varlibqubes"}, {in: "linux-kernel", want: "linux-kernel"}}
	poolKernel.reset = &ptReset{want: "varlibqubes"}

	netvm := ptVMRow("default_netvm", "sys-firewall", ptOK{in: "sys-net", want: "sys-net"})
	netvm.explicit = true
	netvm.reset = &ptReset{want: ""}
	netvm.ok = append(netvm.ok,
		// A provider with an explicit netvm is no loop.
		ptOK{in: "fresh-sa", want: "fresh-sa", setup: ptSets("fresh-sa", "provides_network", "True", "fresh-sa", "netvm", "sys-net")},
	)
	netvm.bad = append(netvm.bad,
		ptBad{in: "vm0001", kind: qerr.PropertyValueError, msg: "Network loop on 'vm0001'"},
		ptBad{in: "vm0003", kind: qerr.PropertyValueError, msg: "Network loop on 'vm0003'",
			setup: ptSets("vm0003", "provides_network", "True")},
		ptBad{in: "fresh-tpl", kind: qerr.PropertyValueError, msg: "Network loop on 'fresh-tpl'",
			setup: ptSets("fresh-tpl", "provides_network", "True")},
		// deliberate: the reference accepts a default netvm that provides no
		// network (checked after the loop check, so its messages stay)
		ptBad{in: "vm0003", kind: qerr.PropertyValueError, msg: "The vm0003 qube does not provide network",
			setup: ptSets("vm0003", "netvm", "")},
	)

	template := ptRow{name: "default_template", want: "debian-12-xfce", explicit: true,
		ok: []ptOK{{in: "fresh-tpl", want: "fresh-tpl"}, {in: "", want: ""}},
		bad: []ptBad{
			{in: "vm0001", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("vm0001", "AppVM", "TemplateVM")},
			{in: "fresh-sa", kind: qerr.PropertyValueError, msg: ptMsgWrongClass("fresh-sa", "StandaloneVM", "TemplateVM")},
			{in: "nonexistent", kind: qerr.PropertyValueError, msg: ptMsgNoQube("default_template")},
		},
		reset: &ptReset{noValue: true}}

	updatevm := ptVMRow("updatevm", "sys-firewall", ptOK{in: "sys-net", want: "sys-net"})
	updatevm.explicit, updatevm.reset = true, &ptReset{want: ""}
	clockvm := ptVMRow("clockvm", "sys-net", ptOK{in: "sys-firewall", want: "sys-firewall"})
	clockvm.explicit, clockvm.reset = true, &ptReset{want: ""}

	kernel := ptRow{name: "default_kernel", want: "6.6.0-baseline", explicit: true,
		ok: []ptOK{
			{in: "", want: ""},
			{in: "6.6.0-baseline", want: "6.6.0-baseline"},
			{in: "6.7.1", want: "6.7.1", setup: ptKernelDir("6.7.1", true)},
		},
		bad: []ptBad{
			{in: "nosuchkernel", kind: qerr.PropertyValueError, msg: "Kernel 'nosuchkernel' not installed"},
			{in: "broken", kind: qerr.PropertyValueError, msg: "Kernel 'broken' not properly installed: missing 'vmlinuz' file",
				setup: ptKernelDir("broken", false)},
			{in: "../x", kind: qerr.PropertyValueError, msg: "Kernel '../x' not installed"},
		},
		reset: &ptReset{noValue: true}}

	qrexec := ptIntRow("default_qrexec_timeout", "60", ptOK{in: "120", want: "120"}, ptOK{in: "-5", want: "-5"}, ptOK{in: "0", want: "0"})
	qrexec.bad = append(qrexec.bad, ptBad{in: "ten", kind: qerr.ValueError, msg: ptMsgInt})

	return []ptRow{
		ptVMRow("default_guivm", "dom0", ptOK{in: "sys-net", want: "sys-net"}, ptOK{in: "dom0", want: "dom0"}),
		ptVMRow("default_audiovm", "dom0", ptOK{in: "sys-firewall", want: "sys-firewall"}, ptOK{in: "dom0", want: "dom0"}),
		netvm,
		template,
		updatevm,
		clockvm,
		ptDispvmRow("default_dispvm", "", "system"),
		ptDispvmRow("management_dispvm", "", "system"),
		kernel,
		pool("default_pool"),
		pool("default_pool_private"),
		pool("default_pool_root"),
		pool("default_pool_volatile"),
		poolKernel,
		qrexec,
		ptIntRow("default_shutdown_timeout", "60", ptOK{in: "120", want: "120"}),
		ptIntRow("stats_interval", "3", ptOK{in: "5", want: "5"}),
		ptBoolRow("check_updates_vm", true),
		ptRORow("maxmem", ptGlobal, "16384",
			ptBad{in: "lots", kind: qerr.ValueError, msg: ptMsgInt}),
		ptRORow("no_cpus", ptGlobal, "2"),
	}
}

// ---------------------------------------------------------------------------
// Helpers

// ptName makes a subtest name from a value.
func ptName(in string) string {
	if len(in) > 24 {
		in = fmt.Sprintf("%s…(%d)", in[:16], len(in))
	}
	if in == "" {
		return `""`
	}
	return strings.ReplaceAll(in, "/", "∕")
}

// ptForEachRow runs f for every row of every class, as subtests
// class/property.
func ptForEachRow(t *testing.T, f func(t *testing.T, class string, r ptRow)) {
	for _, class := range ptClasses {
		t.Run(class, func(t *testing.T) {
			for _, r := range ptClassRows(class) {
				t.Run(r.name, func(t *testing.T) { f(t, class, r) })
			}
		})
	}
}

// ptCheckErr compares an error with the expected kind and message.
func ptCheckErr(t *testing.T, err error, kind qerr.Kind, msg string, prefix bool) {
	t.Helper()
	if err == nil {
		t.Errorf("accepted; want %s %q", kind, msg)
		return
	}
	if k := qerr.KindOf(err); k != kind {
		t.Errorf("error kind %s (%q), want %s", k, err.Error(), kind)
	}
	if prefix {
		if !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("error %q, want it to start with %q", err.Error(), msg)
		}
	} else if err.Error() != msg {
		t.Errorf("error message\n  got: %q\n want: %q", err.Error(), msg)
	}
}

// ---------------------------------------------------------------------------
// Tests

// TestPropertyDefaults checks every property of every class on a fresh
// holder: the text of its value and its default flag.
func TestPropertyDefaults(t *testing.T) {
	for _, class := range ptClasses {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			e := newPropEnv(t)
			for _, r := range ptClassRows(class) {
				t.Run(r.name, func(t *testing.T) {
					_ = e.a.Read(func() error {
						h, err := e.subject(class)
						if err != nil {
							t.Fatal(err)
						}
						d, err := h.Descriptor(r.name)
						if err != nil {
							t.Fatalf("no such property: %v", err)
						}
						want, wantRe, err := r.expected(e)
						if err != nil {
							t.Fatal(err)
						}
						got, err := ptRead(h, d)
						if err != nil {
							t.Fatalf("reading: %v", err)
						}
						switch {
						case wantRe != "":
							if got.noValue || !regexp.MustCompile(wantRe).MatchString(got.text) || got.isDefault != want.isDefault {
								t.Errorf("got %v, want a value matching %s (default=%v)", got, wantRe, want.isDefault)
							}
						case got != want:
							t.Errorf("got %v, want %v", got, want)
						}
						if r.readOnly && !d.ReadOnly {
							t.Errorf("property is settable; the reference's is read-only")
						}
						if !r.readOnly && d.ReadOnly {
							t.Errorf("property is read-only; the reference's is settable")
						}
						// Without an explicit value, the default is what reads.
						if !r.explicit {
							dv, err := h.DefaultValue(d)
							switch {
							case r.noValue:
								if !errors.Is(err, property.ErrNoValue) {
									t.Errorf("DefaultValue = %v, %v; want ErrNoValue", dv, err)
								}
							case err != nil:
								t.Errorf("DefaultValue: %v", err)
							case wantRe == "" && d.Text(dv) != want.text:
								t.Errorf("DefaultValue %q, want %q", d.Text(dv), want.text)
							}
						}
						return nil
					})
				})
			}
		})
	}
}

// TestPropertySetAccepted sets every accepted value through SetText and
// checks the stored value and its text.
func TestPropertySetAccepted(t *testing.T) {
	ptForEachRow(t, func(t *testing.T, class string, r ptRow) {
		for _, c := range r.ok {
			t.Run(ptName(c.in), func(t *testing.T) {
				t.Parallel()
				e := newPropEnv(t)
				_, err := e.a.Write(func() error {
					if c.setup != nil {
						if err := c.setup(e); err != nil {
							t.Fatal(err)
						}
					}
					h, err := e.subject(class)
					if err != nil {
						t.Fatal(err)
					}
					d, err := h.Descriptor(r.name)
					if err != nil {
						t.Fatal(err)
					}
					if err := h.SetText(d, c.in); err != nil {
						t.Fatalf("SetText(%q) refused: %s %q", c.in, qerr.KindOf(err), err.Error())
					}
					stored, set := h.Explicit(d)
					if !set {
						t.Fatalf("no explicit value stored")
					}
					if s := d.Text(stored); s != c.want {
						t.Errorf("stored %q, want %q", s, c.want)
					}
					got, err := ptRead(h, d)
					if err != nil {
						t.Fatal(err)
					}
					if want := (ptState{text: c.want}); got != want {
						t.Errorf("reads %v, want %v", got, want)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestPropertySetRejected sets every refused value through SetText: the
// error must have the reference's kind and message, and the property must
// read as before.
func TestPropertySetRejected(t *testing.T) {
	ptForEachRow(t, func(t *testing.T, class string, r ptRow) {
		for _, c := range r.bad {
			t.Run(ptName(c.in), func(t *testing.T) {
				t.Parallel()
				e := newPropEnv(t)
				_, err := e.a.Write(func() error {
					if c.setup != nil {
						if err := c.setup(e); err != nil {
							t.Fatal(err)
						}
					}
					h, err := e.subject(class)
					if err != nil {
						t.Fatal(err)
					}
					d, err := h.Descriptor(r.name)
					if err != nil {
						t.Fatal(err)
					}
					before, err := ptRead(h, d)
					if err != nil {
						t.Fatal(err)
					}
					ptCheckErr(t, h.SetText(d, c.in), c.kind, c.msg, c.prefix)
					after, err := ptRead(h, d)
					if err != nil {
						t.Fatal(err)
					}
					if after != before {
						t.Errorf("the refused set changed the property: before %v, after %v", before, after)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestPropertyReset sets every settable property to its first accepted
// value (explicit ones keep theirs) and resets it: the default is back, with
// the default flag; write-once identity and templates refuse.
func TestPropertyReset(t *testing.T) {
	ptForEachRow(t, func(t *testing.T, class string, r ptRow) {
		if r.readOnly {
			t.Skip("read-only: covered by its default row")
		}
		t.Parallel()
		var first *ptOK
		if len(r.ok) > 0 {
			first = &r.ok[0]
		}
		if first == nil && !r.explicit {
			t.Fatalf("settable property %s has no accepted value to reset from", r.name)
		}
		if r.explicit && r.reset == nil {
			t.Fatalf("row %s is explicit on the fresh holder but says nothing about Reset", r.name)
		}
		e := newPropEnv(t)
		_, err := e.a.Write(func() error {
			h, err := e.subject(class)
			if err != nil {
				t.Fatal(err)
			}
			d, err := h.Descriptor(r.name)
			if err != nil {
				t.Fatal(err)
			}
			if !r.explicit {
				if first.setup != nil {
					if err := first.setup(e); err != nil {
						t.Fatal(err)
					}
				}
				if err := h.SetText(d, first.in); err != nil {
					t.Fatalf("SetText(%q): %v", first.in, err)
				}
				if h.IsDefault(d) {
					t.Fatalf("default flag still set after SetText(%q)", first.in)
				}
			}
			before, err := ptRead(h, d)
			if err != nil {
				t.Fatal(err)
			}
			err = h.Reset(d)
			if r.reset != nil && r.reset.kind != "" {
				ptCheckErr(t, err, r.reset.kind, r.reset.msg, false)
				if after, _ := ptRead(h, d); after != before {
					t.Errorf("the refused reset changed the property: before %v, after %v", before, after)
				}
				return nil
			}
			if err != nil {
				t.Fatalf("Reset: %s %q", qerr.KindOf(err), err.Error())
			}
			var want ptState
			var wantRe string
			if r.reset != nil {
				want = ptState{text: r.reset.want, noValue: r.reset.noValue, isDefault: true}
			} else {
				want, wantRe, err = r.expected(e)
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := ptRead(h, d)
			if err != nil {
				t.Fatal(err)
			}
			if wantRe != "" {
				if !got.isDefault || got.noValue || !regexp.MustCompile(wantRe).MatchString(got.text) {
					t.Errorf("after Reset: %v, want a default matching %s", got, wantRe)
				}
			} else if got != want {
				t.Errorf("after Reset: %v, want %v", got, want)
			}
			if _, set := h.Explicit(d); set {
				t.Errorf("after Reset an explicit value is still stored")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestPropertyTableCoverage fails when a property of a class table or of the
// global table has no row here (a property added without tests), or a row
// names a property the class does not have.
func TestPropertyTableCoverage(t *testing.T) {
	tables := map[string]*property.Table{ptGlobal: globalTable}
	for _, c := range Classes() {
		tables[c.Name] = c.Table()
	}
	for name := range tables {
		if !slices.Contains(ptClasses, name) {
			t.Errorf("class %s has no property rows", name)
		}
	}
	for _, class := range ptClasses {
		tbl, ok := tables[class]
		if !ok {
			t.Errorf("rows for %s, which is not a class", class)
			continue
		}
		rows := map[string]ptRow{}
		for _, r := range ptClassRows(class) {
			if _, dup := rows[r.name]; dup {
				t.Errorf("%s: two rows for %s", class, r.name)
			}
			rows[r.name] = r
		}
		for _, d := range tbl.All() {
			r, ok := rows[d.Name]
			if !ok {
				t.Errorf("%s.%s has no row in the property tests", class, d.Name)
				continue
			}
			if !r.readOnly && !r.explicit && len(r.ok) == 0 {
				t.Errorf("%s.%s is settable but has no accepted value", class, d.Name)
			}
			delete(rows, d.Name)
		}
		for name := range rows {
			t.Errorf("%s: row for %s, which the class does not have", class, name)
		}
	}
}

// TestPropertyDerivedDefaults checks defaults that follow other values:
// the template, the global defaults, the guivm, the label, the disposable's
// auto_cleanup.
func TestPropertyDerivedDefaults(t *testing.T) {
	cases := []struct {
		name        string
		setup       func(*ptEnv) error
		owner, prop string
		want        string
	}{
		{"icon of a disposable template", ptSets("fresh-app", "template_for_dispvms", "True"), "fresh-app", "icon", "templatevm-red"},
		{"icon of a standalone disposable template", ptSets("fresh-sa", "template_for_dispvms", "True"), "fresh-sa", "icon", "standalonevm-gray"},
		{"icon follows the label", ptSets("fresh-disp", "label", "green"), "fresh-disp", "icon", "dispvm-green"},
		{"icon of a network provider", ptSets("fresh-app", "provides_network", "True"), "fresh-app", "icon", "servicevm-red"},
		{"gateway of a network provider", ptSets("fresh-app", "provides_network", "True"), "fresh-app", "gateway", "10.137.0.14"},
		{"gateway follows ip", ptSets("fresh-app", "provides_network", "True", "fresh-app", "ip", "10.1.2.3"), "fresh-app", "gateway", "10.1.2.3"},
		{"visible_gateway of a client", ptSets("fresh-app", "provides_network", "True", "vm0001", "netvm", "fresh-app"), "vm0001", "visible_gateway", "10.137.0.14"},
		{"include_in_backups of an auto-cleanup disposable", ptSets("fresh-disp", "auto_cleanup", "True"), "fresh-disp", "include_in_backups", "False"},
		{"keyboard_layout follows the guivm", ptSets("sys-net", "keyboard_layout", "de+neo+", "fresh-app", "guivm", "sys-net"), "fresh-app", "keyboard_layout", "de+neo+"},
		{"keyboard_layout without guivm", ptSets("dom0", "keyboard_layout", "de+neo+", "fresh-sa", "guivm", ""), "fresh-sa", "keyboard_layout", "us++"},
		{"keyboard_layout of dom0 is its own", ptSets(ptGlobal, "default_guivm", "sys-net", "sys-net", "keyboard_layout", "de+neo+"), "dom0", "keyboard_layout", "us++"},
		{"kernel of a StandaloneVM follows default_kernel", func(e *ptEnv) error {
			if err := ptKernelDir("6.7.1", true)(e); err != nil {
				return err
			}
			return e.set(ptGlobal, "default_kernel", "6.7.1")
		}, "fresh-sa", "kernel", "6.7.1"},
		{"kernel of an AppVM follows its template", func(e *ptEnv) error {
			if err := ptKernelDir("6.7.1", true)(e); err != nil {
				return err
			}
			return e.set("debian-12-xfce", "kernel", "6.7.1")
		}, "fresh-app", "kernel", "6.7.1"},
		{"kernel of a DispVM follows its template's", ptSets("fresh-dvm", "kernel", ""), "fresh-disp", "kernel", ""},
		{"kernelopts without kernel", ptSets("fresh-app", "kernel", ""), "fresh-app", "kernelopts", ""},
		{"kernelopts follow the template", ptSets("debian-12-xfce", "kernelopts", "nopat"), "fresh-app", "kernelopts", "nopat"},
		{"memory follows the template", ptSets("debian-12-xfce", "memory", "1000"), "fresh-app", "memory", "1000"},
		{"memory of a DispVM follows its template chain", ptSets("debian-12-xfce", "memory", "1000"), "fresh-disp", "memory", "1000"},
		{"vcpus follow the template", ptSets("debian-12-xfce", "vcpus", "4"), "fresh-app", "vcpus", "4"},
		{"default_user follows the template", ptSets("debian-12-xfce", "default_user", "alice"), "fresh-app", "default_user", "alice"},
		{"virt_mode follows the template", ptSets("debian-12-xfce", "virt_mode", "hvm"), "fresh-app", "virt_mode", "hvm"},
		{"qrexec_timeout follows the global default", ptSets(ptGlobal, "default_qrexec_timeout", "120"), "fresh-sa", "qrexec_timeout", "120"},
		{"qrexec_timeout of an AppVM follows its template", ptSets(ptGlobal, "default_qrexec_timeout", "120"), "fresh-app", "qrexec_timeout", "120"},
		{"shutdown_timeout follows the global default", ptSets(ptGlobal, "default_shutdown_timeout", "90"), "fresh-tpl", "shutdown_timeout", "90"},
		{"default_dispvm follows the global default", ptSets(ptGlobal, "default_dispvm", "fresh-dvm"), "fresh-app", "default_dispvm", "fresh-dvm"},
		{"default_dispvm of dom0 follows the global default", ptSets(ptGlobal, "default_dispvm", "fresh-dvm"), "dom0", "default_dispvm", "fresh-dvm"},
		{"management_dispvm follows the global default", ptSets(ptGlobal, "management_dispvm", "fresh-dvm"), "fresh-app", "management_dispvm", "fresh-dvm"},
		{"guivm follows the global default", ptSets(ptGlobal, "default_guivm", "sys-net"), "fresh-tpl", "guivm", "sys-net"},
		{"audiovm follows the global default", ptSets(ptGlobal, "default_audiovm", ""), "fresh-app", "audiovm", ""},
		{"netvm follows the global default", ptSets(ptGlobal, "default_netvm", "sys-net"), "fresh-app", "netvm", "sys-net"},
		{"visible_gateway follows the global default netvm", ptSets(ptGlobal, "default_netvm", "sys-net"), "fresh-app", "visible_gateway", "10.137.0.2"},
		{"netvm of a TemplateVM ignores the global default", ptSets(ptGlobal, "default_netvm", "sys-net"), "fresh-tpl", "netvm", ""},
		{"ip of a TemplateVM with a netvm", ptSets("fresh-tpl", "netvm", "sys-net"), "fresh-tpl", "ip", "10.137.0.15"},
		{"dns of a TemplateVM with a netvm", ptSets("fresh-tpl", "netvm", "sys-net"), "fresh-tpl", "dns", "10.139.1.1 10.139.1.2"},
		{"ip without netvm", ptSets("fresh-app", "netvm", ""), "fresh-app", "ip", ""},
		{"dns without netvm", ptSets("fresh-app", "netvm", ""), "fresh-app", "dns", ""},
		{"visible_netmask without netvm", ptSets("fresh-sa", "netvm", ""), "fresh-sa", "visible_netmask", ""},
		{"ip of a provider without netvm", ptSets("fresh-sa", "netvm", "", "fresh-sa", "provides_network", "True"), "fresh-sa", "ip", "10.137.0.16"},
		{"visible_ip follows ip", ptSets("fresh-app", "ip", "10.9.9.9"), "fresh-app", "visible_ip", "10.9.9.9"},
		{"default_pool_private follows default_pool", ptSets(ptGlobal, "default_pool", "linux-kernel"), ptGlobal, "default_pool_private", "linux-kernel"},
		{"appvm_default_bootmode follows the feature", func(e *ptEnv) error {
			q, err := e.a.Qube("fresh-tpl")
			if err != nil {
				return err
			}
			return q.Features.Set("boot-mode.appvm-default", "rescue")
		}, "fresh-tpl", "appvm_default_bootmode", "rescue"},
	}
	xen := func(e *ptEnv) error { e.a.opts.Xen = true; return nil }
	feature := func(qube, name, value string) func(*ptEnv) error {
		return func(e *ptEnv) error {
			q, err := e.a.Qube(qube)
			if err != nil {
				return err
			}
			return q.Features.Set(name, value)
		}
	}
	cases = append(cases, []struct {
		name        string
		setup       func(*ptEnv) error
		owner, prop string
		want        string
	}{
		{"icon of dom0 ignores the label", ptSets("dom0", "label", "red"), "dom0", "icon", "adminvm-black"},
		{"icon of a TemplateVM follows the label", ptSets("fresh-tpl", "label", "blue"), "fresh-tpl", "icon", "templatevm-blue"},
		{"icon of a RemoteVM follows the label", ptSets("fresh-remote", "label", "yellow"), "fresh-remote", "icon", "remotevm-yellow"},
		// Memory balancing on Xen (§3.3 maxmem): min(4000, or memory*10
		// for Linux, half the host's 16384 MiB), else the template's.
		{"maxmem on Xen", xen, "fresh-sa", "maxmem", "4000"},
		{"maxmem on Xen of a Linux qube", ptSeq(xen, feature("fresh-sa", "os", "Linux"), ptSets("fresh-sa", "memory", "300")), "fresh-sa", "maxmem", "3000"},
		{"maxmem on Xen is at most half the host", ptSeq(xen, feature("fresh-sa", "os", "Linux"), ptSets("fresh-sa", "memory", "1000")), "fresh-sa", "maxmem", "8192"},
		{"maxmem on Xen follows the template", ptSeq(xen, ptSets("debian-12-xfce", "maxmem", "2000")), "fresh-app", "maxmem", "2000"},
		{"maxmem on Xen of an HVM without qrexec", ptSeq(xen, ptSets("fresh-sa", "virt_mode", "hvm")), "fresh-sa", "maxmem", "0"},
		{"icon of a network-providing TemplateVM", ptSets("fresh-tpl", "provides_network", "True"), "fresh-tpl", "icon", "templatevm-black"},
		{"icon of a network-providing DispVM", ptSets("fresh-disp", "provides_network", "True"), "fresh-disp", "icon", "servicevm-red"},
		{"icon of a servicevm", feature("fresh-sa", "servicevm", "1"), "fresh-sa", "icon", "servicevm-gray"},
		// IPv6 once the netvm chain has the ipv6 feature (§3.3 ip6, gateway6).
		{"ip6 with ipv6 upstream", feature("sys-net", "ipv6", "1"), "fresh-app", "ip6", "fd09:24ef:4179::a89:e"},
		{"visible_ip6 with ipv6 upstream", feature("sys-net", "ipv6", "1"), "fresh-app", "visible_ip6", "fd09:24ef:4179::a89:e"},
		{"visible_gateway6 with ipv6 upstream", feature("sys-net", "ipv6", "1"), "fresh-app", "visible_gateway6", "fd09:24ef:4179::a89:3"},
		{"gateway6 of a provider with ipv6 upstream", feature("sys-net", "ipv6", "1"), "sys-firewall", "gateway6", "fd09:24ef:4179::a89:3"},
		{"ip6 with ipv6 off", feature("sys-net", "ipv6", ""), "fresh-app", "ip6", ""},
		// Fake addresses (features, looked up along the template chain).
		{"visible_ip with net.fake-ip", feature("debian-12-xfce", "net.fake-ip", "192.168.1.128"), "fresh-app", "visible_ip", "192.168.1.128"},
		{"visible_gateway with net.fake-gateway", feature("fresh-app", "net.fake-gateway", "192.168.1.1"), "fresh-app", "visible_gateway", "192.168.1.1"},
		{"visible_netmask with net.fake-netmask", feature("fresh-sa", "net.fake-netmask", "255.255.255.0"), "fresh-sa", "visible_netmask", "255.255.255.0"},
		// bootmode (§3.5).
		{"bootmode of an unknown active mode", feature("fresh-app", "boot-mode.active", "rescue"), "fresh-app", "bootmode", "default"},
		{"bootmode of a known active mode", ptSeq(feature("debian-12-xfce", "boot-mode.kernelopts.rescue", "single"), feature("fresh-app", "boot-mode.active", "rescue")), "fresh-app", "bootmode", "rescue"},
		{"bootmode from the template's appvm_default_bootmode", ptSeq(feature("debian-12-xfce", "boot-mode.kernelopts.rescue", "single"), ptSets("debian-12-xfce", "appvm_default_bootmode", "rescue")), "fresh-app", "bootmode", "rescue"},
		{"bootmode ignores an unknown appvm_default_bootmode", ptSets("debian-12-xfce", "appvm_default_bootmode", "rescue"), "fresh-app", "bootmode", "default"},
		{"management_dispvm follows the template", ptSets("debian-12-xfce", "management_dispvm", "fresh-dvm"), "fresh-app", "management_dispvm", "fresh-dvm"},
		{"is_preload of a preloaded disposable", feature("fresh-dvm", "preload-dispvm", "fresh-disp"), "fresh-disp", "is_preload", "True"},
		{"maxmem on Xen of an HVM with qrexec", ptSeq(xen, feature("fresh-sa", "qrexec", "1"), ptSets("fresh-sa", "virt_mode", "hvm")), "fresh-sa", "maxmem", "4000"},
	}...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newPropEnv(t)
			_, err := e.a.Write(func() error {
				if err := c.setup(e); err != nil {
					t.Fatal(err)
				}
				h, err := e.holder(c.owner)
				if err != nil {
					t.Fatal(err)
				}
				d, err := h.Descriptor(c.prop)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ptRead(h, d)
				if err != nil {
					t.Fatal(err)
				}
				if want := (ptState{text: c.want, isDefault: true}); got != want {
					t.Errorf("%s.%s = %v, want %v", c.owner, c.prop, got, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPropertyResetRefused checks resets that a handler vetoes, leaving the
// value as it was.
func TestPropertyResetRefused(t *testing.T) {
	cases := []struct {
		name        string
		setup       func(*ptEnv) error
		owner, prop string
		kind        qerr.Kind
		msg         string
	}{
		// sys-net would follow the default netvm sys-firewall, whose netvm
		// is sys-net (§3.6 property-pre-reset:netvm runs the setter).
		{"netvm reset closing a loop", nil, "sys-net", "netvm", qerr.ValueError, "Loops in network are unsupported"},
		{"netvm reset onto itself", ptSets(ptGlobal, "default_netvm", "sys-net"), "sys-net", "netvm", qerr.ValueError, "Loops in network are unsupported"},
		{"template_for_dispvms of a disposable's template", nil, "fresh-dvm", "template_for_dispvms", qerr.VMInUse,
			"Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template"},
		{"template_for_dispvms of the system's disposable template", ptSets(ptGlobal, "default_dispvm", "fresh-dvm"), "fresh-dvm", "template_for_dispvms", qerr.VMInUse,
			"Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm"},
		{"template of an AppVM without default_template", ptSets(ptGlobal, "default_template", ""), "fresh-app", "template", qerr.ValueError, "Cannot unset template"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newPropEnv(t)
			_, err := e.a.Write(func() error {
				if c.setup != nil {
					if err := c.setup(e); err != nil {
						t.Fatal(err)
					}
				}
				h, err := e.holder(c.owner)
				if err != nil {
					t.Fatal(err)
				}
				d, err := h.Descriptor(c.prop)
				if err != nil {
					t.Fatal(err)
				}
				before, err := ptRead(h, d)
				if err != nil {
					t.Fatal(err)
				}
				ptCheckErr(t, h.Reset(d), c.kind, c.msg, false)
				if after, _ := ptRead(h, d); after != before {
					t.Errorf("the refused reset changed the property: before %v, after %v", before, after)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPropertySetReferenceReplies replays the property.Set and Reset calls
// the reference answered with an error (public-n10-read.jsonl) on the
// fixture model: same kind, same message, value unchanged. Calls the
// reference crashed on (empty reply) must be refused too. Checks of the
// raw payload (ASCII, printable) belong to the Admin API layer.
func TestPropertySetReferenceReplies(t *testing.T) {
	apiLevel := []string{"Non-ASCII bytes in property value", "Invalid characters in property value"}
	n := 0
	for i, l := range readTranscript(t, "admin-api/public-n10-read.jsonl") {
		m := l.Req.Method
		if !strings.HasSuffix(m, ".property.Set") && !strings.HasSuffix(m, ".property.Reset") {
			continue
		}
		var wantKind, wantMsg string
		if l.RespText != "" {
			if !strings.HasPrefix(l.RespText, "2\x00") {
				continue // a success: the mutate transcript's business
			}
			parts := strings.Split(l.RespText, "\x00")
			if len(parts) < 4 {
				t.Fatalf("line %d: malformed error reply %q", i+1, l.RespText)
			}
			wantKind, wantMsg = parts[1], parts[3]
			if slices.Contains(apiLevel, wantMsg) {
				continue
			}
		}
		n++
		key := l.Req.Dest + " " + l.Req.Arg + " " + l.Req.Payload
		t.Run(fmt.Sprintf("%d %s %s", i+1, m, ptName(key)), func(t *testing.T) {
			t.Parallel()
			a, _, _ := loadFixture(t)
			_, _ = a.Write(func() error {
				var h ptHolder = a
				if strings.HasPrefix(m, "admin.vm.") {
					q, err := a.Qube(l.Req.Dest)
					if err != nil {
						t.Fatal(err)
					}
					h = q
				}
				d, err := h.Descriptor(l.Req.Arg)
				var before ptState
				if err == nil {
					if before, err = ptRead(h, d); err != nil {
						t.Fatal(err)
					}
					if strings.HasSuffix(m, ".Reset") {
						err = h.Reset(d)
					} else {
						err = h.SetText(d, l.Req.Payload)
					}
				}
				if wantKind == "" {
					// The reference crashed (no reply); we must refuse.
					if err == nil {
						t.Errorf("accepted; the reference crashed on it, and the model must refuse it")
					} else {
						t.Logf("reference crashed; model: %s %q", qerr.KindOf(err), err.Error())
					}
				} else {
					ptCheckErr(t, err, qerr.Kind(wantKind), wantMsg, false)
				}
				if d != nil {
					if after, _ := ptRead(h, d); after != before {
						t.Errorf("the refused call changed the property: before %v, after %v", before, after)
					}
				}
				return nil
			})
		})
	}
	if n < 20 {
		t.Fatalf("only %d property.Set/Reset errors found in the transcript", n)
	}
}
