package extension

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Extension is what an extension implements. The daemon calls, after every
// plugin start: Info, Configure, then Subscriptions and Methods; from then
// on HandleEvent for the events subscribed to and CallMethod for the Admin
// API methods served, concurrently (see the package documentation on
// re-entrancy).
//
// Embed UnimplementedExtension to stay source compatible when later SDK
// versions add methods, and to skip the methods you have nothing to do in.
type Extension interface {
	// Info describes the extension. It does not fail once the plugin runs.
	Info(ctx context.Context) (Info, error)
	// Configure receives the plugin's [plugins.NAME.config] table from
	// the daemon's TOML config as a JSON object (empty when there is none;
	// DecodeConfig decodes it strictly) and the Host to call the daemon
	// back with, for the life of the plugin process. ErrInvalid refuses
	// the config. It may be called again, with a new Host: use the latest.
	Configure(ctx context.Context, config []byte, host Host) error
	// Subscriptions lists the events the extension handles. It is asked
	// again after every Configure, so it may depend on the config.
	Subscriptions(ctx context.Context) ([]Subscription, error)
	// HandleEvent handles one event the extension subscribed to. results
	// go back to the firer (Sync and PreVeto subscriptions). An error
	// stops the dispatch: for a PreVeto subscription it is the veto, and
	// its message is what the user sees (build it with Vetof, or
	// Exceptionf to choose the Qubes exception class). Pass e.DispatchID
	// to every Host call made while handling.
	HandleEvent(ctx context.Context, e Event) (results []any, err error)
	// Methods lists the Admin API methods the extension serves. It is
	// asked again after every Configure.
	Methods(ctx context.Context) ([]MethodSpec, error)
	// CallMethod serves one Admin API call, after the daemon's permission
	// checks and the SDK's checks of its MethodSpec (destination,
	// argument, payload). The body is the success reply's; an error is
	// the exception the caller gets (see ExceptionOf). Pass c.DispatchID
	// to every Host call made while serving.
	CallMethod(ctx context.Context, c Call) ([]byte, error)
}

// Info describes an extension.
type Info struct {
	// Name identifies the extension in logs and admin.plugin.List.
	Name string
	// Version is the plugin's own version, free-form.
	Version string
	// Description is one line for people.
	Description string
	// ProtocolVersion is the SDK protocol version the plugin speaks. The
	// SDK fills it in; extensions leave it zero.
	ProtocolVersion int
	// Config documents the keys of the plugin's config table.
	Config []ConfigKey
}

// ConfigKey documents one key of the plugin's config table.
type ConfigKey struct {
	Name        string
	Description string
	Required    bool
	// Default is the value used when the key is absent ("" = none).
	Default string
}

// Mode says how the daemon dispatches an event to an extension.
type Mode int

const (
	// Notify: delivered asynchronously; results and errors are ignored
	// (errors are logged) and the core never waits.
	Notify Mode = iota + 1
	// Sync: the firer waits, up to the timeout, and collects the results;
	// an error or a timeout is logged by the daemon and the event goes on.
	Sync
	// PreVeto: a pre-event (domain-pre-start, property-pre-set:*, ...);
	// an error is a veto that refuses the operation.
	PreVeto
)

