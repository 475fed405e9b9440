package property_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// fired is one event a testHolder was asked to fire.
type fired struct {
	Name   string
	Pre    bool
	Kwargs []events.KV
}

func (f fired) String() string { return fmt.Sprintf("%s(pre=%v)%v", f.Name, f.Pre, f.Kwargs) }

// testHolder is a property.Holder that records the events it fires and can
// veto chosen event names.
type testHolder struct {
	property.Bag
	owner, class string
	fired        []fired
	veto         map[string]error // event name -> error FireEvent returns
}

func (h *testHolder) PropertyOwner() string { return h.owner }
func (h *testHolder) ClassName() string     { return h.class }

func (h *testHolder) FireEvent(name string, pre bool, kwargs ...events.KV) error {
	h.fired = append(h.fired, fired{Name: name, Pre: pre, Kwargs: slices.Clone(kwargs)})
	return h.veto[name]
}

// newHolder returns a holder named vm0001 of class AppVM with a table built
// from ds.
func newHolder(ds ...*property.Descriptor) *testHolder {
	h := &testHolder{owner: "vm0001", class: "AppVM", veto: map[string]error{}}
	h.Init(h, property.NewTable(ds...))
	return h
}

// desc returns the holder's descriptor of name, failing the test if missing.
func (h *testHolder) desc(t *testing.T, name string) *property.Descriptor {
	t.Helper()
	d, err := h.Descriptor(name)
	if err != nil {
		t.Fatalf("Descriptor(%q): %v", name, err)
	}
	return d
}

// value reads name, failing the test on error.
func (h *testHolder) mustGet(t *testing.T, name string) any {
	t.Helper()
	v, err := h.Get(name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return v
}

func (h *testHolder) clearFired() { h.fired = nil }

func kv(k string, v any) events.KV { return events.KV{Key: k, Value: v} }

func checkFired(t *testing.T, got, want []fired) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("fired %d events %v, want %d %v", len(got), got, len(want), want)
		return
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Pre != want[i].Pre || !slices.Equal(got[i].Kwargs, want[i].Kwargs) {
			t.Errorf("event %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func names(ds []*property.Descriptor) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		typ  property.Type
		want string
	}{
		{property.Str, "str"},
		{property.Int, "int"},
		{property.Bool, "bool"},
		{property.VM, "vm"},
		{property.Label, "label"},
	}
	for _, tc := range tests {
		if got := tc.typ.String(); got != tc.want {
			t.Errorf("Type(%d).String() = %q, want %q", tc.typ, got, tc.want)
		}
	}
}

func TestStage(t *testing.T) {
	tests := []struct {
		loadStage, want int
	}{
		{0, 2}, {2, 2}, {3, 3}, {4, 4}, {1, 1},
	}
	for _, tc := range tests {
		d := &property.Descriptor{Name: "p", LoadStage: tc.loadStage}
		if got := d.Stage(); got != tc.want {
			t.Errorf("LoadStage %d: Stage() = %d, want %d", tc.loadStage, got, tc.want)
		}
	}
}

func TestNewTableOrder(t *testing.T) {
	table := property.NewTable(
		&property.Descriptor{Name: "netvm", LoadStage: 4},
		&property.Descriptor{Name: "name"},
		&property.Descriptor{Name: "default_netvm", LoadStage: 3},
		&property.Descriptor{Name: "label", LoadStage: 2},
		&property.Descriptor{Name: "template", LoadStage: 4},
		&property.Descriptor{Name: "autostart"},
		&property.Descriptor{Name: "Zeta"}, // byte order: upper case first
	)
	want := []string{"Zeta", "autostart", "label", "name", "default_netvm", "netvm", "template"}
	if got := names(table.All()); !slices.Equal(got, want) {
		t.Errorf("All() = %v, want %v", got, want)
	}
	if table.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", table.Len(), len(want))
	}
	for _, name := range want {
		d, ok := table.Lookup(name)
		if !ok || d.Name != name {
			t.Errorf("Lookup(%q) = %v, %v", name, d, ok)
		}
	}
	for _, name := range []string{"", "nonexistent", "Netvm"} {
		if d, ok := table.Lookup(name); ok || d != nil {
			t.Errorf("Lookup(%q) = %v, %v; want nil, false", name, d, ok)
		}
	}

	empty := property.NewTable()
	if empty.Len() != 0 || len(empty.All()) != 0 {
		t.Errorf("empty table: Len %d, All %v", empty.Len(), empty.All())
	}
}

func TestNewTableOverride(t *testing.T) {
	// A class table: parent's descriptors, then the subclass's overrides.
	parent := []*property.Descriptor{
		{Name: "kernel", Doc: "parent kernel", Default: property.Const("6.1")},
		{Name: "netvm", Doc: "parent netvm", LoadStage: 4},
		{Name: "memory", Doc: "parent memory", Type: property.Int},
	}
	table := property.NewTable(append(parent,
		&property.Descriptor{Name: "kernel", Doc: "child kernel", Default: property.Const("")},
		&property.Descriptor{Name: "netvm", Doc: "child netvm", LoadStage: 2}, // moves to stage 2
	)...)

	if table.Len() != 3 {
		t.Errorf("Len() = %d, want 3", table.Len())
	}
	if got, want := names(table.All()), []string{"kernel", "memory", "netvm"}; !slices.Equal(got, want) {
		t.Errorf("All() = %v, want %v", got, want)
	}
	tests := []struct{ name, doc string }{
		{"kernel", "child kernel"},
		{"netvm", "child netvm"},
		{"memory", "parent memory"},
	}
	for _, tc := range tests {
		d, ok := table.Lookup(tc.name)
		if !ok || d.Doc != tc.doc {
			t.Errorf("Lookup(%q).Doc = %q, want %q", tc.name, d.Doc, tc.doc)
		}
	}
	h := &testHolder{owner: "vm1", class: "AppVM"}
	h.Init(h, table)
	if v := h.mustGet(t, "kernel"); v != "" {
		t.Errorf("kernel default = %q, want the override's %q", v, "")
	}
}

