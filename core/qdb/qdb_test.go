package qdb

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
)

func TestWriteChecks(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxPath-1) // exactly MaxPath bytes
	tests := []struct {
		name    string
		path    string
		value   []byte
		wantErr string // a part of the message; "" = success
	}{
		{"simple", "/name", []byte("work"), ""},
		{"nested", "/qubes-service/clocksync", []byte("1"), ""},
		{"every allowed character", "/aZ09-_.:@/x", nil, ""},
		{"empty value", "/qubes-block-devices", []byte{}, ""},
		{"nil value", "/qubes-usb-devices", nil, ""},
		{"longest path", long, []byte("x"), ""},
		{"longest value", "/v", make1(MaxValue), ""},
		{"binary value", "/v", []byte{0xff, 0x01, '\n'}, ""},

		{"empty path", "", nil, "is empty"},
		{"relative", "name", nil, "is not absolute"},
		{"path too long", long + "b", nil, "64 bytes long: at most 63"},
		{"space", "/a b", nil, `' ' at byte 2`},
		{"plus", "/a+b", nil, `'+' at byte 2`},
		{"non-ASCII", "/caf\xc3\xa9", nil, "has byte 0xc3 at byte 4"},
		{"control", "/a\nb", nil, "has byte 0x0a at byte 2"},
		{"NUL in path", "/a\x00", nil, "has byte 0x00 at byte 2"},
		{"double slash", "/a//b", nil, "empty component at byte 2"},
		{"trailing slash", "/qubes-service/", nil, `ends with "/"`},
		{"root", "/", nil, `ends with "/"`},
		{"value too long", "/v", make1(MaxValue + 1), "3072 bytes long: at most 3071"},
		{"NUL in value", "/v", []byte("a\x00b"), "NUL byte at 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Registry
			db := r.Open("work")
			err := db.Write(tt.path, tt.value)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Write(%q): %v", tt.path, err)
				}
				v, ok := db.Read(tt.path)
				if !ok || string(v) != string(tt.value) || v == nil {
					t.Errorf("Read(%q) = %q, %v; want %q", tt.path, v, ok, tt.value)
				}
				return
			}
			checkKind(t, err, qerr.ValueError, tt.wantErr)
			if got := db.List(""); len(got) != 0 {
				t.Errorf("a refused write left %v", got)
			}
		})
	}
}

func make1(n int) []byte { return []byte(strings.Repeat("x", n)) }

func checkKind(t *testing.T, err error, kind qerr.Kind, part string) {
	t.Helper()
	var qe *qerr.Error
	if !errors.As(err, &qe) {
		t.Fatalf("error %v (%T) is not a *qerr.Error", err, err)
	}
	if qe.Kind != kind || !strings.Contains(qe.Msg, part) {
		t.Errorf("error %s %q; want %s containing %q", qe.Kind, qe.Msg, kind, part)
	}
}

