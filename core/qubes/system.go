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
	black, _ := a.Label("black")
	dom0 := newQube(a, AdminVMClass)
	ld, _ := dom0.Table().Lookup("label")
	dom0.Store(ld, black)
	dom0.cacheIdentity()
	dom0.xmlID = "domain-0"
	_ = a.insert(dom0)
	dom0.eventsEnabled = true
	a.eventsEnabled = true
	return a
}
