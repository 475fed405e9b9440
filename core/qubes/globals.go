package qubes

import (
	"os"
	"path/filepath"

	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
)

// The application's (global) properties (spec: core-model §5.1). All load in
// stage 3, after every qube exists and before qube properties that refer to
// other qubes.

func appDefault(f func(a *App) (any, error)) property.Default {
	return func(h property.Holder) (any, error) { return f(h.(*App)) }
}

// poolProp declares a property whose value is a pool name.
func poolProp(d *P) *P {
	d.Setter = func(h property.Holder, _ *P, v any) (any, error) {
		s, _ := v.(string)
		if !appOf(h).hasPool(s) {
			return nil, qerr.New(qerr.PropertyValueError, "No such storage pool")
		}
		return s, nil
	}
	return d
}

// defaultPool picks the pool new volumes go to when none is configured: the
// pool named "default", else an LVM thin pool backing the root filesystem's
// volume group, else a file pool in the data directory.
func defaultPool(a *App) (any, error) {
	if a.hasPool("default") {
		return "default", nil
	}
	if vg := os.Getenv("DEFAULT_LVM_POOL"); vg != "" {
		for _, p := range a.pools {
			if attr(p.Attrs, "driver") == "lvm_thin" && attr(p.Attrs, "volume_group")+"/"+attr(p.Attrs, "thin_pool") == vg {
				return attr(p.Attrs, "name"), nil
			}
		}
	}
	data := filepath.Clean(a.opts.DataDir)
	for _, p := range a.pools {
		switch attr(p.Attrs, "driver") {
		case "file", "file-reflink":
			if filepath.Clean(attr(p.Attrs, "dir_path")) == data {
				return attr(p.Attrs, "name"), nil
			}
		}
	}
	return nil, property.ErrNoValue
}

var globalTable = property.NewTable(globalProps()...)

func globalProps() []*P {
	dom0 := appDefault(func(a *App) (any, error) {
		if d := a.AdminVM(); d != nil {
			return d, nil
		}
		return nil, nil
	})
	poolDefault := appDefault(func(a *App) (any, error) { return a.Get("default_pool") })
	ds := []*P{
		vmRef(&P{Name: "default_guivm", Default: dom0}, true, anyLocalVM),
		vmRef(&P{Name: "default_audiovm", Default: dom0}, true, anyLocalVM),
		vmRef(&P{Name: "default_netvm", Setter: setDefaultNetVM, Default: property.Const(nil)}, true, anyLocalVM),
		vmRef(&P{Name: "default_template"}, true, templateVM),
		vmRef(&P{Name: "updatevm", Default: property.Const(nil)}, true, anyLocalVM),
		vmRef(&P{Name: "clockvm", Default: property.Const(nil)}, true, anyLocalVM),
		vmRef(&P{Name: "default_dispvm", Setter: setDisposableTemplate, Default: property.Const(nil)}, true, anyLocalVM),
		vmRef(&P{Name: "management_dispvm", Setter: setDisposableTemplate, Default: property.Const(nil)}, true, anyLocalVM),
		{Name: "default_kernel"},
		poolProp(&P{Name: "default_pool", Default: appDefault(defaultPool)}),
		poolProp(&P{Name: "default_pool_private", Default: poolDefault}),
		poolProp(&P{Name: "default_pool_root", Default: poolDefault}),
		poolProp(&P{Name: "default_pool_volatile", Default: poolDefault}),
		poolProp(&P{Name: "default_pool_kernel", Default: poolDefault}),
		{Name: "default_qrexec_timeout", Type: property.Int, Default: property.Const(60)},
		{Name: "default_shutdown_timeout", Type: property.Int, Default: property.Const(60)},
		{Name: "stats_interval", Type: property.Int, Default: property.Const(3)},
		{Name: "check_updates_vm", Type: property.Bool, Default: property.Const(true)},
		{Name: "maxmem", Type: property.Int, ReadOnly: true, Default: appDefault(func(a *App) (any, error) { return a.opts.HostMemoryMiB, nil })},
		{Name: "no_cpus", Type: property.Int, ReadOnly: true, Default: appDefault(func(a *App) (any, error) { return a.opts.HostCPUs, nil })},
	}
	for _, d := range ds {
		d.LoadStage = 3
		d.Doc = globalDocs[d.Name]
	}
	return ds
}
