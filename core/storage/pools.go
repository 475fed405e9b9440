package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/store"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// poolName is what a pool name may hold (the reference's safe set).
var poolName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// NewPoolRecord checks a new pool's config — attrs as admin.pool.Add gets
// them, with "name" — for driver and returns the record to add. It checks
// the name (present, [A-Za-z0-9._-], not taken), the daemon's keys
// (revisions_to_keep an integer >= -1, ephemeral_volatile a boolean,
// written back as True/False) and lets the driver check its own keys. It
// neither adds the record nor touches the storage: the caller runs
// SetupPool, then adds the record (qubes.App.AddPoolRecord) under the
// write lock, as the reference's app.add_pool. Call it without the model's
// lock.
func (m *Manager) NewPoolRecord(ctx context.Context, driver string, attrs map[string]string) (store.Pool, error) {
	name, ok := attrs[attrName]
	if !ok {
		return store.Pool{}, qerr.New(qerr.ProtocolError, "Pool configuration must contain key: name")
	}
	if !poolName.MatchString(name) {
		return store.Pool{}, qerr.New(qerr.ProtocolError, "Pool name must be in safe set: [A-Za-z0-9._-]+, not %q", name)
	}
	if d, ok := attrs[attrDriver]; ok && d != driver {
		return store.Pool{}, qerr.New(qerr.ProtocolError, "Pool configuration names driver %q, not %q", d, driver)
	}
	var taken bool
	_ = m.app.Read(func() error { taken = slices.Contains(m.app.PoolNames(), name); return nil })
	if taken {
		return store.Pool{}, qerr.New(qerr.PoolInUse, "Storage pool is in use: a pool named %q exists already", name)
	}
	d, err := m.drivers.PoolDriver(driver)
	if err != nil {
		return store.Pool{}, qerr.Wrap(qerr.PermissionDenied, err, "no pool driver %q: %v (qvm-pool drivers lists the drivers)", driver, err)
	}
	p := Pool{Name: name, Driver: driver, Attrs: maps.Clone(attrs)}
	p.Attrs[attrDriver] = driver
	for _, k := range []string{attrRevisionsToKeep, attrEphemeralVolatile} {
		if v, ok := p.Attrs[k]; ok {
			norm, err := ValidatePoolAttr(k, v)
			if err != nil {
				return store.Pool{}, err
			}
			p.Attrs[k] = norm
		}
	}
	if err := d.ValidateConfig(ctx, p.DriverConfig()); err != nil && !errors.Is(err, pool.ErrUnimplemented) {
		return store.Pool{}, m.poolError(p, "checking the pool config", err)
	}
	// The reference's order: name, the driver's keys, driver, then the
	// daemon's keys.
	rec := store.Pool{Attrs: []store.Attr{{Name: attrName, Value: name}}}
	cfg := p.DriverConfig()
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		rec.Attrs = append(rec.Attrs, store.Attr{Name: k, Value: cfg[k]})
	}
	rec.Attrs = append(rec.Attrs, store.Attr{Name: attrDriver, Value: driver})
	for _, k := range []string{attrRevisionsToKeep, attrEphemeralVolatile} {
		if v, ok := p.Attrs[k]; ok {
			rec.Attrs = append(rec.Attrs, store.Attr{Name: k, Value: v})
		}
	}
	return rec, nil
}

// ValidatePoolAttr checks a value of one of the daemon's pool attributes
// (admin.pool.Set.*) and returns it as the record keeps it:
// revisions_to_keep an integer >= -1, ephemeral_volatile True or False.
func ValidatePoolAttr(key, value string) (string, error) {
	switch key {
	case attrRevisionsToKeep:
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return "", qerr.New(qerr.ValueError, "revisions_to_keep must be an integer, not %q", value)
		}
		if n < -1 {
			return "", qerr.New(qerr.ValueError, "Value can't be lower than -1")
		}
		return strconv.Itoa(n), nil
	case attrEphemeralVolatile:
		switch strings.ToLower(strings.TrimSpace(value)) {
		case "true", "1", "yes", "on":
			return "True", nil
		case "false", "0", "no", "off", "":
			return "False", nil
		}
		return "", qerr.New(qerr.ValueError, "ephemeral_volatile must be a boolean (True or False), not %q", value)
	}
	return "", qerr.New(qerr.ValueError, "pool attribute %q cannot be set", key)
}

