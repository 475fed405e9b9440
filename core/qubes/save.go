package qubes

import (
	"slices"
	"strconv"

	"github.com/qubesgo/qubesd/core/store"
)

// Document renders the model as a store Document: what qubes.xml holds.
// Quarantined records are written back exactly as they were read, and
// invalid global values stay until the property is set again. Call it
// inside Read or Write.
func (a *App) Document() *store.Document {
	doc := &store.Document{
		Labels: make([]store.Label, len(a.labels)),
		Pools:  slices.Clone(a.pools),
	}
	for i, l := range a.labels {
		doc.Labels[i] = store.Label{ID: "label-" + strconv.Itoa(l.Index), Color: l.Color, Name: l.Name}
	}
	a.Each(func(d *P, v any) {
		doc.Properties = append(doc.Properties, store.Property{Name: d.Name, Value: d.Text(v)})
	})
	for _, p := range a.dropped {
		if d, ok := a.Table().Lookup(p.Name); ok && !a.IsDefault(d) {
			continue // replaced since
		}
		doc.Properties = insertSorted(doc.Properties, p)
	}

	qubes := a.Qubes()
	doc.Domains = make([]store.Domain, 0, len(qubes)+len(a.quarantined))
	qi := 0
	for _, q := range qubes {
		// quarantined records go where their name sorts, dom0 first
		for qi < len(a.quarantined) && a.quarantinedBefore(a.quarantined[qi], q) {
			doc.Domains = append(doc.Domains, a.quarantined[qi].Record)
			qi++
		}
		doc.Domains = append(doc.Domains, q.record())
	}
	for ; qi < len(a.quarantined); qi++ {
		doc.Domains = append(doc.Domains, a.quarantined[qi].Record)
	}
	return doc
}

func (a *App) quarantinedBefore(b *Quarantined, q *Qube) bool {
	if q.IsAdminVM() {
		return false
	}
	return b.Class == "AdminVM" || b.Name < q.name
}

func insertSorted(ps []store.Property, p store.Property) []store.Property {
	i := 0
	for i < len(ps) && ps[i].Name < p.Name {
		i++
	}
	ps = append(ps, store.Property{})
	copy(ps[i+1:], ps[i:])
	ps[i] = p
	return ps
}

// record renders one qube as its qubes.xml record.
func (q *Qube) record() store.Domain {
	r := store.Domain{
		ID:    q.xmlID,
		Class: q.class.Name,
		// copies: the committer encodes the document after the lock is
		// released, while writers go on changing these lists in place
		Features:        slices.Clone(q.Features.list),
		Tags:            slices.Clone(q.Tags.list),
		Devices:         q.devices, // replaced, never changed in place
		VolumeConfig:    slices.Clone(q.volumes),
		HasVolumeConfig: q.hasVolumes,
	}
	q.Each(func(d *P, v any) {
		if d.ReadOnly {
			return
		}
		r.Properties = append(r.Properties, store.Property{Name: d.Name, Value: d.Text(v)})
	})
	return r
}

// Snapshot returns the model as a Document with the version it reflects,
// taking the read lock itself. It is the snapshot function core/store's
// Committer calls to write a durable copy.
func (a *App) Snapshot() (*store.Document, uint64) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.Document(), a.version
}
