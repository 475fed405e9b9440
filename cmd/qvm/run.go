package main

// qvm-run: the Python tool runs commands in qubes through qrexec, which
// qubesd-go does not provide. This one takes the same options, so that a
// script calling it gets a message that says why, not a usage error, and
// does nothing: it neither runs anything nor starts a qube.

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runNeedsQrexec is qvm-run's message, for every invocation.
const runNeedsQrexec = "qvm-run needs qrexec to run a command in a qube, and qubesd-go does not provide qrexec: " +
	"nothing was run and no qube was started. To start a qube, use qvm-start"

func newRunCmd(t *tool) *cobra.Command {
	cmd := &cobra.Command{
		Use: "TOOL [options] [--all | --dispvm[=TEMPLATE] | VMNAME] COMMAND [ARG...]",
		Long: "qvm-run is not available: it needs qrexec, which qubesd-go does not provide.\n\n" +
			"It accepts the options of the Python qvm-run, so that scripts get this message rather\n" +
			"than a usage error, and exits with status 1 without running anything. It does not start\n" +
			"the qube either (the Python tool does, unless --no-autostart): use qvm-start for that.",
		Args: cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: 1, msg: runNeedsQrexec}
		},
		ValidArgsFunction: completeVMs(t, 1),
	}
	// a command's own options (qvm-run vm ls -l) are not qvm-run's
	cmd.FParseErrWhitelist.UnknownFlags = true
	fs := cmd.Flags()
	var (
		user, localcmd, colourOut, colourErr, dispvm string
		exclude                                      []string
		b                                            bool
	)
	str := func(p *string, name, short, usage string, aliases ...string) {
		fs.StringVarP(p, name, short, "", usage)
		alias(fs, name, aliases...)
	}
	flag := func(name, short, usage string, aliases ...string) {
		fs.BoolVarP(&b, name, short, false, usage)
		alias(fs, name, aliases...)
	}
	str(&user, "user", "u", "run command in a qube as USER (available only from dom0)")
	flag("autostart", "a", "option ignored, this is default", "auto")
	flag("no-autostart", "n", "do not autostart/unpause qube", "no-auto")
	flag("pass-io", "p", "pass stdio from remote program")
	str(&localcmd, "localcmd", "", "with --pass-io, pass stdio to the given program")
	flag("gui", "", `run the command with GUI (default on if "DISPLAY" is set, guivm property is set and gui feature is True)`)
	flag("no-gui", "", "run the command without GUI", "nogui")
	str(&colourOut, "colour-output", "", `mark the qube output with given ANSI colour (ie. "31" for red)`, "color-output")
	str(&colourErr, "colour-stderr", "", `mark the qube stderr with given ANSI colour (ie. "31" for red)`, "color-stderr")
	flag("no-colour-output", "", "disable colouring the stdio", "no-color-output")
	flag("no-colour-stderr", "", "disable colouring the stderr", "no-color-stderr")
	flag("filter-escape-chars", "", "filter terminal escape sequences (default if output is terminal)")
	flag("no-filter-escape-chars", "", "do not filter terminal escape sequences; DANGEROUS when output is a terminal emulator")
	flag("service", "", "run a qrexec service (named by COMMAND) instead of shell command")
	flag("no-shell", "", "treat COMMAND as a simple executable, not a shell command")
	fs.Var((*optionalValue)(&dispvm), "dispvm", "start a service in new disposable qube; optionally specify a disposable template, else the system default will be used")
	fs.Lookup("dispvm").NoOptDefVal = "TEMPLATE" // shown as --dispvm[=TEMPLATE]
	flag("all", "", "run command on all running qubes")
	fs.StringArrayVar(&exclude, "exclude", nil, "exclude the qube from --all")
	return cmd
}

// alias registers hidden long names for flag name, as argparse's
// additional option strings ("--no-auto" for "--no-autostart").
func alias(fs *pflag.FlagSet, name string, aliases ...string) {
	f := fs.Lookup(name)
	for _, a := range aliases {
		fs.AddFlag(&pflag.Flag{Name: a, Usage: "alias of --" + name, Value: f.Value, DefValue: f.DefValue, NoOptDefVal: f.NoOptDefVal, Hidden: true})
	}
}

// optionalValue is a string option whose value is optional (argparse's
// nargs='?'); its help shows it as --name[=NoOptDefVal].
type optionalValue string

func (v *optionalValue) String() string     { return string(*v) }
func (v *optionalValue) Set(s string) error { *v = optionalValue(s); return nil }
func (v *optionalValue) Type() string       { return "" }
