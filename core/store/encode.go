package store

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Encode returns doc as qubes.xml, byte for byte what the reference
// implementation (lxml, pretty_print=True, UTF-8, no XML declaration) writes
// for the same records:
//
//   - two spaces of indentation per level, one element per line, a newline
//     after </qubes>;
//   - <qubes> holds <labels>, <pools>, <properties>, <domains>, in that
//     order, each self-closed when empty;
//   - a <domain> holds <properties>, <features>, <tags> (each self-closed
//     when empty), one element per entry of Devices, then <volume-config>
//     when HasVolumeConfig;
//   - <label>, <property> and <feature> are always written with an opening
//     and a closing tag, even when their text is empty;
//   - a Node is self-closed when it has no children and no text
//     (Text == "" && !HasText), and its Text is ignored when it has
//     children;
//   - text escapes & < > and carriage return; attribute values additionally
//     escape ", newline and tab; everything else, non-ASCII included, is
//     written as UTF-8.
//
// Characters that XML cannot represent (control characters other than tab,
// newline and carriage return, U+FFFE, U+FFFF, invalid UTF-8) are written as
// U+FFFD so that the output always decodes; callers should not store such
// values. Names (of attributes and of Node elements) are written as they are;
// use Document.Check to verify them first (Store.Save does).
func Encode(doc *Document) []byte {
	return appendDocument(make([]byte, 0, estimateSize(doc)), doc)
}

// EncodeTo appends the encoding of doc (see Encode) to w.
func EncodeTo(w *bytes.Buffer, doc *Document) {
	w.Grow(estimateSize(doc))
	w.Write(appendDocument(w.AvailableBuffer(), doc))
}

// estimateSize guesses the size of the encoding, to allocate the output once.
func estimateSize(doc *Document) int {
	n := 256 + 80*len(doc.Labels) + 160*len(doc.Pools) + 80*len(doc.Properties)
	for i := range doc.Domains {
		dom := &doc.Domains[i]
		n += 256 + 72*len(dom.Properties) + 64*len(dom.Features) + 40*len(dom.Tags) +
			128*len(dom.Devices) + 256*len(dom.VolumeConfig)
	}
	return n
}

func appendDocument(b []byte, doc *Document) []byte {
	b = append(b, "<qubes>\n"...)

	if len(doc.Labels) == 0 {
		b = append(b, "  <labels/>\n"...)
	} else {
		b = append(b, "  <labels>\n"...)
		for _, l := range doc.Labels {
			b = append(b, `    <label id="`...)
			b = appendAttrValue(b, l.ID)
			b = append(b, `" color="`...)
			b = appendAttrValue(b, l.Color)
			b = append(b, `">`...)
			b = appendText(b, l.Name)
			b = append(b, "</label>\n"...)
		}
		b = append(b, "  </labels>\n"...)
	}

	if len(doc.Pools) == 0 {
		b = append(b, "  <pools/>\n"...)
	} else {
		b = append(b, "  <pools>\n"...)
		for _, p := range doc.Pools {
			b = append(b, "    <pool"...)
			b = appendAttrs(b, p.Attrs)
			b = append(b, "/>\n"...)
		}
		b = append(b, "  </pools>\n"...)
	}

	b = appendProperties(b, "  ", doc.Properties)

	if len(doc.Domains) == 0 {
		b = append(b, "  <domains/>\n"...)
	} else {
		b = append(b, "  <domains>\n"...)
		for i := range doc.Domains {
			b = appendDomain(b, &doc.Domains[i])
		}
		b = append(b, "  </domains>\n"...)
	}
	return append(b, "</qubes>\n"...)
}

