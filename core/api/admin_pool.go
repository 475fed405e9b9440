package api

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/property"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/core/store"
)

// Storage pools (admin.pool.*, dom0 only). Formats: spec admin-api §2.5,
// §3.3. Pool records are read under the model lock; driver calls (usage,
// setup, destroy) run outside it (Method.Run).

const safeNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

func addPoolMethods(t methodTable) {
	t.add(
		&Method{Name: "admin.pool.List", Dest: DestAdminVM, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			return lines(c.App.PoolNames()), nil
		}},
		&Method{Name: "admin.pool.ListDrivers", Dest: DestAdminVM, Scope: Global,
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				m, err := c.Server.storage()
				if err != nil {
					return nil, 0, err
				}
				var b []byte
				for _, d := range m.Drivers(ctx) {
					b = append(b, d.Name...)
					for _, p := range d.Params {
						b = append(b, ' ')
						b = append(b, p...)
					}
					b = append(b, '\n')
				}
				return b, 0, nil
			}},
		&Method{Name: "admin.pool.Info", Dest: DestAdminVM, Arg: Required, Scope: Global,
			Prepare: preparePool(true),
			Run:     poolInfo},
		&Method{Name: "admin.pool.UsageDetails", Dest: DestAdminVM, Arg: Required, Scope: Global,
			Prepare: preparePool(true),
			Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
				m, _ := c.Server.storage()
				u, err := m.Usage(ctx, c.State.(storage.Pool))
				if err != nil {
					return nil, 0, err
				}
				var b []byte
				for _, k := range slices.Sorted(func(yield func(string) bool) {
					for k := range u.Details {
						if !yield(k) {
							return
						}
					}
				}) {
					b = append(b, k...)
					b = append(b, '=')
					b = strconv.AppendUint(b, u.Details[k], 10)
					b = append(b, '\n')
				}
				return b, 0, nil
			}},
		&Method{Name: "admin.pool.Add", Dest: DestAdminVM, Arg: Required, Payload: Required, Write: true, Scope: Global,
			Prepare: preparePoolAdd, Run: poolAdd},
		&Method{Name: "admin.pool.Remove", Dest: DestAdminVM, Arg: Required, Write: true, Scope: Global,
			Prepare: preparePool(false), Run: poolRemove},
		&Method{Name: "admin.pool.volume.List", Dest: DestAdminVM, Arg: Required, Scope: Global, Handle: func(c *Call) ([]byte, error) {
			if err := enforceArg(c.Arg, c.App.PoolNames(), "pools"); err != nil {
				return nil, err
			}
			// The volumes the qubes record in the pool, in qube order:
			// what the reference's pool.volumes lists, known without
			// asking the driver.
			var vids []string
			for _, q := range c.App.Qubes() {
				for _, rec := range q.Volumes() {
					if attrOf(rec.Attrs, "pool") != c.Arg {
						continue
					}
					if vid := attrOf(rec.Attrs, "vid"); vid != "" && !slices.Contains(vids, vid) {
						vids = append(vids, vid)
					}
				}
			}
			return lines(vids), nil
		}},
		&Method{Name: "admin.pool.Set.revisions_to_keep", Dest: DestAdminVM, Arg: Required, Payload: Required, Write: true, Scope: Global,
			Prepare: func(ctx context.Context, c *Call) error {
				if err := c.App.Read(func() error { return enforceArg(c.Arg, c.App.PoolNames(), "pools") }); err != nil {
					return err
				}
				n, err := validateNumber(c.Payload, "revisions to keep", true)
				if err != nil {
					return err
				}
				if n < -1 {
					return qerr.New(qerr.ProtocolError, "Value can't be lower than -1")
				}
				c.State = strconv.FormatInt(n, 10)
				c.Perm = []events.KV{{Key: "newvalue", Value: n}}
				return nil
			},
			Run: setPoolAttr("revisions_to_keep")},
		&Method{Name: "admin.pool.Set.ephemeral_volatile", Dest: DestAdminVM, Arg: Required, Payload: Required, Write: true, Scope: Global,
			Prepare: func(ctx context.Context, c *Call) error {
				if err := c.App.Read(func() error { return enforceArg(c.Arg, c.App.PoolNames(), "pools") }); err != nil {
					return err
				}
				b, err := boolPayload(c.Payload)
				if err != nil {
					return err
				}
				c.State = boolText(b)
				c.Perm = []events.KV{{Key: "newvalue", Value: b}}
				return nil
			},
			Run: setPoolAttr("ephemeral_volatile")},
	)
}

