package api

import (
	"errors"
	"strings"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

// Properties of qubes (admin.vm.property.*, any destination) and of the
// system (admin.property.*, dom0 only). Formats: spec admin-api §3.1.

// holder is what both the App and a Qube offer for properties.
type holder interface {
	Table() *property.Table
	Descriptor(name string) (*property.Descriptor, error)
	Value(d *property.Descriptor) (any, error)
	DefaultValue(d *property.Descriptor) (any, error)
	IsDefault(d *property.Descriptor) bool
	SetText(d *property.Descriptor, text string) error
	Reset(d *property.Descriptor) error
}

func addPropertyMethods(t methodTable) {
	for _, scope := range []struct {
		prefix string
		dest   DestRule
		scope  Scope
		holder func(c *Call) holder
	}{
		{"admin.vm.property.", DestAny, Local, func(c *Call) holder { return c.Dest }},
		{"admin.property.", DestAdminVM, Global, func(c *Call) holder { return c.App }},
	} {
		h := scope.holder
		t.add(
			&Method{Name: scope.prefix + "List", Dest: scope.dest, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				var b strings.Builder
				for _, d := range h(c).Table().All() {
					b.WriteString(d.Name)
					b.WriteByte('\n')
				}
				return []byte(b.String()), nil
			}},
			&Method{Name: scope.prefix + "Get", Dest: scope.dest, Arg: Required, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				d, err := h(c).Descriptor(c.Arg)
				if err != nil {
					return nil, err
				}
				return []byte(serializeProperty(h(c), d)), nil
			}},
			&Method{Name: scope.prefix + "GetAll", Dest: scope.dest, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				var b strings.Builder
				hh := h(c)
				for _, d := range hh.Table().All() {
					b.WriteString(d.Name)
					b.WriteByte(' ')
					b.WriteString(escapeLine(serializeProperty(hh, d)))
					b.WriteByte('\n')
				}
				return []byte(b.String()), nil
			}},
			&Method{Name: scope.prefix + "GetDefault", Dest: scope.dest, Arg: Required, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				d, err := h(c).Descriptor(c.Arg)
				if err != nil {
					return nil, err
				}
				v, err := h(c).DefaultValue(d)
				if errors.Is(err, property.ErrNoValue) {
					return nil, nil
				}
				if err != nil {
					return nil, err
				}
				return []byte("type=" + d.Type.String() + " " + d.Text(v)), nil
			}},
			&Method{Name: scope.prefix + "Help", Dest: scope.dest, Arg: Required, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				d, err := h(c).Descriptor(c.Arg)
				if err != nil {
					return nil, err
				}
				return []byte(d.Doc), nil
			}},
			&Method{Name: scope.prefix + "Set", Dest: scope.dest, Arg: Required, Payload: Optional, Write: true, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				d, err := h(c).Descriptor(c.Arg)
				if err != nil {
					return nil, err
				}
				text, err := sanitizePropertyValue(d, c.Payload)
				if err != nil {
					return nil, err
				}
				return nil, h(c).SetText(d, text)
			}},
			&Method{Name: scope.prefix + "Reset", Dest: scope.dest, Arg: Required, Write: true, Scope: scope.scope, Handle: func(c *Call) ([]byte, error) {
				d, err := h(c).Descriptor(c.Arg)
				if err != nil {
					return nil, err
				}
				return nil, h(c).Reset(d)
			}},
		)
	}
}

// serializeProperty renders "default=<bool> type=<type> <value>"; a property
// without any value shows an empty value.
func serializeProperty(h holder, d *property.Descriptor) string {
	isDefault := "False"
	if h.IsDefault(d) {
		isDefault = "True"
	}
	text := ""
	if v, err := h.Value(d); err == nil {
		text = d.Text(v)
	}
	return "default=" + isDefault + " type=" + d.Type.String() + " " + text
}

var lineEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeLine(s string) string { return lineEscaper.Replace(s) }

// sanitizePropertyValue checks an untrusted property value as the
// reference's property.sanitize does: ASCII only; text-valued properties
// printable only; qube references a valid name or "" for none. Typed values
// are parsed by the property itself.
func sanitizePropertyValue(d *property.Descriptor, untrusted []byte) (string, error) {
	if !isASCII(string(untrusted)) {
		return "", qerr.New(qerr.ValueError, "Non-ASCII bytes in property value")
	}
	s := string(untrusted)
	switch {
	case d.Type == property.VM:
		if s != "" {
			if err := qubes.ValidateName(s); err != nil {
				return "", err
			}
		}
	case d.Type == property.Label || d.Type == property.Str && d.Parse == nil:
		for i := 0; i < len(s); i++ {
			if !isPrintable(s[i]) {
				return "", qerr.New(qerr.ValueError, "Invalid characters in property value")
			}
		}
	}
	return s, nil
}

// isPrintable matches Python's string.printable.
func isPrintable(c byte) bool {
	return c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c
}
