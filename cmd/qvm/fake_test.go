package main

// A fake qubesd for the CLI tests: a unix socket whose requests are answered
// from the reference daemon's recorded transcripts (shared/fixtures), so the
// tools are tested against real replies. This is a copy of the fake in
// sdk/admin's tests (test files are not importable), plus per-test
// overrides and a log of the calls.

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
	"time"
)

// transcriptEntry is one line of a recorded transcript, or of an override
// file (where resp_text may replace resp_b64).
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
	} `json:"req"`
	RespB64  string `json:"resp_b64"`
	RespText string `json:"resp_text"`

	// Override files only: copy every reply about qube Clone to the qubes
	// in As, with the name replaced.
	Clone string   `json:"clone"`
	As    []string `json:"as"`
}

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
	if e.RespB64 == "" {
		return []byte(e.RespText)
	}
	b, _ := base64.StdEncoding.DecodeString(e.RespB64)
	return b
}

func replayKey(method, arg, dest string, payload []byte) string {
	return method + "\x00" + arg + "\x00" + dest + "\x00" + string(payload)
}

func readEntries(path string) ([]transcriptEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []transcriptEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e transcriptEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// replies maps requests to recorded replies; the first recording wins.
type replies map[string][]byte

func (r replies) add(entries []transcriptEntry) {
	for _, e := range entries {
		payload, ok := e.simple()
		if !ok || e.Clone != "" {
			continue
		}
		dest := e.Req.Dest
		if e.Req.DestType == "keyword" {
			dest = "dom0"
		}
		k := replayKey(e.Req.Method, e.Req.Arg, dest, payload)
		if _, dup := r[k]; !dup {
			r[k] = e.reply()
		}
	}
}

var (
	baseOnce    sync.Once
	baseReplies replies
	baseErr     error
)

// transcripts returns the replies of the recorded read and mutate
// sequences, loaded once.
func transcripts() (replies, error) {
	baseOnce.Do(func() {
		baseReplies = replies{}
		for _, name := range []string{"public-n10-read.jsonl", "public-n10-mutate.jsonl"} {
			p := filepath.Join("..", "..", "..", "shared", "fixtures", "admin-api", name)
			entries, err := readEntries(p)
			if err != nil {
				baseErr = fmt.Errorf("fixture %s (shared/ must sit beside the repository): %w", name, err)
				return
			}
			baseReplies.add(entries)
		}
	})
	return baseReplies, baseErr
}

// replay answers requests: overrides first, then the transcripts. A request
// about a qube nobody knows gets QubesVMNotFoundError, as from the daemon;
// any other unknown request gets a ProtocolError and is remembered in misses.
type replay struct {
	overrides replies
	base      replies
	vms       map[string]bool
	callLog   io.Writer // one line per call, if not nil

	mu     sync.Mutex
	misses []string
}

func newReplay(overrideFile string) (*replay, error) {
	base, err := transcripts()
	if err != nil {
		return nil, err
	}
	r := &replay{overrides: replies{}, base: base, vms: map[string]bool{}}
	if overrideFile != "" {
		entries, err := readEntries(overrideFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		r.overrides.add(entries)
		for _, e := range entries {
			for _, as := range e.As {
				r.clone(e.Clone, as)
			}
		}
	}
	list, _ := r.lookup(replayKey("admin.vm.List", "", "dom0", nil))
	for _, line := range strings.Split(strings.TrimPrefix(string(list), "0\x00"), "\n") {
		if name, _, _ := strings.Cut(line, " "); name != "" {
			r.vms[name] = true
		}
	}
	return r, nil
}

// clone copies the recorded replies about qube from to qube to.
func (r *replay) clone(from, to string) {
	for _, src := range []replies{r.base, r.overrides} {
		for k, v := range src {
			f := strings.Split(k, "\x00")
			if f[2] != from {
				continue
			}
			nk := replayKey(f[0], f[1], to, []byte(f[3]))
			if _, ok := r.overrides[nk]; !ok {
				r.overrides[nk] = bytes.ReplaceAll(v, []byte(from), []byte(to))
			}
		}
	}
}

func (r *replay) lookup(k string) ([]byte, bool) {
	if v, ok := r.overrides[k]; ok {
		return v, true
	}
	v, ok := r.base[k]
	return v, ok
}

// answer returns the reply to one raw request (nil: no reply at all).
func (r *replay) answer(req []byte) []byte {
	header, payload, ok := bytes.Cut(req, []byte{0})
	if !ok {
		return nil
	}
	f := strings.SplitN(string(header), " ", 4)
	if len(f) != 4 {
		return nil
	}
	method, arg, _ := strings.Cut(f[0], "+")
	dest := f[3]
	if f[2] == "keyword" && dest == "adminvm" {
		dest = "dom0"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.callLog != nil {
		fmt.Fprintf(r.callLog, "%s+%s %s\n", method, arg, dest)
	}
	if reply, ok := r.lookup(replayKey(method, arg, dest, payload)); ok {
		return reply
	}
	if !r.vms[dest] {
		return []byte(fmt.Sprintf("2\x00QubesVMNotFoundError\x00\x00No such domain: '%s'\x00", dest))
	}
	if notInReference[method] {
		// the reference daemon does not have qubesd-go's additions
		return []byte(fmt.Sprintf("2\x00ProtocolError\x00\x00no such method: '%s'\x00", method))
	}
	r.misses = append(r.misses, fmt.Sprintf("%s+%s %s %q", method, arg, dest, payload))
	return []byte(fmt.Sprintf("2\x00ProtocolError\x00\x00fake qubesd: no recorded reply for %s+%s on %s\x00", method, arg, dest))
}

// notInReference are the methods qubesd-go adds; the recorded reference
// answers them as unknown, which is what the CLI's fallbacks expect.
var notInReference = map[string]bool{"admin.vm.property.GetAllBulk": true, "admin.vm.quarantine.List": true}

func (r *replay) takeMisses() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.misses
	r.misses = nil
	return m
}

// fakeServer serves answer on a unix socket.
type fakeServer struct {
	path string
	ln   *net.UnixListener
	wg   sync.WaitGroup
}

func startFake(answer func([]byte) []byte) (*fakeServer, error) {
	dir, err := os.MkdirTemp("", "qvm-fake")
	if err != nil {
		return nil, err
	}
	s := &fakeServer{path: filepath.Join(dir, "qubesd.sock")}
	s.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := s.ln.AcceptUnix()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				req, err := io.ReadAll(conn) // to EOF, as qubesd
				if err != nil {
					return
				}
				conn.Write(answer(req))
			}()
		}
	}()
	return s, nil
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.wg.Wait()
	os.RemoveAll(filepath.Dir(s.path))
}
