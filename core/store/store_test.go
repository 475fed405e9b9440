package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// setProperty sets a global property of doc, keeping them sorted by name as
// the reference writes them.
func setProperty(doc *Document, name, value string) {
	for i := range doc.Properties {
		switch {
		case doc.Properties[i].Name == name:
			doc.Properties[i].Value = value
			return
		case doc.Properties[i].Name > name:
			doc.Properties = append(doc.Properties[:i], append([]Property{{name, value}}, doc.Properties[i:]...)...)
			return
		}
	}
	doc.Properties = append(doc.Properties, Property{name, value})
}

func getProperty(doc *Document, name string) (string, bool) {
	for _, p := range doc.Properties {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// docWithCounter is a small document with stats_interval = n.
func docWithCounter(n int) *Document {
	doc := GenerateDocument(2)
	setProperty(doc, "stats_interval", strconv.Itoa(n))
	return doc
}

func counterOf(t testing.TB, doc *Document) int {
	t.Helper()
	v, ok := getProperty(doc, "stats_interval")
	if !ok {
		t.Fatalf("no stats_interval property")
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("stats_interval = %q: %v", v, err)
	}
	return n
}

func counterInFile(t testing.TB, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Decode(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return counterOf(t, doc)
}

func openStore(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tempFiles lists the temporary files of a save left in dir.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), "~") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{})

	if _, _, err := s.Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing store: %v, want fs.ErrNotExist", err)
	}
	doc := GenerateDocument(5)
	if err := s.Save(doc); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, Encode(doc)) {
		t.Fatal("the saved file is not Encode(doc)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != DefaultMode {
		t.Errorf("mode %v, want %v", fi.Mode().Perm(), DefaultMode)
	}
	got, rep, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Path != path || rep.FellBack || rep.Broken != "" || len(rep.Errors) != 0 {
		t.Errorf("report = %+v", rep)
	}
	if !reflect.DeepEqual(got, doc) {
		t.Error("Load returned another document")
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left: %v", tf)
	}
}

