package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/sdk/extension"
)

// Extensions receive events through one handler each, registered in the
// Extension tier of the model's bus in configuration order when the host is
// created. The handler consults the extension's current subscriptions, so
// a restart changes what it receives but never its place in the order.
//
// Modes:
//   - PreVeto: delivered synchronously inside the firer's lock, under a
//     dispatch (see qubes.App.BeginDispatch) so the extension may call back;
//     an error, a timeout or a missing extension vetoes (fails closed).
//   - Sync: delivered the same way; a failure is logged and the event goes
//     on.
//   - Notify: queued (bounded) and delivered by a worker outside any lock;
//     when the queue is full the event is dropped and counted.

// DefaultEventTimeout bounds a Sync or PreVeto delivery whose subscription
// names no timeout.
const DefaultEventTimeout = 5 * time.Second

// notifyQueue is how many Notify events may wait for one extension.
const notifyQueue = 1024

// extensionState is the extension half of an instance.
type extensionState struct {
	mu      sync.Mutex
	client  *extension.Client
	subs    []extension.Subscription
	methods []extension.MethodSpec
	queue   chan extension.Event
	dropped atomic.Uint64
}

// attachExtensions subscribes every configured extension to the model's
// bus and starts its notify worker.
func (h *Host) attachExtensions(app *qubes.App) {
	for _, in := range h.plugins {
		if in.kind != "extension" {
			continue
		}
		in.ext = &extensionState{queue: make(chan extension.Event, notifyQueue)}
		app.Bus().Subscribe("*", events.Extension, func(e *events.Event) error { return in.deliver(app, e) })
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			in.notifyWorker(h.ctx)
		}()
	}
}

// setExtension records a started extension's client, subscriptions and
// Admin API methods.
func (in *instance) setExtension(c *extension.Client, subs []extension.Subscription, methods []extension.MethodSpec) {
	in.ext.mu.Lock()
	in.ext.client, in.ext.subs, in.ext.methods = c, subs, methods
	in.ext.mu.Unlock()
}

// match returns the subscription of the running extension that matches
// name, if any, and the client to deliver with (nil when not running). A
// down extension keeps its last subscriptions, so that its PreVeto ones
// fail closed.
func (in *instance) match(name string) (extension.Subscription, *extension.Client, bool) {
	in.ext.mu.Lock()
	defer in.ext.mu.Unlock()
	for _, s := range in.ext.subs {
		if s.Matches(name) {
			return s, in.ext.client, true
		}
	}
	return extension.Subscription{}, nil, false
}

// deliver is the extension's bus handler.
func (in *instance) deliver(app *qubes.App, e *events.Event) error {
	sub, client, ok := in.match(e.Name)
	if !ok {
		return nil
	}
	ev := extension.Event{Subject: subjectName(e.Subject), Name: e.Name, Kwargs: extensionKwargs(e.Kwargs), Mode: sub.Mode}
	if sub.Mode == extension.Notify {
		select {
		case in.ext.queue <- ev:
		default:
			if n := in.ext.dropped.Add(1); n == 1 || n%1000 == 0 {
				in.log.Warn("extension too slow: notify events dropped", "event", e.Name, "dropped_total", n)
			}
		}
		return nil
	}
	if client == nil {
		if sub.Mode == extension.PreVeto {
			st := in.status()
			return qerr.New(qerr.PermissionDenied, "refused: extension %s, which must approve %s, is not running (%s)", in.name, e.Name, st.LastError)
		}
		in.log.Warn("extension not running: event not delivered", "event", e.Name)
		return nil
	}
	timeout := sub.Timeout
	if timeout <= 0 {
		timeout = DefaultEventTimeout
	}
	id, end := app.BeginDispatch(app.Writing())
	defer end()
	ev.DispatchID = id
	ctx, cancel := context.WithTimeout(in.host.ctx, timeout)
	defer cancel()
	results, err := client.HandleEvent(ctx, ev)
	if err == nil {
		e.Return(results...)
		return nil
	}
	if sub.Mode == extension.Sync {
		in.log.Error("extension failed to handle an event; going on", "event", e.Name, "error", err)
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return qerr.New(qerr.PermissionDenied, "refused: extension %s did not answer %s within %s", in.name, e.Name, timeout)
	}
	if typ, msg := extension.ExceptionOf(err); typ != "" {
		return qerr.New(qerr.Kind(typ), "%s", msg)
	}
	return qerr.New(qerr.PermissionDenied, "refused by extension %s: %v", in.name, err)
}

// notifyWorker delivers Notify events one at a time, outside any lock.
func (in *instance) notifyWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-in.ext.queue:
			in.ext.mu.Lock()
			c := in.ext.client
			in.ext.mu.Unlock()
			if c == nil {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, DefaultEventTimeout)
			_, err := c.HandleEvent(cctx, ev)
			cancel()
			if err != nil && ctx.Err() == nil { // not the host stopping
				in.log.Warn("extension failed a notify event", "event", ev.Name, "error", err)
			}
			if f := in.host.opts.Notified; f != nil {
				f(in.name, ev.Name, err)
			}
		}
	}
}

func subjectName(s any) string {
	if q, ok := s.(*qubes.Qube); ok && q != nil {
		return q.Name()
	}
	return ""
}

// extensionKwargs converts event arguments to the values host.v1 carries.
func extensionKwargs(kw []events.KV) []extension.KV {
	out := make([]extension.KV, len(kw))
	for i, a := range kw {
		out[i] = extension.KV{Key: a.Key, Value: extensionValue(a.Value)}
	}
	return out
}

// extensionValue converts a core value to one host.v1 carries: qubes as
// extension.Qube, labels and other named values as text.
func extensionValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int, int64, float64:
		return x
	case *qubes.Qube:
		if x == nil {
			return nil
		}
		return extension.Qube(x.Name())
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// APIMethod is an Admin API method an extension serves.
type APIMethod struct {
	Spec extension.MethodSpec
	// Call forwards a validated call to the extension, under dispatch id
	// (the caller opened it around the call).
	Call func(ctx context.Context, dispatchID uint64, src, dest, arg string, payload []byte) ([]byte, error)
}

// APIMethod returns the Admin API method name if a running extension
// serves it. The core's own methods take precedence: the API only asks for
// names it does not serve itself.
func (h *Host) APIMethod(ctx context.Context, name string) (APIMethod, bool) {
	for _, in := range h.plugins {
		if in.ext == nil {
			continue
		}
		in.ext.mu.Lock()
		c, methods := in.ext.client, in.ext.methods
		in.ext.mu.Unlock()
		if c == nil {
			continue
		}
		for _, m := range methods {
			if m.Name != name {
				continue
			}
			ext := in
			return APIMethod{Spec: m, Call: func(ctx context.Context, id uint64, src, dest, arg string, payload []byte) ([]byte, error) {
				ctx, cancel := context.WithTimeout(ctx, ext.host.opts.CallTimeout)
				defer cancel()
				out, err := c.CallMethod(ctx, extension.Call{DispatchID: id, Method: name, Src: src, Dest: dest, Arg: arg, Payload: payload})
				if err == nil {
					return out, nil
				}
				if typ, msg := extension.ExceptionOf(err); typ != "" {
					return nil, qerr.New(qerr.Kind(typ), "%s", msg)
				}
				return nil, qerr.New(qerr.Exception, "extension %s failed %s: %v", ext.name, name, err)
			}}, true
		}
	}
	return APIMethod{}, false
}
