package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/qdb"
	"github.com/qubesgo/qubesd/core/vmm"
)

// unescape reverses appendEscaped, as printf's %b does.
func unescape(s []byte) ([]byte, error) {
	var out bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out.WriteByte(s[i])
			continue
		}
		oct := func(c byte) bool { return '0' <= c && c <= '7' }
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out.WriteByte('\\')
			i++
		case i+4 < len(s) && s[i+1] == '0' && oct(s[i+2]) && oct(s[i+3]) && oct(s[i+4]):
			out.WriteByte((s[i+2]-'0')<<6 | (s[i+3]-'0')<<3 | (s[i+4] - '0'))
			i += 4
		default:
			return nil, fmt.Errorf("malformed escape at byte %d of %q", i, s)
		}
	}
	return out.Bytes(), nil
}

var encodeCases = []struct {
	name  string
	path  string
	value string
	line  string
}{
	{"plain", "/name", "work", "W /name work\n"},
	{"empty", "/qubes-block-devices", "", "W /qubes-block-devices \n"},
	{"spaces kept", "/a", "  two  spaces  ", "W /a   two  spaces  \n"},
	{"backslash", "/a", `C:\dir\n`, `W /a C:\\dir\\n` + "\n"},
	{"newline and tab", "/a", "x\ny\tz\r", `W /a x\0012y\0011z\0015` + "\n"},
	{"low and DEL", "/a", "\x01\x1f\x7f", `W /a \0001\0037\0177` + "\n"},
	{"utf-8 as is", "/a", "é✓", "W /a é✓\n"},
	{"base64", "/qubes-random-seed", "aGVsbG8=+/", "W /qubes-random-seed aGVsbG8=+/\n"},
}

func TestGuestDBEncode(t *testing.T) {
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got := string(appendWrite(nil, tc.path, []byte(tc.value)))
			if got != tc.line {
				t.Fatalf("appendWrite(%q, %q) = %q, want %q", tc.path, tc.value, got, tc.line)
			}
			if strings.Count(got, "\n") != 1 {
				t.Fatalf("line %q holds more than its terminating LF", got)
			}
			rest := strings.TrimSuffix(strings.TrimPrefix(got, "W "), "\n")
			path, enc, _ := strings.Cut(rest, " ")
			dec, err := unescape([]byte(enc))
			if err != nil || path != tc.path || string(dec) != tc.value {
				t.Errorf("decoded path %q value %q (%v), want %q %q", path, dec, err, tc.path, tc.value)
			}
		})
	}
	if got := string(appendRemove(nil, "/qubes-service/")); got != "R /qubes-service/\n" {
		t.Errorf("appendRemove = %q", got)
	}
}

// TestGuestDBEncodeBusybox decodes every line as the guest's init does,
// with busybox sh's read and printf '%b'.
func TestGuestDBEncodeBusybox(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (Debian package busybox-static): the guest's decoding is not checked")
	}
	var in bytes.Buffer
	all := make([]byte, 0, 255)
	for c := 1; c < 256; c++ {
		all = append(all, byte(c))
	}
	values := [][]byte{all}
	for _, tc := range encodeCases {
		values = append(values, []byte(tc.value))
	}
	for _, v := range values {
		in.Write(appendWrite(nil, "/v", v))
	}
	// each value, decoded, then a NUL as separator
	script := `while IFS= read -r line; do rest=${line#W }; printf '%b' "${rest#* }"; printf '\0'; done`
	cmd := exec.Command(bb, "sh", "-c", script)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("busybox sh: %v", err)
	}
	got := bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0})
	if len(got) != len(values) {
		t.Fatalf("busybox decoded %d values, want %d: %q", len(got), len(values), out)
	}
	for i := range values {
		if !bytes.Equal(got[i], values[i]) {
			t.Errorf("busybox decoded %q, want %q", got[i], values[i])
		}
	}
}

// listen returns a unix listener in a short temporary directory.
func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "gdb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := guestDBSocket(dir)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

// pushed dials l's path, starts a push of db on it and returns the
// guest's end and the push's stop.
func pushed(t *testing.T, l net.Listener, path string, db *qdb.DB, log hclog.Logger, limit int) (net.Conn, func()) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	conn, err := dialGuestDB(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	stop := pushGuestDB(conn, db, log, limit)
	t.Cleanup(stop)
	guest, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { guest.Close() })
	return guest, stop
}

