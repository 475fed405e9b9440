package vmm

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"libvirt.org/go/libvirt"
)

// DefaultURI is the embedded default: libvirt's in-process test driver.
const DefaultURI = "test:///default"

// ConnState is the state of the connection to libvirt.
type ConnState string

const (
	StateConnected    ConnState = "connected"
	StateReconnecting ConnState = "reconnecting" // dropped; redialling with backoff
	StateClosed       ConnState = "closed"       // Close was called
)

// Status describes the connection, for logs and a status method.
type Status struct {
	URI        string
	State      ConnState
	Since      time.Time // when State was entered
	LastError  error     // why it dropped, or the last failed redial
	Reconnects int       // successful reconnections since Open
}

// Options configure Open. Only URI matters to most callers.
type Options struct {
	URI    string       // libvirt_uri; DefaultURI when empty
	Logger hclog.Logger // nil: no logging
	// OnEvent receives every translated lifecycle event, in libvirt's order,
	// on one goroutine of its own (never libvirt's event loop): it may call
	// back into the Conn. A slow handler delays later events, never loses them.
	OnEvent func(Event)
	// OnState is called on every change of connection state (same goroutine
	// discipline as OnEvent, but not ordered with it).
	OnState func(Status)
	// Keepalive for remote connections (ignored by local drivers such as
	// test:///): a ping every KeepaliveInterval, dropped after KeepaliveCount
	// unanswered ones. Defaults 5 s and 3.
	KeepaliveInterval time.Duration
	KeepaliveCount    uint
	// Reconnection backoff: starts at ReconnectMin, doubles up to
	// ReconnectMax. Defaults 100 ms and 10 s.
	ReconnectMin, ReconnectMax time.Duration
}

// link is one open connection with its subscriptions: a *session in
// production, a fake in the reconnection tests.
type link interface {
	lv() *libvirt.Connect     // nil for fakes
	dropped() <-chan struct{} // closed when the connection is known lost
	drop(reason error)        // mark it lost (idempotent)
	dropReason() error
	close() // unsubscribe and close (idempotent)
}

// Conn is a supervised libvirt connection. All its methods are safe for
// concurrent use.
type Conn struct {
	opts Options
	log  hclog.Logger
	tr   *translator
	q    *queue

	dial  func() (link, error)
	after func(time.Duration) <-chan time.Time // time.After; tests record backoff

	mu     sync.RWMutex // guards cur and status; held (read) for the length of every libvirt call
	cur    link         // nil while reconnecting or closed
	status Status

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	ownsLoop  bool
}

// Open connects to opts.URI, subscribes to domain lifecycle events and starts
// supervising the connection. The first connection is made before Open
// returns: an unreachable libvirt is an error here; later drops are retried
// in the background.
func Open(opts Options) (*Conn, error) {
	if err := acquireLoop(); err != nil {
		return nil, err
	}
	c := newConn(opts, nil)
	c.ownsLoop = true
	c.dial = c.dialLibvirt
	if err := c.start(); err != nil {
		releaseLoop()
		return nil, err
	}
	return c, nil
}

