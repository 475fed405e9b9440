package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQubesd listens on a unix socket and answers each connection with
// handle; it records the requests.
type fakeQubesd struct {
	path string
	mu   sync.Mutex
	reqs []string
}

func newFake(t *testing.T, handle func(conn *net.UnixConn, req []byte)) *fakeQubesd {
	t.Helper()
	dir, err := os.MkdirTemp("", "qq")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeQubesd{path: filepath.Join(dir, "qubesd.sock")}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				req, err := io.ReadAll(conn) // to EOF: the client must half-close
				if err != nil {
					t.Errorf("reading request: %v", err)
					return
				}
				f.mu.Lock()
				f.reqs = append(f.reqs, string(req))
				f.mu.Unlock()
				handle(conn, req)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return f
}

func reply(b string) func(*net.UnixConn, []byte) {
	return func(conn *net.UnixConn, _ []byte) { conn.Write([]byte(b)) }
}

func (f *fakeQubesd) lastRequest() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return ""
	}
	return f.reqs[len(f.reqs)-1]
}

type result struct {
	code           int
	stdout, stderr string
}

func runQuery(t *testing.T, f *fakeQubesd, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "QUBESD_SOCKET" && f != nil {
			return f.path
		}
		return ""
	}
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, env)
	return result{code, out.String(), errb.String()}
}

func TestQuery(t *testing.T) {
	const list = "0\x00dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n"
	f := newFake(t, reply(list))
	r := runQuery(t, f, "", "-e", "dom0", "admin.vm.List", "dom0")
	if r.code != 0 || r.stdout != list || r.stderr != "" {
		t.Errorf("got %+v", r)
	}
	if got := f.lastRequest(); got != "admin.vm.List+ dom0 name dom0\x00" {
		t.Errorf("request %q", got)
	}

	// Payload from stdin, an argument, another source, options after
	// positionals.
	r = runQuery(t, f, "value of feature", "mgmt", "admin.vm.feature.Set", "work", "gui", "--null")
	if r.code != 0 || r.stdout != list+"\x00" {
		t.Errorf("got %+v", r)
	}
	if got := f.lastRequest(); got != "admin.vm.feature.Set+gui mgmt name work\x00value of feature" {
		t.Errorf("request %q", got)
	}
}

func TestQueryFail(t *testing.T) {
	const exc = "2\x00QubesVMNotFoundError\x00\x00No such domain: 'x'\x00"
	f := newFake(t, reply(exc))
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-e", "dom0", "admin.vm.List", "x"}, 0, exc},
		{[]string{"-e", "--fail", "dom0", "admin.vm.List", "x"}, 2, exc},
		{[]string{"-e", "--null", "dom0", "admin.vm.List", "x"}, 0, exc + "\x00"},
		// As the reference tool: --fail returns before printing --null's NUL.
		{[]string{"-e", "--fail", "--null", "dom0", "admin.vm.List", "x"}, 2, exc},
	} {
		if r := runQuery(t, f, "", tc.args...); r.code != tc.code || r.stdout != tc.out {
			t.Errorf("%v: got %+v", tc.args, r)
		}
	}

	empty := newFake(t, reply(""))
	if r := runQuery(t, empty, "", "-e", "--fail", "dom0", "admin.vm.List", "dom0"); r.code != 1 || r.stdout != "" {
		t.Errorf("empty reply with --fail: %+v", r)
	}
	if r := runQuery(t, empty, "", "-e", "--null", "dom0", "admin.vm.List", "dom0"); r.code != 0 || r.stdout != "\x00" {
		t.Errorf("empty reply: %+v", r)
	}
	garbage := newFake(t, reply("xyz"))
	if r := runQuery(t, garbage, "", "-e", "--fail", "dom0", "admin.vm.List", "dom0"); r.code != 1 || r.stdout != "" {
		t.Errorf("garbage reply with --fail: %+v", r)
	}
	ok := newFake(t, reply("0\x00"))
	if r := runQuery(t, ok, "", "-e", "--fail", "dom0", "admin.vm.Start", "work"); r.code != 0 || r.stdout != "0\x00" {
		t.Errorf("success with --fail: %+v", r)
	}
}

func TestQuerySingleLine(t *testing.T) {
	f := newFake(t, reply("0\x00"))
	stdin := strings.NewReader("1024\nrest of the data")
	var out, errb bytes.Buffer
	env := func(string) string { return f.path }
	code := run(context.Background(), []string{"--single-line", "--max-bytes=21", "dom0", "internal.vm.volume.ImportBegin", "work", "private"},
		stdin, &out, &errb, env)
	if code != 0 || f.lastRequest() != "internal.vm.volume.ImportBegin+private dom0 name work\x001024" {
		t.Errorf("code %d, request %q, stderr %q", code, f.lastRequest(), errb.String())
	}
	if rest, _ := io.ReadAll(stdin); string(rest) != "rest of the data" {
		t.Errorf("read past the newline: %q left", rest)
	}
	for _, tc := range []struct{ stdin, want string }{
		{"no newline", "end of input without a newline"},
		{"bad\tbyte\n", "invalid byte 9 in input"},
		{"1234567890123456789012\n", "no newline found in first 21 bytes"},
	} {
		r := runQuery(t, f, tc.stdin, "--single-line", "--max-bytes", "21", "dom0", "m", "d")
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: %+v", tc.stdin, r)
		}
	}
}

