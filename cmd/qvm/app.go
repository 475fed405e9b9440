package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// env is what one run of the program sees of the outside world; tests
// replace it.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// toolSpec describes one tool of the multi-call binary.
type toolSpec struct {
	name    string   // program name: qvm-ls
	sub     string   // subcommand of qvm: ls
	aliases []string // further subcommand names
	short   string   // one-line description
	build   func(t *tool) *cobra.Command
}

// tools lists the programs of the binary, in the order `qvm --help` shows
// them.
var tools = []*toolSpec{
	{name: "qvm-ls", sub: "ls", short: "List qubes and their properties", build: newLsCmd},
	{name: "qvm-prefs", sub: "prefs", short: "Show or change a qube's properties", build: newPrefsCmd},
	{name: "qubes-prefs", sub: "qubes-prefs", aliases: []string{"global-prefs"}, short: "Show or change global properties", build: newQubesPrefsCmd},
	{name: "qvm-create", sub: "create", short: "Create a qube", build: newCreateCmd},
	{name: "qvm-remove", sub: "remove", aliases: []string{"rm"}, short: "Remove qubes", build: newRemoveCmd},
	{name: "qvm-features", sub: "features", short: "Manage a qube's features", build: newFeaturesCmd},
	{name: "qvm-tags", sub: "tags", short: "Manage a qube's tags", build: newTagsCmd},
	{name: "qvm-check", sub: "check", short: "Check that qubes exist, run, are templates or networked", build: newCheckCmd},
	{name: "qvm-plugin", sub: "plugin", short: "Show the daemon's plugins and their state", build: newPluginCmd},
	{name: "qvm-pool", sub: "pool", short: "Manage storage pools", build: newPoolCmd},
	{name: "qvm-volume", sub: "volume", short: "Manage the storage volumes of qubes", build: newVolumeCmd},
	{name: "qvm-clone", sub: "clone", short: "Clone a qube", build: newCloneCmd},
	{name: "qvm-start", sub: "start", short: "Start qubes", build: newStartCmd},
	{name: "qvm-shutdown", sub: "shutdown", short: "Shut qubes down", build: newShutdownCmd},
	{name: "qvm-kill", sub: "kill", short: "Terminate qubes at once, without a graceful shutdown", build: newKillCmd},
	{name: "qvm-pause", sub: "pause", short: "Pause qubes", build: newPauseCmd},
	{name: "qvm-unpause", sub: "unpause", short: "Unpause qubes", build: newUnpauseCmd},
	{name: "qvm-run", sub: "run", short: "Run a command in a qube: needs qrexec, which qubesd-go does not provide", build: newRunCmd},
}

func toolByName(name string) *toolSpec {
	for _, t := range tools {
		if t.name == name {
			return t
		}
	}
	return nil
}

// tool is the state one tool's command works with.
type tool struct {
	spec *toolSpec
	env  env

	socket    string
	verbose   int
	quiet     int
	forceRoot bool
}

// addCommonFlags registers the options every tool has: those of the Python
// tools' QubesArgumentParser, and --socket.
func (t *tool) addCommonFlags(fs *pflag.FlagSet) {
	fs.CountVarP(&t.verbose, "verbose", "v", "increase verbosity")
	fs.CountVarP(&t.quiet, "quiet", "q", "decrease verbosity")
	fs.BoolVar(&t.forceRoot, "force-root", false, "ignored; for compatibility")
	_ = fs.MarkHidden("force-root")
	fs.StringVar(&t.socket, "socket", "", "qubesd socket (default: $"+admin.SocketEnv+", else "+admin.DefaultSocket+")")
}

// verbosity is 1 by default; -v raises it, -q lowers it.
func (t *tool) verbosity() int { return 1 + t.verbose - t.quiet }

// client returns an Admin API client for the chosen socket.
func (t *tool) client() *admin.Client {
	sock := t.socket
	if sock == "" {
		sock = t.env.getenv(admin.SocketEnv)
	}
	return admin.New(sock)
}

// logf prints a message as the Python tools' logging does
// ("qvm-check: message") when the verbosity allows it.
func (t *tool) logf(format string, a ...any) {
	if t.verbosity() >= 1 {
		fmt.Fprintf(t.env.stderr, t.spec.name+": "+format+"\n", a...)
	}
}