// SetupPool creates p's storage where it is absent (the driver's Setup)
// and checks that it is usable (Open). Call it without the model's lock.
func (m *Manager) SetupPool(ctx context.Context, p Pool) error {
	d, err := m.driver(p)
	if err != nil {
		return err
	}
	if err := d.Setup(ctx, p.spec()); err != nil {
		return m.poolError(p, "setting up the storage", err)
	}
	return m.poolError(p, "opening the storage", d.Open(ctx, p.spec()))
}

// PoolUsers lists what uses p: its volumes as "qube:volume" and the
// default_pool* globals naming it as "@GLOBAL:default_pool_root". A pool
// with users must not be removed (admin.pool.Remove refuses; the model's
// RemovePoolRecord does too). Call it under the model's lock.
func (m *Manager) PoolUsers(p Pool) []string { return m.app.PoolUsers(p.Name) }

// DestroyPool removes p's storage (the driver's Destroy). It refuses while
// the pool has users. The record is the caller's (RemovePoolRecord).
// Call it without the model's lock.
func (m *Manager) DestroyPool(ctx context.Context, p Pool) error {
	var users []string
	_ = m.app.Read(func() error { users = m.PoolUsers(p); return nil })
	if len(users) > 0 {
		return qerr.New(qerr.PoolInUse, "Storage pool is in use: %s (used by %s)", p.Name, strings.Join(users, ", "))
	}
	d, err := m.driver(p)
	if err != nil {
		return err
	}
	return m.poolError(p, "destroying the storage", d.Destroy(ctx, p.spec()))
}

// usageWarnPercent is the usage at which pool-usage-warning fires.
const usageWarnPercent = 90

// checkSpace refuses an operation (what: "cloning", ...) that needs need
// bytes in p when that would eat into the reserve (Options.ReservePercent
// of the pool's size). A pool whose size is unknown (0), or whose driver
// cannot tell, is not checked. On the way it fires pool-usage-warning
// (pool, usage_percent) when it sees the pool at or past 90% used, once
// per crossing.
func (m *Manager) checkSpace(ctx context.Context, p Pool, what string, need uint64) error {
	u, err := m.Usage(ctx, p)
	if errors.Is(err, pool.ErrUnimplemented) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.Size == 0 {
		return nil
	}
	m.usageWarning(p, u)
	reserve := u.Size * min(m.reserve, 100) / 100
	var free uint64
	if u.Usage+reserve < u.Size {
		free = u.Size - u.Usage - reserve
	}
	if need <= free {
		return nil
	}
	above := ""
	if m.reserve > 0 {
		above = fmt.Sprintf(" above the %d%% reserve", m.reserve)
	}
	return qerr.New(qerr.StoragePoolError, "pool %s: %s needs %s but only %s is free%s (%s of %s used)",
		p.Name, what, size(need), size(free), above, size(u.Usage), size(u.Size))
}

// usageWarning fires pool-usage-warning when p's usage crosses
// usageWarnPercent upwards.
func (m *Manager) usageWarning(p Pool, u pool.Usage) {
	pct := u.Usage * 100 / u.Size
	m.mu.Lock()
	was := m.warned[p.Name]
	m.warned[p.Name] = pct >= usageWarnPercent
	m.mu.Unlock()
	if pct < usageWarnPercent || was {
		return
	}
	m.log.Warn("storage pool nearly full", "pool", p.Name, "usage_percent", pct, "usage", u.Usage, "size", u.Size)
	err := m.app.Read(func() error {
		return m.app.FireEvent("pool-usage-warning", false,
			events.KV{Key: "pool", Value: p.Name}, events.KV{Key: "usage_percent", Value: int(pct)})
	})
	if err != nil {
		m.log.Error("a handler of pool-usage-warning failed", "pool", p.Name, "error", err)
	}
}

// size formats a byte count for people: 1.0 GiB, 0.4 GiB, 512.0 MiB.
func size(n uint64) string {
	const gib = 1 << 30
	switch {
	case n >= gib/10:
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
