package qubes

import (
	"slices"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// The model's own reactions to its events (spec: core-model §3.6, §3.10,
// §5.6): derived values announce their change, vetoes keep the model
// consistent. They run in the Core tier, before extensions and observers, in
// the order registered here.

func kw(k string, v any) events.KV { return events.KV{Key: k, Value: v} }

// resetOf announces that a computed or inherited value may have changed.
func resetOf(q *Qube, name string) error {
	return q.FireEvent("property-reset:"+name, false, kw("name", name))
}

// templateInherited are the properties an AppVM reads from its template
// while it has no value of its own.
var templateInherited = []string{"default_user", "kernel", "kernelopts", "vcpus", "memory", "maxmem", "qrexec_timeout", "shutdown_timeout", "management_dispvm"}

func subject(e *events.Event) *Qube {
	q, _ := e.Subject.(*Qube)
	return q
}

func (a *App) registerCoreHandlers() {
	a.registerRemovalRules()
	a.registerGUITags()

	onQube := func(pattern string, h func(q *Qube, e *events.Event) error) {
		a.bus.Subscribe(pattern, events.Core, func(e *events.Event) error {
			if q := subject(e); q != nil {
				return h(q, e)
			}
			return nil
		})
	}
	onApp := func(pattern string, h func(e *events.Event) error) {
		a.bus.Subscribe(pattern, events.Core, func(e *events.Event) error {
			if e.Subject == nil {
				return h(e)
			}
			return nil
		})
	}

	// The icon follows the label, template_for_dispvms and servicevm.
	for _, p := range []string{"property-set:label", "property-set:template_for_dispvms"} {
		onQube(p, func(q *Qube, _ *events.Event) error {
			if !q.HasVM() {
				return nil
			}
			return resetOf(q, "icon")
		})
	}

	// Kernels must be installed when chosen (a store may name one that
	// has since been removed; that is not checked at load).
	onQube("property-pre-set:kernel", func(q *Qube, e *events.Event) error {
		return validateKernel(q.app, property.FormatValue(mustArg(e, "newvalue")))
	})
	onApp("property-pre-set:default_kernel", func(e *events.Event) error {
		return validateKernel(a, property.FormatValue(mustArg(e, "newvalue")))
	})

	// A disposable template stays one while anything relies on it.
	for _, p := range []string{"property-pre-set:template_for_dispvms", "property-pre-reset:template_for_dispvms"} {
		onQube(p, func(q *Qube, e *events.Event) error {
			nv, _ := e.Arg("newvalue")
			ov, _ := e.Arg("oldvalue")
			if nv == true || ov != true {
				return nil
			}
			return q.vetoTemplateForDispvmsOff()
		})
	}

	// An AppVM or disposable always has a template.
	onQube("property-pre-reset:template", func(q *Qube, _ *events.Event) error {
		if q.class.kind == kindApp {
			if t, err := q.app.Get("default_template"); err == nil && t != nil {
				return qerr.New(qerr.ValueError, "Cannot unset template. You can set it to the current default (%s) instead", t.(*Qube).name)
			}
		}
		return qerr.New(qerr.ValueError, "Cannot unset template")
	})

	// Qubes that inherit a template's value hear of its change.
	onQube("property-set:*", func(q *Qube, e *events.Event) error {
		if !q.IsTemplate() {
			return nil
		}
		name, _ := e.Arg("name")
		n, _ := name.(string)
		if !slices.Contains(templateInherited, n) {
			return nil
		}
		nv, _ := e.Arg("newvalue")
		if ov, ok := e.Arg("oldvalue"); ok && ov == nv {
			return nil
		}
		for _, c := range q.app.Qubes() {
			if c.class.kind != kindApp || c.Template() != q {
				continue
			}
			if d, ok := c.Table().Lookup(n); ok && c.IsDefault(d) {
				if err := resetOf(c, n); err != nil {
					return err
				}
			}
		}
		return nil
	})

	// Boot mode follows the boot-mode.active feature.
	onQube("domain-feature-set:boot-mode.active", func(q *Qube, e *events.Event) error {
		if d, ok := q.Table().Lookup("bootmode"); ok && q.IsDefault(d) {
			if ov, had := e.Arg("oldvalue"); !had || ov != mustArg(e, "value") {
				return resetOf(q, "bootmode")
			}
		}
		return nil
	})
	appvmBootmode := func(q *Qube, _ *events.Event) error {
		if !q.IsTemplate() {
			return nil
		}
		if d, ok := q.Table().Lookup("appvm_default_bootmode"); ok && q.IsDefault(d) {
			if err := resetOf(q, "appvm_default_bootmode"); err != nil {
				return err
			}
		}
		for _, c := range q.app.Qubes() {
			if c.Template() != q {
				continue
			}
			if d, ok := c.Table().Lookup("bootmode"); ok && c.IsDefault(d) {
				if err := resetOf(c, "bootmode"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	onQube("domain-feature-set:boot-mode.appvm-default", appvmBootmode)
	onQube("domain-feature-delete:boot-mode.appvm-default", appvmBootmode)

	// Network providers: a qube that provides network is a service qube.
	onQube("property-set:provides_network", func(q *Qube, e *events.Event) error {
		if on, _ := e.Arg("newvalue"); on == true {
			if !q.Features.Truthy("servicevm") {
				if err := q.Features.Set("servicevm", "1"); err != nil {
					return err
				}
			}
		} else if _, ok := q.Features.Get("servicevm"); ok {
			if err := q.Features.Delete("servicevm"); err != nil {
				return err
			}
		}
		if err := resetOf(q, "icon"); err != nil {
			return err
		}
		if err := resetOf(q, "gateway"); err != nil {
			return err
		}
		return resetOf(q, "gateway6")
	})

	// A change of netvm through reset is checked and announced like a set.
	onQube("property-pre-reset:netvm", func(q *Qube, e *events.Event) error {
		d, _ := q.Table().Lookup("netvm")
		nv, err := q.DefaultValue(d)
		if err != nil {
			return nil
		}
		if nv, err = setNetVM(q, d, nv); err != nil {
			return err
		}
		ov, _ := e.Arg("oldvalue")
		if nv == ov {
			return nil
		}
		return q.FireEvent("property-pre-set:netvm", true, kw("name", "netvm"), kw("newvalue", nv), kw("oldvalue", ov))
	})
	onQube("property-reset:netvm", func(q *Qube, e *events.Event) error {
		nv := any(q.vm("netvm"))
		if nv == (*Qube)(nil) {
			nv = nil
		}
		ov, _ := e.Arg("oldvalue")
		if nv == ov {
			return nil
		}
		return q.FireEvent("property-set:netvm", false, kw("name", "netvm"), kw("newvalue", nv), kw("oldvalue", ov))
	})

	// Addresses: gateways and visible addresses follow ip and ip6.
	ipChanged := func(gw, visible, clientGW string) func(q *Qube, e *events.Event) error {
		return func(q *Qube, _ *events.Event) error {
			if q.boolean("provides_network") {
				if err := resetOf(q, gw); err != nil {
					return err
				}
			}
			if err := resetOf(q, visible); err != nil {
				return err
			}
			for _, c := range q.ConnectedVMs() {
				if err := resetOf(c, clientGW); err != nil {
					return err
				}
			}
			return nil
		}
	}
	onQube("property-set:ip", ipChanged("gateway", "visible_ip", "visible_gateway"))
	onQube("property-reset:ip", ipChanged("gateway", "visible_ip", "visible_gateway"))
	onQube("property-set:ip6", ipChanged("gateway6", "visible_ip6", "visible_gateway6"))
	onQube("property-reset:ip6", ipChanged("gateway6", "visible_ip6", "visible_gateway6"))

	// The default netvm: qubes that follow it hear of the change. (Its reset
	// is not propagated: the reference does not either, and event streams
	// must match it.)
	followers := func() []*Qube {
		var out []*Qube
		for _, q := range a.Qubes() {
			if d, ok := q.Table().Lookup("netvm"); ok && q.IsDefault(d) {
				out = append(out, q)
			}
		}
		return out
	}
	onApp("property-pre-set:default_netvm", func(e *events.Event) error {
		nv, _ := e.Arg("newvalue")
		ov, _ := e.Arg("oldvalue")
		for _, q := range followers() {
			if err := q.FireEvent("property-pre-set:netvm", true, kw("name", "netvm"), kw("newvalue", nv), kw("oldvalue", ov)); err != nil {
				return err
			}
		}
		return nil
	})
	onApp("property-set:default_netvm", func(e *events.Event) error {
		ov, _ := e.Arg("oldvalue")
		for _, q := range followers() {
			if err := q.FireEvent("property-reset:netvm", false, kw("name", "netvm"), kw("oldvalue", ov)); err != nil {
				return err
			}
		}
		return nil
	})

	// The default disposable template: qubes that follow it hear of it.
	dispvmChanged := func(e *events.Event) error {
		ov, _ := e.Arg("oldvalue")
		for _, q := range a.Qubes() {
			d, ok := q.Table().Lookup("default_dispvm")
			if !ok || !q.IsDefault(d) || q.class.kind == kindDisp {
				continue
			}
			if err := q.FireEvent("property-reset:default_dispvm", false, kw("name", "default_dispvm"), kw("oldvalue", ov)); err != nil {
				return err
			}
		}
		return nil
	}
	onApp("property-set:default_dispvm", dispvmChanged)
	onApp("property-reset:default_dispvm", dispvmChanged)
}

// registerRemovalRules refuses domain-pre-delete while the qube is in use.
func (a *App) registerRemovalRules() {
	a.bus.Subscribe("domain-pre-delete", events.Core, func(e *events.Event) error {
		if e.Subject != nil {
			return nil
		}
		q, _ := mustArg(e, "vm").(*Qube)
		if q == nil {
			return nil
		}
		return a.refuseIfReferenced(q)
	})
}

// GUI and audio: a qube carries the tags guivm-<name> and audiovm-<name> of
// the qubes that provide its GUI and audio, which policies match on.
func (a *App) registerGUITags() {
	for _, p := range []string{"guivm", "audiovm"} {
		prefix := p + "-"
		update := func(e *events.Event) error {
			q := subject(e)
			if q == nil || !q.Has(p) {
				return nil
			}
			if ov, ok := e.Arg("oldvalue"); ok {
				if o, _ := ov.(*Qube); o != nil {
					if err := q.Tags.Discard(prefix + o.name); err != nil {
						return err
					}
				}
			}
			if n := q.vm(p); n != nil {
				return q.Tags.Add(prefix + n.name)
			}
			return nil
		}
		a.bus.Subscribe("property-set:"+p, events.Core, update)
		a.bus.Subscribe("property-reset:"+p, events.Core, update)
	}
}

// initGUITags gives a new qube the tags of its GUI and audio qubes.
func (q *Qube) initGUITags() {
	for _, p := range []string{"guivm", "audiovm"} {
		// a set, as the reference's: a disposable has its template's already
		if n := q.vm(p); n != nil && !q.Tags.Has(p+"-"+n.name) {
			q.Tags.list = append(q.Tags.list, p+"-"+n.name)
		}
	}
}

func mustArg(e *events.Event, k string) any {
	v, _ := e.Arg(k)
	return v
}
