package qubes

import (
	"slices"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
)

// Features are a qube's free-form string settings ("service.cups" = "1").
// The empty string means false. Order is insertion order, which is the order
// in qubes.xml.
type Features struct {
	q    *Qube
	list []store.Feature
}

func (f *Features) find(name string) int {
	for i, x := range f.list {
		if x.Name == name {
			return i
		}
	}
	return -1
}

// Get returns the value of a feature and whether it is set.
func (f *Features) Get(name string) (string, bool) {
	if i := f.find(name); i >= 0 {
		return f.list[i].Value, true
	}
	return "", false
}

// Truthy reports whether a feature is set to a non-empty value.
func (f *Features) Truthy(name string) bool {
	v, _ := f.Get(name)
	return v != ""
}

// Names returns the names of the set features, in order.
func (f *Features) Names() []string {
	names := make([]string, len(f.list))
	for i, x := range f.list {
		names[i] = x.Name
	}
	return names
}

// All returns the features in order. The slice must not be changed.
func (f *Features) All() []store.Feature { return f.list }

// Len returns the number of set features.
func (f *Features) Len() int { return len(f.list) }

// Set sets a feature, firing domain-feature-pre-set:NAME (which may veto)
// and domain-feature-set:NAME with kwargs feature, value and [oldvalue].
func (f *Features) Set(name, value string) error {
	i := f.find(name)
	kw := []events.KV{{Key: "feature", Value: name}, {Key: "value", Value: value}}
	if i >= 0 {
		kw = append(kw, events.KV{Key: "oldvalue", Value: f.list[i].Value})
	}
	if err := f.q.FireEvent("domain-feature-pre-set:"+name, true, kw...); err != nil {
		return err
	}
	if i = f.find(name); i >= 0 { // a handler may have changed the list
		f.list[i].Value = value
	} else {
		f.list = append(f.list, store.Feature{Name: name, Value: value})
	}
	return f.q.FireEvent("domain-feature-set:"+name, false, kw...)
}

// SetBool sets a feature to "1" or "".
func (f *Features) SetBool(name string, v bool) error {
	if v {
		return f.Set(name, "1")
	}
	return f.Set(name, "")
}

// Delete removes a feature, firing domain-feature-pre-delete:NAME (which may
// veto) and domain-feature-delete:NAME with kwarg feature.
//
// As in the reference, the pre-event fires before the feature is looked up,
// so watchers see an attempt to delete a feature that is not set.
func (f *Features) Delete(name string) error {
	kw := events.KV{Key: "feature", Value: name}
	if err := f.q.FireEvent("domain-feature-pre-delete:"+name, true, kw); err != nil {
		return err
	}
	i := f.find(name)
	if i < 0 {
		return f.notFound(name)
	}
	f.list = slices.Delete(f.list, i, i+1)
	return f.q.FireEvent("domain-feature-delete:"+name, false, kw)
}

func (f *Features) notFound(name string) error {
	return qerr.New(qerr.FeatureNotFound, "Feature not set for domain %s: %s", f.q.name, name)
}

// CheckWithTemplate looks the feature up on the qube, then along its
// template chain; the first qube that has it wins, even with "".
func (f *Features) CheckWithTemplate(name string) (string, error) {
	return f.found(f.withTemplate(name))
}

// CheckWithNetvm looks the feature up on the qube, then along its chain of
// (effective) network providers.
func (f *Features) CheckWithNetvm(name string) (string, error) {
	return f.found(f.withNetvm(name))
}

// CheckWithAdminVM looks the feature up on the qube, then on dom0.
func (f *Features) CheckWithAdminVM(name string) (string, error) {
	if v, ok := f.Get(name); ok {
		return v, nil
	}
	return f.found(f.onAdminVM(name))
}

// CheckWithTemplateAndAdminVM looks along the template chain, then on dom0.
func (f *Features) CheckWithTemplateAndAdminVM(name string) (string, error) {
	if v, _, ok := f.withTemplate(name); ok {
		return v, nil
	}
	return f.found(f.onAdminVM(name))
}

// found turns a lookup into the API's answer: the value, or
// QubesFeatureNotFoundError.
func (f *Features) found(v, name string, ok bool) (string, error) {
	if !ok {
		return "", f.notFound(name)
	}
	return v, nil
}

// The lookups below report a miss with ok=false rather than an error: the
// model's defaults use them on every property read.

func (f *Features) withTemplate(name string) (v, n string, ok bool) {
	for q := f.q; q != nil; q = q.Template() {
		if v, ok := q.Features.Get(name); ok {
			return v, name, true
		}
	}
	return "", name, false
}

func (f *Features) withNetvm(name string) (v, n string, ok bool) {
	seen := map[*Qube]bool{}
	for q := f.q; q != nil && !seen[q]; q = q.vm("netvm") {
		seen[q] = true
		if v, ok := q.Features.Get(name); ok {
			return v, name, true
		}
	}
	return "", name, false
}

func (f *Features) onAdminVM(name string) (v, n string, ok bool) {
	if d := f.q.app.AdminVM(); d != nil {
		if v, ok := d.Features.Get(name); ok {
			return v, name, true
		}
	}
	return "", name, false
}

// templateTruthy is CheckWithTemplate reduced to a boolean.
func (f *Features) templateTruthy(name string) bool {
	v, _, ok := f.withTemplate(name)
	return ok && v != ""
}

// templateValue is CheckWithTemplate without an error for a miss.
func (f *Features) templateValue(name string) (string, bool) {
	v, _, ok := f.withTemplate(name)
	return v, ok
}
