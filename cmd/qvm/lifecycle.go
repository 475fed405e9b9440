package main

// qvm-start, qvm-shutdown, qvm-kill, qvm-pause and qvm-unpause: the Python
// tools' options, messages ("Error: ..." on stderr, as their print_error
// writes them) and exit codes.

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// targetOptions are the "--all [--exclude X] | VMNAME..." choice of the
// lifecycle tools.
type targetOptions struct {
	all     bool
	exclude []string
}

func (o *targetOptions) addFlags(cmd *cobra.Command, t *tool, allHelp string) {
	fs := cmd.Flags()
	fs.BoolVar(&o.all, "all", false, allHelp)
	fs.StringArrayVar(&o.exclude, "exclude", nil, "exclude the qube from --all")
	_ = cmd.RegisterFlagCompletionFunc("exclude", completeVMsFlag(t))
}

// targets returns the client and the qubes the command line names: with
// --all every qube but dom0 and the excluded ones.
func (o *targetOptions) targets(ctx context.Context, t *tool, args []string) (*admin.Client, []*lsVM, error) {
	if err := checkAllOrNames(o.all, args, o.exclude); err != nil {
		return nil, nil, err
	}
	c := t.client()
	infos, err := c.ListVMs(ctx)
	if err != nil {
		return nil, nil, failure(err)
	}
	vms, err := selectVMs(newLsLoader(c, infos).all, args, o.exclude, false)
	if err != nil {
		return nil, nil, err
	}
	return c, vms, nil
}

// qubeFailure is one qube an action failed on.
type qubeFailure struct {
	vm  *lsVM
	err error
}

// eachVM calls fn on every qube, concurrently as the Python tools' asyncio
// gather does, and returns the failures in the order of vms; errors of a
// type in ignored do not count.
func eachVM(ctx context.Context, vms []*lsVM, fn func(ctx context.Context, vm *lsVM) error, ignored ...string) ([]qubeFailure, error) {
	errs := make([]error, len(vms))
	if err := parallel(ctx, len(vms), func(ctx context.Context, i int) error {
		errs[i] = fn(ctx, vms[i])
		return nil
	}); err != nil {
		return nil, err
	}
	var failed []qubeFailure
	for i, err := range errs {
		if err == nil {
			continue
		}
		skip := false
		for _, typ := range ignored {
			skip = skip || admin.IsType(err, typ)
		}
		if !skip {
			failed = append(failed, qubeFailure{vms[i], err})
		}
	}
	return failed, nil
}

// printError writes a message as the Python tools' print_error does.
func (t *tool) printError(format string, a ...any) {
	fmt.Fprintf(t.env.stderr, "Error: "+format+"\n", a...)
}

// ---- qvm-start

type startOptions struct {
	targetOptions
	skipIfRunning bool
}

func newStartCmd(t *tool) *cobra.Command {
	o := &startOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Start qubes.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStart(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "start all qubes")
	cmd.Flags().BoolVar(&o.skipIfRunning, "skip-if-running", false, "do not fail if the qube is already running")
	return cmd
}

func runStart(ctx context.Context, t *tool, o *startOptions, args []string) error {
	c, vms, err := o.targets(ctx, t, args)
	if err != nil {
		return err
	}
	failed, err := eachVM(ctx, vms, func(ctx context.Context, vm *lsVM) error {
		if vm.running() {
			if o.skipIfRunning {
				return nil
			}
			return &admin.Error{Type: "QubesVMAlreadyStartedError", Message: "Domain is already running"}
		}
		return c.Start(ctx, vm.Name)
	})
	if err != nil {
		return failure(err)
	}
	for _, f := range failed {
		t.printError("Starting qube failed: %s: %v", f.vm.Name, f.err)
	}
	if len(failed) > 0 {
		return exitStatus(1)
	}
	return nil
}

// ---- qvm-shutdown