func newConn(opts Options, dial func() (link, error)) *Conn {
	if opts.URI == "" {
		opts.URI = DefaultURI
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.KeepaliveInterval <= 0 {
		opts.KeepaliveInterval = 5 * time.Second
	}
	if opts.KeepaliveCount == 0 {
		opts.KeepaliveCount = 3
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = 100 * time.Millisecond
	}
	if opts.ReconnectMax < opts.ReconnectMin {
		opts.ReconnectMax = max(10*time.Second, opts.ReconnectMin)
	}
	c := &Conn{
		opts:    opts,
		log:     opts.Logger.Named("vmm").With("uri", opts.URI),
		tr:      newTranslator(),
		dial:    dial,
		after:   time.After,
		closing: make(chan struct{}),
	}
	c.q = newQueue(opts.OnEvent, opts.OnState)
	return c
}

// start makes the first connection and launches the supervisor.
func (c *Conn) start() error {
	l, err := c.dial()
	if err != nil {
		return err
	}
	c.q.start()
	c.install(l, false)
	c.wg.Add(1)
	go c.supervise(l)
	return nil
}

// install makes l the current link, then reconciles the translator with the
// domains libvirt reports active: stops missed while disconnected become
// synthetic stopped events.
func (c *Conn) install(l link, reconnect bool) {
	c.mu.Lock()
	c.cur = l
	c.status.URI = c.opts.URI
	c.status.State = StateConnected
	c.status.Since = time.Now()
	if reconnect {
		c.status.Reconnects++
	}
	st := c.status
	c.mu.Unlock()
	c.q.pushState(st)
	if reconnect {
		c.log.Info("reconnected to libvirt", "reconnects", st.Reconnects)
	} else {
		c.log.Debug("connected to libvirt")
	}
	if l.lv() == nil {
		return
	}
	doms, err := c.listOn(l.lv())
	if err != nil {
		c.log.Warn("cannot list domains after connecting; missed stop events are not recovered", "error", err)
		return
	}
	var active []DomainInfo
	for _, d := range doms {
		if d.Active {
			active = append(active, d)
		}
	}
	for _, ev := range c.tr.reconcile(active) {
		c.log.Info("domain stopped while libvirt was unreachable", "domain", ev.Domain)
		c.q.push(ev)
	}
}

// supervise waits for l to drop, then redials with backoff until it succeeds
// or the Conn is closed.
func (c *Conn) supervise(l link) {
	defer c.wg.Done()
	for {
		select {
		case <-c.closing:
			return
		case <-l.dropped():
		}
		reason := l.dropReason()
		c.mu.Lock()
		c.cur = nil
		c.status.State, c.status.Since, c.status.LastError = StateReconnecting, time.Now(), reason
		st := c.status
		c.mu.Unlock()
		c.q.pushState(st)
		c.log.Warn("libvirt connection lost; reconnecting", "error", reason)
		l.close()

		backoff := c.opts.ReconnectMin
		for {
			select {
			case <-c.closing:
				return
			case <-c.after(backoff):
			}
			nl, err := c.dial()
			if err == nil {
				l = nl
				c.install(l, true)
				break
			}
			c.mu.Lock()
			c.status.LastError = err
			st := c.status
			c.mu.Unlock()
			c.q.pushState(st)
			c.log.Warn("libvirt reconnection failed", "error", err, "retry_in", backoff*2)
			backoff = min(backoff*2, c.opts.ReconnectMax)
		}
	}
}

// Close stops the supervisor, unsubscribes, closes the connection and
// delivers the events already received. Idempotent. Do not call it from an
// OnEvent or OnState handler.
func (c *Conn) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		close(c.closing)
		c.wg.Wait()
		c.mu.Lock()
		l := c.cur
		c.cur = nil
		c.status.State, c.status.Since = StateClosed, time.Now()
		c.mu.Unlock()
		if l != nil {
			l.close()
		}
		c.q.stop()
		if c.ownsLoop {
			releaseLoop()
		}
	})
	return nil
}