func TestRemove(t *testing.T) {
	base := []string{"/a", "/a/b", "/a/b/c", "/a/bc", "/ab", "/qubes-firewall/10.137.0.2", "/qubes-firewall/10.137.0.2/0001", "/qubes-firewall/10.137.0.2/policy"}
	tests := []struct {
		name    string
		path    string
		want    []string // what is left
		changed bool     // whether mirrors see a change
		wantErr string
	}{
		{"one entry", "/a", without(base, "/a"), true, ""},
		{"an entry keeps its children", "/a/b", without(base, "/a/b"), true, ""},
		{"subtree", "/a/", []string{"/a", "/ab", "/qubes-firewall/10.137.0.2", "/qubes-firewall/10.137.0.2/0001", "/qubes-firewall/10.137.0.2/policy"}, true, ""},
		{"firewall subtree keeps its done-signal entry", "/qubes-firewall/10.137.0.2/", []string{"/a", "/a/b", "/a/b/c", "/a/bc", "/ab", "/qubes-firewall/10.137.0.2"}, true, ""},
		{"everything", "/", []string{}, true, ""},
		{"missing entry", "/nosuch", base, false, ""},
		{"missing subtree", "/nosuch/", base, false, ""},
		{"a prefix is not an entry", "/a/b/", []string{"/a", "/a/b", "/a/bc", "/ab", "/qubes-firewall/10.137.0.2", "/qubes-firewall/10.137.0.2/0001", "/qubes-firewall/10.137.0.2/policy"}, true, ""},
		{"bad path", "/a b/", base, false, "' ' at byte 2"},
		{"relative", "a/", base, false, "not absolute"},
		{"double slash", "//", base, false, "empty component"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Registry
			db := r.Open("work")
			for _, p := range base {
				if err := db.Write(p, []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			var changes []Change
			_, stop := db.Mirror(func(c Change) { changes = append(changes, c) })
			defer stop()
			err := db.Remove(tt.path)
			if tt.wantErr != "" {
				checkKind(t, err, qerr.ValueError, tt.wantErr)
			} else if err != nil {
				t.Fatalf("Remove(%q): %v", tt.path, err)
			}
			if got := db.List(""); !slices.Equal(got, tt.want) {
				t.Errorf("left %v; want %v", got, tt.want)
			}
			want := []Change(nil)
			if tt.changed {
				want = []Change{{Path: tt.path, Removed: true}}
			}
			if fmt.Sprint(changes) != fmt.Sprint(want) {
				t.Errorf("mirror saw %v; want %v", changes, want)
			}
		})
	}
}

func without(s []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(p string) bool { return p == drop })
}

func TestList(t *testing.T) {
	var r Registry
	db := r.Open("work")
	for _, p := range []string{"/qubes-service/meminfo-writer", "/name", "/qubes-service/clocksync", "/qubes-ip", "/qubes-service/a", "/qubes-servicex"} {
		if err := db.Write(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"/name", "/qubes-ip", "/qubes-service/a", "/qubes-service/clocksync", "/qubes-service/meminfo-writer", "/qubes-servicex"}},
		{"/qubes-service/", []string{"/qubes-service/a", "/qubes-service/clocksync", "/qubes-service/meminfo-writer"}},
		{"/qubes-service", []string{"/qubes-service/a", "/qubes-service/clocksync", "/qubes-service/meminfo-writer", "/qubes-servicex"}},
		{"/name", []string{"/name"}},
		{"/nosuch", []string{}},
	}
	for _, tt := range tests {
		if got := db.List(tt.prefix); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %v; want %v", tt.prefix, got, tt.want)
		}
	}
}