type shutdownOptions struct {
	targetOptions
	wait    bool
	timeout string
	force   bool
	dryRun  bool
}

func newShutdownCmd(t *tool) *cobra.Command {
	o := &shutdownOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Shut qubes down.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShutdown(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "shut down all qubes (implies --force unless --exclude is given)")
	fs := cmd.Flags()
	fs.BoolVar(&o.wait, "wait", false, "wait for the VMs to shut down")
	fs.StringVar(&o.timeout, "timeout", "", "deprecated, use --wait instead; setting this option enables --wait")
	fs.BoolVar(&o.force, "force", false, "shut down even if other qubes depend on this one (e.g. as NetVM"+
		" or AudioVM); does not affect how the qube itself is shut down; use with caution")
	fs.BoolVar(&o.dryRun, "dry-run", false, "don't really shutdown or kill the domains; useful with --wait")
	return cmd
}

// shutdownRound is the outcome of shutting down some qubes: failures the
// tool does not retry, qubes in use by others, qubes that did not halt in
// time.
type shutdownRound struct {
	unhandled, used, timedout []qubeFailure
}

func (r shutdownRound) len() int { return len(r.unhandled) + len(r.used) + len(r.timedout) }

func failedVMs(fs []qubeFailure) []*lsVM {
	vms := make([]*lsVM, len(fs))
	for i, f := range fs {
		vms[i] = f.vm
	}
	return vms
}

func failedNames(fs []qubeFailure) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.vm.Name
	}
	return strings.Join(names, ", ")
}

// mergeFailures adds to a the failures of b, replacing those of the same
// qube (as the Python tool's dict.update does).
func mergeFailures(a, b []qubeFailure) []qubeFailure {
	for _, f := range b {
		replaced := false
		for i := range a {
			if a[i].vm == f.vm {
				a[i], replaced = f, true
			}
		}
		if !replaced {
			a = append(a, f)
		}
	}
	return a
}

func runShutdown(ctx context.Context, t *tool, o *shutdownOptions, args []string) error {
	c, vms, err := o.targets(ctx, t, args)
	if err != nil {
		return err
	}
	if o.dryRun {
		return nil
	}
	if o.timeout != "" {
		fmt.Fprintf(t.env.stderr, "%s: FutureWarning: Call to deprecated --timeout option, use --wait instead\n", t.spec.name)
		o.wait = true
	}
	opts := admin.ShutdownOptions{Force: o.force || (o.all && len(o.exclude) == 0), Wait: o.wait}
	shutdown := func(vms []*lsVM) (shutdownRound, error) {
		failed, err := eachVM(ctx, vms, func(ctx context.Context, vm *lsVM) error {
			return c.Shutdown(ctx, vm.Name, opts)
		}, admin.TypeVMNotStarted)
		var r shutdownRound
		for _, f := range failed {
			switch {
			case admin.IsType(f.err, admin.TypeVMInUse):
				r.used = append(r.used, f)
			case admin.IsType(f.err, admin.TypeVMShutdownTimeout):
				r.timedout = append(r.timedout, f)
			default:
				r.unhandled = append(r.unhandled, f)
			}
		}
		return r, err
	}

	res, err := shutdown(vms)
	if err != nil {
		return failure(err)
	}
	// Qubes in use by others (their clients still running) are retried
	// while the retries make progress.
	if n := len(res.used); n > 0 {
		t.printError("Retrying shutdown of qubes that were in use for %d time(s)", n)
		old := res
		used := res.used
		for range n {
			if len(used) == 0 {
				break
			}
			t.printError("Retrying shutdown of qubes that were in use: %s", failedNames(used))
			retry, err := shutdown(failedVMs(used))
			if err != nil {
				return failure(err)
			}
			res.unhandled = mergeFailures(res.unhandled, retry.unhandled)
			res.timedout = mergeFailures(res.timedout, retry.timedout)
			used = retry.used
			if retry.len() == old.len() {
				break
			}
			old = retry
		}
		res.used = used
	}
	// Timed out qubes are retried once (a retry can take the whole
	// shutdown timeout), then killed.
	if len(res.timedout) > 0 {
		t.printError("Retrying shutdown of qubes that timed out: %s", failedNames(res.timedout))
		retry, err := shutdown(failedVMs(res.timedout))
		if err != nil {
			return failure(err)
		}
		res.unhandled = mergeFailures(res.unhandled, retry.unhandled)
		res.used = mergeFailures(res.used, retry.used)
		res.timedout = retry.timedout
	}
	if len(res.timedout) > 0 {
		t.printError("Killing timed out qubes: %s", failedNames(res.timedout))
		res.timedout, err = eachVM(ctx, failedVMs(res.timedout), func(ctx context.Context, vm *lsVM) error {
			return c.Kill(ctx, vm.Name)
		}, admin.TypeVMNotStarted)
		if err != nil {
			return failure(err)
		}
	}
	for _, fs := range [][]qubeFailure{res.unhandled, res.used, res.timedout} {
		for _, f := range fs {
			t.printError("Failed to shut down: %s: %v", f.vm.Name, f.err)
		}
	}
	if n := res.len(); n > 0 {
		return exitStatus(n)
	}
	return nil
}

