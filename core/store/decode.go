package store

import (
	"fmt"
	"strings"
)

// maxDepth is the deepest element nesting Decode accepts. libxml2, which the
// reference implementation parses qubes.xml with, refuses documents nested
// deeper than 256 levels too; qubes.xml itself never goes beyond 6.
const maxDepth = 256

// DecodeError reports a qubes.xml that is not well-formed XML or that does not
// have the structure of qubes.xml (for example a <domain> without class).
type DecodeError struct {
	Line int    // 1-based line of the offending construct
	Msg  string // what is wrong
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Decode parses the content of qubes.xml.
//
// It accepts what the reference implementation (lxml/libxml2) accepts for
// this file: any indentation, an optional byte order mark, XML declaration
// (version 1.0, encoding UTF-8) and DOCTYPE (without internal subset),
// comments, processing instructions, CDATA sections, the five predefined
// entities and character references. Line ends are normalized and attribute
// values are whitespace-normalized as the XML specification requires.
//
// Records are returned in file order. A property's value is its text up to
// its first child (as lxml's .text), or its non-empty ref attribute (the
// legacy <property name="n" ref="v"/> form). The <devices> elements of a
// domain are kept as generic Node trees. Elements the reference ignores
// (unknown elements under <qubes>, <domain>, <volume-config>, ...) are
// checked for well-formedness and skipped.
//
// Decode is strict about well-formedness: mismatched or unclosed tags,
// unterminated constructs, undefined entities, characters not allowed in XML,
// invalid UTF-8, duplicate attributes and anything but whitespace, comments
// and processing instructions after the root element are errors, so a
// truncated file never decodes. Errors are *DecodeError values that carry
// the line number.
//
// The strings of the returned Document share the memory of one copy of data
// (one allocation instead of one per value).
func Decode(data []byte) (*Document, error) {
	d := &decoder{s: string(data)}
	if err := d.checkChars(); err != nil {
		return nil, err
	}
	if strings.HasPrefix(d.s, "\xef\xbb\xbf") {
		d.pos = 3
	}
	d.docStart = d.pos
	doc := &Document{}
	seenRoot, seenDoctype := false, false
	for {
		k, err := d.next()
		if err != nil {
			return nil, err
		}
		switch k {
		case tokEOF:
			if !seenRoot {
				if strings.TrimLeft(d.s[d.docStart:], " \t\r\n") == "" {
					return nil, d.errAt(len(d.s), "the file is empty (no <qubes> element)")
				}
				return nil, d.errAt(len(d.s), "no <qubes> element in the file")
			}
			return doc, nil
		case tokText:
			if i := firstNonSpace(d.raw); i >= 0 {
				where := "before"
				if seenRoot {
					where = "after"
				}
				return nil, d.errAt(d.tokPos+i, "text %s the root element (only whitespace, comments and processing instructions are allowed there)", where)
			}
		case tokCDATA:
			return nil, d.errAt(d.tokPos, "CDATA section outside the root element")
		case tokComment, tokPI:
		case tokDoctype:
			if seenRoot || seenDoctype {
				return nil, d.errAt(d.tokPos, "DOCTYPE is only allowed once, before the root element")
			}
			seenDoctype = true
		case tokStart:
			if seenRoot {
				return nil, d.errAt(d.tokPos, "second root element <%s> after </qubes> (a file has exactly one root element)", d.name)
			}
			if d.name != "qubes" {
				return nil, d.errAt(d.tokPos, "the root element is <%s>; expected <qubes>", d.name)
			}
			seenRoot = true
			if err := d.qubes(doc); err != nil {
				return nil, err
			}
		case tokEnd:
			return nil, d.errAt(d.tokPos, "closing tag </%s> without an opening tag", d.name)
		}
	}
}

// elem is an element whose content is being read.
type elem struct {
	name string
	pos  int  // offset of its start tag
	done bool // its end tag has been read (or it was self-closed)
}

// open starts reading the content of the element whose start tag was just
// read.
func (d *decoder) open() (elem, error) {
	e := elem{name: d.name, pos: d.tokPos, done: d.empty}
	if !e.done {
		d.depth++
		if d.depth > maxDepth {
			return e, d.errAt(e.pos, "elements are nested more than %d levels deep", maxDepth)
		}
	}
	return e, nil
}

// step reads the next token inside e: text, CDATA, comment, processing
// instruction or the start tag of a child (which the caller must then
// consume, with skip, text, node or open), or tokEnd once e's end tag has
// been read.
func (d *decoder) step(e *elem) (tokKind, error) {
	if e.done {
		return tokEnd, nil
	}
	k, err := d.next()
	if err != nil {
		return k, err
	}
	switch k {
	case tokEnd:
		if d.name != e.name {
			return k, d.errAt(d.tokPos, "closing tag </%s> does not match <%s> opened at line %d", d.name, e.name, d.lineAt(e.pos))
		}
		d.depth--
		e.done = true
	case tokEOF:
		return k, d.errAt(len(d.s), "unexpected end of file: <%s> opened at line %d is not closed (the file is truncated?)", e.name, d.lineAt(e.pos))
	case tokDoctype:
		return k, d.errAt(d.tokPos, "DOCTYPE is only allowed before the root element")
	}
	return k, nil
}

// nextChild advances to the start tag of the next child element of e and
// reports whether there is one; it returns false once e's end tag has been
// read. Text, comments and processing instructions between the children are
// ignored, as the reference does.
func (d *decoder) nextChild(e *elem) (bool, error) {
	for {
		k, err := d.step(e)
		if err != nil {
			return false, err
		}
		switch k {
		case tokStart:
			return true, nil
		case tokEnd:
			return false, nil
		}
	}
}

// skip checks and skips the element whose start tag was just read.
func (d *decoder) skip() error {
	if d.empty {
		return nil
	}
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		k, err := d.step(&e)
		if err != nil {
			return err
		}
		switch k {
		case tokStart:
			if err := d.skip(); err != nil {
				return err
			}
		case tokEnd:
			return nil
		}
	}
}

