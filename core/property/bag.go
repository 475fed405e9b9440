package property

import (
	"errors"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Bag holds the explicit property values of one holder. Embed it and call
// Init before use. A Bag is not safe for concurrent use: the model guards it.
type Bag struct {
	owner Holder
	table *Table
	slots []slot
}

type slot struct {
	v   any
	set bool
}

// Init binds the bag to its holder and its class table, dropping all values.
func (b *Bag) Init(owner Holder, t *Table) {
	b.owner, b.table = owner, t
	b.slots = make([]slot, t.Len())
}

// Table returns the holder's property table.
func (b *Bag) Table() *Table { return b.table }

// Descriptor looks a property up, failing with QubesNoSuchPropertyError.
func (b *Bag) Descriptor(name string) (*Descriptor, error) {
	if d, ok := b.table.byName[name]; ok {
		return d, nil
	}
	return nil, qerr.New(qerr.NoSuchProperty, "Invalid property %s of %s", PyRepr(name), b.owner.PropertyOwner())
}

// Get returns the effective value of a property.
func (b *Bag) Get(name string) (any, error) {
	d, err := b.Descriptor(name)
	if err != nil {
		return nil, err
	}
	return b.Value(d)
}

// Value returns the effective value of d: explicit, else default, else
// ErrNoValue.
func (b *Bag) Value(d *Descriptor) (any, error) {
	if s := b.slots[d.index]; s.set {
		return s.v, nil
	}
	return b.DefaultValue(d)
}

// DefaultValue returns what d would read as without an explicit value.
func (b *Bag) DefaultValue(d *Descriptor) (any, error) {
	if d.Default == nil {
		return nil, ErrNoValue
	}
	return d.Default(b.owner)
}

// Explicit returns the stored value of d and whether there is one.
func (b *Bag) Explicit(d *Descriptor) (any, bool) {
	s := b.slots[d.index]
	return s.v, s.set
}

// IsDefault reports whether d has no explicit value.
func (b *Bag) IsDefault(d *Descriptor) bool { return !b.slots[d.index].set }

func (b *Bag) checkWriteOnce(d *Descriptor) error {
	if d.WriteOnce && b.slots[d.index].set {
		return qerr.New(qerr.PropertyValueError, "property %s is write-once and already set", PyRepr(d.Name))
	}
	return nil
}

func (b *Bag) validate(d *Descriptor, v any) (any, error) {
	if d.ReadOnly {
		return nil, qerr.New(qerr.PropertyValueError, "property %s on %s instance cannot be set", PyRepr(d.Name), b.owner.ClassName())
	}
	if d.Setter != nil {
		return d.Setter(b.owner, d, v)
	}
	return v, nil
}

// Set assigns a value, running the setter and firing property-pre-set (which
// may veto) and property-set.
func (b *Bag) Set(d *Descriptor, v any) error {
	if err := b.checkWriteOnce(d); err != nil {
		return err
	}
	old, oldErr := b.Value(d)
	v, err := b.validate(d, v)
	if err != nil {
		return err
	}
	kw := changeKwargs(d.Name, true, v, old, oldErr == nil)
	if err := b.owner.FireEvent("property-pre-set:"+d.Name, true, kw...); err != nil {
		return err
	}
	b.slots[d.index] = slot{v: v, set: true}
	return b.owner.FireEvent("property-set:"+d.Name, false, kw...)
}

// SetText parses text and then behaves as Set. As in the reference, text
// that does not parse is reported before write-once and read-only refusals.
func (b *Bag) SetText(d *Descriptor, text string) error {
	v, err := d.ParseText(b.owner, text)
	if err != nil {
		return err
	}
	return b.Set(d, v)
}

// Reset removes the explicit value so the default applies again, firing
// property-pre-reset and property-pre-del (which may veto), then
// property-reset and property-del. It fires even when there was no explicit
// value.
func (b *Bag) Reset(d *Descriptor) error {
	if err := b.checkWriteOnce(d); err != nil {
		return err
	}
	old, oldErr := b.Value(d)
	kw := changeKwargs(d.Name, false, nil, old, oldErr == nil)
	if err := b.owner.FireEvent("property-pre-reset:"+d.Name, true, kw...); err != nil {
		return err
	}
	if err := b.owner.FireEvent("property-pre-del:"+d.Name, true, kw...); err != nil {
		return err
	}
	b.slots[d.index] = slot{}
	if err := b.owner.FireEvent("property-reset:"+d.Name, false, kw...); err != nil {
		return err
	}
	return b.owner.FireEvent("property-del:"+d.Name, false, kw...)
}

// Load sets a value read from qubes.xml: parsed and validated like Set, but
// without events.
func (b *Bag) Load(d *Descriptor, text string) error {
	if d.ReadOnly {
		_, err := b.validate(d, nil)
		return err
	}
	v, err := d.ParseText(b.owner, text)
	if err != nil {
		return err
	}
	if v, err = b.validate(d, v); err != nil {
		return err
	}
	b.slots[d.index] = slot{v: v, set: true}
	return nil
}

// Store sets an explicit value directly: no setter, no events, no write-once
// check. It is for values the model computed itself (allocated qids, copied
// settings of a clone) and for loaders that already validated them.
func (b *Bag) Store(d *Descriptor, v any) { b.slots[d.index] = slot{v: v, set: true} }

// Drop removes an explicit value directly, without events.
func (b *Bag) Drop(d *Descriptor) { b.slots[d.index] = slot{} }

// Each calls f for every property that has an explicit value, in table order.
func (b *Bag) Each(f func(d *Descriptor, v any)) {
	for _, d := range b.table.list {
		if s := b.slots[d.index]; s.set {
			f(d, s.v)
		}
	}
}

// Readable reports whether err from Value means "no value" rather than a
// failure.
func Readable(err error) bool { return err == nil || !errors.Is(err, ErrNoValue) }

func changeKwargs(name string, withNew bool, newValue, old any, hasOld bool) []events.KV {
	kw := make([]events.KV, 1, 3)
	kw[0] = events.KV{Key: "name", Value: name}
	if withNew {
		kw = append(kw, events.KV{Key: "newvalue", Value: newValue})
	}
	if hasOld {
		kw = append(kw, events.KV{Key: "oldvalue", Value: old})
	}
	return kw
}
