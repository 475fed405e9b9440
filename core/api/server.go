package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
)

// Committer makes a model version durable (core/store.Committer).
type Committer interface {
	Commit(ctx context.Context, version uint64) error
}

// PowerStates tells the power state of qubes ("Halted", "Running", ...).
// Until lifecycle management is wired in, StaticPowerStates is used.
type PowerStates interface {
	PowerState(q *qubes.Qube) string
}

// PluginStatus reports the state of the configured plugins
// (core/pluginhost.Host).
type PluginStatus interface {
	Status() []pluginhost.Status
}

// ExtensionMethods finds Admin API methods that extensions serve
// (core/pluginhost.Host).
type ExtensionMethods interface {
	APIMethod(ctx context.Context, name string) (pluginhost.APIMethod, bool)
}

// extensionMethod builds a method table row for a method an extension
// serves: the same validation, permission event, locking and durability as
// the core's own, then the call routed to the extension under a dispatch
// (so it may call the core back without deadlocking).
func (s *Server) extensionMethod(name string) (*Method, bool) {
	ext, ok := s.opts.Plugins.(ExtensionMethods)
	if !ok || s.opts.Methods != AdminMethods || !strings.HasPrefix(name, "admin.") {
		return nil, false
	}
	am, ok := ext.APIMethod(s.ctx, name)
	if !ok {
		return nil, false
	}
	m := &Method{Name: name, Dest: DestRule(am.Spec.Dest), Arg: Presence(am.Spec.Arg), Payload: Presence(am.Spec.Payload), Write: am.Spec.Write}
	m.Handle = func(c *Call) ([]byte, error) {
		id, end := c.App.BeginDispatch(m.Write)
		defer end()
		return am.Call(context.Background(), id, c.Src.Name(), c.Dest.Name(), c.Arg, c.Payload)
	}
	return m, true
}

// runs reports whether q is a virtual machine of this host that is not
// Halted (a qube whose volumes are in use, which removal and volume
// changes refuse).
func (s *Server) runs(q *qubes.Qube) bool {
	return q.HasVM() && s.opts.States.PowerState(q) != "Halted"
}

// StaticPowerStates reports dom0 as Running and every other qube as Halted:
// the truth for a system that starts no qubes.
type StaticPowerStates struct{}

// PowerState implements PowerStates.
func (StaticPowerStates) PowerState(q *qubes.Qube) string {
	if q.IsAdminVM() || q.IsRemote() {
		return "Running"
	}
	return "Halted"
}

// Options configure a Server.
type Options struct {
	App       *qubes.App
	Committer Committer // nil: changes stay in memory (tests)
	States    PowerStates
	// Lifecycle serves admin.vm.Start, Shutdown, Kill, Pause, Unpause and
	// CurrentState (nil: they fail, CurrentState reports States). When
	// States is nil, it also gives the power states.
	Lifecycle Lifecycle
	Logger    hclog.Logger
	// EventQueue is how many events an admin.Events subscriber may have
	// waiting before it is cut off as too slow. Default 4096.
	EventQueue int
	// ReadTimeout bounds how long a client may take to send its request.
	// Default 60 s.
	ReadTimeout time.Duration
	// Plugins reports the plugins for admin.plugin.List (nil: none); its
	// pool-driver plugins are the drivers admin.pool.ListDrivers and
	// admin.pool.Add offer.
	Plugins PluginStatus
	// Storage runs the pool and volume methods (nil: they fail with
	// "storage is not configured").
	Storage *storage.Manager
	// Methods selects the method table: AdminMethods (the default) for
	// qubesd.sock; NoMethods for qubesd.internal.sock and qubesd.misc.sock
	// until their methods (qrexec policy, tools' notifications) arrive.
	Methods MethodSet
}

// MethodSet selects the methods a server offers.
type MethodSet uint8

const (
	AdminMethods MethodSet = iota
	NoMethods
	// InternalMethods are qubesd.internal.sock's (spec admin-api §1.9):
	// internal.vm.volume.ImportBegin/ImportEnd.
	InternalMethods
)

// Server answers Admin API requests.
type Server struct {
	opts    Options
	app     *qubes.App
	log     hclog.Logger
	methods methodTable
	clones  cloneTokens // admin.vm.volume.CloneFrom/CloneTo

	ctx    context.Context // cancelled by Shutdown: ends event streams
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]bool
	active    map[net.Conn]connState // guarded by mu
	conns     sync.WaitGroup
	closing   bool
}

// connState is where a connection is in its life; Shutdown closes those
// that wait on the client (reading a request, streaming events) and lets
// those running a call finish.
type connState uint8

const (
	stateReading connState = iota
	stateRunning
	stateStreaming
)

// track records a connection's state; it returns false when the server is
// shutting down and the connection should be dropped.
func (s *Server) track(conn net.Conn, st connState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing && st != stateRunning {
		return false
	}
	s.active[conn] = st
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.active, conn)
	s.mu.Unlock()
}

