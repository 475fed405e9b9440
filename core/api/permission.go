package api

import (
	"regexp"
	"strings"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
)

var uuidRe = regexp.MustCompile(`\A[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]*\z`)

// checkPermission fires admin-permission:<method> on the source qube, with
// the destination and argument. A handler error is a refusal. The policy
// layer (core/policy) hooks in here; the core's own rules are below.
func (c *Call) checkPermission() error {
	kw := append([]events.KV{{Key: "dest", Value: c.Dest}, {Key: "arg", Value: c.Arg}}, c.Perm...)
	name := c.Method.Name
	if c.PermMethod != "" {
		name = c.PermMethod
	}
	return c.Src.FireEvent("admin-permission:"+name, true, kw...)
}

// Features that only the core itself may change: they record the state of
// machinery (deferred netvm, preloaded disposables).
var protectedFeatures = []string{"deferred-netvm-original", "preload-dispvm", "preload-dispvm-completed", "preload-dispvm-in-progress"}

// registerPermissionRules installs the core's permission rules: protected
// features cannot be changed through the API, and created-by-* tags only by
// dom0.
func registerPermissionRules(a *qubes.App) {
	feature := func(e *events.Event) error {
		arg, _ := e.Arg("arg")
		for _, f := range protectedFeatures {
			if arg == f {
				return qerr.New(qerr.PermissionDenied, "changing this feature is prohibited by qubes.ext.admin.AdminExtension")
			}
		}
		return nil
	}
	tag := func(e *events.Event) error {
		arg, _ := e.Arg("arg")
		src, _ := e.Subject.(*qubes.Qube)
		if s, _ := arg.(string); strings.HasPrefix(s, "created-by-") && (src == nil || !src.IsAdminVM()) {
			return qerr.New(qerr.PermissionDenied, "changing this tag is prohibited by qubes.ext.admin.AdminExtension")
		}
		return nil
	}
	bus := a.Bus()
	bus.Subscribe("admin-permission:admin.vm.feature.Set", events.Core, feature)
	bus.Subscribe("admin-permission:admin.vm.feature.Remove", events.Core, feature)
	bus.Subscribe("admin-permission:admin.vm.tag.Set", events.Core, tag)
	bus.Subscribe("admin-permission:admin.vm.tag.Remove", events.Core, tag)
}
