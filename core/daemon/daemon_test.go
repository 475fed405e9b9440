package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/store"
)

// hangGuard bounds socket I/O so that a bug fails a test instead of
// hanging it; no test asserts on time.
const hangGuard = 60 * time.Second

// logBuffer collects a daemon's log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testConfig returns a configuration read from TOML, as qubesd reads its
// file, with data_dir and run_dir in a fresh temporary directory.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	base := t.TempDir()
	text := fmt.Sprintf(`
[daemon]
data_dir = %q
run_dir = %q
socket_group = ""
log_level = "debug"
`, filepath.Join(base, "data"), filepath.Join(base, "run"))
	cfg, err := config.Parse([]byte(text), "daemon_test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Resolve(base); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(cfg.Daemon.DataDir) || !filepath.IsAbs(cfg.Daemon.RunDir) {
		t.Fatalf("paths not absolute: %+v", cfg.Daemon)
	}
	return cfg
}

func testLogger(buf io.Writer) hclog.Logger {
	if buf == nil {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "qubesd", Level: hclog.Debug, Output: buf})
}

// start starts a daemon that is shut down when the test ends (unless the
// test did it).
func start(t *testing.T, cfg *config.Config, log hclog.Logger) *Daemon {
	t.Helper()
	d, err := Start(cfg, log)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		_ = d.Shutdown(ctx) // a second Shutdown is harmless
	})
	return d
}

// startPanicBug describes why failStart recovers a panic.
const startPanicBug = "BUG: a failing Start panics (nil pointer dereference) instead of returning its error: " +
	"daemon.go:107 Start has the named result d, every `return nil, err` sets d to nil before the deferred " +
	"cleanup (daemon.go:109-113) calls d.close(), which dereferences it (daemon.go:250). qubesd crashes with a " +
	"stack trace instead of printing the reason, and the cleanup (committer, store lock, sockets) never runs"

// failStart calls Start, which must fail, and returns its error. If Start
// panics (see startPanicBug), the panic is recovered and reported as
// panicked with a nil error.
func failStart(t *testing.T, cfg *config.Config, log hclog.Logger) (panicked any, err error) {
	t.Helper()
	var d *Daemon
	func() {
		defer func() { panicked = recover() }()
		d, err = Start(cfg, log)
	}()
	if panicked == nil && err == nil {
		d.Shutdown(context.Background())
		t.Fatal("Start succeeded")
	}
	return panicked, err
}

// bugs collects the bugs a test met; it skips the test with all of them at
// the end, after every other check has run.
type bugs []string

func (b *bugs) add(format string, args ...any) { *b = append(*b, fmt.Sprintf(format, args...)) }

func (b bugs) skip(t *testing.T) {
	t.Helper()
	if len(b) > 0 {
		t.Error(strings.Join(b, "\n"))
	}
}

// call sends one request over the socket at path and reads the reply.
func call(t *testing.T, path, raw string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hangGuard))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	vmList    = "admin.vm.List+ dom0 name dom0\x00"
	dom0Line  = "dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n"
	labelList = "0\x00red\norange\nyellow\ngreen\ngray\nblue\npurple\nblack\n"
)

func sockets(cfg *config.Config) []string {
	return []string{cfg.Daemon.SocketPath(), cfg.Daemon.InternalSocketPath(), cfg.Daemon.MiscSocketPath()}
}