func TestNewTableCopiesDescriptors(t *testing.T) {
	shared := &property.Descriptor{Name: "m", Doc: "shared"}
	t1 := property.NewTable(shared, &property.Descriptor{Name: "z"})
	t2 := property.NewTable(&property.Descriptor{Name: "a"}, &property.Descriptor{Name: "b"}, shared, &property.Descriptor{Name: "c"})

	d1, _ := t1.Lookup("m")
	d2, _ := t2.Lookup("m")
	if d1 == shared || d2 == shared || d1 == d2 {
		t.Errorf("tables hold the caller's descriptor instead of copies")
	}
	shared.Doc = "changed"
	if d1.Doc != "shared" || d2.Doc != "shared" {
		t.Errorf("changing the caller's descriptor changed the tables: %q, %q", d1.Doc, d2.Doc)
	}

	// Bags of the two tables do not interfere, though "m" sits at a
	// different position in each.
	h1 := &testHolder{owner: "vm1", class: "AppVM"}
	h1.Init(h1, t1)
	h2 := &testHolder{owner: "vm2", class: "AppVM"}
	h2.Init(h2, t2)
	h1.Store(h1.desc(t, "m"), "m1")
	h1.Store(h1.desc(t, "z"), "z1")
	for _, n := range []string{"a", "b", "m", "c"} {
		h2.Store(h2.desc(t, n), n+"2")
	}
	for _, tc := range []struct {
		h    *testHolder
		name string
		want string
	}{
		{h1, "m", "m1"}, {h1, "z", "z1"},
		{h2, "a", "a2"}, {h2, "b", "b2"}, {h2, "m", "m2"}, {h2, "c", "c2"},
	} {
		if got := tc.h.mustGet(t, tc.name); got != tc.want {
			t.Errorf("%s.%s = %v, want %v", tc.h.owner, tc.name, got, tc.want)
		}
	}
}

func TestGet(t *testing.T) {
	calls := 0
	next := "first"
	counted := func(h property.Holder) (any, error) {
		calls++
		return next, nil
	}
	h := newHolder(
		&property.Descriptor{Name: "explicit", Default: property.Const("default")},
		&property.Descriptor{Name: "constdefault", Default: property.Const(7)},
		&property.Descriptor{Name: "nodefault"},
		&property.Descriptor{Name: "explicitnil", Default: property.Const("default")},
		&property.Descriptor{Name: "funcdefault", Default: counted},
		&property.Descriptor{Name: "nodefaultfunc", Default: func(property.Holder) (any, error) { return nil, property.ErrNoValue }},
	)
	h.Store(h.desc(t, "explicit"), "stored")
	h.Store(h.desc(t, "explicitnil"), nil)

	tests := []struct {
		name    string
		want    any
		wantErr error
	}{
		{"explicit", "stored", nil},
		{"constdefault", 7, nil},
		{"nodefault", nil, property.ErrNoValue},
		{"nodefaultfunc", nil, property.ErrNoValue},
		{"explicitnil", nil, nil},
		{"funcdefault", "first", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.Get(tc.name)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Get error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Get = %v, want %v", got, tc.want)
			}
			// Value with the descriptor agrees with Get.
			v, err := h.Value(h.desc(t, tc.name))
			if v != got || !errors.Is(err, tc.wantErr) {
				t.Errorf("Value = %v, %v; Get = %v", v, err, got)
			}
		})
	}

	// A function default is evaluated on every read.
	d := h.desc(t, "funcdefault")
	calls = 0
	for _, want := range []string{"one", "two", "three"} {
		next = want
		if got := h.mustGet(t, "funcdefault"); got != want {
			t.Errorf("function default read %v, want %v", got, want)
		}
	}
	if calls != 3 {
		t.Errorf("default function called %d times for 3 reads, want 3", calls)
	}
	// Not once an explicit value is stored.
	h.Store(d, "mine")
	calls = 0
	if got := h.mustGet(t, "funcdefault"); got != "mine" || calls != 0 {
		t.Errorf("with an explicit value: Get = %v, default called %d times", got, calls)
	}
}

func TestDefaultReceivesHolder(t *testing.T) {
	var got property.Holder
	h := newHolder(&property.Descriptor{Name: "p", Default: func(h property.Holder) (any, error) {
		got = h
		return h.PropertyOwner() + "-default", nil
	}})
	if v := h.mustGet(t, "p"); v != "vm0001-default" {
		t.Errorf("Get = %v", v)
	}
	if got != property.Holder(h) {
		t.Errorf("default got holder %v, want the bag's owner", got)
	}
}

func TestDefaultValue(t *testing.T) {
	h := newHolder(
		&property.Descriptor{Name: "withdefault", Default: property.Const("d")},
		&property.Descriptor{Name: "nodefault"},
	)
	wd, nd := h.desc(t, "withdefault"), h.desc(t, "nodefault")
	h.Store(wd, "explicit")
	h.Store(nd, "explicit")
	if v, err := h.DefaultValue(wd); v != "d" || err != nil {
		t.Errorf("DefaultValue(withdefault) = %v, %v; want d, nil", v, err)
	}
	if _, err := h.DefaultValue(nd); !errors.Is(err, property.ErrNoValue) {
		t.Errorf("DefaultValue(nodefault) error = %v, want ErrNoValue", err)
	}
}

