package admin

// A fake qubesd for tests: a unix socket in t.TempDir() whose connections are
// answered by a handler. replay answers from the reference daemon's recorded
// transcripts, so the client's parsing is tested against real bytes.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer accepts connections on a unix socket and hands each to handle.
type fakeServer struct {
	path   string
	ln     *net.UnixListener
	handle func(conn *net.UnixConn)
	wg     sync.WaitGroup
	done   chan struct{} // closed when the test ends
}

func newFakeServer(t testing.TB, handle func(conn *net.UnixConn)) *fakeServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qubesd.sock")
	if len(path) > 100 { // unix socket paths are limited to 108 bytes
		dir, err := os.MkdirTemp("", "qubesd-fake")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path = filepath.Join(dir, "qubesd.sock")
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{path: path, ln: ln, handle: handle, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				s.handle(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// readRequest reads a request to EOF, as qubesd does; it fails if the client
// does not half-close within a few seconds.
func readRequest(conn *net.UnixConn) ([]byte, error) {
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	return io.ReadAll(conn)
}

// replyWith returns a handler that reads the request, passes it to fn and
// writes fn's reply.
func replyWith(fn func(req []byte) []byte) func(*net.UnixConn) {
	return func(conn *net.UnixConn) {
		req, err := readRequest(conn)
		if err != nil {
			return
		}
		conn.Write(fn(req))
	}
}

// transcriptEntry is one line of a recorded transcript.
type transcriptEntry struct {
	Req struct {
		Method     string `json:"method"`
		Arg        string `json:"arg"`
		Dest       string `json:"dest"`
		Payload    string `json:"payload"`
		Src        string `json:"src"`
		DestType   string `json:"dest_type"`
		PayloadB64 string `json:"payload_b64"`
		ArgB64     string `json:"arg_b64"`
		SrcB64     string `json:"src_b64"`
		MethodB64  string `json:"method_b64"`
		DestB64    string `json:"dest_b64"`
		RawB64     string `json:"raw_b64"`
		Note       string `json:"note"`
	} `json:"req"`
	RespB64 string `json:"resp_b64"`
}

// simple reports whether the entry is an ordinary request (not a framing or
// encoding test) and returns its payload.
func (e transcriptEntry) simple() ([]byte, bool) {
	r := e.Req
	if r.RawB64 != "" || r.ArgB64 != "" || r.SrcB64 != "" || r.MethodB64 != "" || r.DestB64 != "" {
		return nil, false
	}
	if r.DestType != "" && !(r.DestType == "keyword" && r.Dest == "adminvm") {
		return nil, false
	}
	if r.PayloadB64 != "" {
		p, err := base64.StdEncoding.DecodeString(r.PayloadB64)
		return p, err == nil
	}
	return []byte(r.Payload), true
}

func (e transcriptEntry) reply() []byte {
	b, _ := base64.StdEncoding.DecodeString(e.RespB64)
	return b
}

func fixturePath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "fixtures", "admin-api", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s not found (shared/ must sit beside the repository): %v", name, err)
	}
	return p
}

func loadTranscript(t testing.TB, name string) []transcriptEntry {
	t.Helper()
	f, err := os.Open(fixturePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []transcriptEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e transcriptEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// replay answers requests from transcripts: the first recorded reply for the
// same method, argument, destination and payload. A request for a qube the
// transcripts do not know gets QubesVMNotFoundError, as from the daemon; any
// other unknown request gets a ProtocolError naming it and is remembered in
// misses.
type replay struct {
	replies map[string][]byte
	vms     map[string]bool

	mu     sync.Mutex
	misses []string
	calls  []string
}

func replayKey(method, arg, dest string, payload []byte) string {
	return method + "\x00" + arg + "\x00" + dest + "\x00" + string(payload)
}

func newReplay(t testing.TB, files ...string) *replay {
	r := &replay{replies: map[string][]byte{}, vms: map[string]bool{}}
	for _, f := range files {
		for _, e := range loadTranscript(t, f) {
			payload, ok := e.simple()
			if !ok {
				continue
			}
			dest := e.Req.Dest
			if e.Req.DestType == "keyword" {
				dest = AdminVM
			}
			k := replayKey(e.Req.Method, e.Req.Arg, dest, payload)
			if _, dup := r.replies[k]; !dup {
				r.replies[k] = e.reply()
			}
		}
	}
	list := r.replies[replayKey("admin.vm.List", "", AdminVM, nil)]
	for _, line := range strings.Split(strings.TrimPrefix(string(list), "0\x00"), "\n") {
		if name, _, _ := strings.Cut(line, " "); name != "" {
			r.vms[name] = true
		}
	}
	return r
}

// answer returns the reply to one raw request.
func (r *replay) answer(req []byte) []byte {
	header, payload, ok := bytes.Cut(req, []byte{0})
	if !ok {
		return nil // framing error: no reply, like qubesd
	}
	f := strings.SplitN(string(header), " ", 4)
	if len(f) != 4 {
		return nil
	}
	method, arg, _ := strings.Cut(f[0], "+")
	dest := f[3]
	if f[2] == "keyword" && dest == "adminvm" {
		dest = AdminVM
	}
	k := replayKey(method, arg, dest, payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, method+"+"+arg+" "+dest)
	if reply, ok := r.replies[k]; ok {
		return reply
	}
	if !r.vms[dest] {
		return []byte(fmt.Sprintf("2\x00QubesVMNotFoundError\x00\x00No such domain: '%s'\x00", dest))
	}
	r.misses = append(r.misses, fmt.Sprintf("%s+%s %s %q", method, arg, dest, payload))
	return []byte(fmt.Sprintf("2\x00ProtocolError\x00\x00fake qubesd: no recorded reply for %s+%s on %s\x00", method, arg, dest))
}

// newReplayServer starts a fake qubesd answering from the read and mutate
// transcripts and returns a client for it.
func newReplayServer(t testing.TB) (*Client, *replay) {
	r := newReplay(t, "public-n10-read.jsonl", "public-n10-mutate.jsonl")
	s := newFakeServer(t, replyWith(r.answer))
	return New(s.path), r
}