func appendProperties(b []byte, indent string, props []Property) []byte {
	b = append(b, indent...)
	if len(props) == 0 {
		return append(b, "<properties/>\n"...)
	}
	b = append(b, "<properties>\n"...)
	for _, p := range props {
		b = append(b, indent...)
		b = append(b, `  <property name="`...)
		b = appendAttrValue(b, p.Name)
		b = append(b, `">`...)
		b = appendText(b, p.Value)
		b = append(b, "</property>\n"...)
	}
	b = append(b, indent...)
	return append(b, "</properties>\n"...)
}

func appendDomain(b []byte, dom *Domain) []byte {
	b = append(b, "    <domain"...)
	if dom.ID != "" {
		b = append(b, ` id="`...)
		b = appendAttrValue(b, dom.ID)
		b = append(b, '"')
	}
	b = append(b, ` class="`...)
	b = appendAttrValue(b, dom.Class)
	b = append(b, "\">\n"...)

	b = appendProperties(b, "      ", dom.Properties)

	if len(dom.Features) == 0 {
		b = append(b, "      <features/>\n"...)
	} else {
		b = append(b, "      <features>\n"...)
		for _, f := range dom.Features {
			b = append(b, `        <feature name="`...)
			b = appendAttrValue(b, f.Name)
			b = append(b, `">`...)
			b = appendText(b, f.Value)
			b = append(b, "</feature>\n"...)
		}
		b = append(b, "      </features>\n"...)
	}

	if len(dom.Tags) == 0 {
		b = append(b, "      <tags/>\n"...)
	} else {
		b = append(b, "      <tags>\n"...)
		for _, t := range dom.Tags {
			b = append(b, `        <tag name="`...)
			b = appendAttrValue(b, t)
			b = append(b, "\"/>\n"...)
		}
		b = append(b, "      </tags>\n"...)
	}

	for _, n := range dom.Devices {
		if n != nil {
			b = appendNode(b, 3, n)
		}
	}

	if dom.HasVolumeConfig {
		if len(dom.VolumeConfig) == 0 {
			b = append(b, "      <volume-config/>\n"...)
		} else {
			b = append(b, "      <volume-config>\n"...)
			for _, v := range dom.VolumeConfig {
				b = append(b, "        <volume"...)
				b = appendAttrs(b, v.Attrs)
				b = append(b, "/>\n"...)
			}
			b = append(b, "      </volume-config>\n"...)
		}
	}
	return append(b, "    </domain>\n"...)
}

func appendIndent(b []byte, level int) []byte {
	for i := 0; i < level; i++ {
		b = append(b, "  "...)
	}
	return b
}

func appendNode(b []byte, level int, n *Node) []byte {
	b = appendIndent(b, level)
	b = append(b, '<')
	b = append(b, n.Name...)
	b = appendAttrs(b, n.Attrs)
	switch {
	case len(n.Children) > 0:
		b = append(b, ">\n"...)
		for _, c := range n.Children {
			if c != nil {
				b = appendNode(b, level+1, c)
			}
		}
		b = appendIndent(b, level)
	case n.HasText || n.Text != "":
		b = append(b, '>')
		b = appendText(b, n.Text)
	default:
		return append(b, "/>\n"...)
	}
	b = append(b, "</"...)
	b = append(b, n.Name...)
	return append(b, ">\n"...)
}

func appendAttrs(b []byte, attrs []Attr) []byte {
	for _, a := range attrs {
		b = append(b, ' ')
		b = append(b, a.Name...)
		b = append(b, `="`...)
		b = appendAttrValue(b, a.Value)
		b = append(b, '"')
	}
	return b
}

// Escape classes of ASCII bytes.
const (
	escNone    = iota
	escText    // escaped in text and attribute values
	escAttr    // escaped in attribute values only
	escInvalid // not allowed in XML, or the start of a multi-byte sequence to check
)

var escClass [256]uint8

func init() {
	for c := 0; c < 0x20; c++ {
		escClass[c] = escInvalid
	}
	for c := 0x80; c < 0x100; c++ {
		escClass[c] = escInvalid
	}
	escClass['&'] = escText
	escClass['<'] = escText
	escClass['>'] = escText
	escClass['\r'] = escText
	escClass['"'] = escAttr
	escClass['\n'] = escAttr
	escClass['\t'] = escAttr
}

