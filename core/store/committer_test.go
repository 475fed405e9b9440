package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// model is a stand-in for core/qubes: global properties and a version
// counter, under a read-write lock.
type model struct {
	mu      sync.RWMutex
	props   map[string]string
	version uint64
	invalid bool // snapshot returns a Document that Save refuses

	// hook, if set, is called by snapshot after copying (outside the lock).
	hook func(version uint64)
}

func newModel() *model { return &model{props: map[string]string{}} }

// set changes a property and returns the new version.
func (m *model) set(name, value string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.props[name] = value
	m.version++
	return m.version
}

func (m *model) snapshot() (*Document, uint64) {
	m.mu.RLock()
	doc := GenerateDocument(1)
	for k, v := range m.props {
		setProperty(doc, k, v)
	}
	if m.invalid {
		doc.Pools = append(doc.Pools, Pool{Attrs: []Attr{{"not a name", ""}}})
	}
	v := m.version
	hook := m.hook
	m.mu.RUnlock()
	if hook != nil {
		hook(v)
	}
	return doc, v
}

func newCommitter(t *testing.T, m *model) (*Committer, *Store) {
	t.Helper()
	s := openStore(t, filepath.Join(t.TempDir(), "qubes.xml"), Options{})
	c := NewCommitter(s, m.snapshot, nil)
	t.Cleanup(func() { c.Close() })
	return c, s
}

func loadProps(t *testing.T, s *Store) map[string]string {
	t.Helper()
	doc, _, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range doc.Properties {
		out[p.Name] = p.Value
	}
	return out
}

// pending returns the number of callers waiting for a save.
func (c *Committer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// holdFirstSnapshot makes the next snapshot block, once it has copied the
// model, until release is called; entered is closed when it blocks. The
// snapshot is released at the end of the test in any case (before the
// Committer is closed).
func holdFirstSnapshot(t *testing.T, m *model) (entered <-chan struct{}, release func()) {
	in := make(chan struct{})
	gate := make(chan struct{})
	var once, relOnce sync.Once
	m.mu.Lock()
	m.hook = func(uint64) {
		once.Do(func() {
			close(in)
			<-gate
		})
	}
	m.mu.Unlock()
	release = func() { relOnce.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return in, release
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCommitterGroups holds the first save while 31 more callers arrive:
// they must all be covered by one more save.
func TestCommitterGroups(t *testing.T) {
	m := newModel()
	c, s := newCommitter(t, m)
	entered, release := holdFirstSnapshot(t, m)
	ctx := context.Background()

	errs := make(chan error, 32)
	go func() { errs <- c.Commit(ctx, m.set("p00", "0")) }()
	<-entered // the first save has its snapshot and is held
	for i := 1; i < 32; i++ {
		go func() { errs <- c.Commit(ctx, m.set(fmt.Sprintf("p%02d", i), fmt.Sprint(i))) }()
	}
	// The first caller stays registered until its save completes.
	waitFor(t, "32 waiting callers", func() bool { return c.pending() == 32 })
	release()
	for range 32 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Saves(); n != 2 {
		t.Errorf("%d saves for 32 commits, want 2", n)
	}
	if c.Durable() != 32 {
		t.Errorf("Durable() = %d, want 32", c.Durable())
	}
	props := loadProps(t, s)
	for i := range 32 {
		if props[fmt.Sprintf("p%02d", i)] != fmt.Sprint(i) {
			t.Errorf("p%02d is not in the file", i)
		}
	}
	// Already durable: no save.
	if err := c.Commit(ctx, 5); err != nil || c.Saves() != 2 {
		t.Errorf("Commit of a durable version: %v, %d saves", err, c.Saves())
	}
}

// TestCommitterConcurrent lets 32 goroutines change and commit freely.
func TestCommitterConcurrent(t *testing.T) {
	m := newModel()
	c, s := newCommitter(t, m)
	const workers, each = 32, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[string]string{}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name, value := fmt.Sprintf("w%02d", w), fmt.Sprint(i)
				if err := c.Commit(context.Background(), m.set(name, value)); err != nil {
					t.Error(err)
					return
				}
				// Every committed change is on disk now.
				mu.Lock()
				committed[name] = value
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d saves for %d commits", c.Saves(), workers*each)
	if c.Saves() >= workers*each {
		t.Errorf("%d saves for %d commits: no grouping", c.Saves(), workers*each)
	}
	props := loadProps(t, s)
	for k, v := range committed {
		if props[k] != v {
			t.Errorf("%s = %q in the file, want %q", k, props[k], v)
		}
	}
}

func TestCommitterError(t *testing.T) {
	m := newModel()
	c, s := newCommitter(t, m)
	ctx := context.Background()
	m.mu.Lock()
	m.invalid = true
	m.mu.Unlock()
	err := c.Commit(ctx, m.set("a", "1"))
	if err == nil {
		t.Fatal("Commit succeeded though the save failed")
	}
	if !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), "not a name") {
		t.Errorf("error %q does not name the file and the problem", err)
	}
	m.mu.Lock()
	m.invalid = false
	m.mu.Unlock()
	if err := c.Commit(ctx, m.set("b", "2")); err != nil {
		t.Fatalf("Commit after a failed save: %v", err)
	}
	if props := loadProps(t, s); props["a"] != "1" || props["b"] != "2" {
		t.Errorf("file has a=%q b=%q", props["a"], props["b"])
	}
	// A version the model never reached fails instead of hanging.
	if err := c.Commit(ctx, 1000); err == nil || !strings.Contains(err.Error(), "1000") {
		t.Errorf("Commit(1000) = %v", err)
	}
}

func TestCommitterCancel(t *testing.T) {
	m := newModel()
	c, s := newCommitter(t, m)
	entered, release := holdFirstSnapshot(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Commit(ctx, m.set("a", "1")) }()
	<-entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit after cancel: %v", err)
	}
	release()
	// The save itself completes.
	waitFor(t, "the save", func() bool { return c.Durable() == 1 })
	if props := loadProps(t, s); props["a"] != "1" {
		t.Error("the save did not complete")
	}
}

func TestCommitterClose(t *testing.T) {
	m := newModel()
	c, _ := newCommitter(t, m)
	entered, release := holdFirstSnapshot(t, m)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- c.Commit(ctx, m.set("a", "1")) }()
	<-entered
	second := make(chan error, 1)
	go func() { second <- c.Commit(ctx, m.set("b", "2")) }()
	waitFor(t, "the second caller", func() bool { return c.pending() == 2 })
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	waitFor(t, "Close to start", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closed
	})
	release()
	if err := <-first; err != nil {
		t.Errorf("the running save: %v", err)
	}
	if err := <-second; !errors.Is(err, ErrClosed) {
		t.Errorf("a caller waiting at Close: %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Error(err)
	}
	if err := c.Commit(ctx, m.set("c", "3")); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
