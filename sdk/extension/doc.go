// Package extension is what a qubesd extension is written with: the
// Extension interface, the Host it calls the daemon back through, the
// error kinds, and Serve, which turns an Extension into a plugin binary.
// It also holds the daemon's half of the protocol (Client, HostService),
// so that the daemon and every extension share one implementation of
// extension.v1 and host.v1.
//
// # Writing an extension
//
// An extension subscribes to events of the core (a Notify, Sync or PreVeto
// handler, with a timeout) and may serve Admin API methods of its own
// ("admin.vm.firewall.Get"), which the daemon routes to it after its own
// permission checks. Implement Extension (embed UnimplementedExtension for
// what you do not use) and serve it:
//
//	type Ext struct {
//		extension.UnimplementedExtension
//		host extension.Host
//	}
//
//	func (x *Ext) Configure(ctx context.Context, cfg []byte, host extension.Host) error { ... }
//	func (x *Ext) Subscriptions(context.Context) ([]extension.Subscription, error) { ... }
//	func (x *Ext) HandleEvent(ctx context.Context, e extension.Event) ([]any, error) { ... }
//
//	func main() { extension.Serve(&Ext{}) }
//
// The daemon starts the binary, listed in its TOML config as
//
//	[plugins.myext]
//	kind = "extension"
//	path = "qubesd-ext-myext"
//	[plugins.myext.config]   # handed to Configure, as JSON
//
// The example in github.com/qubesgo/qubesd/sdk/examples/ext-hello is a
// complete extension and the place to start; package
// github.com/qubesgo/qubesd/sdk/extension/extensiontest has a fake Host
// and an in-process harness for its tests.
//
// # Calling the daemon back, and re-entrancy
//
// Configure hands the extension a Host: a host.v1 client, connected once,
// during Configure, over go-plugin's broker. Every Host method takes a
// dispatch id. While handling an event or an Admin API call, pass the id
// it came with (Event.DispatchID, Call.DispatchID): the daemon then runs
// the call as part of that dispatch, under the locks the dispatch already
// holds, instead of waiting for them — the dispatch is waiting for the
// handler, so waiting would deadlock. Outside a dispatch (a goroutine of
// your own, Configure) pass 0.
//
// A Host call may itself fire events the extension subscribed to: the
// daemon calls HandleEvent again while the first HandleEvent is still
// running. The SDK runs every Sync and PreVeto event on its own goroutine,
// so this nests freely; an extension guarding its state with a mutex must
// not hold it across Host calls. Notify events are handled one at a time,
// in the order they were fired.
//
// # Events
//
// Event.Name is the full name ("domain-feature-set:hello"); Subscription
// patterns are full names or prefixes ending in "*". Kwargs keep the order
// the firer gave. Event.Mode is the mode of the subscription the event
// matched; for PreVeto the handler's error is a veto,
// and its message is what the user sees. An error from a Sync or Notify
// handler is logged by the daemon and the event goes on. Results go back to
// the firer for Sync and PreVeto subscriptions.
//
// # Values
//
// Event kwargs, handler results and FireEvent arguments are Go values of
// these types, which map to Python's as the daemon's core sees them:
//
//	nil                    None
//	string                 str
//	extension.Qube         a qube (its name)
//	bool                   bool
//	int64 (any integer)    int
//	float64 (or float32)   float
//	[]byte                 bytes
//	[]any (or []string)    list, tuple
//	[]extension.KV         dict (insertion order kept)
//
// Values read from the wire are always of the first type of each row;
// Event.Str and Text give any of them as the Admin API's text.
//
// # Errors
//
// Errors have kinds (ErrVeto, ErrNotFound, ErrInvalid, ErrState,
// ErrPermissionDenied, ErrUnimplemented, ErrUnavailable; errors.Is), and
// those the user sees carry the Qubes exception class the daemon replies
// with ("2\x00QubesValueError\x00\x00message\x00"). Return
// extension.Vetof("...") to veto, extension.Exceptionf("QubesVMError",
// "...") to pick the class, extension.Errorf(extension.ErrInvalid, "...")
// for a kind with its default class; errors from the Host come with the
// daemon's own class and may be returned as they are. ExceptionOf gives
// the class and message of any error.
//
// A handler's or method's domain error travels in the extension.v1
// response (HandleEventResponse.veto, CallMethodResponse.error); a Host
// call's, as a gRPC status whose code is the kind's with the exception as
// a host.v1.Exception status detail. Transport failures (ErrUnavailable,
// ErrUnimplemented, the context errors) are gRPC statuses both ways.
//
// # Admin API methods
//
// MethodSpec declares a method as the daemon's own method table does:
// destination rule, argument and payload presence, read or write, scope.
// Before CallMethod, the SDK checks the call against it (CheckCall), with
// the daemon's ProtocolError messages, so CallMethod sees only calls that
// fit. The reply body is returned as is; an error becomes the exception
// the caller gets.
//
// # The daemon's side
//
// The daemon dispenses a GRPCPlugin (plugin.KindExtension) and gets a
// *Client, which implements Extension over extension.v1: code that
// dispatches events never knows whether an extension runs in-process or
// in a plugin process. Its Configure takes the daemon's HostService (the
// same interface as Host), serves it with NewHostServer over go-plugin's
// broker (one AcceptAndServe per Configure, its id sent in the request),
// and stops the previous one; Close stops the last. The daemon implements
// HostService in Go and never touches protobuf.
//
// Events travel on one long-lived Events stream per plugin process, opened
// by the Client on the first event and reopened if it breaks: each
// EventRequest carries an id its EventResponse repeats. What extension.v1
// does not carry yet, the SDK makes up for on the plugin's side:
// MethodSpec's Dest, Arg and a required Payload
// (checked by the plugin's SDK; the daemon's Client reports them as
// DestAny and Optional). Dispatch ids travel as decimal strings, "" for 0.
//
// Stability: this package follows the sdk module's versioning (see package
// github.com/qubesgo/qubesd/sdk). Methods may be added to Extension and
// Host in a minor version, as RPCs are added to extension.v1 and host.v1:
// an extension embedding UnimplementedExtension keeps compiling, and the
// daemon treats Unimplemented from a newer method as "not supported"; a
// test double of Host should embed extensiontest.Host for the same reason.
package extension
