package admin

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// PoolDriver is one line of admin.pool.ListDrivers: a storage driver and the
// parameters a pool of it takes, in the driver's order.
type PoolDriver struct {
	Name   string
	Params []string
}

// PoolInfo is the reply of admin.pool.Info: the pool's configuration as
// sorted key=value lines (name, driver and the driver's options), then
// size, usage and included_in when the daemon knows them.
type PoolInfo struct {
	Name       string
	Driver     string
	Size       int64 // bytes; -1 if not reported
	Usage      int64 // bytes; -1 if not reported
	IncludedIn string
	// Fields holds every line of the reply, in order, including unknown
	// keys.
	Fields []KV
}

// Get returns the value of key, and whether the reply had it.
func (p PoolInfo) Get(key string) (string, bool) {
	for _, kv := range p.Fields {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Pools returns the names of the storage pools (admin.pool.List).
func (c *Client) Pools(ctx context.Context) ([]string, error) {
	return c.list(ctx, "admin.pool.List", AdminVM, "")
}

// PoolDrivers returns the storage drivers and their parameters
// (admin.pool.ListDrivers), in the daemon's order.
func (c *Client) PoolDrivers(ctx context.Context) ([]PoolDriver, error) {
	body, err := c.Call(ctx, "admin.pool.ListDrivers", AdminVM, "", nil)
	if err != nil {
		return nil, err
	}
	var out []PoolDriver
	for _, line := range lines(body) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		out = append(out, PoolDriver{Name: f[0], Params: f[1:]})
	}
	return out, nil
}

// PoolInfo describes pool (admin.pool.Info). An unknown pool gives
// PermissionDenied ("Argument not in 'pools'").
func (c *Client) PoolInfo(ctx context.Context, pool string) (PoolInfo, error) {
	const method = "admin.pool.Info"
	body, err := c.Call(ctx, method, AdminVM, pool, nil)
	if err != nil {
		return PoolInfo{}, err
	}
	kvs, err := keyValueLines(method, body)
	if err != nil {
		return PoolInfo{}, err
	}
	pi := PoolInfo{Size: -1, Usage: -1, Fields: kvs}
	for _, kv := range kvs {
		switch kv.Key {
		case "name":
			pi.Name = kv.Value
		case "driver":
			pi.Driver = kv.Value
		case "size":
			if n, err := strconv.ParseInt(kv.Value, 10, 64); err == nil {
				pi.Size = n
			}
		case "usage":
			if n, err := strconv.ParseInt(kv.Value, 10, 64); err == nil {
				pi.Usage = n
			}
		case "included_in":
			pi.IncludedIn = kv.Value
		}
	}
	return pi, nil
}

// PoolUsageDetails returns the usage figures of pool
// (admin.pool.UsageDetails), such as data_size and data_usage, in bytes.
// A driver that reports nothing gives an empty map.
func (c *Client) PoolUsageDetails(ctx context.Context, pool string) (map[string]int64, error) {
	const method = "admin.pool.UsageDetails"
	body, err := c.Call(ctx, method, AdminVM, pool, nil)
	if err != nil {
		return nil, err
	}
	kvs, err := keyValueLines(method, body)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		n, err := strconv.ParseInt(kv.Value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s=%q is not a number", method, ErrMalformedReply, kv.Key, kv.Value)
		}
		out[kv.Key] = n
	}
	return out, nil
}

// AddPool creates pool name with driver (admin.pool.Add+driver) and the
// driver's options, sent as the reference client does: "name=N\n" then
// "key=value\n" for each option, sorted by key.
func (c *Client) AddPool(ctx context.Context, name, driver string, options map[string]string) error {
	if _, ok := options["name"]; ok {
		return fmt.Errorf("admin: the pool name is not an option")
	}
	for k, v := range options {
		if k == "" || strings.ContainsAny(k, "=\n\x00") || strings.ContainsAny(v, "\n\x00") {
			return fmt.Errorf("admin: invalid pool option %q=%q", k, v)
		}
	}
	if name == "" || strings.ContainsAny(name, "\n\x00") {
		return fmt.Errorf("admin: invalid pool name %q", name)
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("name=" + name + "\n")
	for _, k := range keys {
		b.WriteString(k + "=" + options[k] + "\n")
	}
	_, err := c.Call(ctx, "admin.pool.Add", AdminVM, driver, []byte(b.String()))
	return err
}

// RemovePool removes pool (admin.pool.Remove). A pool that still holds
// volumes gives QubesPoolInUseError.
func (c *Client) RemovePool(ctx context.Context, pool string) error {
	_, err := c.Call(ctx, "admin.pool.Remove", AdminVM, pool, nil)
	return err
}

// SetPoolOption sets a settable option of pool (admin.pool.Set.<option>:
// revisions_to_keep or ephemeral_volatile) to value, sent verbatim.
func (c *Client) SetPoolOption(ctx context.Context, pool, option, value string) error {
	_, err := c.Call(ctx, "admin.pool.Set."+option, AdminVM, pool, []byte(value))
	return err
}

// SetPoolRevisionsToKeep sets how many revisions the pool's volumes keep by
// default (admin.pool.Set.revisions_to_keep); -1 disables snapshots.
func (c *Client) SetPoolRevisionsToKeep(ctx context.Context, pool string, n int) error {
	return c.SetPoolOption(ctx, pool, "revisions_to_keep", strconv.Itoa(n))
}

// SetPoolEphemeralVolatile sets whether the pool's volatile volumes are
// encrypted with an ephemeral key (admin.pool.Set.ephemeral_volatile).
func (c *Client) SetPoolEphemeralVolatile(ctx context.Context, pool string, on bool) error {
	return c.SetPoolOption(ctx, pool, "ephemeral_volatile", pyBool(on))
}

// PoolVolumes returns the ids of the volumes in pool
// (admin.pool.volume.List).
func (c *Client) PoolVolumes(ctx context.Context, pool string) ([]string, error) {
	return c.list(ctx, "admin.pool.volume.List", AdminVM, pool)
}

// pyBool is a bool as the reference client sends it: str(bool).
func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// keyValueLines parses a reply of key=value lines.
func keyValueLines(method string, body []byte) ([]KV, error) {
	var out []KV
	for _, line := range lines(body) {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %w: %q", method, ErrMalformedReply, line)
		}
		out = append(out, KV{k, v})
	}
	return out, nil
}
