package pluginhost

import (
	"context"
	"errors"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/sdk/extension"
)

// HostService is the daemon's side of host.v1: what extensions may do to
// the model when they call back. A call carrying the dispatch id of the
// event or API call being handled runs inside that dispatch (see
// qubes.App.InDispatch), so it never deadlocks on the lock its dispatcher
// holds; a call without one takes the lock itself, and its changes are made
// durable before it returns.
type HostService struct {
	App *qubes.App
	// PowerState reports a qube's power state for ListQubes.
	PowerState func(q *qubes.Qube) string
	// Commit makes a model version durable (store.Committer.Commit); nil
	// keeps changes in memory.
	Commit func(ctx context.Context, version uint64) error
}

var _ extension.HostService = (*HostService)(nil)

// holder is what the App and a Qube offer for properties.
type holder interface {
	Descriptor(name string) (*property.Descriptor, error)
	Value(d *property.Descriptor) (any, error)
	IsDefault(d *property.Descriptor) bool
	SetText(d *property.Descriptor, text string) error
	Reset(d *property.Descriptor) error
}

// hostError hands a model error to the extension with its Qubes exception
// class, so that an extension may pass it on to an API caller as it is.
func hostError(err error) error {
	if err == nil {
		return nil
	}
	var qe *qerr.Error
	if errors.As(err, &qe) {
		return extension.Exceptionf(string(qe.Kind), "%s", qe.Msg)
	}
	return err
}

// read and write run fn on behalf of a dispatch (or under a lock of their
// own), writes made durable when they were not part of a dispatch.
func (h *HostService) read(id uint64, fn func() error) error {
	_, err := h.App.InDispatch(id, false, fn)
	return hostError(err)
}

func (h *HostService) write(ctx context.Context, id uint64, fn func() error) error {
	v, err := h.App.InDispatch(id, true, fn)
	if err != nil {
		return hostError(err)
	}
	if v != 0 && h.Commit != nil {
		return h.Commit(ctx, v)
	}
	return nil
}

// property finds a property of the qube subject ("" = the app).
func (h *HostService) property(subject, name string) (holder, *property.Descriptor, error) {
	var o holder = h.App
	if subject != "" {
		q, err := h.App.Qube(subject)
		if err != nil {
			return nil, nil, err
		}
		o = q
	}
	d, err := o.Descriptor(name)
	return o, d, err
}

func (h *HostService) qube(name string) (*qubes.Qube, error) { return h.App.Qube(name) }

func (h *HostService) GetProperty(_ context.Context, id uint64, subject, name string) (p extension.Property, err error) {
	err = h.read(id, func() error {
		o, d, err := h.property(subject, name)
		if err != nil {
			return err
		}
		p.Type, p.IsDefault = d.Type.String(), o.IsDefault(d)
		if v, err := o.Value(d); err == nil {
			p.Value = d.Text(v)
		}
		return nil
	})
	return p, err
}

func (h *HostService) SetProperty(ctx context.Context, id uint64, subject, name, value string) error {
	return h.write(ctx, id, func() error {
		o, d, err := h.property(subject, name)
		if err != nil {
			return err
		}
		return o.SetText(d, value)
	})
}

func (h *HostService) ResetProperty(ctx context.Context, id uint64, subject, name string) error {
	return h.write(ctx, id, func() error {
		o, d, err := h.property(subject, name)
		if err != nil {
			return err
		}
		return o.Reset(d)
	})
}

func (h *HostService) GetFeature(_ context.Context, id uint64, subject, name string) (value string, ok bool, err error) {
	err = h.read(id, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		value, ok = q.Features.Get(name)
		return nil
	})
	return value, ok, err
}

func (h *HostService) SetFeature(ctx context.Context, id uint64, subject, name, value string) error {
	return h.write(ctx, id, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		return q.Features.Set(name, value)
	})
}

func (h *HostService) RemoveFeature(ctx context.Context, id uint64, subject, name string) error {
	return h.write(ctx, id, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		return q.Features.Delete(name)
	})
}

func (h *HostService) ListTags(_ context.Context, id uint64, subject string) (tags []string, err error) {
	err = h.read(id, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		tags = append(tags, q.Tags.All()...)
		return nil
	})
	return tags, err
}

func (h *HostService) AddTag(ctx context.Context, id uint64, subject, tag string) error {
	return h.write(ctx, id, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		return q.Tags.Add(tag)
	})
}

func (h *HostService) RemoveTag(ctx context.Context, id uint64, subject, tag string) error {
	return h.write(ctx, id, func() error {
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		return q.Tags.Remove(tag)
	})
}

func (h *HostService) ListQubes(_ context.Context, id uint64) (out []extension.QubeInfo, err error) {
	err = h.read(id, func() error {
		for _, q := range h.App.Qubes() {
			state := "Halted"
			if h.PowerState != nil {
				state = h.PowerState(q)
			}
			out = append(out, extension.QubeInfo{Name: q.Name(), Class: q.ClassName(), PowerState: state})
		}
		return nil
	})
	return out, err
}

// FireEvent fires an event as the core would; core handlers may change the
// model, so it is a write.
func (h *HostService) FireEvent(ctx context.Context, id uint64, subject, name string, kwargs []extension.KV, pre bool) (results []any, err error) {
	kw := make([]events.KV, len(kwargs))
	for i, a := range kwargs {
		kw[i] = events.KV{Key: a.Key, Value: a.Value}
	}
	err = h.write(ctx, id, func() error {
		if subject == "" {
			results, err = h.App.Bus().Fire(nil, name, pre, kw...)
			return err
		}
		q, err := h.qube(subject)
		if err != nil {
			return err
		}
		results, err = q.FireEventResults(name, pre, kw...)
		return err
	})
	out := make([]any, len(results))
	for i, r := range results {
		out[i] = extensionValue(r) // host.v1 carries a fixed set of types
	}
	if err != nil && pre && !errors.Is(err, extension.ErrNotFound) {
		typ, msg := extension.ExceptionOf(err)
		if typ == "" {
			typ, msg = string(qerr.PermissionDenied), err.Error()
		}
		// a veto that keeps the refusing handler's exception class
		return out, &extension.Error{Kind: extension.ErrVeto, Type: typ, Message: msg}
	}
	return out, err
}

// QubesDB and libvirt devices come with the lifecycle work; until then
// these calls say so instead of pretending.

func (h *HostService) QdbWrite(context.Context, uint64, string, string, []byte) error {
	return extension.Errorf(extension.ErrUnimplemented, "QubesDB is not available in this qubesd yet")
}

func (h *HostService) QdbRemove(context.Context, uint64, string, string) error {
	return extension.Errorf(extension.ErrUnimplemented, "QubesDB is not available in this qubesd yet")
}

func (h *HostService) AttachDevice(context.Context, uint64, string, string) error {
	return extension.Errorf(extension.ErrUnimplemented, "device attachment is not available in this qubesd yet")
}

func (h *HostService) DetachDevice(context.Context, uint64, string, string) error {
	return extension.Errorf(extension.ErrUnimplemented, "device attachment is not available in this qubesd yet")
}