// New returns a server for the model in o.App.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.States == nil && o.Lifecycle != nil {
		o.States = o.Lifecycle
	}
	if o.States == nil {
		o.States = StaticPowerStates{}
	}
	if o.EventQueue <= 0 {
		o.EventQueue = 4096
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: o, app: o.App, log: o.Logger, methods: methodTable{}, ctx: ctx, cancel: cancel, listeners: map[net.Listener]bool{}, active: map[net.Conn]connState{}}
	switch o.Methods {
	case AdminMethods:
		s.methods = newMethodTable()
		registerPermissionRules(s.app)
	case InternalMethods:
		s.methods = newInternalMethodTable()
	}
	return s
}

// Methods returns the names of every method served, sorted.
func (s *Server) Methods() []string { return s.methods.Names() }

// Serve accepts connections on l until Shutdown. It returns nil after a
// Shutdown and the accept error otherwise.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("api: server is shut down")
	}
	s.listeners[l] = true
	s.mu.Unlock()
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serveConn(conn)
		}()
	}
}

// Shutdown stops accepting, drops connections that have not sent their
// request yet, ends event streams, and waits for calls in flight to finish
// (or ctx to end). Calls in flight complete normally, writes included.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		_ = l.Close()
	}
	for conn, st := range s.active {
		if st != stateRunning {
			_ = conn.Close()
		}
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("api: calls still running at shutdown: %w", ctx.Err())
	}
}

func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	if !s.track(conn, stateReading) {
		return
	}
	defer s.untrack(conn)
	_ = conn.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
	raw, err := io.ReadAll(io.LimitReader(conn, MaxRequest+1))
	if err != nil {
		s.log.Warn("reading request failed", "error", err)
		_, _ = conn.Write(ErrorReply(qerr.New(qerr.ProtocolError, "reading the request failed: %v (send the request, then close the write side)", err)))
		return
	}
	if len(raw) > MaxRequest {
		_, _ = conn.Write(ErrorReply(qerr.New(qerr.ProtocolError, "request too long: more than %d bytes", MaxRequest)))
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	c, err := s.prepare(raw)
	if err != nil {
		s.logRefusal(raw, err)
		_, _ = conn.Write(ErrorReply(err))
		return
	}
	if c.Method.Stream != nil {
		if s.track(conn, stateStreaming) {
			s.stream(conn, c)
		}
		return
	}
	if !s.track(conn, stateRunning) {
		return
	}
	// not s.ctx: a call that started runs to its end, even during Shutdown
	_, _ = conn.Write(s.run(context.Background(), c))
}

// stream runs an event-stream method on its connection until the client
// goes away, the stream ends it, or the server shuts down.
func (s *Server) stream(conn net.Conn, c *Call) {
	if err := s.app.Read(c.checkPermission); err != nil {
		_, _ = conn.Write(ErrorReply(err))
		return
	}
	sent := false
	err := c.Method.Stream(s.ctx, c, func(b []byte) error {
		sent = true
		// a client that stops reading is cut off rather than held forever
		_ = conn.SetWriteDeadline(time.Now().Add(s.opts.ReadTimeout))
		_, err := conn.Write(b)
		return err
	})
	if err != nil && !sent {
		// refused before its first frame (say, the stats of a halted qube):
		// the client gets the reason, as for any other refusal
		_ = conn.SetWriteDeadline(time.Now().Add(s.opts.ReadTimeout))
		_, _ = conn.Write(ErrorReply(err))
		return
	}
	if err != nil {
		s.log.Debug("event stream ended", "method", c.Method.Name, "error", err)
	}
}

// Call answers one request given as raw bytes. Event streams are refused:
// they need a connection.
func (s *Server) Call(ctx context.Context, raw []byte) []byte {
	if len(raw) > MaxRequest {
		return ErrorReply(qerr.New(qerr.ProtocolError, "request too long: more than %d bytes", MaxRequest))
	}
	c, err := s.prepare(raw)
	if err != nil {
		return ErrorReply(err)
	}
	if c.Method.Stream != nil {
		return ErrorReply(qerr.New(qerr.ProtocolError, "%s is a stream: call it over a connection", c.Method.Name))
	}
	return s.run(ctx, c)
}

func (s *Server) logRefusal(raw []byte, err error) {
	head := raw
	if i := strings.IndexByte(string(raw), 0); i >= 0 {
		head = raw[:i]
	}
	if len(head) > 200 {
		head = head[:200]
	}
	s.log.Debug("request refused", "request", fmt.Sprintf("%q", head), "error", err)
}