// text reads the content of the element whose start tag was just read and
// returns its text up to its first child (element, comment or processing
// instruction), as lxml's .text does. Children are checked and skipped.
func (d *decoder) text() (string, error) {
	if d.empty {
		return "", nil
	}
	e, err := d.open()
	if err != nil {
		return "", err
	}
	var acc textAcc
	for {
		k, err := d.step(&e)
		if err != nil {
			return "", err
		}
		switch k {
		case tokText, tokCDATA:
			if !acc.child {
				acc.add(d.textValue(k))
			}
		case tokStart:
			acc.child = true
			if err := d.skip(); err != nil {
				return "", err
			}
		case tokEnd:
			return acc.String(), nil
		default:
			acc.child = true
		}
	}
}

// node reads the element whose start tag was just read as a generic tree.
func (d *decoder) node() (*Node, error) {
	n := &Node{Name: d.name, Attrs: d.copyAttrs()}
	if d.empty {
		return n, nil
	}
	n.HasText = true
	e, err := d.open()
	if err != nil {
		return nil, err
	}
	var acc textAcc
	for {
		k, err := d.step(&e)
		if err != nil {
			return nil, err
		}
		switch k {
		case tokText, tokCDATA:
			if !acc.child {
				acc.add(d.textValue(k))
			}
		case tokStart:
			acc.child = true
			c, err := d.node()
			if err != nil {
				return nil, err
			}
			n.Children = append(n.Children, c)
		case tokEnd:
			if len(n.Children) == 0 {
				n.Text = acc.String()
			}
			return n, nil
		default:
			acc.child = true
		}
	}
}

// qubes reads the content of <qubes>.
func (d *decoder) qubes(doc *Document) error {
	if n := strings.Count(d.s, "<domain "); n > 0 {
		doc.Domains = make([]Domain, 0, n)
	}
	q, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&q)
		if !ok || err != nil {
			return err
		}
		switch d.name {
		case "labels":
			err = d.labels(doc)
		case "pools":
			err = d.pools(doc)
		case "properties":
			doc.Properties, err = d.properties(doc.Properties)
		case "domains":
			err = d.domains(doc)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

// labels reads <labels><label id=".." color="..">name</label>...</labels>.
func (d *decoder) labels(doc *Document) error {
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		if d.name != "label" {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		pos := d.tokPos
		id, hasID := d.attr("id")
		color, hasColor := d.attr("color")
		if !hasID {
			return d.errAt(pos, "<label> has no id attribute")
		}
		if !hasColor {
			return d.errAt(pos, "<label id=%q> has no color attribute", id)
		}
		name, err := d.text()
		if err != nil {
			return err
		}
		doc.Labels = append(doc.Labels, Label{ID: id, Color: color, Name: name})
	}
}

// pools reads <pools><pool .../>...</pools>.
func (d *decoder) pools(doc *Document) error {
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		if d.name == "pool" {
			doc.Pools = append(doc.Pools, Pool{Attrs: d.copyAttrs()})
		}
		if err := d.skip(); err != nil {
			return err
		}
	}
}

