package extensiontest

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/qubesgo/qubesd/sdk/extension"
)

// HostCall is one call a Host received.
type HostCall struct {
	// Method is the Host method's name: "AddTag", "FireEvent", ...
	Method     string
	DispatchID uint64
	// Subject is the qube (or "" for the app) the call is about.
	Subject string
	// Args are the other string arguments, in the method's order
	// (property or feature name and value, tag, QubesDB path, device XML;
	// for FireEvent the event name, then "pre" if it is a pre-event).
	Args []string
	// Value is QdbWrite's value; Kwargs are FireEvent's.
	Value  []byte
	Kwargs []extension.KV
}

// Qube is the state of one qube in a Host.
type Qube struct {
	Class      string
	PowerState string
	Properties map[string]string
	Features   map[string]string
	Tags       map[string]bool
	QDB        map[string][]byte
	// Devices are the device XMLs attached, in order.
	Devices []string
}

// Host is an in-memory fake of the daemon, for tests: it implements
// extension.Host (give it to an extension's Configure directly) and
// extension.HostService (give it to a Client's Configure, and the
// extension's calls cross the real protocol to it). It records every call.
//
// Its errors are the daemon's: QubesVMNotFoundError for an unknown qube,
// QubesNoSuchPropertyError, QubesFeatureNotFoundError and
// QubesTagNotFoundError for what is absent. FireEvent records the event
// and returns no result. Global properties are those of subject "".
//
// The zero value is not usable; use NewHost. Methods may be called
// concurrently.
type Host struct {
	// Hook, if set, runs at the start of every call, before the call is
	// recorded or the state changes and without any lock held: it may
	// call back into the extension (a nested event) or into the Host. A
	// non-nil error is the call's result. Set it before the Host is used.
	Hook func(ctx context.Context, c HostCall) error

	mu     sync.Mutex
	qubes  map[string]*Qube
	global map[string]string
	calls  []HostCall
}

var _ extension.HostService = (*Host)(nil)

// NewHost returns a Host with dom0 (an AdminVM) and no other qube.
func NewHost() *Host {
	h := &Host{qubes: map[string]*Qube{}, global: map[string]string{}}
	h.AddQube("dom0", "AdminVM", "Running")
	return h
}

// AddQube adds a qube (or replaces it with a fresh one) and returns its
// state, which the caller may fill before the test runs.
func (h *Host) AddQube(name, class, powerState string) *Qube {
	q := &Qube{
		Class:      class,
		PowerState: powerState,
		Properties: map[string]string{},
		Features:   map[string]string{},
		Tags:       map[string]bool{},
		QDB:        map[string][]byte{},
	}
	h.mu.Lock()
	h.qubes[name] = q
	h.mu.Unlock()
	return q
}

// SetGlobal sets a global property.
func (h *Host) SetGlobal(name, value string) {
	h.mu.Lock()
	h.global[name] = value
	h.mu.Unlock()
}

// Calls returns the calls received so far, in order.
func (h *Host) Calls() []HostCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// CallsTo returns the calls of one method received so far, in order.
func (h *Host) CallsTo(method string) []HostCall {
	var out []HostCall
	for _, c := range h.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Tags returns a qube's tags, sorted (nil for an unknown qube).
func (h *Host) Tags(qube string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.qubes[qube]; q != nil {
		return slices.Sorted(maps.Keys(q.Tags))
	}
	return nil
}

// Feature returns a qube's feature and whether it is set.
func (h *Host) Feature(qube, name string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.qubes[qube]; q != nil {
		v, ok := q.Features[name]
		return v, ok
	}
	return "", false
}

// Property returns a qube's property ("" for a global one) and whether it
// is set.
func (h *Host) Property(subject, name string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	props := h.global
	if subject != "" {
		q := h.qubes[subject]
		if q == nil {
			return "", false
		}
		props = q.Properties
	}
	v, ok := props[name]
	return v, ok
}

// QDB returns a qube's QubesDB entry and whether it is there.
func (h *Host) QDB(qube, path string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.qubes[qube]; q != nil {
		v, ok := q.QDB[path]
		return v, ok
	}
	return nil, false
}

// Devices returns the device XMLs attached to a qube, in order.
func (h *Host) Devices(qube string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.qubes[qube]; q != nil {
		return slices.Clone(q.Devices)
	}
	return nil
}

// do runs the hook and records c; then, with h.mu held, fn.
func (h *Host) do(ctx context.Context, c HostCall, fn func() error) error {
	if h.Hook != nil {
		if err := h.Hook(ctx, c); err != nil {
			h.mu.Lock()
			h.calls = append(h.calls, c)
			h.mu.Unlock()
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
	if fn == nil {
		return nil
	}
	return fn()
}

// qube returns the named qube; h.mu is held.
func (h *Host) qube(name string) (*Qube, error) {
	q := h.qubes[name]
	if q == nil {
		return nil, extension.Exceptionf("QubesVMNotFoundError", "No such domain: '%s'", name)
	}
	return q, nil
}

// props returns the properties of subject; h.mu is held.
func (h *Host) props(subject string) (map[string]string, error) {
	if subject == "" {
		return h.global, nil
	}
	q, err := h.qube(subject)
	if err != nil {
		return nil, err
	}
	return q.Properties, nil
}

func (h *Host) GetProperty(ctx context.Context, id uint64, subject, name string) (extension.Property, error) {
	var p extension.Property
	err := h.do(ctx, HostCall{Method: "GetProperty", DispatchID: id, Subject: subject, Args: []string{name}}, func() error {
		props, err := h.props(subject)
		if err != nil {
			return err
		}
		v, ok := props[name]
		if !ok {
			return extension.Exceptionf("QubesNoSuchPropertyError", "Invalid property '%s' of %s", name, subject)
		}
		p = extension.Property{Value: v, Type: "str"}
		return nil
	})
	return p, err
}

func (h *Host) SetProperty(ctx context.Context, id uint64, subject, name, value string) error {
	return h.do(ctx, HostCall{Method: "SetProperty", DispatchID: id, Subject: subject, Args: []string{name, value}}, func() error {
		props, err := h.props(subject)
		if err != nil {
			return err
		}
		props[name] = value
		return nil
	})
}

func (h *Host) ResetProperty(ctx context.Context, id uint64, subject, name string) error {
	return h.do(ctx, HostCall{Method: "ResetProperty", DispatchID: id, Subject: subject, Args: []string{name}}, func() error {
		props, err := h.props(subject)
		if err != nil {
			return err
		}
		delete(props, name)
		return nil
	})
}

func (h *Host) GetFeature(ctx context.Context, id uint64, subject, name string) (string, bool, error) {
	var v string
	var ok bool
	err := h.do(ctx, HostCall{Method: "GetFeature", DispatchID: id, Subject: subject, Args: []string{name}}, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		v, ok = q.Features[name]
		return nil
	})
	return v, ok, err
}

func (h *Host) SetFeature(ctx context.Context, id uint64, subject, name, value string) error {
	return h.do(ctx, HostCall{Method: "SetFeature", DispatchID: id, Subject: subject, Args: []string{name, value}}, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		q.Features[name] = value
		return nil
	})
}

func (h *Host) RemoveFeature(ctx context.Context, id uint64, subject, name string) error {
	return h.do(ctx, HostCall{Method: "RemoveFeature", DispatchID: id, Subject: subject, Args: []string{name}}, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		if _, ok := q.Features[name]; !ok {
			return extension.Exceptionf("QubesFeatureNotFoundError", "Feature not set: %s", name)
		}
		delete(q.Features, name)
		return nil
	})
}

