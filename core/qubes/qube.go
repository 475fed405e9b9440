package qubes

import (
	"path/filepath"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/store"
)

type classKind uint8

const (
	kindAdmin classKind = iota
	kindApp
	kindTemplate
	kindStandalone
	kindDisp
	kindRemote
)

// Class is a qube class: its name and its property table.
type Class struct {
	Name  string
	kind  classKind
	table *property.Table
}

// Table returns the class's property table.
func (c *Class) Table() *property.Table { return c.table }

// Classes returns the qube classes by name, in the order of
// admin.vmclass.List.
func Classes() []*Class {
	return []*Class{AdminVMClass, AppVMClass, DispVMClass, RemoteVMClass, StandaloneVMClass, TemplateVMClass}
}

// ClassByName returns the class with the given name.
func ClassByName(name string) (*Class, bool) {
	for _, c := range Classes() {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// Qube is one domain of the system.
type Qube struct {
	property.Bag
	app   *App
	class *Class

	eventsEnabled bool

	// Identity, cached from the write-once properties.
	name string
	qid  int
	uuid string

	Features *Features
	Tags     *Tags

	xmlID      string        // <domain id=".."> as read, for round trips
	devices    []*store.Node // device assignments, kept as written until core/devices
	volumes    []store.Volume
	hasVolumes bool
}

func newQube(a *App, c *Class) *Qube {
	q := &Qube{app: a, class: c}
	q.Bag.Init(q, c.table)
	q.Features = &Features{q: q}
	q.Tags = &Tags{q: q}
	return q
}

// App returns the model the qube belongs to.
func (q *Qube) App() *App { return q.app }

// Class returns the qube's class.
func (q *Qube) Class() *Class { return q.class }

// Name returns the qube's name.
func (q *Qube) Name() string { return q.name }

// QID returns the qube's qid.
func (q *Qube) QID() int { return q.qid }

// UUID returns the qube's UUID in canonical form.
func (q *Qube) UUID() string { return q.uuid }

// String returns the name: a qube formats as its name in qubes.xml, in the
// Admin API and in event arguments.
func (q *Qube) String() string { return q.name }

// PropertyOwner names the qube in messages.
func (q *Qube) PropertyOwner() string { return q.name }

// ClassName returns the class name.
func (q *Qube) ClassName() string { return q.class.Name }

// FireEvent fires an event about the qube when its events are on.
func (q *Qube) FireEvent(name string, pre bool, kwargs ...events.KV) error {
	if !q.eventsEnabled {
		return nil
	}
	_, err := q.app.bus.Fire(q, name, pre, kwargs...)
	return err
}

// FireEventResults fires an event about the qube and returns the handlers'
// results (nil while the qube's events are off).
func (q *Qube) FireEventResults(name string, pre bool, kwargs ...events.KV) ([]any, error) {
	if !q.eventsEnabled {
		return nil, nil
	}
	return q.app.bus.Fire(q, name, pre, kwargs...)
}

// IsAdminVM reports whether the qube is dom0.
func (q *Qube) IsAdminVM() bool { return q.class.kind == kindAdmin }

// IsTemplate reports whether the qube is a TemplateVM.
func (q *Qube) IsTemplate() bool { return q.class.kind == kindTemplate }

// IsDisposable reports whether the qube is a DispVM.
func (q *Qube) IsDisposable() bool { return q.class.kind == kindDisp }

// IsRemote reports whether the qube is a RemoteVM.
func (q *Qube) IsRemote() bool { return q.class.kind == kindRemote }

// IsLocal reports whether the qube runs on this host (every class but
// RemoteVM).
func (q *Qube) IsLocal() bool { return q.class.kind != kindRemote }

// HasVM reports whether the qube is a full VM of this host (not the AdminVM,
// not remote): it has networking, storage and a lifecycle.
func (q *Qube) HasVM() bool { return q.class.kind != kindAdmin && q.class.kind != kindRemote }

// Has reports whether the qube's class has the named property.
func (q *Qube) Has(name string) bool {
	_, ok := q.class.table.Lookup(name)
	return ok
}

// hasTemplateProp reports whether the class has a template property
// (AppVM, DispVM).
func (q *Qube) hasTemplateProp() bool {
	return q.class.kind == kindApp || q.class.kind == kindDisp
}

// Template returns the qube's template, or nil for classes without one.
func (q *Qube) Template() *Qube {
	if !q.hasTemplateProp() {
		return nil
	}
	return q.vm("template")
}

// vm returns the effective value of a VM-typed property, or nil when it is
// none, unset or not a property of the class.
func (q *Qube) vm(name string) *Qube {
	d, ok := q.class.table.Lookup(name)
	if !ok {
		return nil
	}
	v, err := q.Value(d)
	if err != nil {
		return nil
	}
	t, _ := v.(*Qube)
	return t
}

// str returns the effective value of a string property ("" when unreadable).
func (q *Qube) str(name string) string {
	v, err := q.Get(name)
	if err != nil {
		return ""
	}
	return property.FormatValue(v)
}

// integer returns the effective value of an int property (0 when unreadable).
func (q *Qube) integer(name string) int {
	v, err := q.Get(name)
	if err != nil {
		return 0
	}
	n, _ := v.(int)
	return n
}

// boolean returns the effective value of a bool property (false when
// unreadable).
func (q *Qube) boolean(name string) bool {
	v, err := q.Get(name)
	if err != nil {
		return false
	}
	b, _ := v.(bool)
	return b
}

// label returns the qube's label, or nil when unset.
func (q *Qube) label() *Label {
	v, err := q.Get("label")
	if err != nil {
		return nil
	}
	l, _ := v.(*Label)
	return l
}

// Volumes returns the volume-config records, as written in qubes.xml.
func (q *Qube) Volumes() []store.Volume { return q.volumes }

// Devices returns the device-assignment records, as written in qubes.xml.
func (q *Qube) Devices() []*store.Node { return q.devices }

// hasPCIAssigned reports whether any PCI device is assigned to the qube.
func (q *Qube) hasPCIAssigned() bool {
	for _, n := range q.devices {
		if attr(n.Attrs, "class") == "pci" && len(n.Children) > 0 {
			return true
		}
	}
	return false
}

// DirPath is the qube's directory in the data directory: vm-templates/<name>
// for templates, appvms/<name> for the others.
func (q *Qube) DirPath() string {
	sub := "appvms"
	if q.IsTemplate() {
		sub = "vm-templates"
	}
	return filepath.Join(q.app.opts.DataDir, sub, q.name)
}