func TestUnknownProperty(t *testing.T) {
	h := newHolder(&property.Descriptor{Name: "known"})
	tests := []struct {
		name, msg string
	}{
		{"x", "Invalid property 'x' of vm0001"},
		{"Known", "Invalid property 'Known' of vm0001"},
		{"", "Invalid property '' of vm0001"},
		{"it's", `Invalid property "it's" of vm0001`},
	}
	for _, tc := range tests {
		_, err := h.Get(tc.name)
		if err == nil {
			t.Errorf("Get(%q) succeeded", tc.name)
			continue
		}
		if k := qerr.KindOf(err); k != qerr.NoSuchProperty {
			t.Errorf("Get(%q) error kind = %s, want %s", tc.name, k, qerr.NoSuchProperty)
		}
		if err.Error() != tc.msg {
			t.Errorf("Get(%q) error = %q, want %q", tc.name, err.Error(), tc.msg)
		}
		if !errors.Is(err, qerr.Match(qerr.NoSuchProperty)) {
			t.Errorf("Get(%q) error does not match qerr.Match(NoSuchProperty)", tc.name)
		}
		d, err2 := h.Descriptor(tc.name)
		if d != nil || err2 == nil || err2.Error() != tc.msg {
			t.Errorf("Descriptor(%q) = %v, %v", tc.name, d, err2)
		}
	}
}

func TestSetEvents(t *testing.T) {
	tests := []struct {
		name   string
		desc   property.Descriptor
		before any // stored before Set when non-nil
		set    any
		kwargs []events.KV
	}{
		{
			name:   "no value before",
			desc:   property.Descriptor{Name: "p"},
			set:    "new",
			kwargs: []events.KV{kv("name", "p"), kv("newvalue", "new")},
		},
		{
			name:   "default before",
			desc:   property.Descriptor{Name: "p", Default: property.Const("dflt")},
			set:    "new",
			kwargs: []events.KV{kv("name", "p"), kv("newvalue", "new"), kv("oldvalue", "dflt")},
		},
		{
			name:   "explicit before",
			desc:   property.Descriptor{Name: "p", Default: property.Const("dflt")},
			before: "old",
			set:    "new",
			kwargs: []events.KV{kv("name", "p"), kv("newvalue", "new"), kv("oldvalue", "old")},
		},
		{
			name:   "unchanged value",
			desc:   property.Descriptor{Name: "p"},
			before: "same",
			set:    "same",
			kwargs: []events.KV{kv("name", "p"), kv("newvalue", "same"), kv("oldvalue", "same")},
		},
		{
			name:   "equal to default",
			desc:   property.Descriptor{Name: "p", Default: property.Const(3)},
			set:    3,
			kwargs: []events.KV{kv("name", "p"), kv("newvalue", 3), kv("oldvalue", 3)},
		},
		{
			name:   "set to nil",
			desc:   property.Descriptor{Name: "netvm", Type: property.VM},
			before: "sys-firewall",
			set:    nil,
			kwargs: []events.KV{kv("name", "netvm"), kv("newvalue", nil), kv("oldvalue", "sys-firewall")},
		},
		{
			name:   "default function without value",
			desc:   property.Descriptor{Name: "p", Default: func(property.Holder) (any, error) { return nil, property.ErrNoValue }},
			set:    true,
			kwargs: []events.KV{kv("name", "p"), kv("newvalue", true)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			desc := tc.desc
			h := newHolder(&desc)
			d := h.desc(t, desc.Name)
			if tc.before != nil {
				h.Store(d, tc.before)
			}
			if err := h.Set(d, tc.set); err != nil {
				t.Fatalf("Set: %v", err)
			}
			checkFired(t, h.fired, []fired{
				{"property-pre-set:" + desc.Name, true, tc.kwargs},
				{"property-set:" + desc.Name, false, tc.kwargs},
			})
			if got, ok := h.Explicit(d); !ok || got != tc.set {
				t.Errorf("Explicit = %v, %v; want %v, true", got, ok, tc.set)
			}
			if h.IsDefault(d) {
				t.Error("IsDefault after Set = true")
			}
		})
	}
}

func TestSetEventsSeeValues(t *testing.T) {
	// property-pre-set runs before the value is stored, property-set after.
	var h *testHolder
	var atPre, atPost any
	h = newHolder(&property.Descriptor{Name: "p", Default: property.Const("dflt")})
	hook := &hookHolder{testHolder: h, hook: func(name string) {
		v, _ := h.Get("p")
		switch name {
		case "property-pre-set:p":
			atPre = v
		case "property-set:p":
			atPost = v
		}
	}}
	h.Init(hook, h.Table())
	if err := h.Set(h.desc(t, "p"), "new"); err != nil {
		t.Fatal(err)
	}
	if atPre != "dflt" || atPost != "new" {
		t.Errorf("value seen at pre-set = %v, at set = %v; want dflt, new", atPre, atPost)
	}
}

// hookHolder wraps a testHolder and calls hook for every event.
type hookHolder struct {
	*testHolder
	hook func(name string)
}

func (h *hookHolder) FireEvent(name string, pre bool, kwargs ...events.KV) error {
	h.hook(name)
	return h.testHolder.FireEvent(name, pre, kwargs...)
}