func readStore(t *testing.T, cfg *config.Config) *store.Document {
	t.Helper()
	raw, err := os.ReadFile(cfg.Daemon.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := store.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// checkFreshStore checks a new system's qubes.xml: the eight labels and
// dom0 alone.
func checkFreshStore(t *testing.T, doc *store.Document) {
	t.Helper()
	var labels []string
	for _, l := range doc.Labels {
		labels = append(labels, l.Name)
	}
	if got := strings.Join(labels, " "); got != "red orange yellow green gray blue purple black" {
		t.Errorf("labels %s", got)
	}
	if len(doc.Domains) != 1 || doc.Domains[0].Class != "AdminVM" {
		t.Errorf("domains %+v, want dom0 alone", doc.Domains)
	}
}

func featureOf(doc *store.Document, dom int, name string) (string, bool) {
	for _, f := range doc.Domains[dom].Features {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

func TestProbeHost(t *testing.T) {
	h := ProbeHost()
	if h.MemoryMiB <= 0 || h.CPUs <= 0 {
		t.Errorf("ProbeHost() = %+v", h)
	}
}

// TestStartOnEmptyDataDir: the first start creates a new system and serves
// it on three sockets.
func TestStartOnEmptyDataDir(t *testing.T) {
	cfg := testConfig(t)
	var logs logBuffer
	d := start(t, cfg, testLogger(&logs))

	checkFreshStore(t, readStore(t, cfg))
	for _, p := range sockets(cfg) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
			t.Errorf("%s: mode %v, want a socket with mode 0660", p, fi.Mode())
		}
	}
	if got := call(t, cfg.Daemon.SocketPath(), vmList); got != "0\x00"+dom0Line {
		t.Errorf("admin.vm.List: %q", got)
	}
	if got := call(t, cfg.Daemon.SocketPath(), "admin.label.List+ dom0 keyword adminvm\x00"); got != labelList {
		t.Errorf("admin.label.List: %q", got)
	}
	// the internal and misc sockets answer, but serve no admin methods
	for _, p := range sockets(cfg)[1:] {
		if got, want := call(t, p, vmList), "2\x00ProtocolError\x00\x00no such method: 'admin.vm.List'\x00"; got != want {
			t.Errorf("%s: %q, want %q", filepath.Base(p), got, want)
		}
	}
	if n := 0; d.App().Read(func() error { n = d.App().Len(); return nil }) != nil || n != 1 {
		t.Errorf("the model has %d qubes, want 1", n)
	}
	// dom0 always runs: its QubesDB is open for extensions to write
	if db, ok := d.QDB().Get("dom0"); !ok || db.Write("/qubes-service/x", []byte("1")) != nil {
		t.Errorf("dom0 has no usable QubesDB (open: %v)", ok)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), "created a new, empty system") {
		t.Errorf("the log does not say the store was created:\n%s", logs.String())
	}
}

// TestSecondStart: a second daemon on the same configuration is refused
// (the store is locked) and the first one goes on serving; one on another
// store but the same sockets is refused too (the socket is live).
func TestSecondStart(t *testing.T) {
	var found bugs
	cfg := testConfig(t)
	start(t, cfg, testLogger(nil))

	panicked, err := failStart(t, cfg, testLogger(nil))
	if panicked != nil {
		found.add("%s (second Start on a locked store: %v)", startPanicBug, panicked)
	} else {
		var locked *store.LockedError
		if !errors.As(err, &locked) {
			t.Errorf("second Start: %v, want a *store.LockedError", err)
		}
		if !strings.Contains(err.Error(), "another qubesd") || !strings.Contains(err.Error(), cfg.Daemon.StorePath()) {
			t.Errorf("second Start: unclear error %q", err)
		}
	}
	if got := call(t, cfg.Daemon.SocketPath(), vmList); got != "0\x00"+dom0Line {
		t.Errorf("the first daemon after the refused start: %q", got)
	}

	other := testConfig(t)
	other.Daemon.RunDir = cfg.Daemon.RunDir
	panicked, err = failStart(t, other, testLogger(nil))
	if panicked != nil {
		found.add("%s (Start on a live socket: %v)", startPanicBug, panicked)
	} else {
		want := "another qubesd is already serving " + cfg.Daemon.SocketPath()
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start on a live socket: %q, want it to say %q", err, want)
		}
		// the refused daemon released its store
		st, err := store.Open(other.Daemon.StorePath(), store.Options{})
		if err != nil {
			t.Errorf("the refused daemon kept its store locked: %v", err)
		} else {
			st.Close()
		}
	}
	if got := call(t, cfg.Daemon.SocketPath(), vmList); got != "0\x00"+dom0Line {
		t.Errorf("the first daemon after the second refused start: %q", got)
	}
	found.skip(t)
}

// staleSocket leaves a socket file nobody listens on at path.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("the stale socket was not left behind: %v %v", fi, err)
	}
}

func TestStaleSocketsAreReplaced(t *testing.T) {
	cfg := testConfig(t)
	for _, p := range sockets(cfg) {
		staleSocket(t, p)
	}
	start(t, cfg, testLogger(nil))
	if got := call(t, cfg.Daemon.SocketPath(), vmList); got != "0\x00"+dom0Line {
		t.Errorf("admin.vm.List: %q", got)
	}
	for _, p := range sockets(cfg)[1:] {
		if got := call(t, p, vmList); !strings.HasPrefix(got, "2\x00ProtocolError\x00") {
			t.Errorf("%s: %q", filepath.Base(p), got)
		}
	}
}

