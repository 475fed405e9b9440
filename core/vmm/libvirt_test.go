package vmm

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// These tests run against libvirt's in-process test driver (test:///default),
// which every Conn of the process shares: each test uses domain names of its
// own and undefines them in t.Cleanup.

type eventLog struct {
	mu  sync.Mutex
	evs []Event
	ch  chan Event
}

func openTest(t *testing.T) (*Conn, *eventLog) {
	t.Helper()
	log := &eventLog{ch: make(chan Event, 256)}
	c, err := Open(Options{URI: "test:///default", OnEvent: func(ev Event) {
		log.mu.Lock()
		log.evs = append(log.evs, ev)
		log.mu.Unlock()
		log.ch <- ev
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, log
}

// next waits for the next event of domain name.
func (l *eventLog) next(t *testing.T, name string) Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-l.ch:
			if ev.Domain == name && ev.Kind != EventDefined && ev.Kind != EventUndefined {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event for %s within 5 s", name)
		}
	}
}

func defineTest(t *testing.T, c *Conn, name string) {
	t.Helper()
	r, err := NewRenderer(FlavourTest, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testVM()
	cfg.Name, cfg.UUID = name, ""
	x, err := r.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Define(name, x); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Destroy(name)
		if err := c.Undefine(name); err != nil && !errors.Is(err, ErrNoDomain) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func TestLifecycleOnTestDriver(t *testing.T) {
	c, log := openTest(t)
	const name = "vmm-lifecycle"
	defineTest(t, c, name)

	state := func(want PowerState) {
		t.Helper()
		got, err := c.State(name)
		if err != nil || got != want {
			t.Fatalf("State = %s, %v; want %s", got, err, want)
		}
	}
	expect := func(kind EventKind, reason StopReason) {
		t.Helper()
		ev := log.next(t, name)
		if ev.Kind != kind || ev.Reason != reason || ev.UUID == "" || ev.Synthetic {
			t.Fatalf("event %v (%+v), want %s %s", ev, ev, kind, reason)
		}
	}
	state(Halted)

	steps := []struct {
		op   string
		do   func(string) error
		st   PowerState
		kind EventKind
		why  StopReason
	}{
		{"create paused", c.CreatePaused, Paused, EventStarted, ""},
		{"", nil, Paused, EventSuspended, ""},
		{"resume", c.Resume, Running, EventResumed, ""},
		{"pause", c.Pause, Paused, EventSuspended, ""},
		{"unpause", c.Resume, Running, EventResumed, ""},
		{"shutdown", c.Shutdown, Halted, EventStopped, StopShutdown},
		{"create again", c.CreatePaused, Paused, EventStarted, ""},
		{"", nil, Paused, EventSuspended, ""},
		{"destroy", c.Destroy, Halted, EventStopped, StopDestroyed},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(name); err != nil {
				t.Fatalf("%s: %v", s.op, err)
			}
			state(s.st)
		}
		expect(s.kind, s.why)
	}

	info, err := c.Lookup(name)
	if err != nil || info.Name != name || info.Active || !info.Persistent || info.ID != -1 || info.UUID == "" {
		t.Errorf("Lookup = %+v, %v", info, err)
	}
	// errors say what, on which domain, and match the sentinels
	err = c.Destroy(name)
	if !errors.Is(err, ErrInvalidState) {
		t.Errorf("Destroy of a halted domain: %v, want ErrInvalidState", err)
	}
	t.Log(err)
	if err := c.PMSuspend(name); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalidState) {
		t.Errorf("PMSuspend on the test driver: %v, want ErrUnsupported", err)
	}
	if err := c.AttachDevice(name, `<interface type="ethernet"/>`); !errors.Is(err, ErrUnsupported) {
		t.Errorf("AttachDevice on the test driver: %v, want ErrUnsupported", err)
	}
	if err := c.Undefine(name); err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(name)
	var verr *Error
	if !errors.Is(err, ErrNoDomain) || !errors.As(err, &verr) || verr.Domain != name || verr.Op != "look up" {
		t.Errorf("Lookup of an undefined domain: %v", err)
	}
	t.Log(err)
	state(Halted)
	if err := c.Define("other-name", "<domain type='test'><name>"+name+"</name><memory>1024</memory><os><type>hvm</type></os></domain>"); err == nil {
		t.Error("Define with a mismatched name succeeded")
	}
	_ = c.Undefine(name)
}

func TestDuplicateStopSuppressedLive(t *testing.T) {
	c, log := openTest(t)
	const name = "vmm-dedupe"
	defineTest(t, c, name)
	if err := c.CreatePaused(name); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(name); err != nil {
		t.Fatal(err)
	}
	for _, want := range []EventKind{EventStarted, EventSuspended, EventStopped} {
		if ev := log.next(t, name); ev.Kind != want {
			t.Fatalf("event %v, want %s", ev, want)
		}
	}
	// libvirt repeating the stop (as it may around reconnects): dropped
	info, _ := c.Lookup(name)
	c.handleRaw(rawEvent{name: name, uuid: info.UUID, event: 5 /* STOPPED */, detail: 1})
	c.handleRaw(rawEvent{name: name, uuid: info.UUID, event: 5, detail: 1})
	// a marker event proves the queue was flushed past the duplicates
	c.handleRaw(rawEvent{name: name, uuid: info.UUID, event: 2 /* STARTED */})
	if ev := log.next(t, name); ev.Kind != EventStarted {
		t.Fatalf("a duplicate stop was delivered: %v", ev)
	}
}

func TestListAndMemory(t *testing.T) {
	c, _ := openTest(t)
	defineTest(t, c, "vmm-list-a")
	defineTest(t, c, "vmm-list-b")
	if err := c.CreatePaused("vmm-list-b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume("vmm-list-b"); err != nil {
		t.Fatal(err)
	}
	doms, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]DomainInfo{}
	for _, d := range doms {
		byName[d.Name] = d
	}
	if d := byName["vmm-list-a"]; d.State != Halted || d.Active || d.ID != -1 {
		t.Errorf("vmm-list-a = %+v", d)
	}
	if d := byName["vmm-list-b"]; d.State != Running || !d.Active || d.ID < 0 {
		t.Errorf("vmm-list-b = %+v", d)
	}
	if d := byName["test"]; d.State != Running { // the test driver's own domain
		t.Errorf("test = %+v", d)
	}
	mem, err := c.FreeMemory()
	if err != nil || mem == 0 {
		t.Errorf("FreeMemory = %d, %v", mem, err)
	}
	if st := c.Status(); st.State != StateConnected || st.URI != "test:///default" {
		t.Errorf("Status = %+v", st)
	}
}

