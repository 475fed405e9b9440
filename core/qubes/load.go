package qubes

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
)

// Loading a store Document into the model, in the reference's stages:
// labels and pools, then every qube with its plain properties, then the
// global properties, then the properties that refer to other qubes with
// features and tags. A qube whose record cannot be loaded is quarantined —
// kept with its raw record and the error, listed, saved back unchanged —
// and loading goes on.

// Quarantined is a qube record that failed to load.
type Quarantined struct {
	Name   string // from the record's name property, if it had one
	Class  string
	Record store.Domain
	Err    error
}

// Quarantined returns the records that failed to load, by name.
func (a *App) Quarantined() []*Quarantined { return a.quarantined }

// LoadReport says what loading found wrong without failing.
type LoadReport struct {
	Quarantined []*Quarantined
	// Dropped lists global property values that were invalid; they are kept
	// in the file until the property is set again.
	Dropped []store.Property
	// Repairs lists changes made to keep the model consistent (loops broken,
	// legacy settings migrated).
	Repairs []string
}

// legacy property renames of old qubes.xml files
func migrateLegacyProperty(c *Class, p store.Property) store.Property {
	switch {
	case p.Name == "hvm" && c.kind != kindAdmin:
		mode := "pv"
		if b, err := property.ParseBool(p.Value); err == nil && b {
			mode = "hvm"
		}
		return store.Property{Name: "virt_mode", Value: mode}
	case p.Name == "dispvm_allowed" && (c.kind == kindApp || c.kind == kindStandalone):
		return store.Property{Name: "template_for_dispvms", Value: p.Value}
	}
	return p
}