func TestSaveModeAndGroup(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("cannot look up our group: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{Mode: 0o640, Group: g.Name})
	if err := s.Save(GenerateDocument(1)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; int(gid) != os.Getgid() {
		t.Errorf("gid %d, want %d", gid, os.Getgid())
	}
	// A group that does not exist is ignored.
	s.Close()
	s = openStore(t, path, Options{Group: "no-such-group-qubesd-test"})
	if err := s.Save(GenerateDocument(1)); err != nil {
		t.Fatal(err)
	}
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qubes.xml")
	s1, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := os.ReadFile(path + ".lock")
	if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q (%v), want our pid %d", pid, err, os.Getpid())
	}
	// flock locks belong to the open file description: a second Open in the
	// same process conflicts too.
	s2, err := Open(path, Options{})
	var le *LockedError
	if !errors.As(err, &le) {
		s2.Close()
		t.Fatalf("second Open: %v, want a *LockedError", err)
	}
	if le.Path != path || le.PID != os.Getpid() {
		t.Errorf("LockedError = %+v", le)
	}
	for _, want := range []string{"another qubesd", fmt.Sprintf("pid %d", os.Getpid()), path, "stop it first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s1.Save(GenerateDocument(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
	s3, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s3.Close()
}

func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{})
	for i := 1; i <= 7; i++ {
		if err := s.Save(docWithCounter(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterInFile(t, path); got != 7 {
		t.Errorf("store has %d, want 7", got)
	}
	for g := 1; g <= 5; g++ {
		if got := counterInFile(t, s.Generation(g)); got != 7-g {
			t.Errorf("generation %d has %d, want %d", g, got, 7-g)
		}
	}
	if _, err := os.Stat(s.Generation(6)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("generation 6 exists (%v)", err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left: %v", tf)
	}

	// Keep < 0: no generations.
	dir2 := t.TempDir()
	s2 := openStore(t, filepath.Join(dir2, "qubes.xml"), Options{Keep: -1})
	for i := 1; i <= 3; i++ {
		if err := s2.Save(docWithCounter(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(s2.Generation(1)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Keep -1 made a generation (%v)", err)
	}
}

// A save of the content already on disk writes nothing: no new file, and
// no generation pushed out by a copy of the current one. That holds after
// a Load too.
func TestSaveUnchangedWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{})
	for _, n := range []int{1, 2, 2, 2} {
		if err := s.Save(docWithCounter(n)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := counterInFile(t, s.Generation(1)); got != 1 {
		t.Errorf("generation 1 has %d, want 1 (the same content saved again must not rotate)", got)
	}
	if _, err := os.Stat(s.Generation(2)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("generation 2 exists (%v): unchanged saves rotated", err)
	}
	s.Close()

	s = openStore(t, path, Options{})
	doc, _, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(doc); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("saving the loaded content unchanged replaced the file")
	}
	if err := s.Save(docWithCounter(3)); err != nil {
		t.Fatal(err)
	}
	if got := counterInFile(t, s.Generation(1)); got != 2 {
		t.Errorf("after a real change, generation 1 has %d, want 2", got)
	}
}

func TestFallback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{})
	for i := 1; i <= 3; i++ {
		if err := s.Save(docWithCounter(i)); err != nil {
			t.Fatal(err)
		}
	}
	good := Encode(docWithCounter(3))
	broken := good[:len(good)/2] // a truncated file
	if err := os.WriteFile(path, broken, 0o660); err != nil {
		t.Fatal(err)
	}

	doc, rep, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := counterOf(t, doc); got != 2 {
		t.Errorf("loaded counter %d, want 2 (generation 1)", got)
	}
	if !rep.FellBack || rep.Path != s.Generation(1) || len(rep.Errors) != 1 {
		t.Errorf("report = %+v", rep)
	}
	if !strings.Contains(rep.Errors[0].Error(), path) || !strings.Contains(rep.Errors[0].Error(), "truncated") {
		t.Errorf("decode error %q does not name the file and the problem", rep.Errors[0])
	}
	if !strings.HasPrefix(rep.Broken, path+".broken-") {
		t.Errorf("broken file kept as %q", rep.Broken)
	}
	if kept, err := os.ReadFile(rep.Broken); err != nil || !bytes.Equal(kept, broken) {
		t.Errorf("broken file not preserved: %v", err)
	}
	// The store was rewritten, the generations are as they were.
	if got := counterInFile(t, path); got != 2 {
		t.Errorf("store rewritten with %d, want 2", got)
	}
	if got := counterInFile(t, s.Generation(1)); got != 2 {
		t.Errorf("generation 1 has %d, want 2", got)
	}
	if got := counterInFile(t, s.Generation(2)); got != 1 {
		t.Errorf("generation 2 has %d, want 1", got)
	}
	if _, rep, err := s.Load(); err != nil || rep.FellBack {
		t.Errorf("second Load: %+v, %v", rep, err)
	}

	// A second fallback in the same second keeps both broken files.
	os.WriteFile(path, []byte("garbage"), 0o660)
	_, rep2, err := s.Load()
	if err != nil || rep2.Broken == rep.Broken || rep2.Broken == "" {
		t.Errorf("second fallback: %+v, %v (first broken file %s)", rep2, err, rep.Broken)
	}
}

func TestFallbackNothingDecodes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{})
	for i := 1; i <= 3; i++ {
		if err := s.Save(docWithCounter(i)); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{path, s.Generation(1), s.Generation(2)}
	for i, f := range files {
		if err := os.WriteFile(f, []byte(fmt.Sprintf("<qubes>broken %d", i)), 0o660); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := s.Load()
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load: %v, want a *LoadError", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a broken store reads as a missing one (errors.Is(err, fs.ErrNotExist))")
	}
	msg := err.Error()
	for _, f := range append(files, s.Generation(3)) {
		if !strings.Contains(msg, f+":") && !strings.Contains(msg, f+" ") {
			t.Errorf("error does not mention %s:\n%s", f, msg)
		}
	}
	if !strings.Contains(msg, "line 1") || !strings.Contains(msg, "backup") {
		t.Errorf("error does not say why and what to do:\n%s", msg)
	}
	// Nothing was touched.
	for i, f := range files {
		if data, _ := os.ReadFile(f); string(data) != fmt.Sprintf("<qubes>broken %d", i) {
			t.Errorf("%s was changed", f)
		}
	}
	if m, _ := filepath.Glob(path + ".broken-*"); len(m) != 0 {
		t.Errorf("broken files made: %v", m)
	}
}

func TestSaveError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s := openStore(t, path, Options{})
	// A directory where the file should be: linking it as a generation and
	// renaming over it fail.
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	err := s.Save(GenerateDocument(1))
	if err == nil {
		t.Fatal("Save over a directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left: %v", tf)
	}
	// Keep -1 reaches the rename.
	s.Close()
	s = openStore(t, path, Options{Keep: -1})
	err = s.Save(GenerateDocument(1))
	if err == nil || !strings.Contains(err.Error(), "rename") {
		t.Errorf("Save: %v, want a rename error", err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left: %v", tf)
	}
	// An invalid document is refused before anything is written.
	bad := &Document{Pools: []Pool{{Attrs: []Attr{{"bad name", "x"}}}}}
	if err := s.Save(bad); err == nil || !strings.Contains(err.Error(), "bad name") {
		t.Errorf("Save(invalid) = %v", err)
	}
}

func TestOpenRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	for _, name := range []string{"qubes.xml~123", "qubes.xml~link"} {
		os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "other~1"), nil, 0o600)
	openStore(t, path, Options{})
	if tf := tempFiles(t, dir); !reflect.DeepEqual(tf, []string{"other~1"}) {
		t.Errorf("after Open: %v, want only other~1", tf)
	}
}

func TestConcurrentSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qubes.xml")
	s := openStore(t, path, Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				if err := s.Save(docWithCounter(i*100 + j)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if _, rep, err := s.Load(); err != nil || rep.FellBack {
		t.Fatalf("Load: %+v %v", rep, err)
	}
}

// The crash test: a child process saves in a loop and is killed at a random
// moment, 200 times over the same store.

const crashEnv = "QUBESD_STORE_CRASH_CHILD"

// TestCrashChild is the child of TestCrashSafety; it does nothing in a
// normal test run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process of TestCrashSafety")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	s, err := Open(path, Options{})
	if err != nil {
		fail(err)
	}
	doc, _, err := s.Load()
	if err != nil {
		fail(err)
	}
	v, _ := getProperty(doc, "stats_interval")
	n, _ := strconv.Atoi(v)
	deadline := time.Now().Add(20 * time.Second) // in case the parent is gone
	for time.Now().Before(deadline) {
		n++
		setProperty(doc, "stats_interval", strconv.Itoa(n))
		if err := s.Save(doc); err != nil {
			fail(err)
		}
		// One write(2) per line: the parent reads only whole lines.
		if _, err := os.Stdout.WriteString(strconv.Itoa(n) + "\n"); err != nil {
			os.Exit(3)
		}
	}
	os.Exit(4)
}

func TestCrashSafety(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "qubes.xml")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(docWithCounter(0)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now()
	maxAck, interrupted := 0, 0
	for round := range rounds {
		acked := crashRound(t, path, rng, round == 0)
		if len(tempFiles(t, dir)) > 0 {
			interrupted++ // killed in the middle of a save
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		doc, rep, err := s.Load()
		if err != nil {
			s.Close()
			t.Fatalf("round %d: Load after kill: %v", round, err)
		}
		if rep.FellBack {
			s.Close()
			t.Fatalf("round %d: Load fell back: %+v", round, rep)
		}
		got := counterOf(t, doc)
		s.Close()
		if got < acked {
			t.Fatalf("round %d: the store has counter %d, but the child acknowledged %d", round, got, acked)
		}
		maxAck = max(maxAck, acked)
	}
	t.Logf("%d rounds in %v (%d killed in the middle of a save); last acknowledged counter %d",
		rounds, time.Since(start).Round(time.Millisecond), interrupted, maxAck)

	// Every generation left is complete too, and Open cleaned up the
	// temporary files of the killed saves.
	s = openStore(t, path, Options{})
	for g := 1; g <= DefaultKeep; g++ {
		if data, err := os.ReadFile(s.Generation(g)); err == nil {
			if _, err := Decode(data); err != nil {
				t.Errorf("generation %d: %v", g, err)
			}
		}
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Errorf("temporary files left after Open: %v", tf)
	}
}

// crashRound runs one child, kills it 1–30 ms after its first acknowledged
// save, and returns the last counter it acknowledged.
func crashRound(t *testing.T, path string, rng *rand.Rand, checkLock bool) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	acks := make(chan int, 4096)
	go func() {
		defer close(acks)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // EOF; a line without '\n' is not acknowledged
			}
			if n, err := strconv.Atoi(strings.TrimSuffix(line, "\n")); err == nil {
				acks <- n
			}
		}
	}()

	last := -1
	select {
	case n, ok := <-acks:
		if !ok {
			cmd.Wait()
			waited = true
			t.Fatalf("the child exited before its first save: %s", stderr.String())
		}
		last = n
	case <-time.After(60 * time.Second):
		t.Fatal("no save from the child in 60 s")
	}
	if checkLock {
		_, err := Open(path, Options{})
		var le *LockedError
		if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
			t.Errorf("Open while the child holds the store: %v, want a LockedError with pid %d", err, cmd.Process.Pid)
		}
	}
	time.Sleep(time.Duration(1+rng.IntN(30)) * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for n := range acks {
		last = max(last, n)
	}
	err = cmd.Wait()
	waited = true
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child did not die of SIGKILL (%v): %s", err, stderr.String())
	}
	return last
}
