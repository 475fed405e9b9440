package api

import (
	"context"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

// Disposables: admin.vm.CreateDisposable (spec admin-api §2.1, the
// reference's DispVM.from_appvm). The disposable is created, not started:
// the caller starts it (admin.vm.Start) and core/lifecycle removes it when
// it stops (auto_cleanup).

func addDisposableMethods(t methodTable) {
	t.add(&Method{Name: "admin.vm.CreateDisposable", Arg: Optional, Payload: Optional, Write: true, Scope: Global,
		Prepare: prepareCreateDisposable, Run: createDisposable})
}

// disposableRequest is a parsed admin.vm.CreateDisposable.
type disposableRequest struct {
	template *qubes.Qube // nil when dest is dom0 and src has no default_dispvm
	preload  bool
	uuid     bool // reply uuid:<uuid> instead of the name
}

// prepareCreateDisposable checks the argument and the payload in the
// reference's order and finds the disposable template: dest's own when
// dest is a qube, src's default_dispvm when dest is dom0. Whether it is a
// disposable template is checked after the permission event, as the
// reference does.
func prepareCreateDisposable(ctx context.Context, c *Call) error {
	if err := enforceArg(c.Arg, []string{"", "preload"}, "'', 'preload'"); err != nil {
		return err
	}
	if p := string(c.Payload); p != "" && p != "uuid" {
		return qerr.New(qerr.ProtocolError, "Invalid payload, expected empty string or 'uuid'")
	}
	r := &disposableRequest{preload: c.Arg == "preload", uuid: len(c.Payload) > 0, template: c.Dest}
	if c.Dest.IsAdminVM() {
		r.template = nil
		_ = c.App.Read(func() error {
			if v, err := c.Src.Get("default_dispvm"); err == nil {
				r.template, _ = v.(*qubes.Qube)
			}
			return nil
		})
	}
	c.State = r
	var t any // None, not a typed nil, when there is no template
	if r.template != nil {
		t = r.template
	}
	c.Perm = []events.KV{{Key: "dispvm_template", Value: t}}
	return nil
}

// createDisposable creates disp<dispid> from the template with its
// volumes (all or none, createWithVolumes), then tags it
// created-by-<src> and disp-created-by-<src> as the reference does, after
// domain-create-on-disk. The reply is the name, or uuid:<uuid>.
func createDisposable(ctx context.Context, c *Call) ([]byte, uint64, error) {
	r := c.State.(*disposableRequest)
	if r.preload {
		// The reference keeps started, paused disposables ready (features
		// preload-dispvm*); telling when one is ready needs qrexec, which
		// this daemon does not have yet.
		return nil, 0, qerr.New(qerr.Exception, "Preloading disposables is not supported yet; create disposables on demand instead (admin.vm.CreateDisposable without an argument, e.g. qvm-run --dispvm)")
	}
	class, _ := qubes.ClassByName("DispVM")
	q, version, err := createWithVolumes(ctx, c, func() (*qubes.Qube, error) {
		t := r.template
		if t != nil {
			// the template may have been removed since Prepare
			if cur, err := c.App.Qube(t.Name()); err != nil || cur != t {
				return nil, qerr.New(qerr.VMNotFound, "No such domain: %s (the disposable template was removed meanwhile); choose another disposable template", property.PyRepr(t.Name()))
			}
		}
		opt, err := qubes.DisposableOptions(t)
		if err != nil {
			return nil, err
		}
		return c.App.Create(class, opt)
	})
	if err != nil {
		return nil, version, err
	}
	var reply string
	v2, err := c.App.Write(func() error {
		for _, tag := range []string{"created-by-" + c.Src.Name(), "disp-created-by-" + c.Src.Name()} {
			if err := q.Tags.Add(tag); err != nil {
				return err
			}
		}
		reply = q.Name()
		if r.uuid {
			reply = "uuid:" + q.UUID()
		}
		return nil
	})
	return []byte(reply), max(version, v2), err
}
