package main

// qvm-start, qvm-shutdown, qvm-kill, qvm-pause and qvm-unpause: the Python
// tools' options, messages ("Error: ..." on stderr, as their print_error
// writes them) and exit codes. On a terminal, an action on several qubes
// shows a progress bar on stderr (none with -q or when output is piped).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/schollz/progressbar/v3"
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
	l, vms, err := o.load(ctx, t, args)
	if err != nil {
		return nil, nil, err
	}
	return l.c, vms, nil
}

// load is targets with the loader that listed the qubes, to fetch more
// about them.
func (o *targetOptions) load(ctx context.Context, t *tool, args []string) (*lsLoader, []*lsVM, error) {
	if err := checkAllOrNames(o.all, args, o.exclude); err != nil {
		return nil, nil, err
	}
	c := t.client()
	infos, err := c.ListVMs(ctx)
	if err != nil {
		return nil, nil, failure(err)
	}
	l := newLsLoader(c, infos)
	vms, err := selectVMs(l.all, args, o.exclude, false)
	if err != nil {
		return nil, nil, err
	}
	return l, vms, nil
}

// qubeFailure is one qube an action failed on.
type qubeFailure struct {
	vm  *lsVM
	err error
}

// progress counts the qubes an action is done with on a terminal progress
// bar; a nil *progress shows nothing.
type progress struct{ bar *progressbar.ProgressBar }

// progress returns a bar for an action on n qubes, described by desc ("shutting
// down"), or nil: for a single qube, with -q, or when stdout or stderr is
// not a terminal.
func (t *tool) progress(n int, desc string) *progress {
	if n < 2 {
		return nil
	}
	bar := newProgress(t, int64(n), false, desc)
	if bar == nil {
		return nil
	}
	_ = bar.RenderBlank() // "0/n" at once: the first qube can take a while
	return &progress{bar}
}

func (p *progress) add() {
	if p != nil {
		_ = p.bar.Add(1)
	}
}

// finish clears the bar, before the tool prints its messages.
func (p *progress) finish() {
	if p != nil {
		_ = p.bar.Finish()
	}
}

