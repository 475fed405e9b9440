// Package property implements typed, declared properties with defaults,
// validation and change events — the mechanism behind every qube setting and
// every global setting of the system. It knows nothing about qubes: a holder
// (a qube, the application) embeds a Bag, and a Table of Descriptors, declared
// once per class, says which properties exist and how they behave.
//
// Semantics follow the reference daemon:
//
//   - Get returns the explicit value if one is stored, else the default (a
//     constant or a function of the holder evaluated on every read), else
//     ErrNoValue.
//   - Set checks write-once, runs the setter (validation and coercion), fires
//     "property-pre-set:NAME" (a handler error vetoes), stores, then fires
//     "property-set:NAME", with kwargs name, newvalue and — when the old
//     value was readable — oldvalue. Events fire even when the value does not
//     change.
//   - Reset fires "property-pre-reset:NAME" and "property-pre-del:NAME",
//     removes the explicit value, then fires "property-reset:NAME" and
//     "property-del:NAME", with kwargs name and [oldvalue].
//   - Load (from qubes.xml) parses and validates like Set but fires nothing.
//
// Values are Go values: string, int, bool, or a type the holder's package
// defines (a qube, a label). nil is the "none" value of properties that allow
// it.
package property

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Type is the value type of a property, as the Admin API names it.
type Type uint8

const (
	Str   Type = iota // "str": strings and anything shown as text (uuid, ip, pool)
	Int               // "int"
	Bool              // "bool"
	VM                // "vm": a reference to a qube, or none
	Label             // "label"
)

func (t Type) String() string {
	switch t {
	case Int:
		return "int"
	case Bool:
		return "bool"
	case VM:
		return "vm"
	case Label:
		return "label"
	}
	return "str"
}

// ErrNoValue is returned by reads of a property that has neither an explicit
// value nor a default.
var ErrNoValue = errors.New("property has no value")

// Default computes a property's value when none is stored. It may return
// ErrNoValue.
type Default func(h Holder) (any, error)

// Const is a Default that always returns v.
func Const(v any) Default { return func(Holder) (any, error) { return v, nil } }

// Descriptor declares one property. Descriptors are data: they are built once
// per class and shared by every holder of that class.
type Descriptor struct {
	Name string
	Type Type
	Doc  string
	// Default is nil when the property has no default.
	Default Default
	// Parse turns text (from qubes.xml or the Admin API) into a value. When
	// nil, text is parsed by Type: Str as is, Int as a decimal, Bool as a
	// boolean literal. VM and Label properties must set it.
	Parse func(h Holder, text string) (any, error)
	// Setter validates and may coerce a value on every Set and Load.
	Setter func(h Holder, d *Descriptor, v any) (any, error)
	// Format turns a value into text for qubes.xml and the Admin API. When
	// nil, FormatValue is used.
	Format func(v any) string
	// WriteOnce properties cannot be set or reset once they have a value.
	WriteOnce bool
	// ReadOnly properties are computed: they cannot be set and are never saved.
	ReadOnly bool
	// LoadStage orders loading from qubes.xml: properties that refer to other
	// qubes load after every qube exists. Zero means 2.
	LoadStage int
	// NoClone excludes the property when a qube's settings are cloned.
	NoClone bool

	index int // position of the value slot in a Bag
}

// Stage returns the load stage, 2 when unset.
func (d *Descriptor) Stage() int {
	if d.LoadStage == 0 {
		return 2
	}
	return d.LoadStage
}

// Text formats v for qubes.xml and the Admin API.
func (d *Descriptor) Text(v any) string {
	if d.Format != nil {
		return d.Format(v)
	}
	return FormatValue(v)
}

// ParseText parses text for holder h.
func (d *Descriptor) ParseText(h Holder, text string) (any, error) {
	if d.Parse != nil {
		return d.Parse(h, text)
	}
	switch d.Type {
	case Int:
		return ParseInt(text)
	case Bool:
		return ParseBool(text)
	}
	return text, nil
}

// FormatValue is the default text form of a value: strings as they are,
// booleans as True/False, integers in decimal, anything with a String method
// through it, and nil as the empty string.
func FormatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int:
		return strconv.Itoa(x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// ParseBool accepts the boolean literals of the reference: 0/no/false/off and
// 1/yes/true/on, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "0", "no", "false", "off":
		return false, nil
	case "1", "yes", "true", "on":
		return true, nil
	}
	return false, qerr.New(qerr.ValueError, "Invalid literal for boolean property: %s", PyRepr(s))
}

// ParseInt parses a decimal integer, allowing surrounding whitespace and a
// sign as the reference does.
func ParseInt(s string) (int, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "_") && pyIntUnderscores.MatchString(s) {
		s = strings.ReplaceAll(s, "_", "")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, qerr.New(qerr.ValueError, "Failed to parse property value as int")
	}
	return n, nil
}

// pyIntUnderscores matches the digit grouping Python's int() accepts.
var pyIntUnderscores = regexp.MustCompile(`\A[+-]?[0-9]+(_[0-9]+)+\z`)

// PyRepr quotes s as Python's repr() does, which is how the reference's
// messages show values: single quotes unless s contains a single quote and
// no double quote; backslashes, quotes and control characters escaped.
func PyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && !unicode.IsPrint(r):
			switch {
			case r <= 0xff:
				fmt.Fprintf(&b, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// Table is the set of properties of one class, with O(1) lookup by name and
// a fixed order: by load stage, then by name — the order of qubes.xml and of
// the Admin API's property lists.
type Table struct {
	byName map[string]*Descriptor
	list   []*Descriptor
}

// NewTable builds a table. When two descriptors share a name the later one
// wins, so a class table is written as its parent's descriptors followed by
// its own overrides. Descriptors are copied: one descriptor value may be
// shared by several tables.
func NewTable(ds ...*Descriptor) *Table {
	t := &Table{byName: make(map[string]*Descriptor, len(ds))}
	for _, d := range ds {
		c := *d
		t.byName[d.Name] = &c
	}
	for _, d := range t.byName {
		t.list = append(t.list, d)
	}
	slices.SortFunc(t.list, func(a, b *Descriptor) int {
		if a.Stage() != b.Stage() {
			return a.Stage() - b.Stage()
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i, d := range t.list {
		d.index = i
	}
	return t
}

// Lookup returns the descriptor of the named property.
func (t *Table) Lookup(name string) (*Descriptor, bool) {
	d, ok := t.byName[name]
	return d, ok
}

// All returns the descriptors in table order. The slice must not be changed.
func (t *Table) All() []*Descriptor { return t.list }

// Len returns the number of properties.
func (t *Table) Len() int { return len(t.list) }

// Holder is what owns a Bag: it names itself in error messages and fires the
// property events (it decides whether events are enabled).
type Holder interface {
	// PropertyOwner names the holder in messages: "vm0001", "Qubes".
	PropertyOwner() string
	// ClassName names its class in messages: "AppVM", "Qubes".
	ClassName() string
	// FireEvent fires an event with the holder as subject; it is a no-op
	// returning nil while the holder's events are disabled.
	FireEvent(name string, pre bool, kwargs ...events.KV) error
}