func TestSetVeto(t *testing.T) {
	veto := qerr.New(qerr.PropertyValueError, "no, thanks")
	tests := []struct {
		name   string
		before any
		want   any // value after the vetoed Set
		wantOK bool
	}{
		{"explicit value kept", "old", "old", true},
		{"no explicit value", nil, "dflt", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHolder(&property.Descriptor{Name: "p", Default: property.Const("dflt")})
			d := h.desc(t, "p")
			if tc.before != nil {
				h.Store(d, tc.before)
			}
			h.veto["property-pre-set:p"] = veto
			err := h.Set(d, "new")
			if err != veto {
				t.Errorf("Set error = %v, want the veto returned as is", err)
			}
			if got := h.mustGet(t, "p"); got != tc.want {
				t.Errorf("value after veto = %v, want %v", got, tc.want)
			}
			if _, ok := h.Explicit(d); ok != tc.wantOK {
				t.Errorf("explicit after veto = %v, want %v", ok, tc.wantOK)
			}
			if len(h.fired) != 1 || h.fired[0].Name != "property-pre-set:p" {
				t.Errorf("fired %v, want only property-pre-set:p", h.fired)
			}
		})
	}
}

func TestSetter(t *testing.T) {
	errBad := qerr.New(qerr.PropertyValueError, "bad value")
	var seenHolder property.Holder
	var seenDesc *property.Descriptor
	setter := func(h property.Holder, d *property.Descriptor, v any) (any, error) {
		seenHolder, seenDesc = h, d
		s, ok := v.(string)
		if !ok || s == "bad" {
			return nil, errBad
		}
		return strings.ToLower(s), nil
	}
	h := newHolder(&property.Descriptor{Name: "kernel", Default: property.Const("dflt"), Setter: setter})
	d := h.desc(t, "kernel")

	tests := []struct {
		name    string
		set     any
		wantErr error
		want    any
		events  []fired
	}{
		{
			name: "coerced", set: "MiXeD", want: "mixed",
			events: []fired{
				{"property-pre-set:kernel", true, []events.KV{kv("name", "kernel"), kv("newvalue", "mixed"), kv("oldvalue", "dflt")}},
				{"property-set:kernel", false, []events.KV{kv("name", "kernel"), kv("newvalue", "mixed"), kv("oldvalue", "dflt")}},
			},
		},
		{name: "rejected string", set: "bad", wantErr: errBad, want: "mixed"},
		{name: "rejected type", set: 42, wantErr: errBad, want: "mixed"},
		{
			name: "coerced again", set: "OTHER", want: "other",
			events: []fired{
				{"property-pre-set:kernel", true, []events.KV{kv("name", "kernel"), kv("newvalue", "other"), kv("oldvalue", "mixed")}},
				{"property-set:kernel", false, []events.KV{kv("name", "kernel"), kv("newvalue", "other"), kv("oldvalue", "mixed")}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.clearFired()
			err := h.Set(d, tc.set)
			if err != tc.wantErr {
				t.Errorf("Set error = %v, want %v", err, tc.wantErr)
			}
			if got, _ := h.Explicit(d); got != tc.want {
				t.Errorf("stored %v, want %v", got, tc.want)
			}
			checkFired(t, h.fired, tc.events)
		})
	}
	if seenHolder != property.Holder(h) || seenDesc != d {
		t.Errorf("setter got holder %v and descriptor %p, want %v and %p", seenHolder, seenDesc, h, d)
	}
}

func TestSetText(t *testing.T) {
	h := newHolder(
		&property.Descriptor{Name: "memory", Type: property.Int, Default: property.Const(400)},
		&property.Descriptor{Name: "autostart", Type: property.Bool},
		&property.Descriptor{Name: "kernel", Type: property.Str},
		&property.Descriptor{Name: "label", Type: property.Label, Parse: func(h property.Holder, s string) (any, error) {
			if s != "red" {
				return nil, qerr.New(qerr.InvalidLabelValue, "no such label")
			}
			return labelName(s), nil
		}},
	)
	tests := []struct {
		name, prop, text string
		want             any
		wantKind         qerr.Kind // "" for success
		kwargs           []events.KV
	}{
		{name: "int", prop: "memory", text: " 512 ", want: 512,
			kwargs: []events.KV{kv("name", "memory"), kv("newvalue", 512), kv("oldvalue", 400)}},
		{name: "bad int", prop: "memory", text: "lots", want: 512, wantKind: qerr.ValueError},
		{name: "bool", prop: "autostart", text: "Yes", want: true,
			kwargs: []events.KV{kv("name", "autostart"), kv("newvalue", true)}},
		{name: "bad bool", prop: "autostart", text: "maybe", want: true, wantKind: qerr.ValueError},
		{name: "str", prop: "kernel", text: " 6.1 ", want: " 6.1 ",
			kwargs: []events.KV{kv("name", "kernel"), kv("newvalue", " 6.1 ")}},
		{name: "custom parse", prop: "label", text: "red", want: labelName("red"),
			kwargs: []events.KV{kv("name", "label"), kv("newvalue", labelName("red"))}},
		{name: "custom parse error", prop: "label", text: "mauve", want: labelName("red"), wantKind: qerr.InvalidLabelValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.clearFired()
			d := h.desc(t, tc.prop)
			err := h.SetText(d, tc.text)
			if tc.wantKind == "" {
				if err != nil {
					t.Fatalf("SetText(%q): %v", tc.text, err)
				}
				checkFired(t, h.fired, []fired{
					{"property-pre-set:" + tc.prop, true, tc.kwargs},
					{"property-set:" + tc.prop, false, tc.kwargs},
				})
			} else {
				if err == nil || qerr.KindOf(err) != tc.wantKind {
					t.Fatalf("SetText(%q) error = %v (kind %s), want kind %s", tc.text, err, qerr.KindOf(err), tc.wantKind)
				}
				checkFired(t, h.fired, nil)
			}
			if got := h.mustGet(t, tc.prop); got != tc.want {
				t.Errorf("value = %v (%T), want %v (%T)", got, got, tc.want, tc.want)
			}
		})
	}
}

