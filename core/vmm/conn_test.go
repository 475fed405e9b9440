package vmm

import (
	"errors"
	"sync"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
)

// fakeLink is a connection that drops when told to.
type fakeLink struct {
	id     int
	once   sync.Once
	gone   chan struct{}
	mu     sync.Mutex
	reason error
	closed bool
}

func newFakeLink(id int) *fakeLink { return &fakeLink{id: id, gone: make(chan struct{})} }

func (f *fakeLink) lv() *libvirt.Connect     { return nil }
func (f *fakeLink) dropped() <-chan struct{} { return f.gone }
func (f *fakeLink) drop(r error) {
	f.once.Do(func() {
		f.mu.Lock()
		f.reason = r
		f.mu.Unlock()
		close(f.gone)
	})
}
func (f *fakeLink) dropReason() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reason
}
func (f *fakeLink) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}
func (f *fakeLink) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// fakeDialer answers dials from a script: nil → a new link, else that error.
type fakeDialer struct {
	mu     sync.Mutex
	script []error
	links  []*fakeLink
	dials  int
	dialed chan int
}

func (d *fakeDialer) dial() (link, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials++
	defer func() {
		select {
		case d.dialed <- d.dials:
		default:
		}
	}()
	var err error
	if len(d.script) > 0 {
		err, d.script = d.script[0], d.script[1:]
	}
	if err != nil {
		return nil, err
	}
	l := newFakeLink(len(d.links))
	d.links = append(d.links, l)
	return l, nil
}

func (d *fakeDialer) link(i int) *fakeLink {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.links[i]
}

func TestReconnectWithBackoff(t *testing.T) {
	refused := errors.New("connection refused")
	d := &fakeDialer{script: []error{nil, refused, refused, refused, nil}, dialed: make(chan int, 16)}
	states := make(chan Status, 32)
	c := newConn(Options{
		URI: "qemu:///system", ReconnectMin: time.Millisecond, ReconnectMax: 3 * time.Millisecond,
		OnState: func(s Status) { states <- s },
	}, d.dial)
	var mu sync.Mutex
	var waits []time.Duration
	c.after = func(dur time.Duration) <-chan time.Time {
		mu.Lock()
		waits = append(waits, dur)
		mu.Unlock()
		return time.After(0)
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectState(t, states, StateConnected, 0)

	d.link(0).drop(errors.New("keepalive timeout"))
	s := expectState(t, states, StateReconnecting, 0)
	if s.LastError == nil || s.LastError.Error() != "keepalive timeout" {
		t.Errorf("LastError = %v", s.LastError)
	}
	// while down, calls fail clearly
	_, err := c.FreeMemory()
	if !errors.Is(err, ErrNotConnected) {
		t.Errorf("FreeMemory while reconnecting: %v, want ErrNotConnected", err)
	}
	t.Log(err)
	for range 3 { // three failed redials are reported with their error
		s := expectState(t, states, StateReconnecting, 0)
		if !errors.Is(s.LastError, refused) {
			t.Errorf("LastError = %v, want %v", s.LastError, refused)
		}
	}
	expectState(t, states, StateConnected, 1)
	if !d.link(0).isClosed() {
		t.Error("the dropped link was not closed")
	}
	mu.Lock()
	got := append([]time.Duration(nil), waits...)
	mu.Unlock()
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond}
	if len(got) != len(want) {
		t.Fatalf("backoff waits = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("backoff waits = %v, want %v", got, want)
			break
		}
	}
	// a second drop reconnects again (the dial subscribes anew each time)
	d.link(1).drop(errors.New("eof"))
	expectState(t, states, StateReconnecting, 1)
	expectState(t, states, StateConnected, 2)
	if st := c.Status(); st.State != StateConnected || st.Reconnects != 2 || st.URI != "qemu:///system" {
		t.Errorf("Status() = %+v", st)
	}
	d.mu.Lock()
	dials := d.dials
	d.mu.Unlock()
	if dials != 6 {
		t.Errorf("dials = %d, want 6", dials)
	}
}

func expectState(t *testing.T, ch <-chan Status, want ConnState, reconnects int) Status {
	t.Helper()
	select {
	case s := <-ch:
		if s.State != want || s.Reconnects != reconnects {
			t.Fatalf("state %s (reconnects %d), want %s (%d)", s.State, s.Reconnects, want, reconnects)
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no state change to %s", want)
	}
	return Status{}
}

func TestCloseStopsRedialling(t *testing.T) {
	d := &fakeDialer{script: []error{nil}, dialed: make(chan int, 64)}
	for range 1000 {
		d.script = append(d.script, errors.New("refused"))
	}
	c := newConn(Options{ReconnectMin: time.Millisecond, ReconnectMax: time.Millisecond}, d.dial)
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	d.link(0).drop(errors.New("gone"))
	<-d.dialed // first dial
	<-d.dialed // a redial
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	n := d.dials
	d.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dials != n {
		t.Errorf("dialled %d more times after Close", d.dials-n)
	}
	if st := c.Status(); st.State != StateClosed {
		t.Errorf("state after Close = %s", st.State)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFirstDialFails(t *testing.T) {
	d := &fakeDialer{script: []error{errors.New("no libvirtd")}}
	c := newConn(Options{}, d.dial)
	if err := c.start(); err == nil {
		t.Fatal("start succeeded without a connection")
	}
}

func TestNilConn(t *testing.T) {
	var c *Conn
	if err := c.Destroy("work"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("nil Conn: %v", err)
	}
	if _, err := c.List(); !errors.Is(err, ErrNotConnected) {
		t.Errorf("nil Conn: %v", err)
	}
}