// TestNotASocketIsRefused: something other than a socket at the socket
// path is left alone and Start says so.
func TestNotASocketIsRefused(t *testing.T) {
	for _, kind := range []string{"file", "directory"} {
		t.Run(kind, func(t *testing.T) {
			cfg := testConfig(t)
			p := cfg.Daemon.SocketPath()
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if kind == "file" {
				if err := os.WriteFile(p, []byte("not a socket"), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			var found bugs
			panicked, err := failStart(t, cfg, testLogger(nil))
			if panicked != nil {
				found.add("%s (%s at the socket path: %v)", startPanicBug, kind, panicked)
			} else if want := p + " exists and is not a socket; move it away or change daemon.run_dir"; !strings.Contains(err.Error(), want) {
				t.Errorf("Start: %q, want %q", err, want)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatalf("the file at the socket path is gone: %v", err)
			}
			if kind == "file" {
				if b, _ := os.ReadFile(p); string(b) != "not a socket" || !fi.Mode().IsRegular() {
					t.Errorf("the file at the socket path was changed: %v %q", fi.Mode(), b)
				}
			} else if !fi.IsDir() {
				t.Errorf("the directory at the socket path was changed: %v", fi.Mode())
			}
			// Start released what it took: once the path is free, a start
			// works. (After a panic the store's lock was never released.)
			found.skip(t)
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			start(t, cfg, testLogger(nil))
			if got := call(t, p, vmList); got != "0\x00"+dom0Line {
				t.Errorf("admin.vm.List: %q", got)
			}
		})
	}
}

// serveGoroutines counts goroutines running api.(*Server).Serve.
func serveGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "core/api.(*Server).Serve(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestFailedStartStopsWhatItStarted: when a later socket cannot be opened,
// Start must stop the servers it already started on the earlier ones.
func TestFailedStartStopsWhatItStarted(t *testing.T) {
	cfg := testConfig(t)
	p := cfg.Daemon.InternalSocketPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var found bugs
	before := serveGoroutines()
	panicked, err := failStart(t, cfg, testLogger(nil))
	if panicked != nil {
		found.add("%s (file at the internal socket path: %v)", startPanicBug, panicked)
	} else {
		if !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("Start: %v", err)
		}
		if _, err := os.Lstat(cfg.Daemon.SocketPath()); err == nil {
			t.Errorf("the admin socket was left behind")
		}
	}
	if leaked := serveGoroutines() - before; leaked > 0 {
		stopped := stopLeakedListeners(t, cfg.Daemon.SocketPath())
		found.add("BUG: a Start that fails on a later socket leaves %d api.Server.Serve goroutine(s) accepting on the "+
			"earlier socket's listener (daemon.go Start's cleanup, d.close(), removes the socket files and closes the "+
			"committer and store but never shuts down d.servers nor closes their listeners); the test stopped %d leaked listener(s)",
			leaked, stopped)
	}
	found.skip(t)
}

// stopLeakedListeners wakes the Accept of listeners this process still has
// bound to path (whose file is gone) with shutdown(2), so that the leaked
// Serve goroutines of TestFailedStartStopsWhatItStarted return.
func stopLeakedListeners(t *testing.T, path string) int {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return 0
	}
	defer f.Close()
	inodes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 8 && fields[7] == path {
			inodes[fields[6]] = true
		}
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range fds {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			fd, _ := strconv.Atoi(e.Name())
			if syscall.Shutdown(fd, syscall.SHUT_RDWR) == nil {
				n++
			}
		}
	}
	return n
}

// TestShutdownRemovesSocketsAndSaves: Shutdown removes the sockets, saves
// every change — also one made in the model just before without being
// committed — and releases the store.
func TestShutdownRemovesSocketsAndSaves(t *testing.T) {
	cfg := testConfig(t)
	d := start(t, cfg, testLogger(nil))
	if got := call(t, cfg.Daemon.SocketPath(), "admin.vm.feature.Set+viaapi dom0 name dom0\x00yes"); got != "0\x00" {
		t.Fatalf("feature.Set: %q", got)
	}
	if got := call(t, cfg.Daemon.SocketPath(), "admin.label.Create+mine dom0 name dom0\x000x123abc"); got != "0\x00" {
		t.Fatalf("label.Create: %q", got)
	}
	// a change straight in the model, not committed by anyone
	app := d.App()
	if _, err := app.Write(func() error { return app.AdminVM().Features.Set("direct", "1") }); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, p := range sockets(cfg) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Shutdown (%v)", p, err)
		}
	}
	doc := readStore(t, cfg)
	if v, _ := featureOf(doc, 0, "viaapi"); v != "yes" {
		t.Errorf("feature viaapi on disk = %q", v)
	}
	if v, _ := featureOf(doc, 0, "direct"); v != "1" {
		t.Errorf("the uncommitted change was not saved at Shutdown (feature direct = %q)", v)
	}
	if l := doc.Labels[len(doc.Labels)-1]; l.Name != "mine" || l.Color != "0x123abc" {
		t.Errorf("last label on disk %+v", l)
	}
	st, err := store.Open(cfg.Daemon.StorePath(), store.Options{})
	if err != nil {
		t.Fatalf("the store is still locked after Shutdown: %v", err)
	}
	st.Close()

	// and a new start serves what was saved
	start(t, cfg, testLogger(nil))
	if got := call(t, cfg.Daemon.SocketPath(), "admin.vm.feature.Get+direct dom0 name dom0\x00"); got != "0\x001" {
		t.Errorf("after a restart: %q", got)
	}
}