func TestQueryUsage(t *testing.T) {
	f := newFake(t, reply("0\x00"))
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"dom0", "admin.vm.List"}, "expected SRC METHOD DEST [ARGUMENT]"},
		{"", []string{"a", "b", "c", "d", "e"}, "expected SRC METHOD DEST [ARGUMENT]"},
		{"", []string{"--max-bytes", "70000", "a", "b", "c"}, "maximum payload too large (max 65536)"},
		{"12345", []string{"--max-bytes", "4", "a", "b", "c"}, "payload too long (max 4)"},
		{strings.Repeat("x", 65537), []string{"a", "b", "c"}, "payload too long (max 65536)"},
		{"", []string{"--bogus", "a", "b", "c"}, "unknown flag: --bogus"},
	} {
		r := runQuery(t, f, tc.stdin, tc.args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "usage: qubesd-query ") || strings.Count(r.stderr, "\n") != 2 ||
			!strings.Contains(r.stderr, "\nqubesd-query: error: ") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %+v", tc.args, r)
		}
	}
	if r := runQuery(t, f, "", "--help"); r.code != 0 || !strings.HasPrefix(r.stdout, "usage: qubesd-query") || !strings.Contains(r.stdout, "--single-line") {
		t.Errorf("--help: %+v", r)
	}
	// A payload of exactly 65536 bytes is sent.
	if r := runQuery(t, f, strings.Repeat("x", 65536-len("b+ a name c\x00")), "a", "b", "c"); r.code != 0 {
		t.Errorf("full payload: %+v", r)
	}
}

func TestQuerySocket(t *testing.T) {
	f := newFake(t, reply("0\x00from -c"))
	// -c wins over $QUBESD_SOCKET (which points nowhere here).
	var out, errb bytes.Buffer
	env := func(string) string { return "/nonexistent/qubesd.sock" }
	code := run(context.Background(), []string{"-e", "-c", f.path, "dom0", "admin.vm.List", "dom0"}, strings.NewReader(""), &out, &errb, env)
	if code != 0 || out.String() != "0\x00from -c" {
		t.Errorf("-c: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"-e", "dom0", "admin.vm.List", "dom0"}, strings.NewReader(""), &out, &errb, env)
	if code != 1 || !strings.Contains(errb.String(), "/nonexistent/qubesd.sock") || !strings.Contains(errb.String(), "QUBESD_SOCKET") {
		t.Errorf("unreachable socket: %d %q", code, errb.String())
	}
}

// notifyWriter signals when it has received want bytes.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want int
	seen chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want > 0 && w.buf.Len() >= w.want {
		close(w.seen)
		w.want = 0
	}
	return len(p), nil
}

// TestQueryStream checks that an event stream is copied as it arrives and
// that cancelling ends it.
func TestQueryStream(t *testing.T) {
	const first = "1\x00\x00connection-established\x00\x00"
	const second = "1\x00work\x00domain-start\x00start_guid\x00True\x00\x00"
	w := &notifyWriter{want: len(first), seen: make(chan struct{})}
	f := newFake(t, func(conn *net.UnixConn, _ []byte) {
		conn.Write([]byte(first))
		select {
		case <-w.seen:
		case <-time.After(5 * time.Second):
			t.Error("the first frame was not passed on before the stream ended")
		}
		conn.Write([]byte(second))
	})
	var errb bytes.Buffer
	code := run(context.Background(), []string{"-e", "--fail", "dom0", "admin.Events", "dom0"}, strings.NewReader(""), w, &errb, func(string) string { return f.path })
	if code != 1 || w.buf.String() != first+second {
		t.Errorf("code %d, output %q, stderr %q", code, w.buf.String(), errb.String())
	}

	block := make(chan struct{})
	g := newFake(t, func(conn *net.UnixConn, _ []byte) {
		conn.Write([]byte(first))
		<-block
	})
	t.Cleanup(func() { close(block) })
	ctx, cancel := context.WithCancel(context.Background())
	w2 := &notifyWriter{want: len(first), seen: make(chan struct{})}
	go func() { <-w2.seen; cancel() }()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-e", "dom0", "admin.Events", "dom0"}, strings.NewReader(""), w2, io.Discard, func(string) string { return g.path })
	}()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("cancelled stream: code %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not end the stream")
	}
}