type labelName string

func TestResetEvents(t *testing.T) {
	tests := []struct {
		name    string
		desc    property.Descriptor
		before  any
		kwargs  []events.KV
		after   any
		afterOK bool
	}{
		{
			name:   "explicit value",
			desc:   property.Descriptor{Name: "p", Default: property.Const("dflt")},
			before: "old",
			kwargs: []events.KV{kv("name", "p"), kv("oldvalue", "old")},
			after:  "dflt", afterOK: true,
		},
		{
			name:   "already default",
			desc:   property.Descriptor{Name: "p", Default: property.Const("dflt")},
			kwargs: []events.KV{kv("name", "p"), kv("oldvalue", "dflt")},
			after:  "dflt", afterOK: true,
		},
		{
			name:   "explicit value, no default",
			desc:   property.Descriptor{Name: "p"},
			before: 5,
			kwargs: []events.KV{kv("name", "p"), kv("oldvalue", 5)},
		},
		{
			name:   "no value at all",
			desc:   property.Descriptor{Name: "p"},
			kwargs: []events.KV{kv("name", "p")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			desc := tc.desc
			h := newHolder(&desc)
			d := h.desc(t, "p")
			if tc.before != nil {
				h.Store(d, tc.before)
			}
			if err := h.Reset(d); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			checkFired(t, h.fired, []fired{
				{"property-pre-reset:p", true, tc.kwargs},
				{"property-pre-del:p", true, tc.kwargs},
				{"property-reset:p", false, tc.kwargs},
				{"property-del:p", false, tc.kwargs},
			})
			if !h.IsDefault(d) {
				t.Error("IsDefault after Reset = false")
			}
			v, err := h.Get("p")
			if tc.afterOK {
				if err != nil || v != tc.after {
					t.Errorf("after Reset Get = %v, %v; want %v", v, err, tc.after)
				}
			} else if !errors.Is(err, property.ErrNoValue) {
				t.Errorf("after Reset Get error = %v, want ErrNoValue", err)
			}
		})
	}
}

func TestResetVeto(t *testing.T) {
	veto := errors.New("veto")
	tests := []struct {
		vetoed string
		fired  []string
	}{
		{"property-pre-reset:p", []string{"property-pre-reset:p"}},
		{"property-pre-del:p", []string{"property-pre-reset:p", "property-pre-del:p"}},
	}
	for _, tc := range tests {
		t.Run(tc.vetoed, func(t *testing.T) {
			h := newHolder(&property.Descriptor{Name: "p", Default: property.Const("dflt")})
			d := h.desc(t, "p")
			h.Store(d, "explicit")
			h.veto[tc.vetoed] = veto
			if err := h.Reset(d); err != veto {
				t.Errorf("Reset error = %v, want the veto returned as is", err)
			}
			if v, ok := h.Explicit(d); !ok || v != "explicit" {
				t.Errorf("after vetoed Reset Explicit = %v, %v; want explicit, true", v, ok)
			}
			var got []string
			for _, f := range h.fired {
				got = append(got, f.Name)
			}
			if !slices.Equal(got, tc.fired) {
				t.Errorf("fired %v, want %v", got, tc.fired)
			}
		})
	}
}