// properties reads the <property> children of a <properties> element and
// appends them to props.
func (d *decoder) properties(props []Property) ([]Property, error) {
	e, err := d.open()
	if err != nil {
		return props, err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return props, err
		}
		if d.name != "property" {
			if err := d.skip(); err != nil {
				return props, err
			}
			continue
		}
		pos := d.tokPos
		name, ok := d.attr("name")
		if !ok {
			return props, d.errAt(pos, "<property> has no name attribute")
		}
		ref, _ := d.attr("ref")
		text, err := d.text()
		if err != nil {
			return props, err
		}
		if ref != "" {
			text = ref
		}
		if props == nil {
			props = make([]Property, 0, 8)
		}
		props = append(props, Property{Name: name, Value: text})
	}
}

// domains reads <domains><domain ...>...</domain>...</domains>.
func (d *decoder) domains(doc *Document) error {
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		if d.name != "domain" {
			err = d.skip()
		} else {
			doc.Domains = append(doc.Domains, Domain{})
			err = d.domain(&doc.Domains[len(doc.Domains)-1])
		}
		if err != nil {
			return err
		}
	}
}

// domain reads one <domain> element into dom.
func (d *decoder) domain(dom *Domain) error {
	pos := d.tokPos
	dom.ID, _ = d.attr("id")
	dom.Class, _ = d.attr("class")
	if dom.Class == "" {
		if dom.ID != "" {
			return d.errAt(pos, "<domain id=%q> has no class attribute", dom.ID)
		}
		return d.errAt(pos, "<domain> has no class attribute")
	}
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		switch d.name {
		case "properties":
			dom.Properties, err = d.properties(dom.Properties)
		case "features":
			err = d.features(dom)
		case "tags":
			err = d.tags(dom)
		case "devices":
			var n *Node
			if n, err = d.node(); err == nil {
				dom.Devices = append(dom.Devices, n)
			}
		case "volume-config":
			dom.HasVolumeConfig = true
			err = d.volumes(dom)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

// features reads <features><feature name="k">v</feature>...</features>.
func (d *decoder) features(dom *Domain) error {
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		if d.name != "feature" {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		pos := d.tokPos
		name, ok := d.attr("name")
		if !ok {
			return d.errAt(pos, "<feature> has no name attribute")
		}
		value, err := d.text()
		if err != nil {
			return err
		}
		dom.Features = append(dom.Features, Feature{Name: name, Value: value})
	}
}

// tags reads <tags><tag name="t"/>...</tags>.
func (d *decoder) tags(dom *Domain) error {
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		if d.name == "tag" {
			name, ok := d.attr("name")
			if !ok {
				return d.errAt(d.tokPos, "<tag> has no name attribute")
			}
			if dom.Tags == nil {
				dom.Tags = make([]string, 0, 4)
			}
			dom.Tags = append(dom.Tags, name)
		}
		if err := d.skip(); err != nil {
			return err
		}
	}
}

// volumes reads <volume-config><volume .../>...</volume-config>.
func (d *decoder) volumes(dom *Domain) error {
	e, err := d.open()
	if err != nil {
		return err
	}
	for {
		ok, err := d.nextChild(&e)
		if !ok || err != nil {
			return err
		}
		if d.name == "volume" {
			if dom.VolumeConfig == nil {
				dom.VolumeConfig = make([]Volume, 0, 4)
			}
			dom.VolumeConfig = append(dom.VolumeConfig, Volume{Attrs: d.copyAttrs()})
		}
		if err := d.skip(); err != nil {
			return err
		}
	}
}

// textAcc collects the text pieces of one element.
type textAcc struct {
	first string
	more  []byte
	n     int
	child bool // a child has been seen; text after it is not the element's text
}

func (a *textAcc) add(s string) {
	switch a.n {
	case 0:
		a.first = s
	case 1:
		a.more = append(append(a.more, a.first...), s...)
	default:
		a.more = append(a.more, s...)
	}
	a.n++
}

func (a *textAcc) String() string {
	if a.n > 1 {
		return string(a.more)
	}
	return a.first
}