// exitError ends a tool with a status and an optional message, printed as
// "prog: error: msg".
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErrorf reports a command-line mistake (status 2).
func usageErrorf(format string, a ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, a...)}
}

// exitStatus ends silently with status code.
func exitStatus(code int) error { return &exitError{code: code} }

// failure turns an error from the Admin API into a status-1 error whose
// message a person can read.
func failure(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	if errors.Is(err, context.Canceled) {
		return err // interrupted: run says so
	}
	return &exitError{code: 1, msg: err.Error()}
}

// vmError reports an unknown or invalid qube name as the Python tools do
// (status 2), with the daemon's message; other errors as failure does.
func vmError(err error) error {
	if admin.IsType(err, admin.TypeVMNotFound) || admin.IsType(err, admin.TypeValueError) {
		return &exitError{code: 2, msg: err.Error()}
	}
	return failure(err)
}

// run executes the program: argv[0] chooses the tool.
func run(ctx context.Context, argv []string, e env) int {
	args := argv[1:]
	prog := filepath.Base(argv[0])
	var root, leaf *cobra.Command
	if spec := toolByName(prog); spec != nil {
		root = newToolCmd(spec, spec.name, e)
		leaf = root
	} else {
		prog = "qvm"
		root = newQvmCmd(e)
		if len(args) > 0 {
			for _, c := range root.Commands() {
				if c.Name() == args[0] || c.HasAlias(args[0]) {
					leaf = c
					if spec, ok := c.Annotations["tool"]; ok {
						prog = spec
					}
					break
				}
			}
		}
	}
	if leaf != nil && !isCompletionRequest(args) {
		if leaf == root {
			args = normalizeArgs(leaf.Flags(), args)
		} else {
			args = append([]string{args[0]}, normalizeArgs(leaf.Flags(), args[1:])...)
		}
	}
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(e.stderr, "%s: error: %s\n", prog, ee.msg)
		}
		return ee.code
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(e.stderr, "%s: interrupted\n", prog)
		return 130
	default: // cobra's own errors: unknown flags, bad flag values
		fmt.Fprintf(e.stderr, "%s: error: %v\n", prog, err)
		return 2
	}
}

func isCompletionRequest(args []string) bool {
	return len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd)
}

// newToolCmd builds the command of one tool, named use.
func newToolCmd(spec *toolSpec, use string, e env) *cobra.Command {
	t := &tool{spec: spec, env: e}
	cmd := spec.build(t)
	cmd.Use = strings.Replace(cmd.Use, "TOOL", use, 1)
	cmd.Short = spec.short
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	cmd.DisableFlagsInUseLine = true
	cmd.Version = version()
	cmd.SetVersionTemplate(spec.name + " (qubesd-go) {{.Version}}\n")
	cmd.Flags().SortFlags = false
	t.addCommonFlags(cmd.Flags())
	cmd.Flags().Bool("version", false, "print the version and exit")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageErrorf("%v", err)
	})
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations["tool"] = spec.name
	return cmd
}

// newQvmCmd builds `qvm`, whose subcommands are the tools.
func newQvmCmd(e env) *cobra.Command {
	root := &cobra.Command{
		Use:   "qvm",
		Short: "Qubes OS command-line tools (qvm-ls, qvm-prefs, ...) in one binary",
		Long: "Qubes OS command-line tools in one binary.\n\n" +
			"Each tool also runs under its own name (qvm-ls, qvm-prefs, qvm-start, ...) through a\n" +
			"symbolic link to this binary.",
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version(),
		Args:          cobra.NoArgs, // an unknown tool is a usage error
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.Flags().Bool("version", false, "print the version and exit") // no -v: the tools' -v is --verbose
	root.SetVersionTemplate("qvm (qubesd-go) {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%v", err) })
	for _, spec := range tools {
		c := newToolCmd(spec, spec.sub, e)
		c.Aliases = spec.aliases
		root.AddCommand(c)
	}
	root.AddCommand(newCompletionCmd())
	return root
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