func (h *Host) ListTags(ctx context.Context, id uint64, subject string) ([]string, error) {
	var tags []string
	err := h.do(ctx, HostCall{Method: "ListTags", DispatchID: id, Subject: subject}, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		tags = slices.Sorted(maps.Keys(q.Tags))
		return nil
	})
	return tags, err
}

func (h *Host) AddTag(ctx context.Context, id uint64, subject, tag string) error {
	return h.do(ctx, HostCall{Method: "AddTag", DispatchID: id, Subject: subject, Args: []string{tag}}, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		q.Tags[tag] = true
		return nil
	})
}

func (h *Host) RemoveTag(ctx context.Context, id uint64, subject, tag string) error {
	return h.do(ctx, HostCall{Method: "RemoveTag", DispatchID: id, Subject: subject, Args: []string{tag}}, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		if !q.Tags[tag] {
			return extension.Exceptionf("QubesTagNotFoundError", "Tag not set for domain %s: %s", subject, tag)
		}
		delete(q.Tags, tag)
		return nil
	})
}

func (h *Host) ListQubes(ctx context.Context, id uint64) ([]extension.QubeInfo, error) {
	var out []extension.QubeInfo
	err := h.do(ctx, HostCall{Method: "ListQubes", DispatchID: id}, func() error {
		for _, name := range slices.Sorted(maps.Keys(h.qubes)) {
			q := h.qubes[name]
			out = append(out, extension.QubeInfo{Name: name, Class: q.Class, PowerState: q.PowerState})
		}
		return nil
	})
	return out, err
}

func (h *Host) QdbWrite(ctx context.Context, id uint64, qube, path string, value []byte) error {
	return h.do(ctx, HostCall{Method: "QdbWrite", DispatchID: id, Subject: qube, Args: []string{path}, Value: slices.Clone(value)}, func() error {
		q, err := h.qube(qube)
		if err != nil {
			return err
		}
		q.QDB[path] = slices.Clone(value)
		return nil
	})
}

func (h *Host) QdbRemove(ctx context.Context, id uint64, qube, path string) error {
	return h.do(ctx, HostCall{Method: "QdbRemove", DispatchID: id, Subject: qube, Args: []string{path}}, func() error {
		q, err := h.qube(qube)
		if err != nil {
			return err
		}
		for p := range q.QDB {
			if p == path || strings.HasSuffix(path, "/") && strings.HasPrefix(p, path) {
				delete(q.QDB, p)
			}
		}
		return nil
	})
}

func (h *Host) FireEvent(ctx context.Context, id uint64, subject, name string, kwargs []extension.KV, pre bool) ([]any, error) {
	args := []string{name}
	if pre {
		args = append(args, "pre")
	}
	return nil, h.do(ctx, HostCall{Method: "FireEvent", DispatchID: id, Subject: subject, Args: args, Kwargs: slices.Clone(kwargs)}, nil)
}

func (h *Host) AttachDevice(ctx context.Context, id uint64, qube, xml string) error {
	return h.do(ctx, HostCall{Method: "AttachDevice", DispatchID: id, Subject: qube, Args: []string{xml}}, func() error {
		q, err := h.qube(qube)
		if err != nil {
			return err
		}
		q.Devices = append(q.Devices, xml)
		return nil
	})
}

func (h *Host) DetachDevice(ctx context.Context, id uint64, qube, xml string) error {
	return h.do(ctx, HostCall{Method: "DetachDevice", DispatchID: id, Subject: qube, Args: []string{xml}}, func() error {
		q, err := h.qube(qube)
		if err != nil {
			return err
		}
		i := slices.Index(q.Devices, xml)
		if i < 0 {
			return extension.Exceptionf("QubesException", "device not attached to %s", qube)
		}
		q.Devices = slices.Delete(q.Devices, i, i+1)
		return nil
	})
}
