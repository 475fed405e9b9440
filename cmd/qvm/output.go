package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"
)

// formatTable lays rows out as the Python tools do through `column -t`:
// every column but the last is padded to its widest cell, and columns are
// separated by two spaces. An empty table prints nothing.
func formatTable(rows [][]string) string {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			b.WriteString(cell)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// jsonField is one member of a jsonObject.
type jsonField struct {
	Key   string
	Value any
}

// jsonObject is a JSON object whose members keep their order.
type jsonObject []jsonField

// MarshalJSON writes the members in order.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// writeJSON writes v indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// addOutputFlag registers --format/-o for the listing commands that have no
// such option in the Python tools.
func addOutputFlag(fs *pflag.FlagSet, format *string) {
	fs.StringVarP(format, "format", "o", "text", "output format of listings: text or json")
}

func checkOutputFormat(format string) error {
	if format != "text" && format != "json" {
		return usageErrorf("invalid output format %q (choose text or json)", format)
	}
	return nil
}

// typedValue returns a property value as JSON: bools and ints as such,
// empty values as null, anything else as a string.
func typedValue(typ, value string) any {
	if value == "" && typ != "str" {
		return nil
	}
	switch typ {
	case "bool":
		switch value {
		case "True":
			return true
		case "False":
			return false
		}
	case "int":
		if _, err := strconv.ParseInt(value, 10, 64); err == nil {
			return json.Number(value)
		}
	}
	return value
}

// wrapText fills text into lines of at most width characters, as Python's
// textwrap.fill does (without breaking on hyphens): the first line is
// prefixed with first, the others with rest; whitespace at line ends is
// dropped; words longer than a line are cut.
func wrapText(text string, width int, first, rest string) string {
	text = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' {
			return ' '
		}
		return r
	}, text)
	var chunks []string
	for len(text) > 0 {
		n := strings.IndexFunc(text, func(r rune) bool { return (r == ' ') != (text[0] == ' ') })
		if n < 0 {
			n = len(text)
		}
		chunks = append(chunks, text[:n])
		text = text[n:]
	}
	isSpace := func(s string) bool { return strings.TrimSpace(s) == "" }
	var lines []string
	for len(chunks) > 0 {
		indent := rest
		if len(lines) == 0 {
			indent = first
		}
		avail := width - utf8.RuneCountInString(indent)
		if len(lines) > 0 && isSpace(chunks[0]) {
			chunks = chunks[1:]
		}
		var cur []string
		curLen := 0
		for len(chunks) > 0 {
			l := utf8.RuneCountInString(chunks[0])
			if curLen+l > avail {
				break
			}
			cur = append(cur, chunks[0])
			curLen += l
			chunks = chunks[1:]
		}
		if len(chunks) > 0 && utf8.RuneCountInString(chunks[0]) > avail {
			left := max(avail-curLen, 1)
			r := []rune(chunks[0])
			cur = append(cur, string(r[:left]))
			chunks[0] = string(r[left:])
		}
		if len(cur) > 0 && isSpace(cur[len(cur)-1]) {
			cur = cur[:len(cur)-1]
		}
		if len(cur) > 0 {
			lines = append(lines, indent+strings.Join(cur, ""))
		}
	}
	return strings.Join(lines, "\n")
}
