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
				return writeGetAll(nil, h(c)), nil
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

// addBulkPropertyMethods adds admin.vm.property.GetAllBulk: every qube's
// admin.vm.List line followed by its GetAll lines and an empty line, in
// admin.vm.List order — one call where a listing tool would make one per
// qube. An optional payload of space-separated property names restricts
// the lines to those properties (names a class lacks are skipped). Not in
// the reference; the Go CLI falls back to per-qube GetAll when a daemon
// lacks it.
func addBulkPropertyMethods(t methodTable) {
	t.add(&Method{Name: "admin.vm.property.GetAllBulk", Dest: DestAdminVM, Payload: Optional, Scope: Global, Handle: func(c *Call) ([]byte, error) {
		var only []string
		if len(c.Payload) > 0 {
			if !isASCII(string(c.Payload)) {
				return nil, qerr.New(qerr.ProtocolError, "Property names contain non-ASCII characters")
			}
			seen := map[string]bool{}
			for _, n := range strings.Fields(string(c.Payload)) {
				if !seen[n] {
					seen[n] = true
					only = append(only, n)
				}
			}
		}
		qs := c.App.Qubes()
		per := 2048
		if only != nil {
			per = 64 * (len(only) + 1)
		}
		b := make([]byte, 0, per*len(qs))
		for _, q := range qs {
			b = appendVMListLine(b, c, q)
			if only == nil {
				b = writeGetAll(b, q)
			}
			for _, name := range only {
				if d, ok := q.Table().Lookup(name); ok {
					b = appendPropertyLine(b, q, d)
				}
			}
			b = append(b, '\n')
		}
		return b, nil
	}})
}

// serializeProperty renders "default=<bool> type=<type> <value>"; a property
// without any value shows an empty value.
func serializeProperty(h holder, d *property.Descriptor) string {
	return string(appendProperty(nil, h, d, false))
}

// appendProperty appends the serialized property; escaped, as in GetAll,
// with '\' doubled and newlines as "\n".
func appendProperty(b []byte, h holder, d *property.Descriptor, escaped bool) []byte {
	if h.IsDefault(d) {
		b = append(b, "default=True type="...)
	} else {
		b = append(b, "default=False type="...)
	}
	b = append(b, d.Type.String()...)
	b = append(b, ' ')
	v, err := h.Value(d)
	if err != nil {
		return b
	}
	if !escaped {
		return append(b, d.Text(v)...)
	}
	return appendEscaped(b, d.Text(v))
}

// escapeLine escapes a value for a one-line reply: '\' doubled, newlines
// as "\n".
func escapeLine(s string) string { return string(appendEscaped(nil, s)) }

func appendEscaped(b []byte, text string) []byte {
	if !strings.ContainsAny(text, "\\\n") {
		return append(b, text...)
	}
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, text[i])
		}
	}
	return b
}

// writeGetAll appends the GetAll lines of h: "<name> <property>\n" each.
func writeGetAll(b []byte, h holder) []byte {
	for _, d := range h.Table().All() {
		b = appendPropertyLine(b, h, d)
	}
	return b
}

// appendPropertyLine appends one GetAll line.
func appendPropertyLine(b []byte, h holder, d *property.Descriptor) []byte {
	b = append(b, d.Name...)
	b = append(b, ' ')
	b = appendProperty(b, h, d, true)
	return append(b, '\n')
}

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