// prepare validates a request in the reference's order: framing, source and
// destination, argument, method, then the method's own rules.
func (s *Server) prepare(raw []byte) (*Call, error) {
	r, err := ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	c := &Call{Server: s, App: s.app, Arg: r.Arg, Payload: r.Payload}
	err = s.app.Read(func() error {
		var err error
		if c.Src, err = s.lookup(r.Src); err != nil {
			return err
		}
		c.Dest, err = s.lookup(r.Dest)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !isASCII(r.Arg) {
		return nil, qerr.New(qerr.ProtocolError, "the argument contains non-ASCII characters")
	}
	m, ok := s.methods[r.Method]
	if !ok {
		m, ok = s.extensionMethod(r.Method)
	}
	if !ok {
		if !isASCII(r.Method) {
			return nil, qerr.New(qerr.ProtocolError, "no such method: the method name contains non-ASCII characters")
		}
		return nil, qerr.New(qerr.ProtocolError, "no such method: %s", property.PyRepr(r.Method))
	}
	c.Method = m
	switch {
	case m.Payload == Required && len(r.Payload) == 0:
		return nil, qerr.New(qerr.ProtocolError, "expected payload")
	case m.Payload == Forbidden && len(r.Payload) > 0:
		return nil, qerr.New(qerr.ProtocolError, "unexpected payload")
	case m.Arg == Required && r.Arg == "":
		return nil, qerr.New(qerr.ProtocolError, "expected an argument")
	case m.Arg == Forbidden && r.Arg != "":
		return nil, qerr.New(qerr.ProtocolError, "unexpected argument")
	case m.Dest == DestAdminVM && !c.Dest.IsAdminVM():
		return nil, qerr.New(qerr.ProtocolError, "expected destination to be AdminVM")
	case m.Dest == DestVM && c.Dest.IsAdminVM():
		return nil, qerr.New(qerr.ProtocolError, "expected destination to not be AdminVM")
	}
	return c, nil
}

// lookup resolves a source or destination: a qube name or uuid:<uuid>.
func (s *Server) lookup(untrusted string) (*qubes.Qube, error) {
	if rest, ok := strings.CutPrefix(untrusted, "uuid:"); ok {
		if len(untrusted) != 41 || !uuidRe.MatchString(rest) {
			return nil, qerr.New(qerr.VMInvalidUUID, "VM UUID is not valid: %s", property.PyRepr(rest))
		}
		return s.app.QubeByUUID(rest)
	}
	if err := qubes.ValidateName(untrusted); err != nil {
		return nil, err
	}
	return s.app.Qube(untrusted)
}

// run executes a validated call: under the read or write lock as the method
// says, with its permission event, and — for writes — replies only once the
// change is durable.
func (s *Server) run(ctx context.Context, c *Call) (reply []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panicked; the call failed but the daemon goes on", "method", c.Method.Name, "dest", c.Dest.Name(), "panic", p, "stack", string(debug.Stack()))
			reply = ErrorReply(qerr.New(qerr.Exception, "internal error in %s: %v (see the qubesd log)", c.Method.Name, p))
		}
	}()
	if c.Method.Run != nil {
		return s.runUnlocked(ctx, c)
	}
	var body []byte
	handle := func() error {
		if err := c.checkPermission(); err != nil {
			return err
		}
		var err error
		body, err = c.Method.Handle(c)
		return err
	}
	if !c.Method.Write {
		if err := s.app.Read(handle); err != nil {
			return s.errorReply(c, err)
		}
		return OKReply(body)
	}
	version, err := s.app.Write(handle)
	if err != nil {
		return s.errorReply(c, err)
	}
	if err := s.commit(ctx, c, version); err != nil {
		return ErrorReply(err)
	}
	return OKReply(body)
}

// commit makes version durable (nothing without a Committer).
func (s *Server) commit(ctx context.Context, c *Call, version uint64) error {
	if s.opts.Committer == nil || version == 0 {
		return nil
	}
	if err := s.opts.Committer.Commit(ctx, version); err != nil {
		s.log.Error("saving the store failed; the change is in memory only", "method", c.Method.Name, "dest", c.Dest.Name(), "error", err)
		return qerr.Wrap(qerr.Exception, err, "the change was made but could not be saved: %v", err)
	}
	return nil
}

// runUnlocked serves a Run method (see Method.Run): Prepare, the
// permission event under the read lock, then Run with no lock held, and
// the version Run returns made durable before the reply.
func (s *Server) runUnlocked(ctx context.Context, c *Call) []byte {
	if c.Method.Prepare != nil {
		if err := c.Method.Prepare(ctx, c); err != nil {
			return s.errorReply(c, err)
		}
	}
	if !c.Method.NoPermission {
		if err := s.app.Read(c.checkPermission); err != nil {
			return s.errorReply(c, err)
		}
	}
	body, version, err := c.Method.Run(ctx, c)
	if cerr := s.commit(ctx, c, version); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return s.errorReply(c, err)
	}
	return OKReply(body)
}

func (s *Server) errorReply(c *Call, err error) []byte {
	var qe *qerr.Error
	if !errors.As(err, &qe) {
		s.log.Error("unexpected error", "method", c.Method.Name, "dest", c.Dest.Name(), "error", err)
	}
	return ErrorReply(err)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
