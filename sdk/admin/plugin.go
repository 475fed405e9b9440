package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// PluginInfo is one plugin the daemon runs, as admin.plugin.List reports
// it.
type PluginInfo struct {
	Name      string
	Kind      string // pool-driver or extension
	State     string // starting, running, unavailable (a failed pool driver), degraded (a failed extension), stopped
	PID       int    // 0 when not running
	Restarts  int
	LastError string
}

// Plugins lists the daemon's plugins (admin.plugin.List, a qubesd-go
// addition: "name kind=K state=S pid=P restarts=N last_error=E" per line).
func (c *Client) Plugins(ctx context.Context) ([]PluginInfo, error) {
	const method = "admin.plugin.List"
	body, err := c.Call(ctx, method, AdminVM, "", nil)
	if err != nil {
		return nil, err
	}
	var out []PluginInfo
	for _, line := range lines(body) {
		name, rest, _ := strings.Cut(line, " ")
		fields, lastErr, _ := strings.Cut(rest, " last_error=")
		msg, err := unescapeGetAll(lastErr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		p := PluginInfo{Name: name, LastError: msg}
		for _, kv := range strings.Fields(fields) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%s: %w: %q", method, ErrMalformedReply, line)
			}
			switch k {
			case "kind":
				p.Kind = v
			case "state":
				p.State = v
			case "pid":
				p.PID, _ = strconv.Atoi(v)
			case "restarts":
				p.Restarts, _ = strconv.Atoi(v)
			}
		}
		out = append(out, p)
	}
	return out, nil
}