func (m Mode) String() string {
	switch m {
	case Notify:
		return "notify"
	case Sync:
		return "sync"
	case PreVeto:
		return "pre-veto"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Subscription is one event pattern an extension handles.
type Subscription struct {
	// Pattern is an event name ("domain-pre-start") or a prefix ending in
	// "*" ("domain-feature-set:*"). "*" alone is refused.
	Pattern string
	Mode    Mode
	// Timeout bounds a Sync or PreVeto dispatch (whole milliseconds,
	// rounded up); 0 means the daemon's default. Notify ignores it.
	Timeout time.Duration
}

// maxTimeout is the largest Timeout the protocol carries (uint32 ms).
const maxTimeout = time.Duration(1<<32-1) * time.Millisecond

// Validate reports what is wrong with s, as an error of kind ErrInvalid.
func (s Subscription) Validate() error {
	if err := validPattern(s.Pattern); err != nil {
		return err
	}
	if s.Mode < Notify || s.Mode > PreVeto {
		return Errorf(ErrInvalid, "subscription %q: invalid mode %v", s.Pattern, s.Mode)
	}
	if s.Timeout < 0 || s.Timeout > maxTimeout {
		return Errorf(ErrInvalid, "subscription %q: timeout %v out of range", s.Pattern, s.Timeout)
	}
	return nil
}

func validPattern(p string) error {
	switch {
	case p == "":
		return Errorf(ErrInvalid, "subscription: empty event pattern")
	case p == "*":
		return Errorf(ErrInvalid, "subscription: the pattern \"*\" (every event) is refused; name the events or a prefix")
	case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return Errorf(ErrInvalid, "subscription %q: \"*\" is allowed only at the end of a pattern", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return Errorf(ErrInvalid, "subscription %q: event patterns are printable ASCII without spaces", p)
		}
	}
	return nil
}

// Matches reports whether the event name matches s.Pattern.
func (s Subscription) Matches(name string) bool {
	if prefix, ok := strings.CutSuffix(s.Pattern, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return name == s.Pattern
}

// Event is one event delivered to an extension.
type Event struct {
	// DispatchID identifies the dispatch; pass it to every Host call made
	// while handling the event. 0 means none (never sent by the daemon).
	DispatchID uint64
	// Subject is the qube the event fired on; "" = the system (the app).
	Subject string
	// Name is the event's name, e.g. "domain-feature-set:hello".
	Name string
	// Kwargs are the keyword arguments, in the order the firer gave them.
	// Values are of the types listed under "Values" in the package
	// documentation.
	Kwargs []KV
	// Mode is the mode of the subscription the event matched. PreVeto: a
	// pre-event, and the handler's error is a veto. Notify: the event was
	// queued, and is handled outside the firer's dispatch (DispatchID is
	// 0).
	Mode Mode
}

// Arg returns the value of the keyword argument key, and whether it was
// given.
func (e Event) Arg(key string) (any, bool) {
	for _, kv := range e.Kwargs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Str returns the keyword argument key in its text form (see Text); ""
// when it was not given.
func (e Event) Str(key string) string {
	v, _ := e.Arg(key)
	return Text(v)
}

// Dest says which destinations an Admin API method accepts.
type Dest uint8

const (
	DestAny     Dest = iota // dom0 or a qube
	DestAdminVM             // dom0 only
	DestVM                  // any qube but dom0
)

// Presence says whether a method takes an argument or a payload.
type Presence uint8

const (
	Forbidden Presence = iota
	Required
	Optional
)

// Scope is the policy scope of a method: a Local method acts on its
// destination qube, a Global one on the whole system.
type Scope uint8

const (
	Local Scope = iota
	Global
)

// AdminVM is the name of the admin qube, the destination DestAdminVM asks
// for.
const AdminVM = "dom0"

// MethodSpec declares one Admin API method an extension serves.
type MethodSpec struct {
	// Name starts with "admin.", e.g. "admin.vm.firewall.Get".
	Name    string
	Dest    Dest
	Arg     Presence
	Payload Presence
	// Write: the method changes something (policy and permission checks
	// treat it as a write); otherwise it only reads.
	Write bool
	Scope Scope
}

// Validate reports what is wrong with m, as an error of kind ErrInvalid.
func (m MethodSpec) Validate() error {
	rest, ok := strings.CutPrefix(m.Name, "admin.")
	if !ok {
		return Errorf(ErrInvalid, "method %q: the name must start with \"admin.\"", m.Name)
	}
	for _, seg := range strings.Split(rest, ".") {
		if seg == "" {
			return Errorf(ErrInvalid, "method %q: empty name segment", m.Name)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				return Errorf(ErrInvalid, "method %q: names are made of [A-Za-z0-9_-] segments separated by dots", m.Name)
			}
		}
	}
	if m.Dest > DestVM || m.Arg > Optional || m.Payload > Optional || m.Scope > Global {
		return Errorf(ErrInvalid, "method %q: invalid Dest, Arg, Payload or Scope", m.Name)
	}
	return nil
}

// CheckCall checks a call against m the way the daemon checks its own
// methods, with the same ProtocolError messages: payload, argument, then
// destination. The SDK runs it before CallMethod.
func (m MethodSpec) CheckCall(c Call) error {
	switch {
	case m.Payload == Required && len(c.Payload) == 0:
		return Exceptionf(TypeProtocolError, "expected payload")
	case m.Payload == Forbidden && len(c.Payload) != 0:
		return Exceptionf(TypeProtocolError, "unexpected payload")
	case m.Arg == Required && c.Arg == "":
		return Exceptionf(TypeProtocolError, "expected an argument")
	case m.Arg == Forbidden && c.Arg != "":
		return Exceptionf(TypeProtocolError, "unexpected argument")
	case m.Dest == DestAdminVM && c.Dest != AdminVM:
		return Exceptionf(TypeProtocolError, "expected destination to be AdminVM")
	case m.Dest == DestVM && c.Dest == AdminVM:
		return Exceptionf(TypeProtocolError, "expected destination to not be AdminVM")
	}
	return nil
}

// Call is one Admin API call routed to an extension.
type Call struct {
	// DispatchID identifies the call; pass it to every Host call made
	// while serving it.
	DispatchID uint64
	// Method, Src, Dest, Arg and Payload are as the Admin API call has
	// them (Src and Dest are qube names). Payload is untrusted: validate
	// it before use.
	Method  string
	Src     string
	Dest    string
	Arg     string
	Payload []byte
}

// formatDispatchID and parseDispatchID convert dispatch ids to and from
// the protocol's text form: decimal, "" for 0.
func formatDispatchID(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 10)
}

func parseDispatchID(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, Errorf(ErrInvalid, "dispatch id %q is not a decimal number", s)
	}
	return id, nil
}

// validateSubscriptions runs Validate on every subscription.
func validateSubscriptions(subs []Subscription) error {
	for _, s := range subs {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// validateMethods runs Validate on every method and checks that names are
// unique.
func validateMethods(ms []MethodSpec) error {
	seen := make(map[string]bool, len(ms))
	var errs []error
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[m.Name] {
			errs = append(errs, Errorf(ErrInvalid, "method %q declared twice", m.Name))
		}
		seen[m.Name] = true
	}
	if len(errs) > 0 {
		return Errorf(ErrInvalid, "%v", errors.Join(errs...))
	}
	return nil
}

// durationToMs rounds a timeout up to whole milliseconds.
func durationToMs(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	if d >= maxTimeout {
		return 1<<32 - 1
	}
	return uint32((d + time.Millisecond - 1) / time.Millisecond)
}
