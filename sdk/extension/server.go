package extension

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/plugin"
	extensionv1 "github.com/qubesgo/qubesd/sdk/proto/extension/v1"
	hostv1 "github.com/qubesgo/qubesd/sdk/proto/host/v1"
)

// DialFunc dials the daemon's host service at a go-plugin broker id;
// (*goplugin.GRPCBroker).Dial is one.
type DialFunc func(id uint32) (*grpc.ClientConn, error)

// NewServer adapts an Extension to extension.v1's Extension gRPC service:
// the plugin half of the protocol. Configure dials the daemon's Host with
// dial at the broker id it is given and hands e a Host client; HandleEvent
// sets Event.Pre from e's PreVeto subscriptions; CallMethod runs
// MethodSpec.CheckCall first; the declarations are validated before they
// are sent; errors travel as the protocol says (see the package
// documentation). extension.Serve uses it; call it directly only to serve
// an extension on a gRPC server of your own.
func NewServer(e Extension, dial DialFunc) extensionv1.ExtensionServer {
	return &server{e: e, dial: dial}
}

type server struct {
	extensionv1.UnimplementedExtensionServer
	e    Extension
	dial DialFunc

	mu   sync.Mutex
	conn *grpc.ClientConn // the host connection of the last Configure
	// The declarations, asked once per Configure, never under mu while
	// asking (a handler may be asking at the same time).
	subs    []Subscription
	subsOK  bool
	methods map[string]MethodSpec
}

func (s *server) Info(ctx context.Context, _ *extensionv1.InfoRequest) (*extensionv1.InfoResponse, error) {
	info, err := s.e.Info(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &extensionv1.InfoResponse{
		Name:            info.Name,
		Version:         info.Version,
		Description:     info.Description,
		ProtocolVersion: sdk.ProtocolVersion,
	}
	for _, k := range info.Config {
		resp.Config = append(resp.Config, &extensionv1.ConfigKey{Name: k.Name, Description: k.Description, Required: k.Required, DefaultValue: k.Default})
	}
	return resp, nil
}

func (s *server) Configure(ctx context.Context, r *extensionv1.ConfigureRequest) (*extensionv1.ConfigureResponse, error) {
	var conn *grpc.ClientConn
	host := NewHostClient(nil)
	if id := r.GetHostBrokerId(); id != 0 {
		if s.dial == nil {
			return nil, status.Error(codes.FailedPrecondition, "extension: no go-plugin broker to dial the host service on")
		}
		var err error
		conn, err = s.dial(id)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "extension: dialing the daemon's host service (broker id %d): %v", id, err)
		}
		host = NewHostClient(hostv1.NewHostClient(conn))
	}
	if err := s.e.Configure(ctx, r.GetConfigJson(), host); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, ToStatus(err)
	}
	s.mu.Lock()
	old := s.conn
	s.conn = conn
	s.subs, s.subsOK, s.methods = nil, false, nil
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return &extensionv1.ConfigureResponse{}, nil
}

// subscriptions returns e's subscriptions, asking e once per Configure.
func (s *server) subscriptions(ctx context.Context) ([]Subscription, error) {
	s.mu.Lock()
	subs, ok := s.subs, s.subsOK
	s.mu.Unlock()
	if ok {
		return subs, nil
	}
	subs, err := s.e.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateSubscriptions(subs); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.subs, s.subsOK = subs, true
	s.mu.Unlock()
	return subs, nil
}

