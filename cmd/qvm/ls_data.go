package main

import (
	"context"
	"errors"
	"slices"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// lsVM is one qube of a listing and what has been fetched about it.
type lsVM struct {
	admin.VMInfo

	props    map[string]admin.Property // nil until fetched
	tags     map[string]bool           // nil until fetched
	features map[string]*string        // feature → value; nil value: not set
	state    *admin.VMState            // admin.vm.CurrentState, for MEMORY
	volNames []string                  // nil until fetched
	vols     map[string]admin.VolumeInfo
	gone     bool // removed while we were listing
}

// prop returns a property and whether the qube has it.
func (vm *lsVM) prop(name string) (admin.Property, bool) {
	p, ok := vm.props[name]
	return p, ok
}

// running reports whether the qube is running, as the Python client's
// is_running does.
func (vm *lsVM) running() bool { return vm.State != "Halted" && vm.State != "NA" }

// lsLoader fetches data about qubes, concurrently, only what is asked for
// and only once.
type lsLoader struct {
	c      *admin.Client
	all    []*lsVM
	byName map[string]*lsVM
	// wanted are the properties the listing reads (none: all); they are
	// fetched one by one if admin.vm.property.GetAll is refused (an empty
	// reply, as qrexec policy gives).
	wanted []string
	// bulkTried: admin.vm.property.GetAllBulk was tried (it answers for
	// every qube at once; daemons without it get per-qube GetAll calls).
	bulkTried bool
}

func newLsLoader(c *admin.Client, infos []admin.VMInfo) *lsLoader {
	l := &lsLoader{c: c, byName: make(map[string]*lsVM, len(infos))}
	for _, info := range infos {
		vm := &lsVM{VMInfo: info}
		l.all = append(l.all, vm)
		l.byName[info.Name] = vm
	}
	return l
}

// each runs fetch for the qubes of vms that need it, concurrently. A qube
// that no longer exists is marked gone rather than failing the listing.
func (l *lsLoader) each(ctx context.Context, vms []*lsVM, need func(*lsVM) bool, fetch func(context.Context, *lsVM) error) error {
	var todo []*lsVM
	for _, vm := range vms {
		if !vm.gone && need(vm) {
			todo = append(todo, vm)
		}
	}
	return parallel(ctx, len(todo), func(ctx context.Context, i int) error {
		err := fetch(ctx, todo[i])
		if admin.IsType(err, admin.TypeVMNotFound) {
			todo[i].gone = true
			return nil
		}
		return err
	})
}

// present drops the qubes found gone.
func present(vms []*lsVM) []*lsVM {
	return slices.DeleteFunc(slices.Clone(vms), func(vm *lsVM) bool { return vm.gone })
}

// loadProps fetches all properties of each qube: with one bulk call for
// every qube when the daemon has it and several qubes are wanted, else with
// one GetAll call per qube.
func (l *lsLoader) loadProps(ctx context.Context, vms []*lsVM) error {
	if !l.bulkTried && len(vms) > 1 {
		l.bulkTried = true
		if err := l.loadAllProps(ctx); err != nil {
			return err
		}
	}
	return l.each(ctx, vms, func(vm *lsVM) bool { return vm.props == nil }, func(ctx context.Context, vm *lsVM) error {
		props, err := l.c.Properties(ctx, vm.Name)
		if errors.Is(err, admin.ErrEmptyReply) {
			return l.loadPropsOneByOne(ctx, vm)
		}
		if err != nil {
			return err
		}
		m := make(map[string]admin.Property, len(props))
		for _, p := range props {
			m[p.Name] = p
		}
		vm.props = m
		return nil
	})
}

// loadAllProps fills the properties of every listed qube from one
// admin.vm.property.GetAllBulk call. A daemon without the method, or a
// policy that refuses it, leaves them to the per-qube calls.
func (l *lsLoader) loadAllProps(ctx context.Context) error {
	all, err := l.c.AllProperties(ctx, l.wanted...)
	if admin.IsNoSuchMethod(err) || errors.Is(err, admin.ErrEmptyReply) || admin.IsType(err, "PermissionDenied") {
		return nil
	}
	if err != nil {
		return err
	}
	wanted := make(map[string]bool, len(l.wanted))
	for _, w := range l.wanted {
		wanted[w] = true
	}
	for _, q := range all {
		vm, ok := l.byName[q.Name]
		if !ok || vm.props != nil {
			continue // created after our listing: not shown
		}
		// keep what the listing reads: 1000 maps of every property cost
		// more than the call
		m := make(map[string]admin.Property, len(l.wanted))
		for _, p := range q.Properties {
			if len(wanted) == 0 || wanted[p.Name] {
				m[p.Name] = p
			}
		}
		vm.props = m
	}
	return nil
}

func (l *lsLoader) loadPropsOneByOne(ctx context.Context, vm *lsVM) error {
	m := map[string]admin.Property{}
	for _, name := range l.wanted {
		p, err := l.c.Property(ctx, vm.Name, name)
		switch {
		case err == nil:
			m[name] = p
		case admin.IsType(err, admin.TypeNoSuchProperty), errors.Is(err, admin.ErrEmptyReply):
		default:
			return err
		}
	}
	vm.props = m
	return nil
}

// loadNetvmProps fetches the properties of the netvms of vms (GATEWAY).
func (l *lsLoader) loadNetvmProps(ctx context.Context, vms []*lsVM) error {
	var netvms []*lsVM
	for _, vm := range vms {
		if p, ok := vm.prop("netvm"); ok && p.Value != "" {
			if nv := l.byName[p.Value]; nv != nil && !slices.Contains(netvms, nv) {
				netvms = append(netvms, nv)
			}
		}
	}
	return l.loadProps(ctx, netvms)
}

func (l *lsLoader) loadTags(ctx context.Context, vms []*lsVM) error {
	return l.each(ctx, vms, func(vm *lsVM) bool { return vm.tags == nil }, func(ctx context.Context, vm *lsVM) error {
		tags, err := l.c.Tags(ctx, vm.Name)
		if err != nil {
			return err
		}
		vm.tags = make(map[string]bool, len(tags))
		for _, t := range tags {
			vm.tags[t] = true
		}
		return nil
	})
}

func (l *lsLoader) loadFeature(ctx context.Context, vms []*lsVM, name string) error {
	need := func(vm *lsVM) bool {
		_, ok := vm.features[name]
		return !ok
	}
	return l.each(ctx, vms, need, func(ctx context.Context, vm *lsVM) error {
		v, err := l.c.Feature(ctx, vm.Name, name)
		if vm.features == nil {
			vm.features = map[string]*string{}
		}
		switch {
		case err == nil:
			vm.features[name] = &v
		case admin.IsType(err, admin.TypeFeatureNotFound):
			vm.features[name] = nil
		default:
			return err
		}
		return nil
	})
}

// feature returns a fetched feature and whether it is set.
func (vm *lsVM) feature(name string) (string, bool) {
	v := vm.features[name]
	if v == nil {
		return "", false
	}
	return *v, true
}

// loadVolumes fetches the volume list and the description of the named
// volumes (all of them if names is nil).
func (l *lsLoader) loadVolumes(ctx context.Context, vms []*lsVM, names []string) error {
	return l.each(ctx, vms, func(vm *lsVM) bool { return vm.vols == nil }, func(ctx context.Context, vm *lsVM) error {
		vols, err := l.c.Volumes(ctx, vm.Name)
		if err != nil {
			return err
		}
		vm.volNames = vols
		vm.vols = map[string]admin.VolumeInfo{}
		for _, v := range vols {
			if names != nil && !slices.Contains(names, v) {
				continue
			}
			vi, err := l.c.VolumeInfo(ctx, vm.Name, v)
			if err != nil {
				return err
			}
			vm.vols[v] = vi
		}
		return nil
	})
}

// loadState fetches admin.vm.CurrentState of the running qubes. A qube
// whose state cannot be read shows no memory.
func (l *lsLoader) loadState(ctx context.Context, vms []*lsVM) error {
	return l.each(ctx, vms, func(vm *lsVM) bool { return vm.state == nil && vm.running() }, func(ctx context.Context, vm *lsVM) error {
		st, err := l.c.CurrentState(ctx, vm.Name)
		var de *admin.Error
		if errors.As(err, &de) && de.Type != admin.TypeVMNotFound || errors.Is(err, admin.ErrEmptyReply) {
			return nil
		}
		if err != nil {
			return err
		}
		vm.state = &st
		return nil
	})
}
