package qubes

import (
	"strconv"

	"github.com/qubesgo/qubesd/core/store"
)

// The volume-config a new qube records: which volumes it has, in which pool,
// and how each behaves across start and stop. The storage layer creates the
// volumes; this file only decides the records (spec: core-model §5.7).

// Default sizes of new volumes, in bytes.
const (
	DefaultPrivateSize = 2 << 30
	DefaultRootSize    = 10 << 30
)

type volumeSpec struct {
	name        string
	rw          bool
	saveOnStop  bool
	snapOnStart bool
	size        int64 // 0: none recorded
	source      string
}

func (q *Qube) volumeSpecs() []volumeSpec {
	t := q.Template()
	root := volumeSpec{name: "root", rw: true, saveOnStop: true, size: DefaultRootSize}
	private := volumeSpec{name: "private", rw: true, saveOnStop: true, size: DefaultPrivateSize}
	switch q.class.kind {
	case kindApp:
		root = volumeSpec{name: "root", rw: true, snapOnStart: true, size: t.volumeSize("root", DefaultRootSize), source: t.volumeVID("root")}
	case kindDisp:
		// the root the disposable template runs from: its template's (an
		// AppVM's root is a snapshot of it), or its own (a StandaloneVM's)
		src := t.volumeSource("root")
		if src == "" {
			src = t.volumeVID("root")
		}
		root = volumeSpec{name: "root", rw: true, snapOnStart: true, size: t.volumeSize("root", DefaultRootSize), source: src}
		private = volumeSpec{name: "private", rw: true, snapOnStart: true, size: t.volumeSize("private", DefaultPrivateSize), source: t.volumeVID("private")}
	}
	return []volumeSpec{
		root, private,
		{name: "volatile", rw: true, size: DefaultRootSize},
		{name: "kernel"},
	}
}

func (q *Qube) volumeAttr(vol, key string) string {
	if q == nil {
		return ""
	}
	for _, v := range q.volumes {
		if attr(v.Attrs, "name") == vol {
			return attr(v.Attrs, key)
		}
	}
	return ""
}

func (q *Qube) volumeVID(vol string) string    { return q.volumeAttr(vol, "vid") }
func (q *Qube) volumeSource(vol string) string { return q.volumeAttr(vol, "source") }

func (q *Qube) volumeSize(vol string, def int64) int64 {
	if n, err := strconv.ParseInt(q.volumeAttr(vol, "size"), 10, 64); err == nil {
		return n
	}
	return def
}

func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// initVolumeConfig records the volume-config of a new qube. pool overrides
// the pool of every volume but the kernel's, pools the pool of single
// volumes; otherwise the default_pool_<volume> globals decide.
func (q *Qube) initVolumeConfig(pool string, pools map[string]string) {
	if !q.HasVM() {
		return
	}
	dir := "appvms/"
	if q.class.kind == kindTemplate {
		dir = "vm-templates/"
	}
	q.hasVolumes = true
	q.volumes = nil
	for _, s := range q.volumeSpecs() {
		p := pools[s.name]
		if p == "" && pool != "" && s.name != "kernel" {
			p = pool
		}
		if p == "" {
			p = q.app.str("default_pool_" + s.name)
		}
		vid := dir + q.name + "/" + s.name
		if s.name == "kernel" {
			vid = q.str("kernel")
			if vid == "" {
				continue // the qube boots its own kernel
			}
		}
		attrs := []store.Attr{
			{Name: "name", Value: s.name},
			{Name: "pool", Value: p},
			{Name: "vid", Value: vid},
			{Name: "revisions_to_keep", Value: q.app.poolRevisions(p)},
			{Name: "rw", Value: boolText(s.rw)},
			{Name: "save_on_stop", Value: boolText(s.saveOnStop)},
			{Name: "snap_on_start", Value: boolText(s.snapOnStart)},
		}
		if s.size > 0 && s.name != "kernel" {
			attrs = append(attrs, store.Attr{Name: "size", Value: strconv.FormatInt(s.size, 10)})
		}
		if s.source != "" {
			attrs = append(attrs, store.Attr{Name: "source", Value: s.source})
		}
		q.volumes = append(q.volumes, store.Volume{Attrs: attrs})
	}
}

// poolRevisions is the revisions_to_keep a new volume in pool p gets.
func (a *App) poolRevisions(p string) string {
	for _, rec := range a.pools {
		if attr(rec.Attrs, "name") != p {
			continue
		}
		if r := attr(rec.Attrs, "revisions_to_keep"); r != "" {
			return r
		}
		if attr(rec.Attrs, "driver") == "linux-kernel" {
			return "0"
		}
	}
	return "1"
}

// str on the App reads a global property as text ("" when unset).
func (a *App) str(name string) string {
	d, ok := a.Table().Lookup(name)
	if !ok {
		return ""
	}
	v, err := a.Value(d)
	if err != nil {
		return ""
	}
	return d.Text(v)
}
