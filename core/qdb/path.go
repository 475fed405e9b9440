package qdb

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/qubesgo/qubesd/core/qerr"
)

// The limits and the path alphabet are QubesDB's own, read in
// QubesOS/qubes-core-qubesdb (version 4.3.3, commit aeb3c8d):
//
//   - include/qubesdb.h: QDB_MAX_PATH 64, QDB_MAX_DATA 3072. The path field
//     of the wire header is char[QDB_MAX_PATH] and holds the terminating
//     NUL, so daemon/db-cmds.c verify_path refuses strlen(path) >=
//     QDB_MAX_PATH: a path has at most 63 bytes.
//   - daemon/db-cmds.c verify_hdr refuses data_len >= QDB_MAX_DATA for
//     every command it receives, so the daemon stores at most 3071 bytes
//     (the client library's qdb_write lets 3072 through, and the daemon
//     then refuses it). verify_data refuses a NUL byte in a value.
//   - verify_path allows only [a-zA-Z0-9_./:@-] (a leading "-" aside,
//     which our leading "/" rules out); daemon/db-core.c qubesdb_insert
//     requires a leading "/" and refuses a trailing "/" for a write;
//     qubesdb_remove treats a trailing "/" as "the whole directory".
//   - include/qubesdb-client.h states the same rules in prose.
//
// One rule is ours, not QubesDB's: we refuse an empty component ("//"),
// which QubesDB accepts. No writer in the reference makes one; a path with
// one is a mistake (a doubled separator from joining), better caught here
// than shipped to the qube.
const (
	// MaxPath is the longest path, in bytes.
	MaxPath = 63
	// MaxValue is the longest value, in bytes.
	MaxValue = 3071
)

const pathAlphabet = `a-z A-Z 0-9 and - _ . : @ /`

// checkPath reports whether path may be written (dir false) or removed
// (dir true: a trailing "/" names a subtree).
func checkPath(path string, dir bool) error {
	switch {
	case path == "":
		return qerr.New(qerr.ValueError, "QubesDB path is empty: a path is absolute, it starts with \"/\"")
	case path[0] != '/':
		return qerr.New(qerr.ValueError, "QubesDB path %s is not absolute: a path starts with \"/\"", show(path))
	case len(path) > MaxPath:
		return qerr.New(qerr.ValueError, "QubesDB path %s is %d bytes long: at most %d are allowed", show(path), len(path), MaxPath)
	}
	for i := 0; i < len(path); i++ {
		if !pathByte(path[i]) {
			return qerr.New(qerr.ValueError, "QubesDB path %s has %s at byte %d: a path is made of %s", show(path), char(path[i]), i, pathAlphabet)
		}
	}
	if i := strings.Index(path, "//"); i >= 0 {
		return qerr.New(qerr.ValueError, "QubesDB path %s has an empty component at byte %d: components are separated by a single \"/\"", show(path), i)
	}
	if !dir && strings.HasSuffix(path, "/") {
		return qerr.New(qerr.ValueError, "QubesDB path %s ends with \"/\": a written path names an entry; only a removal takes a directory", show(path))
	}
	return nil
}

func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_./:@", c) >= 0
}

func checkValue(path string, value []byte) error {
	if len(value) > MaxValue {
		return qerr.New(qerr.ValueError, "value for QubesDB path %q is %d bytes long: at most %d are allowed", path, len(value), MaxValue)
	}
	if i := bytes.IndexByte(value, 0); i >= 0 {
		return qerr.New(qerr.ValueError, "value for QubesDB path %q has a NUL byte at %d: QubesDB values cannot contain NUL bytes", path, i)
	}
	return nil
}

// char names a refused byte: quoted when printable, in hex otherwise.
func char(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// show quotes an untrusted path for a message, cut to a readable length.
func show(path string) string {
	const max = 2 * MaxPath
	if len(path) > max {
		return fmt.Sprintf("%q...", path[:max])
	}
	return fmt.Sprintf("%q", path)
}
