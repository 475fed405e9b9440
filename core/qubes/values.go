package qubes

import (
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// This file holds the value kinds the model adds to the property package:
// references to qubes, labels, UUIDs and addresses.

func appOf(h property.Holder) *App {
	switch x := h.(type) {
	case *App:
		return x
	case *Qube:
		return x.app
	}
	panic("qubes: property holder is neither App nor Qube")
}

// vmClassFilter restricts which qubes a VM-typed property may refer to.
type vmClassFilter struct {
	name string // as the reference names the class in messages
	ok   func(q *Qube) bool
}

var (
	anyLocalVM = vmClassFilter{"LocalVM", (*Qube).IsLocal}
	templateVM = vmClassFilter{"TemplateVM", (*Qube).IsTemplate}
)

// vmRef declares a property whose value is a qube (or none). Text "" means
// none; other text is a qube name.
func vmRef(d *property.Descriptor, allowNone bool, filter vmClassFilter) *property.Descriptor {
	d.Type = property.VM
	if d.LoadStage == 0 {
		d.LoadStage = 4
	}
	custom := d.Setter
	d.Parse = func(h property.Holder, text string) (any, error) {
		if text == "" {
			return nil, nil
		}
		q, ok := appOf(h).byName[text]
		if !ok {
			return nil, qerr.New(qerr.PropertyValueError, "Can't set %s to non-existing qube %s", d.Name, text)
		}
		return q, nil
	}
	d.Setter = func(h property.Holder, pd *property.Descriptor, v any) (any, error) {
		q, _ := v.(*Qube)
		if q == nil {
			if !allowNone {
				return nil, qerr.New(qerr.PropertyValueError, "Invalid value None for property %s of %s", property.PyRepr(pd.Name), h.PropertyOwner())
			}
			v = nil
		} else if !filter.ok(q) {
			return nil, qerr.New(qerr.PropertyValueError, "wrong VM class: domains[%s] is of type %s and not %s", property.PyRepr(q.name), q.class.Name, filter.name)
		}
		if custom != nil {
			return custom(h, pd, v)
		}
		return v, nil
	}
	d.Format = func(v any) string {
		if q, ok := v.(*Qube); ok && q != nil {
			return q.name
		}
		return ""
	}
	return d
}

// labelProp declares the label property.
func labelProp(d *property.Descriptor) *property.Descriptor {
	d.Type = property.Label
	d.Parse = func(h property.Holder, text string) (any, error) {
		return appOf(h).Label(text)
	}
	d.Setter = func(h property.Holder, _ *property.Descriptor, v any) (any, error) {
		if l, ok := v.(*Label); ok && l != nil {
			return l, nil
		}
		return nil, qerr.New(qerr.LabelNotFound, "Label does not exist: %v", v)
	}
	return d
}

// ParseUUID accepts a UUID in the forms Python's uuid.UUID accepts (with or
// without hyphens, braces or a urn:uuid: prefix, any case) and returns the
// canonical lower-case hyphenated form.
func ParseUUID(s string) (string, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "urn:"), "uuid:")
	t = strings.Trim(t, "{}")
	t = strings.ReplaceAll(t, "-", "")
	if len(t) != 32 {
		return "", qerr.New(qerr.ValueError, "badly formed hexadecimal UUID string")
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(t)); err != nil {
		return "", qerr.New(qerr.ValueError, "badly formed hexadecimal UUID string")
	}
	return FormatUUID(b), nil
}

// FormatUUID formats 16 bytes as a canonical UUID.
func FormatUUID(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func parseUUIDProp(_ property.Holder, text string) (any, error) {
	u, err := ParseUUID(text)
	if err != nil {
		return nil, qerr.New(qerr.ValueError, "Failed to parse property value as UUID")
	}
	return u, nil
}

// parseIPv4 and parseIPv6 accept addresses as the reference's ipaddress
// module does and store them in canonical text form ("" is none).
func parseIPv4(_ property.Holder, text string) (any, error) {
	a, err := netip.ParseAddr(text)
	if err != nil || !a.Is4() {
		return nil, qerr.New(qerr.ValueError, "Failed to parse property value as IPv4Address")
	}
	return a.String(), nil
}

func parseIPv6(_ property.Holder, text string) (any, error) {
	a, err := netip.ParseAddr(text)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return nil, qerr.New(qerr.ValueError, "Failed to parse property value as IPv6Address")
	}
	return a.String(), nil
}
