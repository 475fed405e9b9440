package qubes

import (
	"crypto/rand"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Disposables: qubes made from a disposable template (an AppVM or
// StandaloneVM with template_for_dispvms) and usually removed when they stop.

// dispidReuseDelay keeps a removed disposable's dispid (and so its IP
// address) out of circulation for a while.
const dispidReuseDelay = 7 * 24 * time.Hour

// IsDispTemplate reports whether q is a disposable template: a qube with
// template_for_dispvms set. A nil q is not.
func (q *Qube) IsDispTemplate() bool {
	return q != nil && q.Has("template_for_dispvms") && q.boolean("template_for_dispvms")
}

func setDispVMTemplate(_ property.Holder, _ *P, v any) (any, error) {
	t, _ := v.(*Qube)
	if !t.IsDispTemplate() {
		return nil, qerr.New(qerr.PropertyValueError, "template for disposable must have template_for_dispvms=True")
	}
	return v, nil
}

// DisposableOptions are the settings of a new disposable made from the
// disposable template t, as admin.vm.CreateDisposable makes them (the
// reference's DispVM.from_appvm): named disp<dispid> by Create, labelled
// as t, removed when it stops. A t that is not a disposable template — or
// nil, when the caller has no default_dispvm — is refused with the
// reference's error.
func DisposableOptions(t *Qube) (CreateOptions, error) {
	if !t.IsDispTemplate() {
		return CreateOptions{}, qerr.New(qerr.Exception, "Refusing to create disposable out of app qube which has template_for_dispvms=False")
	}
	return CreateOptions{Template: t, Label: t.label(), AutoCleanup: true}, nil
}

// AutoCleanup reports whether q is a disposable that is removed when it
// stops (auto_cleanup).
func (q *Qube) AutoCleanup() bool { return q.class.kind == kindDisp && q.boolean("auto_cleanup") }

// CheckUnreferenced returns the error Remove gives while anything still
// refers to q (naming every reference), without firing domain-pre-delete.
// A disposable's clean-up asks it before removing the volumes, so that a
// removal that would be refused leaves the qube whole.
func (q *Qube) CheckUnreferenced() error { return q.app.refuseIfReferenced(q) }

// ForgetPreload takes a disposable out of its template's preloaded
// disposables (feature preload-dispvm), as the reference does when a
// preloaded disposable is removed. It does nothing for other qubes.
func (q *Qube) ForgetPreload() error {
	t := q.Template()
	if q.class.kind != kindDisp || t == nil {
		return nil
	}
	v, ok := t.Features.Get("preload-dispvm")
	if !ok {
		return nil
	}
	names := strings.Fields(v)
	kept := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == q.name })
	if len(kept) == len(names) {
		return nil
	}
	return t.Features.Set("preload-dispvm", strings.Join(kept, " "))
}

// isPreload reports whether a disposable is one of its template's preloaded
// disposables.
func (q *Qube) isPreload() bool {
	t := q.Template()
	if t == nil {
		return false
	}
	v, _ := t.Features.Get("preload-dispvm")
	for _, n := range strings.Fields(v) {
		if n == q.name {
			return true
		}
	}
	return false
}

// Dispvms returns the disposables based on q.
func (q *Qube) Dispvms() []*Qube {
	var out []*Qube
	for _, o := range q.app.Qubes() {
		if o.class.kind == kindDisp && o.Template() == q {
			out = append(out, o)
		}
	}
	return out
}

// newDispID picks an unused dispid at random (so disposables' addresses are
// not predictable), skipping dispids of recently removed disposables.
func (a *App) newDispID() (int, error) {
	used := map[int]bool{}
	for _, q := range a.byName {
		if q.class.kind == kindDisp {
			used[q.integer("dispid")] = true
		}
	}
	now := a.opts.Now()
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(MaxDispID))
		if err != nil {
			return 0, err
		}
		id := int(n.Int64())
		if used[id] {
			continue
		}
		if t, ok := a.deletedDisps[id]; ok && now.Sub(t) < dispidReuseDelay {
			continue
		}
		return id, nil
	}
	return 0, qerr.New(qerr.Exception, "No unused dispid found after 100 tries; remove some disposables")
}

// vetoTemplateForDispvmsOff refuses to turn template_for_dispvms off while
// anything still relies on q being a disposable template.
func (q *Qube) vetoTemplateForDispvmsOff() error {
	system, qubes := q.app.References(q, []string{"default_dispvm", "management_dispvm"}, []string{"default_dispvm", "management_dispvm", "template"})
	if len(system) > 0 {
		return qerr.New(qerr.VMInUse, "Cannot change template_for_dispvms to False while it is in use by the system by any of these properties: default_dispvm, management_dispvm")
	}
	if len(qubes) > 0 {
		q.app.log.Error("template_for_dispvms still needed", "qube", q.name, "used_by", joinRefs(qubes))
		return qerr.New(qerr.VMInUse, "Cannot change template_for_dispvms to False while it is the disposable template of a qube by any of these properties: default_dispvm, management_dispvm, template")
	}
	return nil
}