func TestConcurrentOperations(t *testing.T) {
	c, _ := openTest(t)
	const n = 12
	for i := range n {
		defineTest(t, c, fmt.Sprintf("vmm-conc-%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		name := fmt.Sprintf("vmm-conc-%d", i)
		wg.Go(func() {
			for range 3 {
				for _, op := range []func(string) error{c.CreatePaused, c.Resume, c.Pause, c.Resume, c.Destroy} {
					if err := op(name); err != nil {
						errs <- err
						return
					}
				}
			}
		})
		wg.Go(func() {
			for range 10 {
				if _, err := c.List(); err != nil {
					errs <- err
					return
				}
				if _, err := c.State(name); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClosedConn(t *testing.T) {
	c, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.URI() != DefaultURI {
		t.Errorf("URI = %q", c.URI())
	}
	c.Close()
	if _, err := c.State("test"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("State on a closed Conn: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := Open(Options{URI: "nosuchdriver:///x"}); err == nil {
		t.Error("Open of an unknown URI succeeded")
	} else {
		t.Log(err)
	}
}

func TestStatsOnTestDriver(t *testing.T) {
	c, _ := openTest(t)
	const name = "vmm-stats"
	defineTest(t, c, name)

	if _, err := c.Stats("vmm-stats-unknown"); !errors.Is(err, ErrNoDomain) {
		t.Errorf("Stats of an unknown domain: %v, want ErrNoDomain", err)
	}
	s, err := c.Stats(name)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != Halted {
		t.Errorf("defined domain: state %s, want Halted", s.State)
	}
	for _, x := range all(c, t) {
		if x.Name == name {
			t.Errorf("AllStats lists the inactive %s", name)
		}
	}

	if err := c.CreatePaused(name); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(name); err != nil {
		t.Fatal(err)
	}
	s, err = c.Stats(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testVM()
	want := uint64(cfg.MemoryMiB) * 1024
	if s.State != Running || s.MemKiB != want || s.MaxMemKiB < want || s.VCPUs != cfg.VCPUs {
		t.Errorf("running domain: %+v, want Running, %d KiB, %d vCPUs", s, want, cfg.VCPUs)
	}
	found := false
	for _, x := range all(c, t) {
		found = found || x == s || (x.Name == name && x.MemKiB == s.MemKiB)
	}
	if !found {
		t.Errorf("AllStats does not list the running %s", name)
	}
}

func all(c *Conn, t *testing.T) []DomainStats {
	t.Helper()
	s, err := c.AllStats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
