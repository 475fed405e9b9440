package store

// This file is the tokenizer under Decode: a strict scanner for the subset
// of XML 1.0 that qubes.xml can contain.

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tokEOF     tokKind = iota
	tokStart           // d.name, d.attrs, d.empty
	tokEnd             // d.name
	tokText            // d.raw (undecoded), d.rawEsc
	tokCDATA           // d.raw, d.rawEsc
	tokComment         //
	tokPI              // d.name is the target
	tokDoctype         //
)

type rawAttr struct {
	name  string
	value string // as written, between the quotes
	esc   bool   // value has references or whitespace to normalize
}

// decoder is a strict scanner for the subset of XML 1.0 that can appear in
// qubes.xml (everything but DTD internal subsets), plus the tree builder on
// top of it. All names and values are substrings of s or, when they contain
// references, freshly built strings.
type decoder struct {
	s        string
	pos      int
	docStart int // after the byte order mark
	depth    int

	// the last token
	tokPos int
	name   string
	empty  bool
	attrs  []rawAttr
	raw    string
	rawEsc bool

	buf []byte // scratch space for unescaping
}

func (d *decoder) lineAt(off int) int {
	if off > len(d.s) {
		off = len(d.s)
	}
	return 1 + strings.Count(d.s[:off], "\n")
}

