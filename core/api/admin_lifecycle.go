package api

import (
	"context"
	"strings"
	"time"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/vmm"
)

// Lifecycle starts and stops qubes (core/lifecycle.Manager). Its methods
// are called without the model lock.
type Lifecycle interface {
	PowerStates
	Start(ctx context.Context, q *qubes.Qube) error
	Shutdown(ctx context.Context, q *qubes.Qube, force, wait bool, timeout time.Duration) error
	Kill(ctx context.Context, q *qubes.Qube) error
	Pause(ctx context.Context, q *qubes.Qube) error
	Unpause(ctx context.Context, q *qubes.Qube) error
	Suspend(ctx context.Context, q *qubes.Qube) error
	Resume(ctx context.Context, q *qubes.Qube) error
	// NewSampler samples the resources of every running domain, or only
	// of q's (nil: all), for admin.vm.Stats.
	NewSampler(q *qubes.Qube) *vmm.Sampler
	// Console is the pseudo-terminal of q's console.
	Console(q *qubes.Qube) (string, error)
	// Lock takes the start lock of the qube called name (admin.vm.Remove
	// holds it, as the reference's startup_lock).
	Lock(ctx context.Context, name string) (unlock func(), err error)
	// Forget removes what a removed qube leaves outside the model: its
	// libvirt definition, and its directory once its volumes are gone.
	Forget(name, dir string, volumesRemoved bool)
	// CurrentState is admin.vm.CurrentState's reply:
	// "mem=<n> mem_static_max=<n> cputime=<n> power_state=<state>".
	CurrentState(q *qubes.Qube) string
}

// Lifecycle methods: spec admin-api §2.1, core-model §4. They run in the
// Run mode: no model lock across libvirt and storage calls.
func addLifecycleMethods(t methodTable) {
	t.add(
		&Method{Name: "admin.vm.CurrentState", Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
			lc := c.Server.opts.Lifecycle
			if lc == nil {
				return []byte("mem=0 mem_static_max=0 cputime=0 power_state=" + c.Server.opts.States.PowerState(c.Dest)), 0, nil
			}
			return []byte(lc.CurrentState(c.Dest)), 0, nil
		}},
		&Method{Name: "admin.vm.Start", Write: true, Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
			err := lc.Start(ctx, c.Dest)
			if err != nil && !qerr.Has(err) {
				// a libvirt error, as the reference reports it
				return qerr.Wrap(qerr.Exception, err, "Start failed: %v, see the libvirt log for details", err)
			}
			return err
		})},
		&Method{Name: "admin.vm.Shutdown", Arg: Optional, Write: true,
			Prepare: func(ctx context.Context, c *Call) error {
				var force, wait bool
				if c.Arg != "" {
					for _, a := range strings.Split(c.Arg, "+") {
						switch a {
						case "force":
							force = true
						case "wait":
							wait = true
						default:
							return qerr.New(qerr.ProtocolError, "Argument must match: force, wait")
						}
					}
				}
				c.Perm = []events.KV{{Key: "force", Value: force}, {Key: "wait", Value: wait}}
				c.State = [2]bool{force, wait}
				return nil
			},
			Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
				fw, _ := c.State.([2]bool)
				return lc.Shutdown(ctx, c.Dest, fw[0], fw[1], 0)
			})},
		&Method{Name: "admin.vm.Kill", Write: true, Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
			return lc.Kill(ctx, c.Dest)
		})},
		&Method{Name: "admin.vm.Pause", Write: true, Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
			return lc.Pause(ctx, c.Dest)
		})},
		&Method{Name: "admin.vm.Unpause", Write: true, Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
			return lc.Unpause(ctx, c.Dest)
		})},
		&Method{Name: "admin.vm.Suspend", Write: true, Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
			return lc.Suspend(ctx, c.Dest)
		})},
		&Method{Name: "admin.vm.Resume", Write: true, Run: lifecycleRun(func(ctx context.Context, lc Lifecycle, c *Call) error {
			return lc.Resume(ctx, c.Dest)
		})},
		&Method{Name: "admin.vm.Stats", Scope: Global, Stream: streamStats},
		&Method{Name: "admin.vm.Console", Write: true, Run: func(ctx context.Context, c *Call) ([]byte, uint64, error) {
			lc := c.Server.opts.Lifecycle
			if lc == nil {
				return nil, 0, qubes.NotRunningError(c.Dest.Name())
			}
			tty, err := lc.Console(c.Dest)
			return []byte(tty), 0, err
		}},
	)
}

// lifecycleRun adapts a lifecycle call to a Run method: an empty reply,
// nothing of the model to commit (event handlers commit their own changes).
func lifecycleRun(f func(ctx context.Context, lc Lifecycle, c *Call) error) func(ctx context.Context, c *Call) ([]byte, uint64, error) {
	return func(ctx context.Context, c *Call) ([]byte, uint64, error) {
		lc := c.Server.opts.Lifecycle
		if lc == nil {
			return nil, 0, qerr.New(qerr.Exception, "qube lifecycle is not configured (no libvirt connection)")
		}
		return nil, 0, f(ctx, lc, c)
	}
}