// storage returns the storage manager, or why there is none.
func (s *Server) storage() (*storage.Manager, error) {
	if s.opts.Storage == nil {
		return nil, qerr.New(qerr.StoragePoolError, "storage is not configured in this daemon")
	}
	return s.opts.Storage, nil
}

// poolDriverNames are the configured pool-driver plugins.

// preparePool checks that the argument names a pool and keeps its record
// in c.State; withPerm adds the pool kwarg to the permission event.
func preparePool(withPerm bool) func(ctx context.Context, c *Call) error {
	return func(ctx context.Context, c *Call) error {
		m, err := c.Server.storage()
		if err != nil {
			return err
		}
		return c.App.Read(func() error {
			if err := enforceArg(c.Arg, c.App.PoolNames(), "pools"); err != nil {
				return err
			}
			p, err := m.Pool(c.Arg)
			if err != nil {
				return err
			}
			c.State = p
			if withPerm {
				c.Perm = []events.KV{{Key: "pool", Value: p.Name}}
			}
			return nil
		})
	}
}

// poolInfo answers admin.pool.Info: the record's attributes sorted, then
// size and usage when the driver knows them, then included_in.
func poolInfo(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, _ := c.Server.storage()
	p := c.State.(storage.Pool)
	var b []byte
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range p.Attrs {
			if !yield(k) {
				return
			}
		}
	}) {
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, p.Attrs[k]...)
		b = append(b, '\n')
	}
	if u, err := m.Usage(ctx, p); err != nil {
		// the config is worth showing even while the driver is down
		c.Server.log.Warn("pool usage unavailable; admin.pool.Info shows the config only", "pool", p.Name, "error", err)
	} else if u.Size != 0 || u.Usage != 0 {
		b = append(b, "size="...)
		b = strconv.AppendUint(b, u.Size, 10)
		b = append(b, "\nusage="...)
		b = strconv.AppendUint(b, u.Usage, 10)
		b = append(b, '\n')
	}
	var others []storage.Pool
	_ = c.App.Read(func() error { others = m.Pools(); return nil })
	if in := includedIn(p, others); in != "" {
		b = append(b, "included_in="...)
		b = append(b, in...)
		b = append(b, '\n')
	}
	return b, 0, nil
}

// includedIn names the first other pool whose dir_path holds p's (the
// reference's search_pool_containing_dir, filesystem pools only).
func includedIn(p storage.Pool, pools []storage.Pool) string {
	dir := p.Attrs["dir_path"]
	if dir == "" {
		return ""
	}
	dir = filepath.Clean(dir)
	for _, o := range pools {
		od := o.Attrs["dir_path"]
		if o.Name == p.Name || od == "" {
			continue
		}
		od = filepath.Clean(od)
		if dir == od || strings.HasPrefix(dir, od+"/") || od == "/" {
			return o.Name
		}
	}
	return ""
}

// poolAddRequest is admin.pool.Add's parsed payload.
type poolAddRequest struct {
	name   string
	config map[string]string // without name
	order  []string
	exists bool
	// revisions: the driver keeps revisions (revisions_to_keep and
	// ephemeral_volatile are pool parameters)
	revisions bool
}