// appendText appends s escaped as libxml2 escapes element content.
func appendText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := escClass[s[i]]; c == escText || c == escInvalid {
			return appendEscaped(append(b, s[:i]...), s[i:], false)
		}
	}
	return append(b, s...)
}

// appendAttrValue appends s escaped as libxml2 escapes attribute values.
func appendAttrValue(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if escClass[s[i]] != escNone {
			return appendEscaped(append(b, s[:i]...), s[i:], true)
		}
	}
	return append(b, s...)
}

func appendEscaped(b []byte, s string, attr bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch escClass[c] {
		case escNone:
			b = append(b, c)
			i++
			continue
		case escAttr:
			if !attr {
				b = append(b, c)
				i++
				continue
			}
		}
		switch c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '\r':
			b = append(b, "&#13;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\n':
			b = append(b, "&#10;"...)
		case '\t':
			if attr {
				b = append(b, "&#9;"...)
			} else {
				b = append(b, '\t')
			}
		default:
			if c >= utf8.RuneSelf {
				r, n := utf8.DecodeRuneInString(s[i:])
				if (r == utf8.RuneError && n == 1) || !isXMLChar(r) {
					b = append(b, "\uFFFD"...)
				} else {
					b = append(b, s[i:i+n]...)
				}
				i += n
				continue
			}
			b = append(b, "\uFFFD"...)
		}
		i++
	}
	return b
}

// Check reports names in doc that cannot be written as XML: attribute names
// of pools and volumes and the element and attribute names of device nodes
// must be XML names (at most one ':'), unique within their element. Values
// need no check (see Encode). Store.Save refuses a Document that does not
// pass.
func (doc *Document) Check() error {
	for i, p := range doc.Pools {
		if err := checkAttrs(p.Attrs); err != nil {
			return fmt.Errorf("pool %d (%s): %w", i, attrValue(p.Attrs, "name"), err)
		}
	}
	for i := range doc.Domains {
		dom := &doc.Domains[i]
		for _, n := range dom.Devices {
			if err := checkNode(n); err != nil {
				return fmt.Errorf("domain %s: devices: %w", domainLabel(dom), err)
			}
		}
		for _, v := range dom.VolumeConfig {
			if err := checkAttrs(v.Attrs); err != nil {
				return fmt.Errorf("domain %s: volume %s: %w", domainLabel(dom), attrValue(v.Attrs, "name"), err)
			}
		}
	}
	return nil
}

func domainLabel(dom *Domain) string {
	for _, p := range dom.Properties {
		if p.Name == "name" {
			return fmt.Sprintf("%q", p.Value)
		}
	}
	return fmt.Sprintf("%q", dom.ID)
}

func attrValue(attrs []Attr, name string) string {
	for _, a := range attrs {
		if a.Name == name {
			return a.Value
		}
	}
	return ""
}

func checkAttrs(attrs []Attr) error {
	for i, a := range attrs {
		if !isName(a.Name) {
			return fmt.Errorf("invalid attribute name %q", a.Name)
		}
		for _, o := range attrs[:i] {
			if o.Name == a.Name {
				return fmt.Errorf("attribute %q appears twice", a.Name)
			}
		}
	}
	return nil
}

func checkNode(n *Node) error {
	if n == nil {
		return nil
	}
	if !isName(n.Name) {
		return fmt.Errorf("invalid element name %q", n.Name)
	}
	if err := checkAttrs(n.Attrs); err != nil {
		return fmt.Errorf("<%s>: %w", n.Name, err)
	}
	for _, c := range n.Children {
		if err := checkNode(c); err != nil {
			return fmt.Errorf("<%s>: %w", n.Name, err)
		}
	}
	return nil
}