// ---- qvm-kill, qvm-pause, qvm-unpause

func newKillCmd(t *tool) *cobra.Command {
	o := &targetOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Immediately terminate qubes without a graceful shutdown sequence.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, vms, err := o.targets(cmd.Context(), t, args)
			if err != nil {
				return err
			}
			failed, err := eachVM(cmd.Context(), vms, func(ctx context.Context, vm *lsVM) error {
				return c.Kill(ctx, vm.Name)
			}, admin.TypeVMNotStarted)
			if err != nil {
				return failure(err)
			}
			for _, f := range failed {
				t.printError("Failed to kill: %s: %v", f.vm.Name, f.err)
			}
			if len(failed) > 0 {
				return exitStatus(len(failed))
			}
			return nil
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "kill all qubes")
	return cmd
}

func newPauseCmd(t *tool) *cobra.Command {
	o := &targetOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Pause qubes.\n\nPaused qubes will be killed on system shutdown.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, vms, err := o.targets(cmd.Context(), t, args)
			if err != nil {
				return err
			}
			return pauseAction(cmd.Context(), t, vms, "pause", c.Pause)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "pause all qubes")
	return cmd
}

func newUnpauseCmd(t *tool) *cobra.Command {
	o := &targetOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Unpause qubes.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, vms, err := o.targets(ctx, t, args)
			if err != nil {
				return err
			}
			if o.all { // internal qubes are left alone
				internal := make([]bool, len(vms))
				if err := parallel(ctx, len(vms), func(ctx context.Context, i int) error {
					v, err := c.Feature(ctx, vms[i].Name, "internal")
					if admin.IsNotFound(err) {
						return nil
					}
					internal[i] = v != ""
					return err
				}); err != nil {
					return failure(err)
				}
				var keep []*lsVM
				for i, vm := range vms {
					if !internal[i] {
						keep = append(keep, vm)
					}
				}
				vms = keep
			}
			return pauseAction(ctx, t, vms, "unpause/resume", c.Unpause)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "unpause all qubes but internal ones")
	return cmd
}

// pauseAction runs a pause-like action on vms: status 1 if it failed on
// any.
func pauseAction(ctx context.Context, t *tool, vms []*lsVM, action string, fn func(ctx context.Context, vm string) error) error {
	failed, err := eachVM(ctx, vms, func(ctx context.Context, vm *lsVM) error { return fn(ctx, vm.Name) })
	if err != nil {
		return failure(err)
	}
	for _, f := range failed {
		t.printError("Failed to %s: %s: %v", action, f.vm.Name, f.err)
	}
	if len(failed) > 0 {
		return exitStatus(1)
	}
	return nil
}
