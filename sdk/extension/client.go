package extension

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qubesgo/qubesd/sdk/plugin"
	extensionv1 "github.com/qubesgo/qubesd/sdk/proto/extension/v1"
	hostv1 "github.com/qubesgo/qubesd/sdk/proto/host/v1"
)

// Broker is the part of go-plugin's *GRPCBroker the daemon-side Client
// uses to serve the host service to the plugin.
type Broker interface {
	NextId() uint32
	AcceptAndServe(id uint32, newGRPCServer func([]grpc.ServerOption) *grpc.Server)
}

// Client is the daemon half of the protocol: an Extension backed by an
// extension.v1 client, so that the daemon uses a plugin exactly as it
// would use an in-process extension. The daemon implements HostService;
// Configure serves it to the plugin over go-plugin's broker.
//
// Errors: a handler's error (a veto, or a failed Sync handler) comes back
// from HandleEvent as an *Error of kind ErrVeto with the exception class
// and message the extension chose; an Admin API error from CallMethod as
// an *Error with its class and message; transport failures as errors of
// kind ErrUnavailable, ErrUnimplemented or the context errors. Once the
// plugin process has exited, every call fails with ErrUnavailable.
//
// Declarations are checked: Subscriptions and Methods fail with ErrInvalid
// if the plugin sends one that Validate refuses (or two methods of one
// name).
type Client struct {
	c      extensionv1.ExtensionClient
	broker Broker
	// done is cancelled when the plugin process exits (go-plugin's
	// GRPCClient context); nil when unknown.
	done   context.Context
	logger hclog.Logger

	mu     sync.Mutex
	host   *grpc.Server // serving the HostService of the last Configure
	events *eventStream // nil until the first event
	closed bool
}

var _ Extension = (*Client)(nil)

// NewClient returns an Extension that calls c and serves the host service
// through broker (nil: Configure offers no host to the plugin). logger
// logs panics of the HostService (nil: discarded).
func NewClient(c extensionv1.ExtensionClient, broker Broker, logger hclog.Logger) *Client {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Client{c: c, broker: broker, logger: logger}
}

// err converts a call's error: a dead plugin is ErrUnavailable, anything
// else is what the plugin sent.
func (c *Client) err(method string, err error) error {
	if err == nil {
		return nil
	}
	if c.done != nil && c.done.Err() != nil {
		return Errorf(ErrUnavailable, "extension plugin exited (%s: %s)", method, status.Convert(err).Message())
	}
	return FromStatus(err)
}

func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.c.Info(ctx, &extensionv1.InfoRequest{})
	if err != nil {
		return Info{}, c.err("Info", err)
	}
	info := Info{Name: r.GetName(), Version: r.GetVersion(), Description: r.GetDescription(), ProtocolVersion: int(r.GetProtocolVersion())}
	for _, k := range r.GetConfig() {
		info.Config = append(info.Config, ConfigKey{Name: k.GetName(), Description: k.GetDescription(), Required: k.GetRequired(), Default: k.GetDefaultValue()})
	}
	return info, nil
}

// Configure serves host to the plugin on a new broker id and sends it with
// the config. The host service of a previous Configure is stopped once the
// plugin has accepted the new one; Close stops the last one. A nil host
// offers none: the plugin's Host calls then fail with ErrUnavailable. A
// plugin that does not implement Configure (not built with this SDK) is
// accepted with an empty config.
func (c *Client) Configure(ctx context.Context, config []byte, host HostService) error {
	var id uint32
	var srv *grpc.Server
	if host != nil && c.broker != nil {
		var err error
		id, srv, err = c.serveHost(ctx, host)
		if err != nil {
			return err
		}
	}
	_, err := c.c.Configure(ctx, &extensionv1.ConfigureRequest{ConfigJson: config, HostBrokerId: id})
	if err != nil {
		stopServer(srv)
		if status.Code(err) == codes.Unimplemented {
			// Not an SDK plugin: it takes no config, and no host.
			if t := bytes.TrimSpace(config); len(t) != 0 && !bytes.Equal(t, []byte("{}")) {
				return Errorf(ErrInvalid, "plugin config: the plugin takes no config (it does not implement Configure)")
			}
			return nil
		}
		return c.err("Configure", err)
	}
	c.mu.Lock()
	old := c.host
	c.host = srv
	c.mu.Unlock()
	stopServer(old)
	return nil
}

// serveHost serves host on a new broker id and returns once the id is
// announced to the plugin (so the plugin's Dial finds it at once).
func (c *Client) serveHost(ctx context.Context, host HostService) (uint32, *grpc.Server, error) {
	id := c.broker.NextId()
	ready := make(chan *grpc.Server, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, plugin.ServerOptions()...)
			opts = append(opts, grpc.ChainUnaryInterceptor(plugin.RecoverUnary(c.logger)))
			s := grpc.NewServer(opts...)
			hostv1.RegisterHostServer(s, NewHostServer(host))
			ready <- s
			return s
		})
	}()
	select {
	case s := <-ready:
		return id, s, nil
	case <-exited:
		return 0, nil, Errorf(ErrUnavailable, "extension: could not serve the host service on the plugin broker (id %d)", id)
	case <-ctx.Done():
		// The goroutine may still get its server: stop it when it does.
		go func() {
			select {
			case s := <-ready:
				stopServer(s)
			case <-exited:
			}
		}()
		return 0, nil, fmt.Errorf("extension: serving the host service: %w", ctx.Err())
	}
}

