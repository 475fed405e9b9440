package qubes

import (
	"path/filepath"

	"github.com/qubesgo/qubesd/core/store"
)

// NewSystem returns the model of a freshly installed system, as the
// reference's qubes-create makes it: the eight default labels, dom0, a file
// pool "varlibqubes" in the data directory, the "linux-kernel" pool, and
// default_pool_kernel pointing at the latter.
func NewSystem(opts Options) *App {
	a := New(opts)
	for i := range DefaultLabels {
		l := DefaultLabels[i]
		_ = a.addLabel(&l)
	}
	dir := a.opts.DataDir
	a.pools = []store.Pool{
		{Attrs: []store.Attr{{Name: "name", Value: "varlibqubes"}, {Name: "dir_path", Value: dir}, {Name: "driver", Value: "file"}, {Name: "revisions_to_keep", Value: "1"}, {Name: "ephemeral_volatile", Value: "False"}}},
		{Attrs: []store.Attr{{Name: "name", Value: "linux-kernel"}, {Name: "dir_path", Value: filepath.Join(dir, "vm-kernels")}, {Name: "driver", Value: "linux-kernel"}}},
	}
	d, _ := a.Table().Lookup("default_pool_kernel")
	a.Store(d, "linux-kernel")
	a.addAdminVM().eventsEnabled = true
	a.eventsEnabled = true
	return a
}

// addAdminVM adds dom0 with the label black (or the last label when there
// is no black one), as a store without one gets.
func (a *App) addAdminVM() *Qube {
	label, _ := a.Label("black")
	if label == nil {
		label = a.labels[len(a.labels)-1]
	}
	dom0 := newQube(a, AdminVMClass)
	d, _ := dom0.Table().Lookup("label")
	dom0.Store(d, label)
	dom0.cacheIdentity()
	dom0.xmlID = "domain-0"
	_ = a.insert(dom0)
	return dom0
}