func TestWriteOnce(t *testing.T) {
	h := newHolder(&property.Descriptor{Name: "qid", Type: property.Int, WriteOnce: true})
	d := h.desc(t, "qid")

	// Reset while there is no value is allowed.
	if err := h.Reset(d); err != nil {
		t.Errorf("Reset before any value: %v", err)
	}
	if err := h.Set(d, 1); err != nil {
		t.Fatalf("first Set: %v", err)
	}
	if v := h.mustGet(t, "qid"); v != 1 {
		t.Fatalf("after first Set: %v", v)
	}

	tests := []struct {
		name string
		op   func() error
	}{
		{"Set", func() error { return h.Set(d, 2) }},
		{"Set same value", func() error { return h.Set(d, 1) }},
		{"SetText", func() error { return h.SetText(d, "3") }},
		{"Reset", func() error { return h.Reset(d) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.clearFired()
			err := tc.op()
			if err == nil {
				t.Fatal("succeeded on a write-once property that has a value")
			}
			if !strings.Contains(err.Error(), "write-once") || !strings.Contains(err.Error(), "'qid'") {
				t.Errorf("error = %q, want it to name 'qid' and say write-once", err)
			}
			checkFired(t, h.fired, nil)
			if v := h.mustGet(t, "qid"); v != 1 {
				t.Errorf("value = %v, want 1", v)
			}
		})
	}

	// Store and Drop bypass the check.
	h.Store(d, 9)
	if v := h.mustGet(t, "qid"); v != 9 {
		t.Errorf("after Store = %v, want 9", v)
	}
	h.Drop(d)
	if err := h.Set(d, 10); err != nil {
		t.Errorf("Set after Drop: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	h := newHolder(&property.Descriptor{
		Name: "xid", Type: property.Int, ReadOnly: true,
		Default: func(property.Holder) (any, error) { return -1, nil },
		Setter:  func(property.Holder, *property.Descriptor, any) (any, error) { return 0, nil },
	})
	h.class = "DispVM"
	d := h.desc(t, "xid")
	const msg = "property 'xid' on DispVM instance cannot be set"
	tests := []struct {
		name string
		op   func() error
	}{
		{"Set", func() error { return h.Set(d, 5) }},
		{"Set nil", func() error { return h.Set(d, nil) }},
		{"SetText", func() error { return h.SetText(d, "5") }},
		{"Load", func() error { return h.Load(d, "5") }},
		{"Load unparsable", func() error { return h.Load(d, "five") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.clearFired()
			err := tc.op()
			if err == nil {
				t.Fatal("succeeded on a read-only property")
			}
			if k := qerr.KindOf(err); k != qerr.PropertyValueError {
				t.Errorf("error kind = %s, want %s", k, qerr.PropertyValueError)
			}
			if err.Error() != msg {
				t.Errorf("error = %q, want %q", err, msg)
			}
			checkFired(t, h.fired, nil)
			if !h.IsDefault(d) {
				t.Error("read-only property got an explicit value")
			}
			if v := h.mustGet(t, "xid"); v != -1 {
				t.Errorf("value = %v, want the computed -1", v)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	var setterCalls int
	upper := func(_ property.Holder, _ *property.Descriptor, v any) (any, error) {
		setterCalls++
		s := v.(string)
		if s == "" {
			return nil, qerr.New(qerr.PropertyValueError, "empty")
		}
		return strings.ToUpper(s), nil
	}
	tests := []struct {
		name    string
		desc    property.Descriptor
		text    string
		want    any
		wantErr bool
	}{
		{name: "int", desc: property.Descriptor{Name: "p", Type: property.Int}, text: "42", want: 42},
		{name: "int negative spaced", desc: property.Descriptor{Name: "p", Type: property.Int}, text: " -7\n", want: -7},
		{name: "int bad", desc: property.Descriptor{Name: "p", Type: property.Int}, text: "4x2", wantErr: true},
		{name: "int empty", desc: property.Descriptor{Name: "p", Type: property.Int}, text: "", wantErr: true},
		{name: "bool True", desc: property.Descriptor{Name: "p", Type: property.Bool}, text: "True", want: true},
		{name: "bool False", desc: property.Descriptor{Name: "p", Type: property.Bool}, text: "False", want: false},
		{name: "bool ON", desc: property.Descriptor{Name: "p", Type: property.Bool}, text: "ON", want: true},
		{name: "bool bad", desc: property.Descriptor{Name: "p", Type: property.Bool}, text: "None", wantErr: true},
		{name: "str as is", desc: property.Descriptor{Name: "p"}, text: " a b ", want: " a b "},
		{name: "str empty", desc: property.Descriptor{Name: "p"}, text: "", want: ""},
		{name: "setter coerces", desc: property.Descriptor{Name: "p", Setter: upper}, text: "abc", want: "ABC"},
		{name: "setter rejects", desc: property.Descriptor{Name: "p", Setter: upper}, text: "", wantErr: true},
		{name: "custom parse", desc: property.Descriptor{Name: "p", Type: property.Label, Parse: func(_ property.Holder, s string) (any, error) {
			return labelName("label-" + s), nil
		}}, text: "red", want: labelName("label-red")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			desc := tc.desc
			h := newHolder(&desc)
			d := h.desc(t, "p")
			h.Store(d, "previous")
			setterCalls = 0
			err := h.Load(d, tc.text)
			checkFired(t, h.fired, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Load(%q) succeeded", tc.text)
				}
				if v, _ := h.Explicit(d); v != "previous" {
					t.Errorf("after failed Load value = %v, want previous", v)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%q): %v", tc.text, err)
			}
			if v, ok := h.Explicit(d); !ok || v != tc.want {
				t.Errorf("Load(%q) stored %v (%T), want %v (%T)", tc.text, v, v, tc.want, tc.want)
			}
			if desc.Setter != nil && setterCalls != 1 {
				t.Errorf("setter ran %d times, want 1", setterCalls)
			}
		})
	}

	// Load of a write-once property (loading qubes.xml) works.
	h := newHolder(&property.Descriptor{Name: "qid", Type: property.Int, WriteOnce: true})
	if err := h.Load(h.desc(t, "qid"), "3"); err != nil || h.mustGet(t, "qid") != 3 {
		t.Errorf("Load of a write-once property: %v", err)
	}
}

func TestParseBool(t *testing.T) {
	tests := []struct {
		in   string
		want bool
		ok   bool
	}{
		{"0", false, true}, {"no", false, true}, {"false", false, true}, {"off", false, true},
		{"NO", false, true}, {"False", false, true}, {"oFf", false, true}, {"FALSE", false, true},
		{"1", true, true}, {"yes", true, true}, {"true", true, true}, {"on", true, true},
		{"YES", true, true}, {"True", true, true}, {"On", true, true}, {"tRuE", true, true},
		{"maybe", false, false}, {"", false, false}, {"2", false, false}, {" yes", false, false},
		{"y", false, false}, {"t", false, false}, {"none", false, false},
	}
	for _, tc := range tests {
		got, err := property.ParseBool(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("ParseBool(%q) = %v, %v; want %v, nil", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseBool(%q) = %v, want an error", tc.in, got)
			continue
		}
		if k := qerr.KindOf(err); k != qerr.ValueError {
			t.Errorf("ParseBool(%q) error kind = %s, want %s", tc.in, k, qerr.ValueError)
		}
		if want := "Invalid literal for boolean property: " + property.PyRepr(tc.in); err.Error() != want {
			t.Errorf("ParseBool(%q) error = %q, want %q", tc.in, err, want)
		}
	}
	_, err := property.ParseBool("maybe")
	if err == nil || err.Error() != "Invalid literal for boolean property: 'maybe'" {
		t.Errorf("ParseBool(maybe) error = %v", err)
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"12", 12, true}, {" 12 ", 12, true}, {"-3", -3, true}, {"+3", 3, true},
		{"0", 0, true}, {"\t400\n", 400, true}, {"007", 7, true},
		{"abc", 0, false}, {"", 0, false}, {" ", 0, false}, {"1.5", 0, false},
		{"12a", 0, false}, {"0x10", 0, false}, {"1 2", 0, false},
	}
	for _, tc := range tests {
		got, err := property.ParseInt(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("ParseInt(%q) = %v, %v; want %v, nil", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseInt(%q) = %v, want an error", tc.in, got)
			continue
		}
		if err.Error() != "Failed to parse property value as int" {
			t.Errorf("ParseInt(%q) error = %q", tc.in, err)
		}
		if k := qerr.KindOf(err); k != qerr.ValueError {
			t.Errorf("ParseInt(%q) error kind = %s, want %s", tc.in, k, qerr.ValueError)
		}
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return "<" + s.s + ">" }

func TestFormatValue(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, ""},
		{"true", true, "True"},
		{"false", false, "False"},
		{"int", 42, "42"},
		{"negative int", -1, "-1"},
		{"zero", 0, "0"},
		{"string", "sys-net", "sys-net"},
		{"empty string", "", ""},
		{"string with spaces", " a b ", " a b "},
		{"stringer", stringer{"red"}, "<red>"},
		{"pointer stringer", &stringer{"blue"}, "<blue>"},
		{"other", 1.5, "1.5"},
	}
	for _, tc := range tests {
		if got := property.FormatValue(tc.in); got != tc.want {
			t.Errorf("%s: FormatValue(%#v) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestDescriptorText(t *testing.T) {
	plain := &property.Descriptor{Name: "p"}
	custom := &property.Descriptor{Name: "netvm", Format: func(v any) string {
		if v == nil {
			return "none"
		}
		return "vm:" + property.FormatValue(v)
	}}
	tests := []struct {
		d    *property.Descriptor
		in   any
		want string
	}{
		{plain, true, "True"},
		{plain, nil, ""},
		{plain, 7, "7"},
		{custom, nil, "none"},
		{custom, "sys-net", "vm:sys-net"},
	}
	for _, tc := range tests {
		if got := tc.d.Text(tc.in); got != tc.want {
			t.Errorf("%s.Text(%v) = %q, want %q", tc.d.Name, tc.in, got, tc.want)
		}
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		name string
		d    *property.Descriptor
		text string
		want any
		ok   bool
	}{
		{"str", &property.Descriptor{Type: property.Str}, "abc", "abc", true},
		{"int", &property.Descriptor{Type: property.Int}, "5", 5, true},
		{"int bad", &property.Descriptor{Type: property.Int}, "x", nil, false},
		{"bool", &property.Descriptor{Type: property.Bool}, "off", false, true},
		{"bool bad", &property.Descriptor{Type: property.Bool}, "x", nil, false},
		{"custom parse wins over type", &property.Descriptor{Type: property.Int, Parse: func(_ property.Holder, s string) (any, error) {
			return "parsed:" + s, nil
		}}, "x", "parsed:x", true},
	}
	h := newHolder()
	for _, tc := range tests {
		got, err := tc.d.ParseText(h, tc.text)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("%s: ParseText(%q) = %v, %v; want %v", tc.name, tc.text, got, err, tc.want)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: ParseText(%q) = %v, want an error", tc.name, tc.text, got)
		}
	}
}

func TestPyRepr(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "sys-net", want: "'sys-net'"},
		{in: "", want: "''"},
		{in: "it's", want: `"it's"`},
		{in: `say "hi"`, want: `'say "hi"'`},
		{in: `it's "x"`, want: `'it\'s "x"'`},
		{in: `a\b`, want: `'a\\b'`},
		{in: "x\ny", want: `'x\ny'`},
		{in: "tab\there", want: `'tab\there'`},
		{in: "bell\x07", want: `'bell\x07'`},
		{in: "café", want: `'café'`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			if got := property.PyRepr(tc.in); got != tc.want {
				t.Errorf("PyRepr(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestEachStoreDrop(t *testing.T) {
	reject := func(property.Holder, *property.Descriptor, any) (any, error) {
		return nil, errors.New("setter must not run")
	}
	h := newHolder(
		&property.Descriptor{Name: "netvm", LoadStage: 4},
		&property.Descriptor{Name: "name", Setter: reject},
		&property.Descriptor{Name: "default_user", Default: property.Const("user")},
		&property.Descriptor{Name: "qid", Type: property.Int, WriteOnce: true},
		&property.Descriptor{Name: "label", LoadStage: 3},
		&property.Descriptor{Name: "unset"},
	)
	each := func() []string {
		var out []string
		h.Each(func(d *property.Descriptor, v any) {
			out = append(out, fmt.Sprintf("%s=%v", d.Name, v))
		})
		return out
	}
	if got := each(); len(got) != 0 {
		t.Errorf("Each on a fresh bag = %v, want nothing", got)
	}

	h.Store(h.desc(t, "netvm"), "sys-firewall")
	h.Store(h.desc(t, "name"), "work") // setter bypassed
	h.Store(h.desc(t, "qid"), 3)
	h.Store(h.desc(t, "qid"), 4) // write-once bypassed
	h.Store(h.desc(t, "label"), nil)
	checkFired(t, h.fired, nil)

	want := []string{"name=work", "qid=4", "label=<nil>", "netvm=sys-firewall"}
	if got := each(); !slices.Equal(got, want) {
		t.Errorf("Each = %v, want %v", got, want)
	}

	tests := []struct {
		name     string
		explicit any
		set      bool
	}{
		{"netvm", "sys-firewall", true},
		{"name", "work", true},
		{"qid", 4, true},
		{"label", nil, true},
		{"default_user", nil, false},
		{"unset", nil, false},
	}
	for _, tc := range tests {
		d := h.desc(t, tc.name)
		v, ok := h.Explicit(d)
		if v != tc.explicit || ok != tc.set {
			t.Errorf("Explicit(%s) = %v, %v; want %v, %v", tc.name, v, ok, tc.explicit, tc.set)
		}
		if h.IsDefault(d) == tc.set {
			t.Errorf("IsDefault(%s) = %v, want %v", tc.name, h.IsDefault(d), !tc.set)
		}
	}

	h.Drop(h.desc(t, "name"))
	h.Drop(h.desc(t, "unset")) // dropping nothing is fine
	h.Drop(h.desc(t, "qid"))
	checkFired(t, h.fired, nil)
	if got, want := each(), []string{"label=<nil>", "netvm=sys-firewall"}; !slices.Equal(got, want) {
		t.Errorf("Each after Drop = %v, want %v", got, want)
	}
	if _, err := h.Get("name"); !errors.Is(err, property.ErrNoValue) {
		t.Errorf("Get(name) after Drop error = %v, want ErrNoValue", err)
	}

	// Storing the default value still makes the property explicit.
	du := h.desc(t, "default_user")
	h.Store(du, "user")
	if h.IsDefault(du) {
		t.Error("IsDefault after storing the default value = true")
	}
}

func TestInitDropsValues(t *testing.T) {
	h := newHolder(&property.Descriptor{Name: "p"})
	h.Store(h.desc(t, "p"), "v")
	table := h.Table()
	h.Init(h, table)
	if h.Table() != table {
		t.Error("Table() changed")
	}
	if !h.IsDefault(h.desc(t, "p")) {
		t.Error("Init kept an explicit value")
	}
}

func TestReadable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, true},
		{"no value", property.ErrNoValue, false},
		{"wrapped no value", fmt.Errorf("default of netvm: %w", property.ErrNoValue), false},
		{"failure", errors.New("boom"), true},
		{"qerr failure", qerr.New(qerr.Exception, "boom"), true},
	}
	for _, tc := range tests {
		if got := property.Readable(tc.err); got != tc.want {
			t.Errorf("%s: Readable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestEventsThroughBus(t *testing.T) {
	// A holder that fires on a real bus: observers see the property events
	// in order, and a Core pre-set handler vetoes.
	bus := events.New()
	h := &busHolder{bus: bus}
	h.Init(h, property.NewTable(&property.Descriptor{Name: "netvm", Type: property.VM, Default: property.Const("sys-firewall")}))
	d, _ := h.Table().Lookup("netvm")

	var seen []string
	bus.Subscribe("property-*", events.Observer, func(e *events.Event) error {
		nv, _ := e.Arg("newvalue")
		ov, _ := e.Arg("oldvalue")
		seen = append(seen, fmt.Sprintf("%s %v %v", e.Name, nv, ov))
		return nil
	})
	bus.Subscribe("property-pre-set:netvm", events.Core, func(e *events.Event) error {
		if nv, _ := e.Arg("newvalue"); nv == "sys-usb" {
			return qerr.New(qerr.PropertyValueError, "no")
		}
		return nil
	})
	if err := h.Set(d, "sys-net"); err != nil {
		t.Fatal(err)
	}
	if err := h.Set(d, "sys-usb"); qerr.KindOf(err) != qerr.PropertyValueError {
		t.Errorf("vetoed Set error = %v", err)
	}
	if err := h.Reset(d); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"property-pre-set:netvm sys-net sys-firewall",
		"property-set:netvm sys-net sys-firewall",
		"property-pre-set:netvm sys-usb sys-net", // observers run first for pre-events
		"property-pre-reset:netvm <nil> sys-net",
		"property-pre-del:netvm <nil> sys-net",
		"property-reset:netvm <nil> sys-net",
		"property-del:netvm <nil> sys-net",
	}
	if !slices.Equal(seen, want) {
		t.Errorf("observer saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

// busHolder fires its events on an events.Bus.
type busHolder struct {
	property.Bag
	bus *events.Bus
}

func (h *busHolder) PropertyOwner() string { return "vm0002" }
func (h *busHolder) ClassName() string     { return "AppVM" }
func (h *busHolder) FireEvent(name string, pre bool, kwargs ...events.KV) error {
	_, err := h.bus.Fire(h, name, pre, kwargs...)
	return err
}

// As in the reference, text that does not parse is reported before the
// property's read-only or write-once refusal.
func TestSetTextParsesFirst(t *testing.T) {
	h := newHolder()
	d := &property.Descriptor{Name: "xid", Type: property.Int, ReadOnly: true}
	h.Init(h, property.NewTable(d))
	d, _ = h.Table().Lookup("xid")
	err := h.SetText(d, "five")
	if qerr.KindOf(err) != qerr.ValueError || err.Error() != "Failed to parse property value as int" {
		t.Fatalf("SetText of unparsable text on a read-only property: %v", err)
	}
}
