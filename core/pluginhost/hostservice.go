package pluginhost

import (
	"context"
	"errors"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qdb"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
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
	// QDB holds the QubesDB of every running qube (QdbWrite, QdbRemove);
	// nil makes those calls fail as unimplemented.
	QDB *qdb.Registry
	// Devices attaches and detaches devices of running qubes (nil: no
	// libvirt, the calls say so).
	Devices DeviceAttacher
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

// QdbWrite writes an entry of a running qube's QubesDB (see core/qdb for
// the paths and values allowed). A qube without an open DB does not run.
func (h *HostService) QdbWrite(_ context.Context, id uint64, subject, path string, value []byte) error {
	return h.read(id, func() error {
		db, err := h.openQDB(subject)
		if err != nil {
			return err
		}
		return db.Write(path, value)
	})
}

// QdbRemove removes an entry of a running qube's QubesDB, or the subtree
// of a path ending in "/".
func (h *HostService) QdbRemove(_ context.Context, id uint64, subject, path string) error {
	return h.read(id, func() error {
		db, err := h.openQDB(subject)
		if err != nil {
			return err
		}
		return db.Remove(path)
	})
}

// openQDB finds the open QubesDB of the qube subject. It runs inside
// read, so that the qube cannot be renamed or removed meanwhile.
func (h *HostService) openQDB(subject string) (*qdb.DB, error) {
	q, err := h.qube(subject)
	if err != nil {
		return nil, err
	}
	if h.QDB == nil {
		return nil, extension.Errorf(extension.ErrUnimplemented, "this qubesd keeps no QubesDB (its HostService has no qdb registry)")
	}
	db, ok := h.QDB.Get(q.Name())
	if !ok {
		return nil, qdb.NotRunning(q.Name())
	}
	return db, nil
}

// AttachDevice and DetachDevice attach or detach libvirt device XML to a
// running qube's domain, as device extensions (block, USB) do. The target
// is checked inside the dispatch; the libvirt call is made outside the
// model's lock.

func (h *HostService) AttachDevice(_ context.Context, id uint64, subject, xml string) error {
	return h.device(id, subject, xml, "attached to", func(d DeviceAttacher, name string) error { return d.AttachDevice(name, xml) })
}

func (h *HostService) DetachDevice(_ context.Context, id uint64, subject, xml string) error {
	return h.device(id, subject, xml, "detached from", func(d DeviceAttacher, name string) error { return d.DetachDevice(name, xml) })
}

// DeviceAttacher changes a running domain's devices (core/vmm.Conn).
type DeviceAttacher interface {
	AttachDevice(domain, xml string) error
	DetachDevice(domain, xml string) error
}

// device checks the target, then runs op on the qube's domain.
func (h *HostService) device(id uint64, subject, xml, verb string, op func(DeviceAttacher, string) error) error {
	if err := h.read(id, func() error { return h.deviceTarget(subject, verb) }); err != nil {
		return err
	}
	if strings.TrimSpace(xml) == "" {
		return extension.Exceptionf(string(qerr.ValueError), "no device XML to be %s %s", verb, subject)
	}
	if h.Devices == nil {
		return extension.Errorf(extension.ErrUnimplemented, "devices cannot be %s %s: this qubesd has no libvirt connection", verb, subject)
	}
	if err := op(h.Devices, subject); err != nil {
		if errors.Is(err, vmm.ErrUnsupported) {
			return extension.Errorf(extension.ErrUnimplemented, "devices cannot be %s %s: %v", verb, subject, err)
		}
		return extension.Exceptionf(string(qerr.Exception), "device could not be %s %s: %v", verb, subject, err)
	}
	return nil
}

// deviceTarget checks that devices may be attached to or detached from the
// qube subject through libvirt: a local qube that runs.
func (h *HostService) deviceTarget(subject, verb string) error {
	q, err := h.qube(subject)
	if err != nil {
		return err
	}
	name := q.Name()
	switch {
	case q.IsAdminVM():
		return qerr.New(qerr.ValueError, "devices cannot be %s %s through libvirt: it is the AdminVM, not a libvirt domain", verb, name)
	case !q.IsLocal():
		return qerr.New(qerr.ValueError, "devices cannot be %s %s through this host's libvirt: it is a RemoteVM, running on another host", verb, name)
	}
	state := "Halted"
	if h.PowerState != nil {
		state = h.PowerState(q)
	}
	if state == "Halted" || state == "NA" { // is_running() is libvirt's isActive(): every other state is active
		return qerr.New(qerr.VMNotRunning, "qube %s is not running: devices are %s running qubes only", name, verb)
	}
	return nil
}