// preparePoolAdd checks admin.pool.Add's driver and payload in the
// reference's order. A name in use is refused only after the permission
// event, so that the event does not leak which pools exist.
func preparePoolAdd(ctx context.Context, c *Call) error {
	m, err := c.Server.storage()
	if err != nil {
		return err
	}
	if !slices.Contains(m.DriverNames(), c.Arg) {
		return qerr.New(qerr.PermissionDenied, "Argument not in 'available drivers'")
	}
	if !isASCII(string(c.Payload)) {
		return qerr.New(qerr.ProtocolError, "Pool parameters contains non-ASCII characters")
	}
	untrustedLines := splitLinesPy(string(c.Payload))
	for _, l := range untrustedLines {
		if !strings.Contains(l, "=") {
			return qerr.New(qerr.ProtocolError, "Options must be separated by equal sign")
		}
	}
	r := &poolAddRequest{config: map[string]string{}}
	for _, l := range untrustedLines {
		k, v, _ := strings.Cut(l, "=")
		if _, dup := r.config[k]; dup {
			return qerr.New(qerr.ProtocolError, "Options must be unique")
		}
		r.config[k] = v
		r.order = append(r.order, k)
	}
	name, ok := r.config["name"]
	if !ok {
		return qerr.New(qerr.ProtocolError, "Pool configuration must contain key: name")
	}
	delete(r.config, "name")
	r.order = slices.DeleteFunc(r.order, func(k string) bool { return k == "name" })
	for _, ch := range name {
		if !strings.ContainsRune(safeNameChars, ch) {
			return qerr.New(qerr.ProtocolError, "Pool name must be in safe set: %s", safeNameChars)
		}
	}
	r.name = name
	_ = c.App.Read(func() error { r.exists = slices.Contains(c.App.PoolNames(), name); return nil })
	params, required, err := driverParameters(ctx, c.Server, c.Arg)
	if err != nil {
		return err
	}
	for _, k := range r.order {
		if !slices.Contains(params, k) {
			return qerr.New(qerr.ProtocolError, "Unexpected driver options found")
		}
	}
	var missing []string
	for _, k := range required {
		if _, ok := r.config[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return qerr.New(qerr.Exception, "missing required driver options: %s", strings.Join(missing, " "))
	}
	r.revisions = slices.Contains(params, "revisions_to_keep")
	c.State = r
	cfg := make(map[string]string, len(r.config))
	for k, v := range r.config {
		cfg[k] = v
	}
	c.Perm = []events.KV{{Key: "name", Value: name}, {Key: "pool_config", Value: cfg}}
	return nil
}

// driverParameters asks driver for the pool parameters admin.pool.Add
// takes (in ListDrivers order) and those it requires.
func driverParameters(ctx context.Context, s *Server, driver string) (params, required []string, err error) {
	m, err := s.storage()
	if err != nil {
		return nil, nil, err
	}
	di, err := m.DriverInfo(ctx, driver)
	if err != nil {
		return nil, nil, err
	}
	return di.Params, di.Required, nil
}

// poolAdd records and sets up a new pool: the record is checked and made
// by the driver, the storage set up outside the lock, then the record
// added (refused if a pool of that name appeared meanwhile).
func poolAdd(ctx context.Context, c *Call) ([]byte, uint64, error) {
	r := c.State.(*poolAddRequest)
	if r.exists {
		return nil, 0, qerr.New(qerr.PoolInUse, "Storage pool is in use: %s", property.PyRepr(r.name))
	}
	m, err := c.Server.storage()
	if err != nil {
		return nil, 0, err
	}
	attrs := map[string]string{"name": r.name}
	if r.revisions {
		// the reference's pools record these with their defaults
		attrs["revisions_to_keep"], attrs["ephemeral_volatile"] = "1", "False"
	}
	for k, v := range r.config {
		attrs[k] = v
	}
	rec, err := m.NewPoolRecord(ctx, c.Arg, attrs)
	if err != nil {
		return nil, 0, err
	}
	p := poolOfRecord(rec)
	if err := m.SetupPool(ctx, p); err != nil {
		return nil, 0, err
	}
	version, err := c.App.Write(func() error { return c.App.AddPoolRecord(rec) })
	if err != nil {
		if qerr.KindOf(err) == qerr.PoolInUse {
			// another Add won the race; what this one set up is not used
			if derr := m.DestroyPool(context.WithoutCancel(ctx), p); derr != nil {
				c.Server.log.Warn("removing the storage of a pool that lost a race", "pool", p.Name, "error", derr)
			}
		}
		return nil, version, err
	}
	return nil, version, nil
}

// poolOfRecord reads a record as the manager does.
func poolOfRecord(rec store.Pool) storage.Pool {
	p := storage.Pool{Attrs: map[string]string{}}
	for _, a := range rec.Attrs {
		p.Attrs[a.Name] = a.Value
	}
	p.Name, p.Driver = p.Attrs["name"], p.Attrs["driver"]
	return p
}

// poolRemove removes a pool no qube uses and no default_pool* names: the
// record under the write lock, then the driver's Destroy outside it (a
// failure there is logged: the record is gone, as in the reference).
func poolRemove(ctx context.Context, c *Call) ([]byte, uint64, error) {
	m, _ := c.Server.storage()
	p := c.State.(storage.Pool)
	version, err := c.App.Write(func() error {
		cur, err := m.Pool(p.Name)
		if err != nil {
			return err
		}
		p = cur
		if users := m.PoolUsers(p); len(users) > 0 {
			return qerr.New(qerr.PoolInUse, "Storage pool is in use: %s; used by: %s", property.PyRepr(p.Name), strings.Join(users, ", "))
		}
		return c.App.RemovePoolRecord(p.Name)
	})
	if err != nil {
		return nil, version, err
	}
	if err := m.DestroyPool(ctx, p); err != nil {
		c.Server.log.Error("pool removed from qubes.xml but its storage could not be destroyed; it is left on disk", "pool", p.Name, "error", err)
	}
	return nil, version, nil
}

// setPoolAttr records c.State as the pool attribute key.
func setPoolAttr(key string) func(ctx context.Context, c *Call) ([]byte, uint64, error) {
	return func(ctx context.Context, c *Call) ([]byte, uint64, error) {
		v, err := c.App.Write(func() error { return c.App.SetPoolAttr(c.Arg, key, c.State.(string)) })
		return nil, v, err
	}
}

// enforceArg refuses an argument not in wants, as the reference's
// enforce_arg: PermissionDenied, so that what exists does not leak.
func enforceArg(arg string, wants []string, short string) error {
	if !slices.Contains(wants, arg) {
		return qerr.New(qerr.PermissionDenied, "Argument not in %s", property.PyRepr(short))
	}
	return nil
}

// validateNumber is the reference's validate_number.
func validateNumber(untrusted []byte, name string, allowNegative bool) (int64, error) {
	sign := int64(1)
	if allowNegative && len(untrusted) > 0 && untrusted[0] == '-' {
		sign, untrusted = -1, untrusted[1:]
	}
	capName := strings.ToUpper(name[:1]) + strings.ToLower(name[1:])
	if len(untrusted) == 0 {
		return 0, qerr.New(qerr.ProtocolError, "%s contains non ASCII digits", capName)
	}
	for _, ch := range untrusted {
		if ch < '0' || ch > '9' {
			return 0, qerr.New(qerr.ProtocolError, "%s contains non ASCII digits", capName)
		}
	}
	if len(untrusted) >= 20 {
		return 0, qerr.New(qerr.ProtocolError, "%s is bigger than 19 decimal digits", capName)
	}
	if untrusted[0] == '0' && len(untrusted) != 1 {
		return 0, qerr.New(qerr.ProtocolError, "%s contains spurious leading zeros", capName)
	}
	n, err := strconv.ParseUint(string(untrusted), 10, 64)
	if err != nil || n > 1<<63-1 {
		return 0, qerr.New(qerr.ProtocolError, "%s is bigger than 19 decimal digits", capName)
	}
	return sign * int64(n), nil
}

// boolPayload parses a boolean literal payload.
func boolPayload(untrusted []byte) (bool, error) {
	if !isASCII(string(untrusted)) {
		return false, qerr.New(qerr.ProtocolError, "Payload is not boolean ASCII")
	}
	b, err := property.ParseBool(string(untrusted))
	if err != nil {
		return false, qerr.New(qerr.ProtocolError, "Payload is not boolean ASCII")
	}
	return b, nil
}

func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// splitLinesPy splits as Python's str.splitlines on ASCII text.
func splitLinesPy(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "\n\r\v\f\x1c\x1d\x1e")
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	return out
}

// attrOf returns the value of the attribute name ("" when absent).
func attrOf(attrs []store.Attr, name string) string {
	for _, a := range attrs {
		if a.Name == name {
			return a.Value
		}
	}
	return ""
}
