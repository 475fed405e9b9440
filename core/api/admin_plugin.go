package api

import (
	"strconv"
)

// Plugins (admin.plugin.*, dom0 only; not in the reference): what the
// daemon's plugin host runs, so a user can see a crashed or restarting
// pool driver or extension instead of guessing.

func addPluginMethods(t methodTable) {
	t.add(&Method{Name: "admin.plugin.List", Dest: DestAdminVM, Scope: Global, Handle: func(c *Call) ([]byte, error) {
		if c.Server.opts.Plugins == nil {
			return nil, nil
		}
		var b []byte
		for _, p := range c.Server.opts.Plugins.Status() {
			b = append(b, p.Name...)
			b = append(b, " kind="...)
			b = append(b, p.Kind...)
			b = append(b, " state="...)
			b = append(b, p.State...)
			b = append(b, " pid="...)
			b = strconv.AppendInt(b, int64(p.PID), 10)
			b = append(b, " restarts="...)
			b = strconv.AppendInt(b, int64(p.Restarts), 10)
			b = append(b, " last_error="...)
			b = appendEscaped(b, p.LastError)
			b = append(b, '\n')
		}
		return b, nil
	}})
}