// eachVM calls fn on every qube, concurrently as the Python tools' asyncio
// gather does, and returns the failures in the order of vms; errors of a
// type in ignored do not count. Each qube done advances p.
func eachVM(ctx context.Context, vms []*lsVM, p *progress, fn func(ctx context.Context, vm *lsVM) error, ignored ...string) ([]qubeFailure, error) {
	errs := make([]error, len(vms))
	if err := parallel(ctx, len(vms), func(ctx context.Context, i int) error {
		errs[i] = fn(ctx, vms[i])
		p.add()
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
	// the Python tool's drive options: they need block devices
	drive, hddisk, cdrom string
	windowsTools         bool
	driveOpt             string // the one of them given
}

func newStartCmd(t *tool) *cobra.Command {
	o := &startOptions{}
	cmd := &cobra.Command{
		Use: "TOOL [options] VMNAME...",
		Long: "Start qubes.\n\n" +
			"--drive, --hddisk, --cdrom and --install-windows-tools are accepted for compatibility\n" +
			"but refused: they attach a block device, and qubesd-go has no block devices yet.",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.driveOpt = o.driveFlag(cmd)
			return runStart(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "start all qubes")
	fs := cmd.Flags()
	fs.BoolVar(&o.skipIfRunning, "skip-if-running", false, "do not fail if the qube is already running")
	fs.StringVar(&o.drive, "drive", "", "temporarily attach the drive as CD/DVD or hard disk (prefix \"hd:\" or \"cdrom:\", default cdrom); not supported yet")
	fs.StringVar(&o.hddisk, "hddisk", "", "temporarily attach the drive as hard disk; not supported yet")
	fs.StringVar(&o.cdrom, "cdrom", "", "temporarily attach the image as CD/DVD; not supported yet")
	fs.BoolVar(&o.windowsTools, "install-windows-tools", false, "temporarily attach the Windows tools CD-ROM; not supported yet")
	cmd.MarkFlagsMutuallyExclusive("drive", "hddisk", "cdrom", "install-windows-tools")
	return cmd
}

// driveFlag returns the drive option given, if any.
func (o *startOptions) driveFlag(cmd *cobra.Command) string {
	for _, name := range []string{"drive", "hddisk", "cdrom", "install-windows-tools"} {
		if cmd.Flags().Changed(name) {
			return name
		}
	}
	return ""
}

func runStart(ctx context.Context, t *tool, o *startOptions, args []string) error {
	c, vms, err := o.targets(ctx, t, args)
	if err != nil {
		return err
	}
	// The qubes are resolved first, as by the Python tool: an unknown qube
	// is a usage error whatever the other options.
	if name := o.driveOpt; name != "" {
		return &exitError{code: 1, msg: fmt.Sprintf("--%s: attaching a drive at start needs block devices "+
			"(admin.vm.device.block.*), which qubesd-go does not provide yet; no qube was started. "+
			"Start the qube without --%s", name, name)}
	}
	p := t.progress(len(vms), "starting")
	failed, err := eachVM(ctx, vms, p, func(ctx context.Context, vm *lsVM) error {
		if vm.running() {
			if o.skipIfRunning {
				return nil
			}
			return &admin.Error{Type: admin.TypeVMAlreadyStarted, Message: "Domain is already running"}
		}
		return c.Start(ctx, vm.Name)
	})
	p.finish()
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
		Use: "TOOL [options] VMNAME...",
		Long: "Shut qubes down.\n\n" +
			"With --wait, the clients of a netvm are shut down before it. A qube still in use\n" +
			"(a netvm with running clients) is retried while the retries make progress; a qube\n" +
			"that does not halt within its shutdown_timeout is retried once, then killed.\n" +
			"Exit status: the number of qubes that failed to shut down.",
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

func (r *shutdownRound) add(fs []qubeFailure) {
	for _, f := range fs {
		switch {
		case admin.IsType(f.err, admin.TypeVMInUse):
			r.used = append(r.used, f)
		case admin.IsType(f.err, admin.TypeVMShutdownTimeout):
			r.timedout = append(r.timedout, f)
		default:
			r.unhandled = append(r.unhandled, f)
		}
	}
}

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

// shutdownWaves orders vms for a shutdown that waits: each wave holds the
// qubes no qube of a later wave uses as its netvm, so that clients halt
// before their netvm is asked to (the daemon refuses to shut down a netvm
// with running clients, unless forced). Qubes that are not running go in
// the first wave; so do all of them if there is nothing to order.
func shutdownWaves(ctx context.Context, l *lsLoader, vms []*lsVM) ([][]*lsVM, error) {
	var running []*lsVM
	for _, vm := range vms {
		if vm.running() {
			running = append(running, vm)
		}
	}
	if len(running) < 2 {
		return [][]*lsVM{vms}, nil
	}
	l.wanted = []string{"netvm"}
	if err := l.loadProps(ctx, running); err != nil {
		return nil, err
	}
	// clients[n] counts the qubes of running that still have to halt
	// before n
	netvm := map[*lsVM]*lsVM{}
	clients := map[*lsVM]int{}
	for _, vm := range running {
		if p, ok := vm.prop("netvm"); ok && p.Value != "" {
			if n := l.byName[p.Value]; n != nil && n != vm && n.running() && slices.Contains(vms, n) {
				netvm[vm] = n
				clients[n]++
			}
		}
	}
	if len(netvm) == 0 {
		return [][]*lsVM{vms}, nil
	}
	var waves [][]*lsVM
	left := vms
	for len(left) > 0 {
		var wave, rest []*lsVM
		for _, vm := range left {
			if clients[vm] == 0 {
				wave = append(wave, vm)
			} else {
				rest = append(rest, vm)
			}
		}
		if len(wave) == 0 { // a netvm loop, which the daemon refuses: keep Python's order
			wave, rest = rest, nil
		}
		for _, vm := range wave {
			if n := netvm[vm]; n != nil {
				clients[n]--
			}
		}
		waves = append(waves, wave)
		left = rest
	}
	return waves, nil
}

func runShutdown(ctx context.Context, t *tool, o *shutdownOptions, args []string) error {
	l, vms, err := o.load(ctx, t, args)
	if err != nil {
		return err
	}
	c := l.c
	if o.dryRun {
		return nil
	}
	if o.timeout != "" {
		fmt.Fprintf(t.env.stderr, "%s: FutureWarning: Call to deprecated --timeout option, use --wait instead\n", t.spec.name)
		o.wait = true
	}
	opts := admin.ShutdownOptions{Force: o.force || (o.all && len(o.exclude) == 0), Wait: o.wait}
	shutdown := func(vms []*lsVM, p *progress) (shutdownRound, error) {
		failed, err := eachVM(ctx, vms, p, func(ctx context.Context, vm *lsVM) error {
			return c.Shutdown(ctx, vm.Name, opts)
		}, admin.TypeVMNotStarted)
		var r shutdownRound
		r.add(failed)
		return r, err
	}

	// The first round: all at once, as the Python tool does, or, when
	// waiting without force, clients before their netvm.
	waves := [][]*lsVM{vms}
	if opts.Wait && !opts.Force {
		if waves, err = shutdownWaves(ctx, l, vms); err != nil {
			return failure(err)
		}
	}
	var res shutdownRound
	p := t.progress(len(vms), "shutting down")
	for _, wave := range waves {
		r, err := shutdown(wave, p)
		if err != nil {
			p.finish()
			return failure(err)
		}
		res.unhandled = append(res.unhandled, r.unhandled...)
		res.used = append(res.used, r.used...)
		res.timedout = append(res.timedout, r.timedout...)
	}
	p.finish()

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
			retry, err := shutdown(failedVMs(used), nil)
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
		retry, err := shutdown(failedVMs(res.timedout), nil)
		if err != nil {
			return failure(err)
		}
		res.unhandled = mergeFailures(res.unhandled, retry.unhandled)
		res.used = mergeFailures(res.used, retry.used)
		res.timedout = retry.timedout
	}
	if len(res.timedout) > 0 {
		t.printError("Killing timed out qubes: %s", failedNames(res.timedout))
		res.timedout, err = eachVM(ctx, failedVMs(res.timedout), nil, func(ctx context.Context, vm *lsVM) error {
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
			p := t.progress(len(vms), "killing")
			failed, err := eachVM(cmd.Context(), vms, p, func(ctx context.Context, vm *lsVM) error {
				return c.Kill(ctx, vm.Name)
			}, admin.TypeVMNotStarted)
			p.finish()
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
	var suspend bool
	cmd := &cobra.Command{
		Use: "TOOL [options] VMNAME...",
		Long: "Pause qubes.\n\nPaused qubes will be killed on system shutdown. With --suspend, a qube whose\n" +
			"hypervisor cannot suspend it (libvirt's test driver, for one) is paused instead.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, vms, err := o.targets(cmd.Context(), t, args)
			if err != nil {
				return err
			}
			if suspend {
				return pauseAction(cmd.Context(), t, vms, "suspend", "suspending", c.Suspend)
			}
			return pauseAction(cmd.Context(), t, vms, "pause", "pausing", c.Pause)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "pause all qubes")
	cmd.Flags().BoolVarP(&suspend, "suspend", "S", false, "put the qube to (S3) suspend mode instead of emergency pause")
	return cmd
}

func newUnpauseCmd(t *tool) *cobra.Command {
	o := &targetOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Unpause qubes: resume the suspended ones, unpause the paused ones.",
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
			return pauseAction(ctx, t, vms, "unpause/resume", "unpausing", func(ctx context.Context, vm string) error {
				return unpauseOrResume(ctx, c, vm)
			})
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	o.addFlags(cmd, t, "unpause all qubes but internal ones")
	return cmd
}

// unpauseOrResume resumes vm if it is suspended and unpauses it otherwise,
// as the Python tool does: the state comes from admin.vm.CurrentState, and a
// state that cannot be read (a qube just removed, an empty reply) counts as
// not suspended.
func unpauseOrResume(ctx context.Context, c *admin.Client, vm string) error {
	st, err := c.CurrentState(ctx, vm)
	switch {
	case err == nil && st.PowerState == "Suspended":
		return c.Resume(ctx, vm)
	case err == nil, admin.IsType(err, admin.TypeVMNotFound), errors.Is(err, admin.ErrEmptyReply):
		return c.Unpause(ctx, vm)
	}
	return err
}

// pauseAction runs a pause-like action on vms: status 1 if it failed on
// any.
func pauseAction(ctx context.Context, t *tool, vms []*lsVM, action, doing string, fn func(ctx context.Context, vm string) error) error {
	p := t.progress(len(vms), doing)
	failed, err := eachVM(ctx, vms, p, func(ctx context.Context, vm *lsVM) error { return fn(ctx, vm.Name) })
	p.finish()
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