// Status reports the connection's state.
func (c *Conn) Status() Status {
	if c == nil {
		return Status{State: StateClosed}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.status
}

// URI is the libvirt URI this Conn talks to.
func (c *Conn) URI() string { return c.opts.URI }

// notConnected is the error of a call made while there is no connection.
func (c *Conn) notConnected() error {
	switch {
	case c.status.State == StateClosed:
		return fmt.Errorf("%w: the connection is closed", ErrNotConnected)
	case c.status.LastError != nil:
		return fmt.Errorf("%w: reconnecting to %s (last error: %v)", ErrNotConnected, c.opts.URI, c.status.LastError)
	}
	return fmt.Errorf("%w: reconnecting to %s", ErrNotConnected, c.opts.URI)
}

// withConn runs f on the current connection, holding the read lock so that
// the supervisor cannot close it underneath.
func (c *Conn) withConn(op, domain string, f func(*libvirt.Connect) error) error {
	if c == nil {
		return &Error{Op: op, Domain: domain, Err: fmt.Errorf("%w: no connection", ErrNotConnected)}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cur == nil || c.cur.lv() == nil {
		return &Error{Op: op, Domain: domain, Err: c.notConnected()}
	}
	err := f(c.cur.lv())
	if err != nil {
		var lv libvirt.Error
		if errors.As(err, &lv) && isConnectionError(lv) {
			go c.probe(c.cur)
		}
		return wrap(op, domain, err)
	}
	return nil
}

// probe checks a link that just failed a call with a connection-class error
// and marks it dropped if libvirt says it is dead (a close callback does the
// same, when the driver has one).
func (c *Conn) probe(l link) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cur != l || l.lv() == nil {
		return
	}
	if alive, err := l.lv().IsAlive(); err != nil || !alive {
		l.drop(fmt.Errorf("connection is not alive (%v)", err))
	}
}

// withDomain looks name up and runs f on it.
func (c *Conn) withDomain(op, name string, f func(*libvirt.Domain) error) error {
	return c.withConn(op, name, func(lc *libvirt.Connect) error {
		d, err := lc.LookupDomainByName(name)
		if err != nil {
			return err
		}
		defer d.Free()
		return f(d)
	})
}

// session is a real libvirt connection with its lifecycle subscription.
type session struct {
	conn *libvirt.Connect
	cbID int

	once      sync.Once
	closeOnce sync.Once
	gone      chan struct{}
	mu        sync.Mutex
	reason    error
}

func (s *session) lv() *libvirt.Connect     { return s.conn }
func (s *session) dropped() <-chan struct{} { return s.gone }
func (s *session) drop(reason error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.reason = reason
		s.mu.Unlock()
		close(s.gone)
	})
}
func (s *session) dropReason() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}
func (s *session) close() {
	s.closeOnce.Do(func() {
		// the calls fail harmlessly on a dead connection
		_ = s.conn.DomainEventDeregister(s.cbID)
		_ = s.conn.UnregisterCloseCallback()
		_, _ = s.conn.Close()
	})
}

// dialLibvirt opens the URI, registers the close callback and keepalive, and
// subscribes to lifecycle events of every domain.
func (c *Conn) dialLibvirt() (link, error) {
	lc, err := libvirt.NewConnect(c.opts.URI)
	if err != nil {
		return nil, wrap("connect to", c.opts.URI, err)
	}
	s := &session{conn: lc, gone: make(chan struct{})}
	if err := lc.RegisterCloseCallback(func(_ *libvirt.Connect, r libvirt.ConnectCloseReason) {
		s.drop(fmt.Errorf("libvirt closed the connection (%s)", closeReason(r)))
	}); err != nil {
		c.log.Debug("no close callback on this driver", "error", err)
	}
	if err := lc.SetKeepAlive(int(c.opts.KeepaliveInterval/time.Second), c.opts.KeepaliveCount); err != nil {
		c.log.Debug("no keepalive on this driver", "error", err)
	}
	s.cbID, err = lc.DomainEventLifecycleRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventLifecycle) {
		// libvirt's event loop goroutine: translate and queue, never block
		name, _ := d.GetName()
		uuid, _ := d.GetUUIDString()
		c.handleRaw(rawEvent{name: name, uuid: uuid, event: ev.Event, detail: ev.Detail})
	})
	if err != nil {
		_ = lc.UnregisterCloseCallback()
		_, _ = lc.Close()
		return nil, wrap("subscribe to lifecycle events on", c.opts.URI, err)
	}
	return s, nil
}

func (c *Conn) handleRaw(r rawEvent) {
	if ev, ok := c.tr.translate(r); ok {
		c.q.push(ev)
	} else if r.event == libvirt.DOMAIN_EVENT_STOPPED {
		c.log.Debug("duplicate stopped event suppressed", "domain", r.name)
	}
}

func closeReason(r libvirt.ConnectCloseReason) string {
	switch r {
	case libvirt.CONNECT_CLOSE_REASON_ERROR:
		return "error"
	case libvirt.CONNECT_CLOSE_REASON_EOF:
		return "end of file"
	case libvirt.CONNECT_CLOSE_REASON_KEEPALIVE:
		return "keepalive timeout"
	case libvirt.CONNECT_CLOSE_REASON_CLIENT:
		return "closed by client"
	}
	return fmt.Sprintf("reason %d", r)
}