// stopServer stops a host server, gracefully for up to 2 s.
func stopServer(s *grpc.Server) {
	if s == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.Stop()
		<-done
	}
}

// Close ends the Events stream (events in flight fail with
// ErrUnavailable) and stops the host service the plugin was given: the
// plugin's Host calls fail from then on. Call it when the plugin is
// stopped or replaced. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	s, st := c.host, c.events
	c.host, c.events, c.closed = nil, nil, true
	c.mu.Unlock()
	if st != nil {
		st.close()
	}
	stopServer(s)
	return nil
}

func (c *Client) Subscriptions(ctx context.Context) ([]Subscription, error) {
	r, err := c.c.Subscriptions(ctx, &extensionv1.SubscriptionsRequest{})
	if err != nil {
		return nil, c.err("Subscriptions", err)
	}
	subs := make([]Subscription, len(r.GetSubscriptions()))
	for i, s := range r.GetSubscriptions() {
		subs[i] = Subscription{
			Pattern: s.GetPattern(),
			Mode:    Mode(s.GetMode()),
			Timeout: time.Duration(s.GetTimeoutMs()) * time.Millisecond,
		}
		if err := subs[i].Validate(); err != nil {
			return nil, Errorf(ErrInvalid, "extension plugin sent an invalid subscription: %v", err)
		}
	}
	return subs, nil
}

// HandleEvent delivers e on the Events stream and waits for the answer, or
// for ctx. A stream that broke (the plugin exited, or ended it) fails the
// events in flight with ErrUnavailable; the next event opens a new one.
func (c *Client) HandleEvent(ctx context.Context, e Event) ([]any, error) {
	kwargs, err := kvsToProto(e.Kwargs)
	if err != nil {
		return nil, Errorf(ErrInvalid, "event %s: kwarg %v", e.Name, err)
	}
	req := &extensionv1.EventRequest{
		DispatchId: formatDispatchID(e.DispatchID),
		Subject:    e.Subject,
		Name:       e.Name,
		Kwargs:     kwargs,
		Mode:       extensionv1.Mode(e.Mode),
	}
	st, err := c.eventStream()
	if err != nil {
		return nil, err
	}
	r, err := st.roundTrip(ctx, req)
	if err != nil {
		return nil, c.err("Events", err)
	}
	if r.GetVeto() != nil {
		return nil, exceptionFromProto(r.GetVeto(), ErrVeto)
	}
	return valuesFromProto(r.GetResults()), nil
}

// eventStream returns the open Events stream, opening one if there is
// none or the last one broke.
func (c *Client) eventStream() (*eventStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, Errorf(ErrUnavailable, "extension client closed")
	}
	if c.events != nil && !c.events.broken() {
		return c.events, nil
	}
	st, err := openEventStream(c.c)
	if err != nil {
		return nil, c.err("Events", err)
	}
	c.events = st
	return st, nil
}

// Methods lists the plugin's methods. extension.v1 carries the name, the
// scope, read/write and "no payload"; Dest comes back as DestAny, Arg as
// Optional and Payload as Optional or Forbidden: the plugin's SDK checks
// the rest of its MethodSpec on every call (MethodSpec.CheckCall).
func (c *Client) Methods(ctx context.Context) ([]MethodSpec, error) {
	r, err := c.c.Methods(ctx, &extensionv1.MethodsRequest{})
	if err != nil {
		return nil, c.err("Methods", err)
	}
	ms := make([]MethodSpec, len(r.GetMethods()))
	seen := make(map[string]bool, len(ms))
	for i, p := range r.GetMethods() {
		m, err := methodFromProto(p)
		if err != nil {
			return nil, Errorf(ErrInvalid, "extension plugin sent an invalid method: %v", err)
		}
		if seen[m.Name] {
			return nil, Errorf(ErrInvalid, "extension plugin sent method %q twice", m.Name)
		}
		seen[m.Name] = true
		ms[i] = m
	}
	return ms, nil
}

func (c *Client) CallMethod(ctx context.Context, call Call) ([]byte, error) {
	r, err := c.c.CallMethod(ctx, &extensionv1.CallMethodRequest{
		DispatchId: formatDispatchID(call.DispatchID),
		Method:     call.Method,
		Arg:        call.Arg,
		Source:     call.Src,
		Dest:       call.Dest,
		Payload:    call.Payload,
	})
	if err != nil {
		return nil, c.err("CallMethod", err)
	}
	if r.GetError() != nil {
		return nil, exceptionFromProto(r.GetError(), nil)
	}
	return r.GetBody(), nil
}