// TestValuesAreCopied: neither the writer's slice nor a reader's copy
// aliases what the DB keeps.
func TestValuesAreCopied(t *testing.T) {
	var r Registry
	db := r.Open("work")
	in := []byte("abc")
	if err := db.Write("/x", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	out, _ := db.Read("/x")
	out[1] = 'Y'
	if v, _ := db.Read("/x"); string(v) != "abc" {
		t.Errorf("stored value changed through a caller's slice: %q", v)
	}
	if _, ok := db.Read("/nosuch"); ok {
		t.Error("Read of a missing path is ok")
	}
}

func TestMirror(t *testing.T) {
	var r Registry
	db := r.Open("sys-net")
	must(t, db.Write("/name", []byte("sys-net")))
	must(t, db.Write("/qubes-firewall/10.137.0.2/policy", []byte("accept")))

	var got []Change
	snap, stop := db.Mirror(func(c Change) { got = append(got, c) })
	if fmt.Sprint(snap) != fmt.Sprint([]Entry{{"/name", []byte("sys-net")}, {"/qubes-firewall/10.137.0.2/policy", []byte("accept")}}) {
		t.Errorf("snapshot %v", snap)
	}
	// the firewall push: rm the subtree, write the rules, then the done signal
	must(t, db.Remove("/qubes-firewall/10.137.0.2/"))
	must(t, db.Write("/qubes-firewall/10.137.0.2/policy", []byte("drop")))
	must(t, db.Write("/qubes-firewall/10.137.0.2", nil))
	want := []Change{
		{Path: "/qubes-firewall/10.137.0.2/", Removed: true},
		{Path: "/qubes-firewall/10.137.0.2/policy", Value: []byte("drop")},
		{Path: "/qubes-firewall/10.137.0.2", Value: []byte{}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes %v; want %v", got, want)
	}

	// a refused write is not a change; after stop, nothing more arrives
	_ = db.Write("/bad path", nil)
	stop()
	stop() // twice is harmless
	must(t, db.Write("/after-stop", nil))
	if len(got) != len(want) {
		t.Errorf("changes after a refused write or stop: %v", got[len(want):])
	}

	// two mirrors both see a change; closing the qube ends both
	var a, b int
	_, stopA := db.Mirror(func(Change) { a++ })
	defer stopA()
	_, _ = db.Mirror(func(Change) { b++ })
	must(t, db.Write("/x", nil))
	r.Close("sys-net")
	_ = db.Write("/y", nil)
	if a != 1 || b != 1 {
		t.Errorf("mirrors saw %d and %d changes; want 1 each", a, b)
	}
	if snap, _ := db.Mirror(func(Change) { t.Error("a closed DB reported a change") }); snap != nil {
		t.Errorf("snapshot of a closed DB: %v", snap)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRegistry(t *testing.T) {
	var r Registry
	if _, ok := r.Get("work"); ok {
		t.Fatal("a qube never started has a DB")
	}
	r.Close("work") // closing what is not open does nothing

	db := r.Open("work")
	if db.Qube() != "work" {
		t.Errorf("Qube() = %q", db.Qube())
	}
	must(t, db.Write("/name", []byte("work")))
	if again := r.Open("work"); again != db {
		t.Error("Open of a running qube made a new DB")
	}
	if got, ok := r.Get("work"); !ok || got != db {
		t.Error("Get does not return the open DB")
	}
	if _, ok := r.Get("personal"); ok {
		t.Error("another qube has a DB")
	}

	r.Close("work")
	if _, ok := r.Get("work"); ok {
		t.Error("a stopped qube still has a DB")
	}
	// a caller still holding the DB of a stopped qube is told so
	tests := []struct {
		name string
		op   func() error
	}{
		{"write", func() error { return db.Write("/x", nil) }},
		{"remove", func() error { return db.Remove("/name") }},
		{"remove subtree", func() error { return db.Remove("/") }},
	}
	for _, tt := range tests {
		checkKind(t, tt.op(), qerr.VMNotRunning, "qube work is not running: its QubesDB exists only while it runs")
	}
	if got := db.List(""); len(got) != 0 {
		t.Errorf("a closed DB still lists %v", got)
	}

	// a restart begins empty
	fresh := r.Open("work")
	if fresh == db || len(fresh.List("")) != 0 {
		t.Error("a restarted qube got its old DB back")
	}
	// the bad path is reported before the stopped qube
	checkKind(t, db.Write("x", nil), qerr.ValueError, "not absolute")
}

// TestConcurrent is for -race: writers, removers, readers, mirrors and the
// lifecycle opening and closing qubes at once.
func TestConcurrent(t *testing.T) {
	var r Registry
	var wg sync.WaitGroup
	for q := range 4 {
		name := fmt.Sprintf("vm%d", q)
		wg.Go(func() {
			for range 50 {
				db := r.Open(name)
				n := 0
				_, stop := db.Mirror(func(Change) { n++ })
				for i := range 20 {
					_ = db.Write(fmt.Sprintf("/d/%d", i), []byte("v"))
				}
				stop()
				r.Close(name)
			}
		})
		for w := range 3 {
			wg.Go(func() {
				for i := range 200 {
					if db, ok := r.Get(name); ok {
						_ = db.Write(fmt.Sprintf("/w%d/%d", w, i%7), []byte("x"))
						_, _ = db.Read("/d/1")
						_ = db.List("/d/")
						if i%5 == 0 {
							_ = db.Remove(fmt.Sprintf("/w%d/", w))
						}
					}
				}
			})
		}
	}
	wg.Wait()
}
