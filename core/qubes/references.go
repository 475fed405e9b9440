package qubes

import (
	"strings"

	"github.com/qubesgo/qubesd/core/property"
)

// Reference is a property that names a qube: a global property (Qube == nil)
// or a property of another qube.
type Reference struct {
	Qube     *Qube // nil for a global property
	Property string
}

func (r Reference) String() string {
	if r.Qube == nil {
		return "@GLOBAL:" + r.Property
	}
	return r.Qube.name + ":" + r.Property
}

// joinRefs renders references for messages.
func joinRefs(refs []Reference) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// References lists what refers to q: global VM properties whose effective
// value is q, and other qubes' VM properties explicitly set to q. Non-empty
// filters restrict the property names considered. A preloaded disposable's
// template (and its disposable-template properties pointing there) do not
// count: preloads go away with their template.
func (a *App) References(q *Qube, systemProps, qubeProps []string) (system, qubes []Reference) {
	in := func(list []string, name string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == name {
				return true
			}
		}
		return false
	}
	for _, d := range a.Table().All() {
		if d.Type != property.VM || !in(systemProps, d.Name) {
			continue
		}
		if v, err := a.Value(d); err == nil && v == q {
			system = append(system, Reference{Property: d.Name})
		}
	}
	for _, o := range a.Qubes() {
		if o == q {
			continue
		}
		preload := o.class.kind == kindDisp && o.isPreload()
		for _, d := range o.Table().All() {
			if d.Type != property.VM || !in(qubeProps, d.Name) {
				continue
			}
			v, set := o.Explicit(d)
			if !set || v != q {
				continue
			}
			if preload && (d.Name == "template" || (d.Name == "default_dispvm" || d.Name == "management_dispvm") && o.Template() == q) {
				continue
			}
			qubes = append(qubes, Reference{Qube: o, Property: d.Name})
		}
	}
	return system, qubes
}
