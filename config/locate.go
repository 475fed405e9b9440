package config

import (
	"strings"

	"github.com/BurntSushi/toml"
)

// locator finds the line that defines a key. BurntSushi/toml keeps key
// positions to itself, so the locator reads the file line by line: table
// headers set the current table, "key = value" lines define current+key.
// It is used only to point at errors; for the rare key it cannot place
// (a key defined inside a multi-line array, say) it answers 0.
type locator struct {
	data    []byte
	scanned bool
	entries []locEntry
}

type locEntry struct {
	line   int
	key    toml.Key // the table a header opens, or the full key a line sets
	header bool
}

func newLocator(data []byte) *locator { return &locator{data: data} }

// line returns the 1-based line that first defines key (or, for a table
// defined implicitly, a key inside it), or the line of an inline table
// holding it. For a key the file does not set (a missing required key) it
// returns the line of the closest table that is set, else 0.
func (l *locator) line(key toml.Key) int {
	if !l.scanned {
		l.scan()
		l.scanned = true
	}
	for ; len(key) > 0; key = key[:len(key)-1] {
		if n := l.find(key); n > 0 {
			return n
		}
	}
	return 0
}

func (l *locator) find(key toml.Key) int {
	for _, e := range l.entries {
		// A header places the key when it opens the key's table or one
		// inside it; a key/value line also when its value is an inline
		// table holding the key.
		if hasPrefix(e.key, key) || (!e.header && hasPrefix(key, e.key)) {
			return e.line
		}
	}
	return 0
}

func (l *locator) scan() {
	var table toml.Key
	inMultiline := false
	for i, text := range strings.Split(string(l.data), "\n") {
		wasMultiline := inMultiline
		if (strings.Count(text, `"""`)+strings.Count(text, `'''`))%2 == 1 {
			inMultiline = !inMultiline
		}
		if wasMultiline {
			continue
		}
		t := strings.TrimSpace(text)
		switch {
		case t == "" || t[0] == '#':
			continue
		case t[0] == '[':
			k := longestKey(t)
			if k == nil {
				continue
			}
			table = k
			l.entries = append(l.entries, locEntry{line: i + 1, key: k, header: true})
		default:
			eq := assignment(t)
			if eq < 0 {
				continue
			}
			k := longestKey(t[:eq] + "= 0")
			if k == nil {
				continue
			}
			full := append(append(toml.Key{}, table...), k...)
			l.entries = append(l.entries, locEntry{line: i + 1, key: full})
		}
	}
}

// longestKey parses one line of TOML on its own and returns the longest key
// it defines, or nil.
func longestKey(line string) toml.Key {
	var v map[string]any
	md, err := toml.Decode(line, &v)
	if err != nil {
		return nil
	}
	var best toml.Key
	for _, k := range md.Keys() {
		if len(k) > len(best) {
			best = k
		}
	}
	return best
}

// assignment returns the index of the "=" of a key/value line, skipping
// quoted keys, or -1.
func assignment(t string) int {
	var quote byte
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		case c == '#':
			return -1
		}
	}
	return -1
}

// hasPrefix reports whether prefix is a non-empty leading part of key.
func hasPrefix(key, prefix toml.Key) bool {
	if len(prefix) == 0 || len(prefix) > len(key) {
		return false
	}
	for i := range prefix {
		if key[i] != prefix[i] {
			return false
		}
	}
	return true
}