// Load builds a model from a Document. It fails only when the document as a
// whole is unusable; broken qubes are quarantined and listed in the report.
func Load(doc *store.Document, opts Options) (*App, *LoadReport, error) {
	a := New(opts)
	rep := &LoadReport{}
	if err := a.loadLabels(doc.Labels); err != nil {
		return nil, nil, err
	}
	a.pools = append(a.pools, doc.Pools...)

	type pending struct {
		q   *Qube
		rec *store.Domain
	}
	var loaded []pending
	quarantine := func(rec *store.Domain, err error) {
		name := ""
		for _, p := range rec.Properties {
			if p.Name == "name" {
				name = p.Value
			}
		}
		if name == "" && rec.Class == "AdminVM" {
			name = "dom0"
		}
		a.log.Error("qube record quarantined: it stays in qubes.xml unchanged, but cannot be used until fixed", "qube", name, "class", rec.Class, "error", err)
		a.quarantined = append(a.quarantined, &Quarantined{Name: name, Class: rec.Class, Record: *rec, Err: err})
	}

	// Stage 2: every qube with its plain properties.
	for i := range doc.Domains {
		rec := &doc.Domains[i]
		q, err := a.loadQube(rec, 2)
		if err == nil {
			err = a.insert(q)
		}
		if err != nil {
			quarantine(rec, err)
			continue
		}
		loaded = append(loaded, pending{q, rec})
	}
	if a.AdminVM() == nil {
		a.addAdminVM()
		rep.Repairs = append(rep.Repairs, "the store had no AdminVM; dom0 was added")
	}

	// Stage 3: global properties.
	fwNetVM := ""
	for _, p := range doc.Properties {
		if p.Name == "default_fw_netvm" {
			fwNetVM = p.Value
			continue
		}
		d, ok := a.Table().Lookup(p.Name)
		if !ok || d.ReadOnly {
			a.log.Error("dropping unknown global property from the store", "property", p.Name, "value", p.Value)
			rep.Dropped = append(rep.Dropped, p)
			continue
		}
		if err := a.Load(d, p.Value); err != nil {
			a.log.Error("invalid global property in the store; using its default", "property", p.Name, "value", p.Value, "error", err)
			rep.Dropped = append(rep.Dropped, p)
		}
	}
	a.dropped = rep.Dropped

	// Stage 4: properties that refer to qubes, features, tags, devices.
	for _, l := range loaded {
		if err := a.loadQubeRefs(l.q, l.rec); err != nil {
			a.drop(l.q)
			quarantine(l.rec, err)
		}
	}
	// Qubes that refer to a quarantined qube cannot be loaded either.
	for changed := true; changed; {
		changed = false
		for _, l := range loaded {
			if a.byName[l.q.name] != l.q {
				continue
			}
			if bad := l.q.refersTo(a.isQuarantined); bad != "" {
				a.drop(l.q)
				quarantine(l.rec, qerr.New(qerr.Quarantined, "refers to quarantined qube %s", bad))
				changed = true
			}
		}
	}
	for _, g := range []string{"default_guivm", "default_audiovm", "default_netvm", "default_template", "updatevm", "clockvm", "default_dispvm", "management_dispvm"} {
		d, _ := a.Table().Lookup(g)
		if v, set := a.Explicit(d); set {
			if q, _ := v.(*Qube); q != nil && a.byName[q.name] != q {
				a.log.Error("global property refers to a quarantined qube; using its default", "property", g, "qube", q.name)
				rep.Dropped = append(rep.Dropped, store.Property{Name: g, Value: q.name})
				a.Drop(d)
			}
		}
	}
	a.dropped = rep.Dropped
	rep.Repairs = append(rep.Repairs, a.migrateGlobals(fwNetVM)...)

	// Stage 5: identity fill-in, consistency repairs, events on.
	for _, q := range a.Qubes() {
		if q.uuid == "" && !q.IsAdminVM() {
			d, _ := q.Table().Lookup("uuid")
			q.Store(d, newUUID())
			q.cacheIdentity()
			a.byUUID[q.uuid] = q
		}
	}
	for _, name := range a.breakNetworkLoops() {
		rep.Repairs = append(rep.Repairs, "network loop broken: netvm of "+name+" set to none")
	}
	for _, q := range a.Qubes() {
		q.eventsEnabled = true
	}
	a.eventsEnabled = true
	for _, q := range a.Qubes() {
		if err := q.FireEvent("domain-load", false); err != nil {
			a.log.Error("domain-load handler failed", "qube", q.name, "error", err)
		}
	}
	slices.SortStableFunc(a.quarantined, func(x, y *Quarantined) int {
		if (x.Class == "AdminVM") != (y.Class == "AdminVM") {
			if x.Class == "AdminVM" {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	rep.Quarantined = a.quarantined
	return a, rep, nil
}

func (a *App) isQuarantined(q *Qube) bool { return a.byName[q.name] != q }

// refersTo returns the name of the first qube q refers to (through an
// explicit property) for which bad is true.
func (q *Qube) refersTo(bad func(*Qube) bool) string {
	found := ""
	q.Each(func(d *P, v any) {
		if r, ok := v.(*Qube); ok && r != nil && found == "" && bad(r) {
			found = r.name + " (" + d.Name + ")"
		}
	})
	return found
}

func (a *App) loadLabels(labels []store.Label) error {
	for _, l := range labels {
		idx, err := strconv.Atoi(strings.TrimPrefix(l.ID, "label-"))
		if err != nil || !strings.HasPrefix(l.ID, "label-") {
			return fmt.Errorf("label %q has an invalid id %q (want label-N)", l.Name, l.ID)
		}
		color := l.Color
		if color == "0x555753" {
			color = "0x555555"
		}
		if err := a.addLabel(&Label{Index: idx, Color: color, Name: l.Name}); err != nil {
			return fmt.Errorf("label %q: %w", l.Name, err)
		}
	}
	if len(a.labels) == 0 {
		return fmt.Errorf("the store defines no labels")
	}
	return nil
}

// loadQube builds a qube from its record with the properties of one stage.
func (a *App) loadQube(rec *store.Domain, stage int) (*Qube, error) {
	c, ok := ClassByName(rec.Class)
	if !ok {
		return nil, qerr.New(qerr.Exception, "no such VM class: %s", property.PyRepr(rec.Class))
	}
	q := newQube(a, c)
	q.xmlID = rec.ID
	if err := q.loadProps(rec, stage); err != nil {
		return nil, err
	}
	q.cacheIdentity()
	if !q.IsAdminVM() {
		if q.name == "" {
			return nil, qerr.New(qerr.Exception, "record has no name")
		}
		if d, _ := q.Table().Lookup("qid"); q.IsDefault(d) {
			return nil, qerr.New(qerr.Exception, "record has no qid")
		}
	}
	return q, nil
}

func (q *Qube) loadProps(rec *store.Domain, stage int) error {
	for _, p := range rec.Properties {
		p = migrateLegacyProperty(q.class, p)
		d, ok := q.Table().Lookup(p.Name)
		if !ok {
			return qerr.New(qerr.Exception, "property %s not applicable to %s", property.PyRepr(p.Name), property.PyRepr(q.class.Name))
		}
		if d.Stage() != stage {
			continue
		}
		if d.ReadOnly {
			q.app.log.Warn("ignoring read-only property in the store", "qube", q.name, "property", p.Name)
			continue
		}
		if p.Value == "" && d.Type == property.Int {
			q.Store(d, nil) // the reference's "none" for an int
			continue
		}
		if err := q.Load(d, loadText(d, p.Value)); err != nil {
			return fmt.Errorf("property %s = %q: %w", p.Name, p.Value, err)
		}
	}
	return nil
}

// loadText maps the empty text of a non-string property (the reference
// writes it for "none") to a value that parses.
func loadText(d *P, text string) string {
	if text == "" && d.Type == property.Bool {
		return "False"
	}
	return text
}

func (a *App) loadQubeRefs(q *Qube, rec *store.Domain) error {
	if err := q.loadProps(rec, 4); err != nil {
		return err
	}
	if q.hasTemplateProp() && q.Template() == nil {
		return qerr.New(qerr.Exception, "%s has no template", q.class.Name)
	}
	q.Features.list = append([]store.Feature(nil), rec.Features...)
	q.Tags.list = append([]string(nil), rec.Tags...)
	q.devices = rec.Devices
	q.volumes = rec.VolumeConfig
	q.hasVolumes = rec.HasVolumeConfig
	return nil
}

// migrateGlobals applies the reference's migrations of global properties.
func (a *App) migrateGlobals(fwNetVM string) []string {
	var repairs []string
	if fwNetVM != "" {
		fw := a.byName[fwNetVM]
		dn, _ := a.Get("default_netvm")
		if fw != nil && dn != any(fw) {
			for _, q := range a.Qubes() {
				d, ok := q.Table().Lookup("netvm")
				if ok && q.IsDefault(d) && q.boolean("provides_network") {
					q.Store(d, fw)
					repairs = append(repairs, "netvm of "+q.name+" set to "+fwNetVM+" (from the dropped default_fw_netvm)")
				}
			}
		}
		repairs = append(repairs, "default_fw_netvm dropped")
	}
	isDVM := func(v any) bool {
		q, _ := v.(*Qube)
		return q == nil || (q.Has("template_for_dispvms") && q.boolean("template_for_dispvms"))
	}
	for _, name := range []string{"default_dispvm", "management_dispvm"} {
		d, _ := a.Table().Lookup(name)
		if v, set := a.Explicit(d); set && !isDVM(v) {
			a.Store(d, nil)
			repairs = append(repairs, "global "+name+" blanked: not a disposable template")
		}
		for _, q := range a.Qubes() {
			qd, ok := q.Table().Lookup(name)
			if !ok {
				continue
			}
			if v, set := q.Explicit(qd); set && !isDVM(v) {
				q.Store(qd, nil)
				repairs = append(repairs, name+" of "+q.name+" blanked: not a disposable template")
			}
		}
	}
	return repairs
}
