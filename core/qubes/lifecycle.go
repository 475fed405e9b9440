package qubes

import (
	"crypto/rand"
	"regexp"
	"strconv"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// Creating and removing qubes: names, qids, the collection and its events.

var (
	nameStartRe = regexp.MustCompile(`\A[0-9_.-]`)
	nameRe      = regexp.MustCompile(`\A[a-zA-Z][a-zA-Z0-9_.-]*\z`)
)

// ValidateName checks a qube name from outside (spec: core-model §3.7).
func ValidateName(name string) error {
	switch {
	case len(name) > 31:
		return qerr.New(qerr.ValueError, "VM name must be shorter than 32 characters")
	case nameStartRe.MatchString(name):
		return qerr.New(qerr.ValueError, "VM name cannot start with hyphen, underscore, dot or numbers")
	case !nameRe.MatchString(name):
		return qerr.New(qerr.ValueError, "VM name contains illegal characters")
	case name == "Domain-0":
		return qerr.New(qerr.ValueError, "VM name cannot be 'Domain-0'")
	case name == "none" || name == "default":
		return qerr.New(qerr.ValueError, "VM name cannot be 'none' nor 'default'")
	case len(name) >= 3 && name[len(name)-3:] == "-dm":
		return qerr.New(qerr.ValueError, "VM name cannot end with -dm")
	}
	return nil
}

// newQID returns the smallest unused qid.
func (a *App) newQID() (int, error) {
	for i := 1; i < MaxQID; i++ {
		if _, used := a.byQID[i]; !used {
			return i, nil
		}
	}
	return 0, qerr.New(qerr.Exception, "No unused qid left: all %d are taken", MaxQID-1)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return FormatUUID(b)
}

// CreateOptions are the settings of a new qube.
type CreateOptions struct {
	Name  string // required, except for disposables ("disp<dispid>")
	Label *Label // required
	// Template for AppVM and DispVM; nil means the system default
	// (default_template, or default_dispvm for a disposable).
	Template *Qube
	// AutoCleanup makes a disposable remove itself when it stops.
	AutoCleanup bool
	// Pool puts every volume but the kernel's in this pool; Pools names
	// the pool of single volumes (root, private, volatile, kernel).
	Pool  string
	Pools map[string]string
}

// Create adds a new qube and fires domain-add. It records the qube only:
// storage and the hypervisor are the caller's next steps.
func (a *App) Create(c *Class, opt CreateOptions) (*Qube, error) {
	if c.kind == kindAdmin {
		if a.AdminVM() != nil {
			return nil, qerr.New(qerr.VMAlreadyExists, "Qube already exists: dom0")
		}
	}
	if opt.Label == nil {
		return nil, qerr.New(qerr.ValueError, "A label is required to create a qube")
	}
	q := newQube(a, c)
	set := func(name string, v any) { d, _ := q.Table().Lookup(name); q.Store(d, v) }

	if c.kind != kindAdmin {
		if c.kind == kindDisp {
			if opt.Template == nil {
				if t, _ := a.Get("default_dispvm"); t != nil {
					opt.Template = t.(*Qube)
				}
			}
			if opt.Template == nil {
				return nil, qerr.New(qerr.ValueError, "Template for the qube not specified, nor default disposable template set.")
			}
			if !opt.Template.Has("template_for_dispvms") || !opt.Template.boolean("template_for_dispvms") {
				return nil, qerr.New(qerr.ValueError, "Refusing to create disposable from %s: its template_for_dispvms is False", opt.Template.name)
			}
			id, err := a.newDispID()
			if err != nil {
				return nil, err
			}
			set("dispid", id)
			if opt.Name == "" {
				opt.Name = "disp" + strconv.Itoa(id)
			}
			if opt.AutoCleanup {
				set("auto_cleanup", true)
			}
		}
		if err := ValidateName(opt.Name); err != nil {
			return nil, err
		}
		if _, taken := a.byName[opt.Name]; taken {
			return nil, qerr.New(qerr.VMAlreadyExists, "Qube already exists: %s", opt.Name)
		}
		qid, err := a.newQID()
		if err != nil {
			return nil, err
		}
		set("name", opt.Name)
		set("qid", qid)
		set("uuid", newUUID())
		if c.kind == kindApp {
			if opt.Template == nil {
				if t, _ := a.Get("default_template"); t != nil {
					opt.Template = t.(*Qube)
				}
			}
			if opt.Template == nil {
				return nil, qerr.New(qerr.ValueError, "Template for the qube not specified, nor default template set.")
			}
			if !opt.Template.IsTemplate() {
				return nil, qerr.New(qerr.PropertyValueError, "wrong VM class: domains[%s] is of type %s and not TemplateVM", property.PyRepr(opt.Template.name), opt.Template.class.Name)
			}
		}
		if opt.Template != nil {
			if !q.hasTemplateProp() {
				return nil, qerr.New(qerr.ValueError, "%s cannot be based on template", c.Name)
			}
			set("template", opt.Template)
		}
	}
	set("label", opt.Label)
	q.cacheIdentity()
	q.xmlID = "domain-" + strconv.Itoa(q.qid)
	if c.kind == kindDisp {
		q.inheritFromDispTemplate()
	}
	for _, p := range append([]string{opt.Pool}, mapValues(opt.Pools)...) {
		if p != "" && !a.hasPool(p) {
			return nil, qerr.New(qerr.Exception, "Unknown storage pool %s", p)
		}
	}
	q.initVolumeConfig(opt.Pool, opt.Pools)
	q.initGUITags()
	if err := a.insert(q); err != nil {
		return nil, err
	}
	q.eventsEnabled = true
	return q, a.FireEvent("domain-add", false, kw("vm", q))
}

// inheritFromDispTemplate copies a new disposable's settings from its
// disposable template: explicit clonable properties, features (except the
// preload bookkeeping) and tags.
func (q *Qube) inheritFromDispTemplate() {
	t := q.Template()
	t.Each(func(d *P, v any) {
		if d.NoClone || d.ReadOnly || d.Name == "template" || d.Name == "template_for_dispvms" {
			return
		}
		if own, ok := q.Table().Lookup(d.Name); ok && q.IsDefault(own) && !own.ReadOnly {
			q.Store(own, v)
		}
	})
	for _, f := range t.Features.All() {
		if len(f.Name) >= 14 && f.Name[:14] == "preload-dispvm" {
			continue
		}
		q.Features.list = append(q.Features.list, f)
	}
	q.Tags.list = append(q.Tags.list, t.Tags.list...)
}

func (q *Qube) cacheIdentity() {
	q.name = q.str("name")
	q.qid = q.integer("qid")
	q.uuid = q.str("uuid")
}

// insert adds a qube to the collection, refusing duplicate names and qids.
func (a *App) insert(q *Qube) error {
	if _, dup := a.byName[q.name]; dup {
		return qerr.New(qerr.VMAlreadyExists, "Qube already exists: %s", q.name)
	}
	if o, dup := a.byQID[q.qid]; dup {
		return qerr.New(qerr.ValueError, "qid %d of %s is already used by %s", q.qid, q.name, o.name)
	}
	a.byName[q.name] = q
	a.byQID[q.qid] = q
	if q.uuid != "" {
		a.byUUID[q.uuid] = q
	}
	a.sorted.Store(nil)
	return nil
}

func (a *App) drop(q *Qube) {
	delete(a.byName, q.name)
	delete(a.byQID, q.qid)
	if a.byUUID[q.uuid] == q {
		delete(a.byUUID, q.uuid)
	}
	a.sorted.Store(nil)
}

// refuseIfReferenced refuses to remove q while anything refers to it,
// naming every reference.
func (a *App) refuseIfReferenced(q *Qube) error {
	system, qubes := a.References(q, nil, nil)
	if refs := append(system, qubes...); len(refs) > 0 {
		a.log.Error("refusing to remove a qube still in use", "qube", q.name, "used_by", joinRefs(refs))
		return qerr.New(qerr.VMInUse, "Domain is in use: %s; used by: %s", property.PyRepr(q.name), joinRefs(refs))
	}
	return nil
}

// Remove removes a qube from the model: refused for dom0, for qubes
// installed by the package manager and for qubes anything still refers to
// (domain-pre-delete names every reference). Fires domain-delete.
func (a *App) Remove(q *Qube) error {
	if q.IsAdminVM() {
		return qerr.New(qerr.VMInUse, "%s cannot be removed", property.PyRepr(q.name))
	}
	if q.Has("installed_by_rpm") && q.boolean("installed_by_rpm") {
		return qerr.New(qerr.VMInUse, "VM installed by package manager: %s", q.name)
	}
	if a.byName[q.name] != q {
		return notFound(q.name)
	}
	if !a.eventsEnabled {
		if err := a.refuseIfReferenced(q); err != nil {
			return err
		}
	}
	// the core's domain-pre-delete handler refuses while q is referenced
	if err := a.FireEvent("domain-pre-delete", true, kw("vm", q)); err != nil {
		return err
	}
	a.drop(q)
	if q.class.kind == kindDisp {
		if id := q.integer("dispid"); id != 0 {
			a.deletedDisps[id] = a.opts.Now()
		}
	}
	err := a.FireEvent("domain-delete", false, kw("vm", q))
	q.eventsEnabled = false
	return err
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