func TestGuestDBPush(t *testing.T) {
	l, path := listen(t)
	db := (&qdb.Registry{}).Open("work")
	for _, e := range []struct{ p, v string }{{"/type", "AppVM"}, {"/name", "work"}, {"/qubes-service/x", "1"}} {
		if err := db.Write(e.p, []byte(e.v)); err != nil {
			t.Fatal(err)
		}
	}
	guest, stop := pushed(t, l, path, db, hclog.NewNullLogger(), 16)
	r := bufio.NewReader(guest)
	readLines := func(n int) []string {
		t.Helper()
		var lines []string
		for range n {
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", lines, err)
			}
			lines = append(lines, s)
		}
		return lines
	}
	want := []string{"QUBESDB 1\n", "W /name work\n", "W /qubes-service/x 1\n", "W /type AppVM\n", "S\n"}
	if got := readLines(len(want)); strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("snapshot:\n%q\nwant\n%q", got, want)
	}

	// changes, in order
	if err := db.Write("/qubes-service/y", []byte("a\nb")); err != nil {
		t.Fatal(err)
	}
	if err := db.Remove("/qubes-service/"); err != nil {
		t.Fatal(err)
	}
	if err := db.Remove("/nothing-there"); err != nil { // no change: no line
		t.Fatal(err)
	}
	if err := db.Write("/name", []byte("renamed")); err != nil {
		t.Fatal(err)
	}
	want = []string{`W /qubes-service/y a\0012b` + "\n", "R /qubes-service/\n", "W /name renamed\n"}
	if got := readLines(len(want)); strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("changes:\n%q\nwant\n%q", got, want)
	}

	// the run's end closes the channel; later changes go nowhere
	stop()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("after stop the guest read %q, %v; want EOF", rest, err)
	}
	if err := db.Write("/after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	stop() // twice is fine
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGuestDBPushGuestNotReading: a guest that never reads never blocks
// the DB's writers; the push ends, says so, and the guest reads EOF
// after what was sent.
func TestGuestDBPushGuestNotReading(t *testing.T) {
	l, path := listen(t)
	db := (&qdb.Registry{}).Open("stuck")
	var logs syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	guest, _ := pushed(t, l, path, db, log, 4)

	value := bytes.Repeat([]byte("v"), qdb.MaxValue)
	const writes = 2000 // ~6 MB: far beyond any socket buffer
	for i := range writes {
		if err := db.Write(fmt.Sprintf("/k%d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(guest)
	if err != nil {
		t.Fatalf("the guest's read ended with %v, want EOF", err)
	}
	lines := bytes.Count(got, []byte("\n"))
	if !bytes.HasPrefix(got, []byte("QUBESDB 1\nS\n")) || lines >= writes+2 {
		t.Errorf("the guest read %d lines starting %q; want the header, the empty snapshot and fewer than all %d changes",
			lines, got[:min(len(got), 20)], writes)
	}
	if !strings.Contains(logs.String(), "does not read its QubesDB") {
		t.Errorf("the log does not say the push ended:\n%s", logs.String())
	}
}

func TestGuestDBDialErrors(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	path := guestDBSocket(dir)
	_, err := dialGuestDB(ctx, path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), guestDBPort) ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("dialing a missing socket: %v; want an error naming the socket, the channel and the cause", err)
	}
}

// TestGuestDBDialWaits: a socket that qemu creates a moment later is
// still reached.
func TestGuestDBDialWaits(t *testing.T) {
	dir, err := os.MkdirTemp("", "gdb-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := guestDBSocket(dir)
	listening := make(chan net.Listener, 1)
	go func() {
		time.Sleep(150 * time.Millisecond)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Error(err)
		}
		listening <- l
	}()
	conn, err := dialGuestDB(context.Background(), path)
	if l := <-listening; l != nil {
		defer l.Close()
	}
	if err != nil {
		t.Fatalf("dialing a socket created 150 ms later: %v", err)
	}
	conn.Close()
}

func TestGuestDBSocketFor(t *testing.T) {
	kvm, err := vmm.NewRenderer(vmm.FlavourKVM, "")
	if err != nil {
		t.Fatal(err)
	}
	test, err := vmm.NewRenderer(vmm.FlavourTest, "")
	if err != nil {
		t.Fatal(err)
	}
	long := "/var/lib/qubes/appvms/" + strings.Repeat("n", 100)
	for _, tc := range []struct {
		name string
		r    *vmm.Renderer
		dir  string
		want string
	}{
		{"kvm", kvm, "/var/lib/qubes/appvms/work", "/var/lib/qubes/appvms/work/qubesdb.sock"},
		{"kvm, too long for a unix socket", kvm, long, ""},
		{"test driver", test, "/var/lib/qubes/appvms/work", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{opts: Options{Renderer: tc.r}}
			if got := m.guestDBSocketFor(tc.dir); got != tc.want {
				t.Errorf("guestDBSocketFor(%q) = %q, want %q", tc.dir, got, tc.want)
			}
		})
	}
	// the start then fails with the reason
	_, err = guestDBSocketChecked(long)
	if err == nil || !strings.Contains(err.Error(), "at most 107") || !strings.Contains(err.Error(), "data_dir") {
		t.Errorf("a socket path of %d bytes: %v; want an error saying the limit and what to shorten", len(guestDBSocket(long)), err)
	}
}