func (d *decoder) errAt(off int, format string, args ...any) error {
	return &DecodeError{Line: d.lineAt(off), Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) eof(what string) error {
	return d.errAt(len(d.s), "unexpected end of file in %s (the file is truncated?)", what)
}

func (d *decoder) eofIn(format, name string) error {
	return d.eof(fmt.Sprintf(format, name))
}

// checkChars rejects invalid UTF-8 and characters that XML 1.0 does not
// allow anywhere in a document (control characters, U+FFFE, U+FFFF,
// surrogates).
func (d *decoder) checkChars() error {
	s := d.s
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for i := 0; i < len(s); {
		// Fast path: 8 ASCII bytes, none below 0x20.
		if i+8 <= len(s) {
			x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if (x|(x-0x20*lo))&hi == 0 {
				i += 8
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return d.errAt(i, "character %U is not allowed in XML", rune(c))
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return d.errAt(i, "invalid UTF-8 (byte 0x%02x); qubes.xml must be UTF-8", c)
		}
		if !isXMLChar(r) {
			return d.errAt(i, "character %U is not allowed in XML", r)
		}
		i += n
	}
	return nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r'
}

func skipSpace(s string, p int) int {
	for p < len(s) && isSpaceByte(s[p]) {
		p++
	}
	return p
}

// firstNonSpace returns the index of the first non-whitespace byte of s, or
// -1.
func firstNonSpace(s string) int {
	for i := 0; i < len(s); i++ {
		if !isSpaceByte(s[i]) {
			return i
		}
	}
	return -1
}

// next reads the next token.
func (d *decoder) next() (tokKind, error) {
	s, p := d.s, d.pos
	d.tokPos = p
	if p >= len(s) {
		return tokEOF, nil
	}
	if s[p] != '<' {
		return tokText, d.scanText()
	}
	if p+1 >= len(s) {
		return 0, d.eof("markup")
	}
	switch s[p+1] {
	case '/':
		return tokEnd, d.scanEndTag()
	case '?':
		return tokPI, d.scanPI()
	case '!':
		rest := s[p+2:]
		switch {
		case strings.HasPrefix(rest, "--"):
			return tokComment, d.scanComment()
		case strings.HasPrefix(rest, "[CDATA["):
			return tokCDATA, d.scanCDATA()
		case strings.HasPrefix(rest, "DOCTYPE"):
			return tokDoctype, d.scanDoctype()
		}
		for _, m := range []string{"--", "[CDATA[", "DOCTYPE"} {
			if len(rest) < len(m) && strings.HasPrefix(m, rest) {
				return 0, d.eof("markup")
			}
		}
		return 0, d.errAt(p, "unknown markup \"<!\" (expected a comment <!--, a CDATA section <![CDATA[ or <!DOCTYPE)")
	default:
		return tokStart, d.scanStartTag()
	}
}

// scanText reads character data up to the next '<', checking its references.
func (d *decoder) scanText() error {
	s, p := d.s, d.pos
	end := strings.IndexByte(s[p:], '<')
	if end < 0 {
		end = len(s)
	} else {
		end += p
	}
	t := s[p:end]
	d.raw, d.rawEsc = t, false
	if i := strings.IndexByte(t, '&'); i >= 0 {
		d.rawEsc = true
		if err := d.checkRefs(p, i); err != nil {
			return err
		}
	}
	if strings.IndexByte(t, '\r') >= 0 {
		d.rawEsc = true
	}
	if i := strings.Index(t, "]]>"); i >= 0 {
		return d.errAt(p+i, "\"]]>\" is not allowed in text (write ]]&gt;)")
	}
	d.pos = end
	return nil
}

// checkRefs checks every reference in s[start:start+len(d.raw)], the first
// '&' being at offset i of it.
func (d *decoder) checkRefs(start, i int) error {
	t := d.raw
	for i >= 0 && i < len(t) {
		_, n, msg := parseRef(t[i:])
		if msg != "" {
			return d.errAt(start+i, "%s", msg)
		}
		i += n
		j := strings.IndexByte(t[i:], '&')
		if j < 0 {
			break
		}
		i += j
	}
	return nil
}

// maxRefLen bounds the length of "&...;" looked at; longer references are
// not valid (no entity name or character number needs that many bytes).
const maxRefLen = 40

// parseRef parses the reference at the start of s (s[0] == '&'): one of the
// five predefined entities or a character reference. It returns the
// character, the length of the reference, or a message saying what is wrong.
func parseRef(s string) (r rune, n int, msg string) {
	lim := s[1:]
	if len(lim) > maxRefLen {
		lim = lim[:maxRefLen]
	}
	semi := strings.IndexByte(lim, ';')
	if semi < 0 {
		return 0, 0, "'&' does not start a reference such as &amp; or &#38; (an unescaped '&'?)"
	}
	body := lim[:semi]
	n = semi + 2
	if strings.HasPrefix(body, "#") {
		digits, base := body[1:], rune(10)
		if strings.HasPrefix(digits, "x") {
			digits, base = digits[1:], 16
		}
		if digits == "" {
			return 0, 0, fmt.Sprintf("invalid character reference &%s;", body)
		}
		for i := 0; i < len(digits); i++ {
			c := digits[i]
			var v rune
			switch {
			case c >= '0' && c <= '9':
				v = rune(c - '0')
			case base == 16 && c >= 'a' && c <= 'f':
				v = rune(c-'a') + 10
			case base == 16 && c >= 'A' && c <= 'F':
				v = rune(c-'A') + 10
			default:
				return 0, 0, fmt.Sprintf("invalid character reference &%s;", body)
			}
			r = r*base + v
			if r > utf8.MaxRune {
				return 0, 0, fmt.Sprintf("character reference &%s; is out of range", body)
			}
		}
		if !isXMLChar(r) {
			return 0, 0, fmt.Sprintf("character reference &%s; refers to %U, which is not allowed in XML", body, r)
		}
		return r, n, ""
	}
	switch body {
	case "amp":
		return '&', n, ""
	case "lt":
		return '<', n, ""
	case "gt":
		return '>', n, ""
	case "quot":
		return '"', n, ""
	case "apos":
		return '\'', n, ""
	}
	if isName(body) {
		return 0, 0, fmt.Sprintf("undefined entity &%s; (only &amp; &lt; &gt; &quot; &apos; and character references are defined)", body)
	}
	return 0, 0, "'&' does not start a reference such as &amp; or &#38; (an unescaped '&'?)"
}

// Text modes for unescape.
const (
	modeText  = iota // character data: references, line ends
	modeCDATA        // CDATA section: line ends only
	modeAttr         // attribute value: references, whitespace normalization
)

// unescape decodes raw, which has been checked already.
func (d *decoder) unescape(raw string, mode int) string {
	b := d.buf[:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '&' && mode != modeCDATA:
			r, n, _ := parseRef(raw[i:])
			b = utf8.AppendRune(b, r)
			i += n
			continue
		case c == '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			c = '\n'
			if mode == modeAttr {
				c = ' '
			}
		case (c == '\n' || c == '\t') && mode == modeAttr:
			c = ' '
		}
		b = append(b, c)
		i++
	}
	d.buf = b
	return string(b)
}

// textValue returns the decoded value of the text or CDATA token just read.
func (d *decoder) textValue(k tokKind) string {
	if !d.rawEsc {
		return d.raw
	}
	if k == tokCDATA {
		return d.unescape(d.raw, modeCDATA)
	}
	return d.unescape(d.raw, modeText)
}

// attr returns the decoded value of the attribute name of the start tag just
// read.
func (d *decoder) attr(name string) (string, bool) {
	for i := range d.attrs {
		a := &d.attrs[i]
		if a.name == name {
			if a.esc {
				return d.unescape(a.value, modeAttr), true
			}
			return a.value, true
		}
	}
	return "", false
}

// copyAttrs returns the decoded attributes of the start tag just read, nil
// if it has none.
func (d *decoder) copyAttrs() []Attr {
	if len(d.attrs) == 0 {
		return nil
	}
	out := make([]Attr, len(d.attrs))
	for i, a := range d.attrs {
		v := a.value
		if a.esc {
			v = d.unescape(v, modeAttr)
		}
		out[i] = Attr{Name: a.name, Value: v}
	}
	return out
}

// scanName reads an XML name at p. Names with more than one ':' are
// rejected (they are not valid qualified names, and encoding/xml refuses
// them too).
//
// what describes the expected name for error messages, elem (if not empty)
// the element the name is in; the message is only built when needed.
func (d *decoder) scanName(p int, what, elem string) (string, int, error) {
	s := d.s
	start := p
	if p >= len(s) {
		return "", p, d.eof(inElem(what, elem))
	}
	if c := s[p]; c < utf8.RuneSelf {
		if !nameStartASCII[c] {
			return "", p, d.errAt(p, "expected %s, found %q", inElem(what, elem), c)
		}
		p++
	} else {
		r, n := utf8.DecodeRuneInString(s[p:])
		if !isNameStartRune(r) {
			return "", p, d.errAt(p, "expected %s, found %q", inElem(what, elem), r)
		}
		p += n
	}
	for p < len(s) {
		c := s[p]
		if c < utf8.RuneSelf {
			if !nameASCII[c] {
				break
			}
			p++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[p:])
		if !isNameRune(r) {
			break
		}
		p += n
	}
	name := s[start:p]
	if i := strings.IndexByte(name, ':'); i >= 0 && strings.IndexByte(name[i+1:], ':') >= 0 {
		return "", p, d.errAt(start, "invalid name %q: more than one ':'", name)
	}
	return name, p, nil
}

func inElem(what, elem string) string {
	if elem == "" {
		return what
	}
	return what + " in <" + elem + ">"
}

// scanStartTag reads <name attr="value" ...> or <name .../>.
func (d *decoder) scanStartTag() error {
	s := d.s
	name, p, err := d.scanName(d.pos+1, "an element name after '<'", "")
	if err != nil {
		return err
	}
	d.name = name
	d.attrs = d.attrs[:0]
	for {
		q := skipSpace(s, p)
		if q >= len(s) {
			return d.eofIn("the start tag <%s>", name)
		}
		switch s[q] {
		case '>':
			d.empty = false
			d.pos = q + 1
			return nil
		case '/':
			if q+1 >= len(s) {
				return d.eofIn("the start tag <%s>", name)
			}
			if s[q+1] != '>' {
				return d.errAt(q, "expected '>' after '/' in <%s>", name)
			}
			d.empty = true
			d.pos = q + 2
			return nil
		}
		if q == p {
			return d.errAt(q, "unexpected %q in the start tag <%s> (missing whitespace between attributes?)", s[q], name)
		}
		aname, q, err := d.scanName(q, "an attribute name or '>'", name)
		if err != nil {
			return err
		}
		q = skipSpace(s, q)
		if q >= len(s) {
			return d.eofIn("the start tag <%s>", name)
		}
		if s[q] != '=' {
			return d.errAt(q, "attribute %s of <%s> has no value (expected '=')", aname, name)
		}
		q = skipSpace(s, q+1)
		if q >= len(s) {
			return d.eofIn("the start tag <%s>", name)
		}
		quote := s[q]
		if quote != '"' && quote != '\'' {
			return d.errAt(q, "the value of attribute %s of <%s> must be quoted", aname, name)
		}
		vs := q + 1
		ve := strings.IndexByte(s[vs:], quote)
		if ve < 0 {
			return d.eofIn("the value of an attribute of <%s>", name)
		}
		ve += vs
		v := s[vs:ve]
		esc := false
		for i := 0; i < len(v); i++ {
			switch v[i] {
			case '<':
				return d.errAt(vs+i, "'<' in the value of attribute %s of <%s> (write &lt;, or is the quote missing?)", aname, name)
			case '&':
				if _, _, msg := parseRef(v[i:]); msg != "" {
					return d.errAt(vs+i, "%s", msg)
				}
				esc = true
			case '\t', '\n', '\r':
				esc = true
			}
		}
		for i := range d.attrs {
			if d.attrs[i].name == aname {
				return d.errAt(q, "attribute %s appears twice in <%s>", aname, name)
			}
		}
		d.attrs = append(d.attrs, rawAttr{name: aname, value: v, esc: esc})
		p = ve + 1
	}
}

// scanEndTag reads </name >.
func (d *decoder) scanEndTag() error {
	name, p, err := d.scanName(d.pos+2, "an element name after '</'", "")
	if err != nil {
		return err
	}
	p = skipSpace(d.s, p)
	if p >= len(d.s) {
		return d.eofIn("the closing tag </%s>", name)
	}
	if d.s[p] != '>' {
		return d.errAt(p, "unexpected %q in the closing tag </%s>", d.s[p], name)
	}
	d.name = name
	d.pos = p + 1
	return nil
}

// scanComment reads <!-- ... -->.
func (d *decoder) scanComment() error {
	s := d.s
	p := d.pos + 4
	i := strings.Index(s[p:], "--")
	if i < 0 {
		return d.eof("a comment")
	}
	i += p
	if i+2 >= len(s) {
		return d.eof("a comment")
	}
	if s[i+2] != '>' {
		return d.errAt(i, "\"--\" is not allowed inside a comment")
	}
	d.pos = i + 3
	return nil
}

// scanCDATA reads <![CDATA[ ... ]]>.
func (d *decoder) scanCDATA() error {
	s := d.s
	p := d.pos + len("<![CDATA[")
	i := strings.Index(s[p:], "]]>")
	if i < 0 {
		return d.eof("a CDATA section")
	}
	d.raw = s[p : p+i]
	d.rawEsc = strings.IndexByte(d.raw, '\r') >= 0
	d.pos = p + i + 3
	return nil
}

// scanPI reads a processing instruction <?target ...?>, or the XML
// declaration when at the start of the file.
func (d *decoder) scanPI() error {
	s := d.s
	start := d.pos
	target, p, err := d.scanName(start+2, "a processing instruction target after '<?'", "")
	if err != nil {
		return err
	}
	d.name = target
	if strings.EqualFold(target, "xml") {
		if start != d.docStart || target != "xml" {
			return d.errAt(start, "XML declaration <?xml ...?> is only allowed at the very start of the file")
		}
		return d.scanXMLDecl(p)
	}
	if strings.HasPrefix(s[p:], "?>") {
		d.pos = p + 2
		return nil
	}
	if p >= len(s) {
		return d.eof("a processing instruction")
	}
	if !isSpaceByte(s[p]) {
		return d.errAt(p, "unexpected %q after the processing instruction target %s", s[p], target)
	}
	i := strings.Index(s[p:], "?>")
	if i < 0 {
		return d.eof("a processing instruction")
	}
	d.pos = p + i + 2
	return nil
}

// scanXMLDecl reads the rest of <?xml version="1.0" encoding="UTF-8"
// standalone="yes"?> from p (after "<?xml").
func (d *decoder) scanXMLDecl(p int) error {
	s := d.s
	order := []string{"version", "encoding", "standalone"}
	seen := 0 // index in order of the next allowed pseudo-attribute
	for {
		q := skipSpace(s, p)
		if q >= len(s) {
			return d.eof("the XML declaration")
		}
		if strings.HasPrefix(s[q:], "?>") {
			if seen == 0 {
				return d.errAt(q, "the XML declaration has no version")
			}
			d.pos = q + 2
			return nil
		}
		if q == p {
			return d.errAt(q, "unexpected %q in the XML declaration", s[q])
		}
		name, r, err := d.scanName(q, "version, encoding or standalone in the XML declaration", "")
		if err != nil {
			return err
		}
		idx := -1
		for i := seen; i < len(order); i++ {
			if order[i] == name {
				idx = i
				break
			}
		}
		if idx < 0 || (seen == 0 && idx != 0) {
			return d.errAt(q, "unexpected %q in the XML declaration (expected version, then optionally encoding and standalone)", name)
		}
		seen = idx + 1
		r = skipSpace(s, r)
		if r >= len(s) {
			return d.eof("the XML declaration")
		}
		if s[r] != '=' {
			return d.errAt(r, "expected '=' after %s in the XML declaration", name)
		}
		r = skipSpace(s, r+1)
		if r >= len(s) {
			return d.eof("the XML declaration")
		}
		quote := s[r]
		if quote != '"' && quote != '\'' {
			return d.errAt(r, "the %s in the XML declaration must be quoted", name)
		}
		e := strings.IndexByte(s[r+1:], quote)
		if e < 0 {
			return d.eof("the XML declaration")
		}
		v := s[r+1 : r+1+e]
		switch name {
		case "version":
			if v != "1.0" {
				return d.errAt(r, "XML version %q is not supported; qubes.xml is XML 1.0", v)
			}
		case "encoding":
			if !strings.EqualFold(v, "utf-8") {
				return d.errAt(r, "encoding %q is not supported; qubes.xml must be UTF-8", v)
			}
		case "standalone":
			if v != "yes" && v != "no" {
				return d.errAt(r, "standalone must be \"yes\" or \"no\", not %q", v)
			}
		}
		p = r + 2 + e
	}
}

// scanDoctype reads <!DOCTYPE name [SYSTEM "..." | PUBLIC "..." "..."]>.
// Internal subsets ([...]) are refused: they could define entities, and
// qubes.xml never has one.
func (d *decoder) scanDoctype() error {
	s := d.s
	p := d.pos + len("<!DOCTYPE")
	if p >= len(s) {
		return d.eof("the DOCTYPE")
	}
	if !isSpaceByte(s[p]) {
		return d.errAt(p, "expected whitespace after <!DOCTYPE")
	}
	_, p, err := d.scanName(skipSpace(s, p), "the root element name in the DOCTYPE", "")
	if err != nil {
		return err
	}
	literal := func(p int) (int, error) {
		if p >= len(s) {
			return p, d.eof("the DOCTYPE")
		}
		q := s[p]
		if q != '"' && q != '\'' {
			return p, d.errAt(p, "expected a quoted identifier in the DOCTYPE")
		}
		e := strings.IndexByte(s[p+1:], q)
		if e < 0 {
			return p, d.eof("the DOCTYPE")
		}
		return p + 2 + e, nil
	}
	q := skipSpace(s, p)
	if q > p {
		var ids int
		switch {
		case strings.HasPrefix(s[q:], "SYSTEM"):
			q, ids = q+len("SYSTEM"), 1
		case strings.HasPrefix(s[q:], "PUBLIC"):
			q, ids = q+len("PUBLIC"), 2
		}
		for i := 0; i < ids; i++ {
			r := skipSpace(s, q)
			if r == q && r < len(s) {
				return d.errAt(r, "expected whitespace before the identifier in the DOCTYPE")
			}
			if q, err = literal(r); err != nil {
				return err
			}
		}
		q = skipSpace(s, q)
	}
	if q >= len(s) {
		return d.eof("the DOCTYPE")
	}
	switch s[q] {
	case '>':
		d.pos = q + 1
		return nil
	case '[':
		return d.errAt(q, "DOCTYPE with an internal subset is not supported in qubes.xml")
	}
	return d.errAt(q, "unexpected %q in the DOCTYPE", s[q])
}

// --- names (XML 1.0 fifth edition) ---

var nameStartASCII, nameASCII [utf8.RuneSelf]bool

func init() {
	for c := 0; c < utf8.RuneSelf; c++ {
		b := byte(c)
		start := b == ':' || b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		nameStartASCII[c] = start
		nameASCII[c] = start || b == '-' || b == '.' || b >= '0' && b <= '9'
	}
}

func isNameStartRune(r rune) bool {
	if r < utf8.RuneSelf {
		return nameStartASCII[r]
	}
	return r >= 0xC0 && r <= 0xD6 || r >= 0xD8 && r <= 0xF6 || r >= 0xF8 && r <= 0x2FF ||
		r >= 0x370 && r <= 0x37D || r >= 0x37F && r <= 0x1FFF || r >= 0x200C && r <= 0x200D ||
		r >= 0x2070 && r <= 0x218F || r >= 0x2C00 && r <= 0x2FEF || r >= 0x3001 && r <= 0xD7FF ||
		r >= 0xF900 && r <= 0xFDCF || r >= 0xFDF0 && r <= 0xFFFD || r >= 0x10000 && r <= 0xEFFFF
}

func isNameRune(r rune) bool {
	if r < utf8.RuneSelf {
		return nameASCII[r]
	}
	return isNameStartRune(r) || r == 0xB7 || r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040
}

// isName reports whether s is an XML name (with at most one ':').
func isName(s string) bool {
	if s == "" {
		return false
	}
	colons := 0
	for i, r := range s {
		if r == utf8.RuneError {
			return false
		}
		if i == 0 && !isNameStartRune(r) || !isNameRune(r) {
			return false
		}
		if r == ':' {
			colons++
		}
	}
	return colons <= 1
}
