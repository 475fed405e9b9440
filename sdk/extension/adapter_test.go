package extension_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/extension"
	"github.com/qubesgo/qubesd/sdk/extension/extensiontest"
	extensionv1 "github.com/qubesgo/qubesd/sdk/proto/extension/v1"
)

// mockExt is an extension whose behaviour is function fields; it keeps
// the Host it was configured with.
type mockExt struct {
	extension.UnimplementedExtension
	info      extension.Info
	subs      []extension.Subscription
	methods   []extension.MethodSpec
	configure func(config []byte) error
	handle    func(ctx context.Context, e extension.Event) ([]any, error)
	call      func(ctx context.Context, c extension.Call) ([]byte, error)

	mu   sync.Mutex
	host extension.Host
}

func (m *mockExt) Info(context.Context) (extension.Info, error) { return m.info, nil }

func (m *mockExt) Configure(_ context.Context, config []byte, host extension.Host) error {
	if m.configure != nil {
		if err := m.configure(config); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.host = host
	m.mu.Unlock()
	return nil
}

func (m *mockExt) Host() extension.Host {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.host
}

func (m *mockExt) Subscriptions(context.Context) ([]extension.Subscription, error) {
	return m.subs, nil
}

func (m *mockExt) HandleEvent(ctx context.Context, e extension.Event) ([]any, error) {
	return m.handle(ctx, e)
}

func (m *mockExt) Methods(context.Context) ([]extension.MethodSpec, error) { return m.methods, nil }

func (m *mockExt) CallMethod(ctx context.Context, c extension.Call) ([]byte, error) {
	return m.call(ctx, c)
}

// setup connects m over gRPC and configures it with a fresh fake host
// that has the qube "work".
func setup(t *testing.T, m *mockExt) (*extension.Client, *extensiontest.Host) {
	t.Helper()
	host := extensiontest.NewHost()
	host.AddQube("work", "AppVM", "Running")
	c := extensiontest.Connect(t, m)
	if err := c.Configure(context.Background(), []byte(`{"k":"v"}`), host); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return c, host
}

func TestInfo(t *testing.T) {
	m := &mockExt{info: extension.Info{Name: "mock", Version: "1.2", Description: "a mock",
		Config: []extension.ConfigKey{{Name: "dir", Description: "where", Required: true, Default: "/x"}}}}
	c := extensiontest.Connect(t, m)
	info, err := c.Info(context.Background())
	want := m.info
	want.ProtocolVersion = sdk.ProtocolVersion
	if err != nil || !reflect.DeepEqual(info, want) {
		t.Errorf("Info: %+v, %v; want %+v", info, err, want)
	}
}

func TestConfigure(t *testing.T) {
	ctx := context.Background()
	var got []string
	m := &mockExt{configure: func(config []byte) error {
		got = append(got, string(config))
		var cfg struct{ K string }
		return extension.DecodeConfig(config, &cfg)
	}}
	c := extensiontest.Connect(t, m)
	err := c.Configure(ctx, []byte(`{"bogus":1}`), extensiontest.NewHost())
	if !errors.Is(err, extension.ErrInvalid) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("refused config: %v, want ErrInvalid naming the key", err)
	}
	if m.Host() != nil {
		t.Error("the extension kept a host from a refused Configure")
	}

	// A nil HostService: the extension gets a Host that says so.
	if err := c.Configure(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Host().ListQubes(ctx, 0); !errors.Is(err, extension.ErrUnavailable) {
		t.Errorf("Host without a HostService: %v", err)
	}

	// Configured twice: the latest host serves.
	h1, h2 := extensiontest.NewHost(), extensiontest.NewHost()
	if err := c.Configure(ctx, []byte(`{"k":"1"}`), h1); err != nil {
		t.Fatal(err)
	}
	old := m.Host()
	if err := c.Configure(ctx, []byte(`{"k":"2"}`), h2); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ListQubes(ctx, 0); !errors.Is(err, extension.ErrUnavailable) || !strings.Contains(err.Error(), "last Configure") {
		t.Errorf("the Host of a previous Configure: %v, want ErrUnavailable saying so", err)
	}
	if _, err := m.Host().ListQubes(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if len(h1.Calls()) != 0 || len(h2.Calls()) != 1 {
		t.Errorf("calls reached the old host (%d) / the new one (%d)", len(h1.Calls()), len(h2.Calls()))
	}
	if want := []string{`{"bogus":1}`, "", `{"k":"1"}`, `{"k":"2"}`}; !reflect.DeepEqual(got, want) {
		t.Errorf("configs %q, want %q", got, want)
	}

	// Close stops the host service.
	c.Close()
	if _, err := m.Host().ListQubes(ctx, 0); err == nil {
		t.Error("a Host call succeeded after Close")
	}
	c.Close() // idempotent

	// UnimplementedExtension takes no config.
	u := extensiontest.Connect(t, extension.UnimplementedExtension{})
	if err := u.Configure(ctx, []byte(" {} "), nil); err != nil {
		t.Errorf("empty config refused: %v", err)
	}
	if err := u.Configure(ctx, []byte(`{"x":1}`), nil); !errors.Is(err, extension.ErrInvalid) {
		t.Errorf("a key for an extension with no config: %v", err)
	}
}

// TestHostOverGRPC calls every Host method from the plugin side; each
// reaches the daemon's HostService with its dispatch id and arguments, and
// results and errors come back.
func TestHostOverGRPC(t *testing.T) {
	ctx := context.Background()
	m := &mockExt{}
	_, fake := setup(t, m)
	host := m.Host()
	fake.SetGlobal("default_netvm", "sys-firewall")

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(host.SetProperty(ctx, 1, "work", "label", "red"))
	p, err := host.GetProperty(ctx, 2, "work", "label")
	must(err)
	if p.Value != "red" || p.Type != "str" {
		t.Errorf("GetProperty: %+v", p)
	}
	if p, err := host.GetProperty(ctx, 3, "", "default_netvm"); err != nil || p.Value != "sys-firewall" {
		t.Errorf("global GetProperty: %+v, %v", p, err)
	}
	must(host.ResetProperty(ctx, 4, "work", "label"))
	must(host.SetFeature(ctx, 5, "work", "f", "1"))
	if v, ok, err := host.GetFeature(ctx, 6, "work", "f"); v != "1" || !ok || err != nil {
		t.Errorf("GetFeature: %q %v %v", v, ok, err)
	}
	must(host.RemoveFeature(ctx, 7, "work", "f"))
	if v, ok, err := host.GetFeature(ctx, 8, "work", "f"); v != "" || ok || err != nil {
		t.Errorf("GetFeature of an unset feature: %q %v %v", v, ok, err)
	}
	must(host.AddTag(ctx, 9, "work", "b"))
	must(host.AddTag(ctx, 10, "work", "a"))
	must(host.RemoveTag(ctx, 11, "work", "b"))
	if tags, err := host.ListTags(ctx, 12, "work"); err != nil || !reflect.DeepEqual(tags, []string{"a"}) {
		t.Errorf("ListTags: %v, %v", tags, err)
	}
	qubes, err := host.ListQubes(ctx, 13)
	must(err)
	if want := []extension.QubeInfo{{"dom0", "AdminVM", "Running"}, {"work", "AppVM", "Running"}}; !reflect.DeepEqual(qubes, want) {
		t.Errorf("ListQubes: %+v", qubes)
	}
	must(host.QdbWrite(ctx, 14, "work", "/qubes-service/x", []byte("1")))
	must(host.QdbWrite(ctx, 14, "work", "/qubes-service/y", []byte("1")))
	must(host.QdbRemove(ctx, 15, "work", "/qubes-service/"))
	if _, ok := fake.QDB("work", "/qubes-service/x"); ok {
		t.Error("QdbRemove of a subtree left an entry")
	}
	must(host.AttachDevice(ctx, 16, "work", "<disk/>"))
	must(host.DetachDevice(ctx, 17, "work", "<disk/>"))
	kwargs := []extension.KV{{"z", "first"}, {"a", extension.Qube("work")}, {"m", int64(3)}}
	if res, err := host.FireEvent(ctx, 18, "work", "my-event", kwargs, true); err != nil || len(res) != 0 {
		t.Errorf("FireEvent: %v, %v", res, err)
	}

	calls := fake.Calls()
	if len(calls) != 19 {
		t.Fatalf("%d calls reached the host, want 19: %+v", len(calls), calls)
	}
	wantIDs := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14, 15, 16, 17, 18}
	for i, c := range calls {
		if c.DispatchID != wantIDs[i] {
			t.Errorf("call %d (%s): dispatch id %d, want %d", i, c.Method, c.DispatchID, wantIDs[i])
		}
	}
	fire := calls[18]
	if fire.Method != "FireEvent" || fire.Subject != "work" || !reflect.DeepEqual(fire.Args, []string{"my-event", "pre"}) || !reflect.DeepEqual(fire.Kwargs, kwargs) {
		t.Errorf("FireEvent reached the host as %+v", fire)
	}
	if c := calls[0]; c.Method != "SetProperty" || c.Subject != "work" || !reflect.DeepEqual(c.Args, []string{"label", "red"}) {
		t.Errorf("SetProperty reached the host as %+v", c)
	}
	if c := calls[13]; c.Method != "QdbWrite" || string(c.Value) != "1" || c.Args[0] != "/qubes-service/x" {
		t.Errorf("QdbWrite reached the host as %+v", c)
	}
}

func TestHostErrors(t *testing.T) {
	ctx := context.Background()
	m := &mockExt{}
	_, fake := setup(t, m)
	host := m.Host()

	_, err := host.GetProperty(ctx, 1, "nope", "label")
	if typ, msg := extension.ExceptionOf(err); !errors.Is(err, extension.ErrNotFound) || typ != "QubesVMNotFoundError" || msg != "No such domain: 'nope'" {
		t.Errorf("unknown qube: %v (%s)", err, typ)
	}
	if err := host.RemoveTag(ctx, 1, "work", "absent"); !errors.Is(err, extension.ErrNotFound) {
		t.Errorf("absent tag: %v", err)
	}

	// The daemon's refusals: a veto of a setter, a vetoed pre-event, a
	// daemon shutting down.
	fake.Hook = func(_ context.Context, c extensiontest.HostCall) error {
		switch c.Method {
		case "SetFeature":
			return &extension.Error{Kind: extension.ErrVeto, Type: "QubesValueError", Message: "feature refused by a handler"}
		case "FireEvent":
			return &extension.Error{Kind: extension.ErrVeto, Type: "QubesVMError", Message: "start refused"}
		case "ListQubes":
			return extension.Errorf(extension.ErrUnavailable, "shutting down")
		case "AddTag":
			return errors.New("unexpected failure")
		}
		return nil
	}
	err = host.SetFeature(ctx, 2, "work", "f", "v")
	if typ, _ := extension.ExceptionOf(err); !errors.Is(err, extension.ErrVeto) || !errors.Is(err, extension.ErrInvalid) || typ != "QubesValueError" || err.Error() != "feature refused by a handler" {
		t.Errorf("vetoed SetFeature: %v (%s)", err, typ)
	}
	_, err = host.FireEvent(ctx, 3, "work", "domain-pre-start", nil, true)
	if typ, _ := extension.ExceptionOf(err); !errors.Is(err, extension.ErrVeto) || typ != "QubesVMError" || err.Error() != "start refused" {
		t.Errorf("vetoed FireEvent: %v (%s)", err, typ)
	}
	if _, err := host.ListQubes(ctx, 0); !errors.Is(err, extension.ErrUnavailable) || err.Error() != "shutting down" {
		t.Errorf("unavailable: %v", err)
	}
	err = host.AddTag(ctx, 4, "work", "t")
	if typ, msg := extension.ExceptionOf(err); typ != "QubesException" || msg != "unexpected failure" {
		t.Errorf("a plain error: %s %q", typ, msg)
	}
}

func TestHandleEvent(t *testing.T) {
	ctx := context.Background()
	var got extension.Event
	m := &mockExt{
		subs: []extension.Subscription{
			{Pattern: "domain-feature-set:*", Mode: extension.Sync, Timeout: time.Second},
			{Pattern: "domain-feature-pre-set:*", Mode: extension.PreVeto},
		},
		handle: func(_ context.Context, e extension.Event) ([]any, error) {
			got = e
			switch e.Str("do") {
			case "veto":
				return nil, extension.Vetof("feature %s may not be set on %s", e.Str("feature"), e.Subject)
			case "class":
				return nil, extension.Exceptionf("QubesVMNotHaltedError", "halt %s first", e.Subject)
			case "plain":
				return nil, errors.New("handler failed")
			case "unavailable":
				return nil, extension.Errorf(extension.ErrUnavailable, "busy")
			case "badresult":
				return []any{struct{}{}}, nil
			}
			return []any{"ok", extension.Qube(e.Subject), int64(1), []extension.KV{{"k", nil}}}, nil
		},
	}
	c, _ := setup(t, m)

	subs, err := c.Subscriptions(ctx)
	if err != nil || !reflect.DeepEqual(subs, m.subs) {
		t.Errorf("Subscriptions: %+v, %v", subs, err)
	}

	// Kwargs keep their order and types; the dispatch id and subject
	// arrive; results come back.
	var kwargs []extension.KV
	for i := 20; i > 0; i-- {
		kwargs = append(kwargs, extension.KV{Key: fmt.Sprintf("k%02d", i), Value: int64(i)})
	}
	kwargs = append(kwargs,
		extension.KV{Key: "feature", Value: "hello"},
		extension.KV{Key: "oldvalue", Value: nil},
		extension.KV{Key: "vm", Value: extension.Qube("work")},
		extension.KV{Key: "list", Value: []any{true, 2.5, []byte{0, 1}}},
	)
	ev := extension.Event{DispatchID: 1<<63 + 5, Subject: "work", Name: "domain-feature-set:hello", Kwargs: kwargs}
	res, err := c.HandleEvent(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"ok", extension.Qube("work"), int64(1), []extension.KV{{"k", nil}}}; !reflect.DeepEqual(res, want) {
		t.Errorf("results %#v, want %#v", res, want)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Errorf("the extension got\n%+v\nwant\n%+v", got, ev)
	}

	// A pre-event: its mode arrives, the error is a veto with its message.
	_, err = c.HandleEvent(ctx, extension.Event{DispatchID: 2, Subject: "work", Name: "domain-feature-pre-set:forbidden",
		Kwargs: []extension.KV{{"feature", "forbidden"}, {"do", "veto"}}, Mode: extension.PreVeto})
	if got.Mode != extension.PreVeto || got.DispatchID != 2 {
		t.Errorf("pre-event delivered as %+v", got)
	}
	if typ, msg := extension.ExceptionOf(err); !errors.Is(err, extension.ErrVeto) || typ != "QubesException" || msg != "feature forbidden may not be set on work" {
		t.Errorf("veto: %v (%s %q)", err, typ, msg)
	}

	// A Sync handler's error aborts the event the same way, with its class.
	_, err = c.HandleEvent(ctx, extension.Event{DispatchID: 3, Subject: "work", Name: "domain-feature-set:x", Kwargs: []extension.KV{{"do", "class"}}, Mode: extension.Sync})
	if typ, _ := extension.ExceptionOf(err); got.Mode != extension.Sync || !errors.Is(err, extension.ErrVeto) || !errors.Is(err, extension.ErrState) || typ != "QubesVMNotHaltedError" || err.Error() != "halt work first" {
		t.Errorf("sync error: %v (%s), mode %v", err, typ, got.Mode)
	}
	_, err = c.HandleEvent(ctx, extension.Event{Name: "domain-feature-set:x", Kwargs: []extension.KV{{"do", "plain"}}})
	if typ, _ := extension.ExceptionOf(err); !errors.Is(err, extension.ErrVeto) || typ != "QubesException" || err.Error() != "handler failed" {
		t.Errorf("plain error: %v (%s)", err, typ)
	}
	// Whatever a handler returns is the event's error, even a transport
	// kind: the stream carries every handler error as a veto.
	_, err = c.HandleEvent(ctx, extension.Event{Name: "domain-feature-set:x", Kwargs: []extension.KV{{"do", "unavailable"}}})
	if !errors.Is(err, extension.ErrVeto) || err.Error() != "busy" {
		t.Errorf("a handler's unavailable error: %v", err)
	}
	_, err = c.HandleEvent(ctx, extension.Event{Name: "domain-feature-set:x", Kwargs: []extension.KV{{"do", "badresult"}}})
	if err == nil || !strings.Contains(err.Error(), "cannot carry") {
		t.Errorf("an unsupported result: %v", err)
	}
	// The daemon cannot send what the protocol cannot carry.
	_, err = c.HandleEvent(ctx, extension.Event{Name: "x", Kwargs: []extension.KV{{"bad", map[int]int{}}}})
	if !errors.Is(err, extension.ErrInvalid) {
		t.Errorf("an unsupported kwarg: %v", err)
	}
}

func TestCallMethod(t *testing.T) {
	ctx := context.Background()
	var got extension.Call
	m := &mockExt{
		methods: []extension.MethodSpec{
			{Name: "admin.vm.mock.Get", Dest: extension.DestVM, Arg: extension.Forbidden, Payload: extension.Forbidden},
			{Name: "admin.mock.Set", Dest: extension.DestAdminVM, Arg: extension.Required, Payload: extension.Required, Write: true, Scope: extension.Global},
		},
		call: func(_ context.Context, c extension.Call) ([]byte, error) {
			got = c
			switch c.Arg {
			case "fail":
				return nil, extension.Exceptionf("QubesValueError", "bad value %q", c.Payload)
			case "denied":
				return nil, extension.Errorf(extension.ErrPermissionDenied, "not you")
			case "unimpl":
				return nil, extension.Errorf(extension.ErrUnimplemented, "later")
			}
			return []byte("hello " + c.Dest), nil
		},
	}
	c, _ := setup(t, m)

	ms, err := c.Methods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What extension.v1 carries; the rest is checked on the plugin's side.
	want := []extension.MethodSpec{
		{Name: "admin.vm.mock.Get", Dest: extension.DestAny, Arg: extension.Optional, Payload: extension.Forbidden},
		{Name: "admin.mock.Set", Dest: extension.DestAny, Arg: extension.Optional, Payload: extension.Optional, Write: true, Scope: extension.Global},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("Methods: %+v", ms)
	}

	call := extension.Call{DispatchID: 9, Method: "admin.vm.mock.Get", Src: "dom0", Dest: "work"}
	body, err := c.CallMethod(ctx, call)
	if err != nil || string(body) != "hello work" || !reflect.DeepEqual(got, call) {
		t.Errorf("CallMethod: %q, %v; the extension got %+v", body, err, got)
	}
	set := extension.Call{DispatchID: 10, Method: "admin.mock.Set", Src: "work", Dest: "dom0", Arg: "x", Payload: []byte("data\x00")}
	if _, err := c.CallMethod(ctx, set); err != nil || !reflect.DeepEqual(got, set) {
		t.Errorf("CallMethod with payload: %v; the extension got %+v", err, got)
	}

	for _, tc := range []struct {
		call      extension.Call
		typ, msg  string
		transport error
	}{
		{extension.Call{Method: "admin.vm.mock.Get", Dest: "dom0"}, "ProtocolError", "expected destination to not be AdminVM", nil},
		{extension.Call{Method: "admin.vm.mock.Get", Dest: "work", Arg: "a"}, "ProtocolError", "unexpected argument", nil},
		{extension.Call{Method: "admin.vm.mock.Get", Dest: "work", Payload: []byte("p")}, "ProtocolError", "unexpected payload", nil},
		{extension.Call{Method: "admin.mock.Set", Dest: "dom0", Arg: "x"}, "ProtocolError", "expected payload", nil},
		{extension.Call{Method: "admin.mock.Set", Dest: "dom0", Payload: []byte("p")}, "ProtocolError", "expected an argument", nil},
		{extension.Call{Method: "admin.mock.Set", Dest: "work", Arg: "x", Payload: []byte("p")}, "ProtocolError", "expected destination to be AdminVM", nil},
		{extension.Call{Method: "admin.vm.Nope", Dest: "work"}, "ProtocolError", "no such method: 'admin.vm.Nope'", nil},
		{extension.Call{Method: "admin.mock.Set", Dest: "dom0", Arg: "fail", Payload: []byte("p")}, "QubesValueError", `bad value "p"`, nil},
		{extension.Call{Method: "admin.mock.Set", Dest: "dom0", Arg: "denied", Payload: []byte("p")}, "PermissionDenied", "not you", nil},
		{extension.Call{Method: "admin.mock.Set", Dest: "dom0", Arg: "unimpl", Payload: []byte("p")}, "QubesException", "later", extension.ErrUnimplemented},
	} {
		_, err := c.CallMethod(ctx, tc.call)
		typ, msg := extension.ExceptionOf(err)
		if typ != tc.typ || msg != tc.msg {
			t.Errorf("%+v: %s %q, want %s %q", tc.call, typ, msg, tc.typ, tc.msg)
		}
		if tc.transport != nil && !errors.Is(err, tc.transport) {
			t.Errorf("%+v: %v is not %v", tc.call, err, tc.transport)
		}
	}
}

// TestDeclarationsChecked: the daemon gets no invalid declaration, and
// the plugin's SDK refuses to send one.
func TestDeclarationsChecked(t *testing.T) {
	ctx := context.Background()
	m := &mockExt{
		subs:    []extension.Subscription{{Pattern: "*", Mode: extension.Sync}},
		methods: []extension.MethodSpec{{Name: "vm.NoPrefix"}},
	}
	c, _ := setup(t, m)
	if _, err := c.Subscriptions(ctx); !errors.Is(err, extension.ErrInvalid) {
		t.Errorf("Subscriptions: %v", err)
	}
	if _, err := c.Methods(ctx); !errors.Is(err, extension.ErrInvalid) || !strings.Contains(err.Error(), "admin.") {
		t.Errorf("Methods: %v", err)
	}
	// Calls that need the declarations fail the same way.
	if _, err := c.CallMethod(ctx, extension.Call{Method: "vm.NoPrefix"}); !errors.Is(err, extension.ErrInvalid) {
		t.Errorf("CallMethod with invalid declarations: %v", err)
	}
}

// TestReentrancy: while the daemon serves a Host call made by a handler,
// it delivers another event to the same extension, whose handler calls
// the Host again. Nothing in the SDK serialises these calls.
func TestReentrancy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var client *extension.Client
	m := &mockExt{
		subs: []extension.Subscription{{Pattern: "domain-feature-set:*", Mode: extension.Sync}},
	}
	m.handle = func(ctx context.Context, e extension.Event) ([]any, error) {
		return []any{e.Subject}, m.Host().AddTag(ctx, e.DispatchID, e.Subject, "seen")
	}
	client, host := setup(t, m)
	host.AddQube("other", "AppVM", "Halted")
	var nested []any
	var nestedErr error
	host.Hook = func(ctx context.Context, c extensiontest.HostCall) error {
		if c.Method == "AddTag" && c.Subject == "work" {
			nested, nestedErr = client.HandleEvent(ctx, extension.Event{DispatchID: c.DispatchID + 1, Subject: "other", Name: "domain-feature-set:x"})
		}
		return nil
	}

	done := make(chan error, 1)
	go func() {
		_, err := client.HandleEvent(ctx, extension.Event{DispatchID: 100, Subject: "work", Name: "domain-feature-set:x"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: the nested event did not complete in 10 s")
	}
	if nestedErr != nil || !reflect.DeepEqual(nested, []any{"other"}) {
		t.Errorf("nested event: %v, %v", nested, nestedErr)
	}
	var got []string
	for _, c := range host.CallsTo("AddTag") {
		got = append(got, fmt.Sprintf("%s/%d", c.Subject, c.DispatchID))
	}
	// The nested call completes (and is recorded) first.
	if want := []string{"other/101", "work/100"}; !reflect.DeepEqual(got, want) {
		t.Errorf("AddTag calls %v, want %v", got, want)
	}
	if !reflect.DeepEqual(host.Tags("work"), []string{"seen"}) || !reflect.DeepEqual(host.Tags("other"), []string{"seen"}) {
		t.Errorf("tags: work %v, other %v", host.Tags("work"), host.Tags("other"))
	}
}

// TestConcurrentCalls: many events and calls at once, for the race
// detector.
func TestConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	m := &mockExt{
		subs:    []extension.Subscription{{Pattern: "e", Mode: extension.Notify}},
		methods: []extension.MethodSpec{{Name: "admin.vm.c.Get", Arg: extension.Optional}},
	}
	m.handle = func(ctx context.Context, e extension.Event) ([]any, error) {
		return nil, m.Host().SetFeature(ctx, e.DispatchID, "work", e.Str("n"), "1")
	}
	m.call = func(ctx context.Context, c extension.Call) ([]byte, error) {
		v, _, err := m.Host().GetFeature(ctx, c.DispatchID, "work", c.Arg)
		return []byte(v), err
	}
	c, host := setup(t, m)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := fmt.Sprint(i)
			if _, err := c.HandleEvent(ctx, extension.Event{DispatchID: uint64(i + 1), Name: "e", Kwargs: []extension.KV{{"n", n}}}); err != nil {
				t.Error(err)
			}
			if _, err := c.CallMethod(ctx, extension.Call{DispatchID: uint64(i + 1), Method: "admin.vm.c.Get", Dest: "work", Arg: n}); err != nil {
				t.Error(err)
			}
			if _, err := c.Methods(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(host.CallsTo("SetFeature")); n != 32 {
		t.Errorf("%d SetFeature calls, want 32", n)
	}
}

func TestCheck(t *testing.T) {
	m := &mockExt{info: extension.Info{Name: "mock"}, subs: []extension.Subscription{{Pattern: "x", Mode: extension.Sync}},
		methods: []extension.MethodSpec{{Name: "admin.a"}}}
	extensiontest.Check(t, m)
	c, _ := setup(t, m)
	extensiontest.Check(t, c)
}

// TestNonSDKPlugin: a plugin that implements none of extension.v1 (not
// built with this SDK) is refused method by method, as unimplemented.
func TestNonSDKPlugin(t *testing.T) {
	ctx := context.Background()
	conn, srv := goplugin.TestGRPCConn(t, func(s *grpc.Server) {
		extensionv1.RegisterExtensionServer(s, extensionv1.UnimplementedExtensionServer{})
	})
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	c := extension.NewClient(extensionv1.NewExtensionClient(conn), nil, nil)
	if err := c.Configure(ctx, nil, extensiontest.NewHost()); err != nil {
		t.Errorf("Configure with no config: %v", err)
	}
	if err := c.Configure(ctx, []byte(`{"a":1}`), nil); !errors.Is(err, extension.ErrInvalid) {
		t.Errorf("Configure with a config: %v", err)
	}
	if _, err := c.Info(ctx); !errors.Is(err, extension.ErrUnimplemented) {
		t.Errorf("Info: %v", err)
	}
	if _, err := c.HandleEvent(ctx, extension.Event{Name: "x"}); !errors.Is(err, extension.ErrUnimplemented) {
		t.Errorf("HandleEvent: %v", err)
	}
}