func TestInit(t *testing.T) {
	cfg := testConfig(t)
	if err := Init(cfg, testLogger(nil)); err != nil {
		t.Fatalf("Init: %v", err)
	}
	checkFreshStore(t, readStore(t, cfg))
	before, _ := os.ReadFile(cfg.Daemon.StorePath())

	err := Init(cfg, testLogger(nil))
	if err == nil {
		t.Fatal("Init over an existing store succeeded")
	}
	if want := cfg.Daemon.StorePath() + " already exists; remove it first"; !strings.Contains(err.Error(), want) {
		t.Errorf("Init: %q, want %q", err, want)
	}
	if after, _ := os.ReadFile(cfg.Daemon.StorePath()); !bytes.Equal(before, after) {
		t.Error("the refused Init changed the store")
	}

	// Init while a daemon runs: the store is locked.
	start(t, cfg, testLogger(nil))
	var locked *store.LockedError
	if err := Init(cfg, testLogger(nil)); !errors.As(err, &locked) {
		t.Errorf("Init while a daemon runs: %v, want a *store.LockedError", err)
	}
	if got := call(t, cfg.Daemon.SocketPath(), vmList); got != "0\x00"+dom0Line {
		t.Errorf("the daemon Init started from: %q", got)
	}
}

// TestCorruptStoreStartsFromGeneration: a qubes.xml that does not decode is
// kept aside and the daemon starts from qubes.xml.1.
func TestCorruptStoreStartsFromGeneration(t *testing.T) {
	cfg := testConfig(t)
	d := start(t, cfg, testLogger(nil))
	sock := cfg.Daemon.SocketPath()
	// qubes.xml: first and second; qubes.xml.1: first
	for _, f := range []string{"first", "second"} {
		if got := call(t, sock, "admin.vm.feature.Set+"+f+" dom0 name dom0\x001"); got != "0\x00" {
			t.Fatalf("feature.Set %s: %q", f, got)
		}
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	gen1, err := os.ReadFile(cfg.Daemon.StorePath() + ".1")
	if err != nil {
		t.Fatal(err)
	}
	const garbage = "<?xml version='1.0' encoding='utf-8'?>\n<qubes><labels><label"
	if err := os.WriteFile(cfg.Daemon.StorePath(), []byte(garbage), 0o660); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	start(t, cfg, testLogger(&logs))
	if got := call(t, sock, "admin.vm.feature.Get+first dom0 name dom0\x00"); got != "0\x001" {
		t.Errorf("feature first (in qubes.xml.1): %q", got)
	}
	if got := call(t, sock, "admin.vm.feature.Get+second dom0 name dom0\x00"); !strings.HasPrefix(got, "2\x00QubesFeatureNotFoundError\x00") {
		t.Errorf("feature second (only in the corrupt file): %q", got)
	}
	if !strings.Contains(logs.String(), "qubes.xml did not load; started from the newest good generation instead") {
		t.Errorf("the fallback is not logged:\n%s", logs.String())
	}
	// the recovered document was written back; the broken file kept aside
	if now, _ := os.ReadFile(cfg.Daemon.StorePath()); !bytes.Equal(now, gen1) {
		t.Errorf("qubes.xml was not restored from qubes.xml.1")
	}
	broken, _ := filepath.Glob(cfg.Daemon.StorePath() + ".broken-*")
	if len(broken) != 1 {
		t.Fatalf("broken copies: %v", broken)
	}
	if b, _ := os.ReadFile(broken[0]); string(b) != garbage {
		t.Errorf("%s holds %q", broken[0], b)
	}
}

// TestCorruptStoreWithoutGenerations: nothing to fall back to — Start
// refuses and leaves the files as they are.
func TestCorruptStoreWithoutGenerations(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.Daemon.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const garbage = "not xml at all"
	if err := os.WriteFile(cfg.Daemon.StorePath(), []byte(garbage), 0o660); err != nil {
		t.Fatal(err)
	}
	var found bugs
	panicked, err := failStart(t, cfg, testLogger(nil))
	if panicked != nil {
		found.add("%s (corrupt store: %v)", startPanicBug, panicked)
	} else if lerr := (*store.LoadError)(nil); !errors.As(err, &lerr) {
		t.Errorf("Start: %v, want a *store.LoadError", err)
	}
	if b, _ := os.ReadFile(cfg.Daemon.StorePath()); string(b) != garbage {
		t.Errorf("the corrupt store was changed: %q", b)
	}
	for _, p := range sockets(cfg) {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists after a failed Start", p)
		}
	}
	found.skip(t)
}