func (s *server) Subscriptions(ctx context.Context, _ *extensionv1.SubscriptionsRequest) (*extensionv1.SubscriptionsResponse, error) {
	s.mu.Lock()
	s.subsOK = false // the daemon asks: ask the extension afresh
	s.mu.Unlock()
	subs, err := s.subscriptions(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &extensionv1.SubscriptionsResponse{Subscriptions: make([]*extensionv1.Subscription, len(subs))}
	for i, sub := range subs {
		resp.Subscriptions[i] = &extensionv1.Subscription{
			Pattern:   sub.Pattern,
			Mode:      extensionv1.Mode(sub.Mode),
			TimeoutMs: durationToMs(sub.Timeout),
		}
	}
	return resp, nil
}

// notifyBacklog is how many Notify events may wait for the one goroutine
// that handles them in order. The daemon sends one at a time; a client
// that sends more waits when it is full, through the stream's flow
// control.
const notifyBacklog = 256

// Events serves the event stream: every Sync and PreVeto event on its own
// goroutine (a handler's Host call may cause another event to arrive
// before it returns), Notify events one at a time in order. It returns
// when the daemon ends the stream, once the handlers running have
// answered.
func (s *server) Events(stream extensionv1.Extension_EventsServer) error {
	ctx := stream.Context()
	var sendMu sync.Mutex
	answer := func(r *extensionv1.EventRequest) {
		resp := s.handleEvent(ctx, r)
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = stream.Send(resp) // fails only once the stream is gone
	}
	var handlers sync.WaitGroup
	notify := make(chan *extensionv1.EventRequest, notifyBacklog)
	handlers.Go(func() {
		for r := range notify {
			answer(r)
		}
	})
	defer func() {
		close(notify)
		handlers.Wait()
	}()
	for {
		r, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if r.GetMode() == extensionv1.Mode_MODE_NOTIFY {
			select {
			case notify <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		handlers.Go(func() { answer(r) })
	}
}

// handleEvent runs the extension's handler for one event and builds its
// answer: results, or the handler's error as the veto. A panic is logged
// and answered as an error, so a PreVeto event fails closed.
func (s *server) handleEvent(ctx context.Context, r *extensionv1.EventRequest) (resp *extensionv1.EventResponse) {
	resp = &extensionv1.EventResponse{Id: r.GetId()}
	defer func() {
		if p := recover(); p != nil {
			resp.Results = nil
			resp.Veto = exceptionToProto(plugin.Panicked(plugin.Logger(), "event "+r.GetName(), p))
		}
	}()
	id, err := parseDispatchID(r.GetDispatchId())
	if err != nil {
		resp.Veto = exceptionToProto(err)
		return resp
	}
	ev := Event{
		DispatchID: id,
		Subject:    r.GetSubject(),
		Name:       r.GetName(),
		Kwargs:     kvsFromProto(r.GetKwargs()),
		Mode:       Mode(r.GetMode()),
	}
	results, err := s.e.HandleEvent(ctx, ev)
	if err != nil {
		resp.Veto = exceptionToProto(err)
		return resp
	}
	if resp.Results, err = valuesToProto(results); err != nil {
		resp.Veto = exceptionToProto(fmt.Errorf("extension: %s returned a result the protocol cannot carry: %w", ev.Name, err))
	}
	return resp
}

// methodSpecs returns e's methods by name, asking e once per Configure.
func (s *server) methodSpecs(ctx context.Context) (map[string]MethodSpec, error) {
	s.mu.Lock()
	ms := s.methods
	s.mu.Unlock()
	if ms != nil {
		return ms, nil
	}
	list, err := s.e.Methods(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateMethods(list); err != nil {
		return nil, err
	}
	ms = make(map[string]MethodSpec, len(list))
	for _, m := range list {
		ms[m.Name] = m
	}
	s.mu.Lock()
	s.methods = ms
	s.mu.Unlock()
	return ms, nil
}

func (s *server) Methods(ctx context.Context, _ *extensionv1.MethodsRequest) (*extensionv1.MethodsResponse, error) {
	s.mu.Lock()
	s.methods = nil // the daemon asks: ask the extension afresh
	s.mu.Unlock()
	list, err := s.e.Methods(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	if err := validateMethods(list); err != nil {
		return nil, ToStatus(err)
	}
	ms := make(map[string]MethodSpec, len(list))
	resp := &extensionv1.MethodsResponse{Methods: make([]*extensionv1.Method, len(list))}
	for i, m := range list {
		ms[m.Name] = m
		resp.Methods[i] = methodToProto(m)
	}
	s.mu.Lock()
	s.methods = ms
	s.mu.Unlock()
	return resp, nil
}

func (s *server) CallMethod(ctx context.Context, r *extensionv1.CallMethodRequest) (*extensionv1.CallMethodResponse, error) {
	id, err := parseDispatchID(r.GetDispatchId())
	if err != nil {
		return nil, ToStatus(err)
	}
	ms, err := s.methodSpecs(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	c := Call{
		DispatchID: id,
		Method:     r.GetMethod(),
		Src:        r.GetSource(),
		Dest:       r.GetDest(),
		Arg:        r.GetArg(),
		Payload:    r.GetPayload(),
	}
	spec, ok := ms[c.Method]
	if !ok {
		err = Exceptionf(TypeProtocolError, "no such method: '%s'", c.Method)
	} else {
		err = spec.CheckCall(c)
	}
	var body []byte
	if err == nil {
		body, err = s.e.CallMethod(ctx, c)
	}
	if err != nil {
		if isTransport(err) {
			return nil, ToStatus(err)
		}
		return &extensionv1.CallMethodResponse{Error: exceptionToProto(err)}, nil
	}
	return &extensionv1.CallMethodResponse{Body: body}, nil
}

// methodToProto and methodFromProto convert a MethodSpec. extension.v1
// carries the name, the scope, read/write and whether a payload is
// forbidden; the destination and argument rules, and a required payload,
// are enforced by the plugin's SDK (MethodSpec.CheckCall) and come back
// to the daemon as DestAny and Optional.
func methodToProto(m MethodSpec) *extensionv1.Method {
	scope := "local"
	if m.Scope == Global {
		scope = "global"
	}
	return &extensionv1.Method{
		Name:      m.Name,
		Scope:     scope,
		Read:      !m.Write,
		Write:     m.Write,
		NoPayload: m.Payload == Forbidden,
	}
}

func methodFromProto(p *extensionv1.Method) (MethodSpec, error) {
	m := MethodSpec{Name: p.GetName(), Dest: DestAny, Arg: Optional, Payload: Optional, Write: p.GetWrite()}
	switch p.GetScope() {
	case "", "local":
		m.Scope = Local
	case "global":
		m.Scope = Global
	default:
		return m, Errorf(ErrInvalid, "method %q: unknown scope %q (local or global)", m.Name, p.GetScope())
	}
	if p.GetNoPayload() {
		m.Payload = Forbidden
	}
	return m, m.Validate()
}
