package qubes

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
)

// The records core/storage keeps in the model: pool records and the
// volume-config of qubes. core/storage decides what to change (and asks the
// drivers); these methods only change the records, under the write lock,
// so that the next save writes them to qubes.xml.

// globalUser prefixes the global properties among a pool's users.
const globalUser = "@GLOBAL:"

// PoolUsers lists what uses the pool called name: every volume whose
// record names it, as "qube:volume" (quarantined qubes included), then
// every default_pool* global whose value — set or by default — is the
// pool, as "@GLOBAL:default_pool_root". A pool with users cannot be
// removed. Call it under the model's lock.
func (a *App) PoolUsers(name string) []string {
	var users []string
	for _, q := range a.Qubes() {
		for _, v := range q.volumes {
			if attr(v.Attrs, "pool") == name {
				users = append(users, q.name+":"+attr(v.Attrs, "name"))
			}
		}
	}
	for _, bad := range a.quarantined {
		for _, v := range bad.Record.VolumeConfig {
			if attr(v.Attrs, "pool") == name {
				users = append(users, bad.Name+":"+attr(v.Attrs, "name"))
			}
		}
	}
	for _, d := range a.Table().All() {
		if strings.HasPrefix(d.Name, "default_pool") && a.str(d.Name) == name {
			users = append(users, globalUser+d.Name)
		}
	}
	return users
}

// RemovePoolRecord removes the record of the pool called name, as the
// reference's app.remove_pool: refused with QubesPoolInUseError while the
// pool has users (PoolUsers), then the pre-event pool-pre-delete (which
// may veto) and pool-delete, both with pool=name. The pool's storage is
// not touched. Call it under the write lock.
func (a *App) RemovePoolRecord(name string) error {
	i := slices.IndexFunc(a.pools, func(p store.Pool) bool { return attr(p.Attrs, "name") == name })
	if i < 0 {
		return qerr.New(qerr.StoragePoolError, "no pool named %s", property.PyRepr(name))
	}
	if users := a.PoolUsers(name); len(users) > 0 {
		return qerr.New(qerr.PoolInUse, "Storage pool is in use: %s (used by %s)", property.PyRepr(name), usersText(users))
	}
	kw := events.KV{Key: "pool", Value: name}
	if err := a.FireEvent("pool-pre-delete", true, kw); err != nil {
		return err
	}
	a.pools = slices.Delete(slices.Clone(a.pools), i, i+1)
	return a.FireEvent("pool-delete", false, kw)
}

// usersText lists users for a message: the globals, then at most ten
// volumes and how many more there are.
func usersText(users []string) string {
	const most = 10
	var globals, vols []string
	for _, u := range users {
		if strings.HasPrefix(u, globalUser) {
			globals = append(globals, u)
		} else {
			vols = append(vols, u)
		}
	}
	if len(vols) > most {
		vols = append(vols[:most:most], fmt.Sprintf("and %d more volumes", len(vols)-most))
	}
	return strings.Join(append(globals, vols...), ", ")
}

// SetPoolAttr sets an attribute of the record of the pool called pool
// (adding it at the end when absent); an empty value removes it. The name
// and driver cannot be changed. Checking the value is the caller's
// business (core/storage). Call it under the write lock.
func (a *App) SetPoolAttr(pool, key, value string) error {
	i := slices.IndexFunc(a.pools, func(p store.Pool) bool { return attr(p.Attrs, "name") == pool })
	if i < 0 {
		return qerr.New(qerr.StoragePoolError, "no pool named %s", property.PyRepr(pool))
	}
	if key == "name" || key == "driver" {
		return qerr.New(qerr.ValueError, "the %s of pool %s cannot be changed", key, pool)
	}
	pools := slices.Clone(a.pools) // Snapshot shares the old slice
	pools[i].Attrs = setAttr(pools[i].Attrs, key, value)
	a.pools = pools
	return nil
}

// SetVolumeAttr sets an attribute of the record of the qube's volume
// called volume (adding it at the end when absent); an empty value removes
// it. The name cannot be changed. Call it under the write lock.
func (q *Qube) SetVolumeAttr(volume, key, value string) error {
	i := slices.IndexFunc(q.volumes, func(v store.Volume) bool { return attr(v.Attrs, "name") == volume })
	if i < 0 {
		return qerr.New(qerr.PermissionDenied, "qube %s has no volume %q", q.name, volume)
	}
	if key == "name" {
		return qerr.New(qerr.ValueError, "the name of volume %s:%s cannot be changed", q.name, volume)
	}
	vols := slices.Clone(q.volumes)
	vols[i].Attrs = setAttr(vols[i].Attrs, key, value)
	q.volumes = vols
	return nil
}

// setAttr returns attrs (a fresh slice) with key set to value, or removed
// when value is "".
func setAttr(attrs []store.Attr, key, value string) []store.Attr {
	out := slices.Clone(attrs)
	i := slices.IndexFunc(out, func(x store.Attr) bool { return x.Name == key })
	switch {
	case i >= 0 && value == "":
		return slices.Delete(out, i, i+1)
	case i >= 0:
		out[i].Value = value
	case value != "":
		out = append(out, store.Attr{Name: key, Value: value})
	}
	return out
}
