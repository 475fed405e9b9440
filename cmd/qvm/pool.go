package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// qvm-pool: list, describe, add, remove and configure storage pools, as the
// Python tool, including its legacy options (-l, -i, -a, -r, -s,
// --help-drivers).

// poolCommands maps qvm-pool's commands and their aliases to the command.
var poolCommands = map[string]string{
	"drivers": "drivers", "d": "drivers",
	"list": "list", "l": "list", "ls": "list",
	"info": "info", "i": "info",
	"add": "add", "a": "add",
	"remove": "remove", "r": "remove", "rm": "remove",
	"set": "set", "s": "set",
}

const poolChoices = "'drivers', 'd', 'list', 'l', 'ls', 'info', 'i', 'add', 'a', 'remove', 'r', 'rm', 'set', 's'"

// poolFlags are the options each command takes (besides the common ones).
var poolFlags = map[string][]string{
	"drivers": {"format"},
	"list":    {"format"},
	"info":    {"format"},
	"add":     {"option"},
	"set":     {"option"},
}

// poolSettable are the pool options admin.pool.Set.* changes.
var poolSettable = []string{"revisions_to_keep", "ephemeral_volatile"}

type poolOptions struct {
	options []string
	format  string

	// legacy options
	list        bool
	helpDrivers bool
	info        string
	add         []string
	remove      string
	set         string
}

func newPoolCmd(t *tool) *cobra.Command {
	o := &poolOptions{}
	cmd := &cobra.Command{
		Use: "TOOL [options] [COMMAND [ARGS...]]",
		Long: "Manage storage pools.\n\n" +
			"  list (l, ls)         list the pools and their drivers (the default command)\n" +
			"  drivers (d)          list the drivers and their options\n" +
			"  info (i) POOL        show a pool's configuration\n" +
			"  add (a) POOL DRIVER [-o OPTION=VALUE]...\n" +
			"                       add a pool\n" +
			"  remove (r, rm) POOL...\n" +
			"                       remove pools\n" +
			"  set (s) POOL -o OPTION=VALUE...\n" +
			"                       set revisions_to_keep or ephemeral_volatile\n\n" +
			"The options of the old qvm-pool (-l, -i POOL, -a POOL DRIVER, -r POOL, -s POOL,\n" +
			"--help-drivers, with -o OPTION=VALUE,OPTION=VALUE) work too.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 || o.legacy() {
				return nil
			}
			sub, ok := poolCommands[args[0]]
			if !ok {
				return usageErrorf("argument command: invalid choice: '%s' (choose from %s)", args[0], poolChoices)
			}
			n := len(args) - 1
			switch sub {
			case "list", "drivers":
				if n > 0 {
					return usageErrorf("unrecognized arguments: %s", strings.Join(args[1:], " "))
				}
			case "info", "set":
				if n == 0 {
					return usageErrorf("the following arguments are required: POOL_NAME")
				} else if n > 1 {
					return usageErrorf("unrecognized arguments: %s", strings.Join(args[2:], " "))
				}
			case "add":
				if n < 2 {
					return usageErrorf("the following arguments are required: %s", strings.Join([]string{"POOL_NAME", "DRIVER"}[n:], ", "))
				} else if n > 2 {
					return usageErrorf("unrecognized arguments: %s", strings.Join(args[3:], " "))
				}
			case "remove":
				if n == 0 {
					return usageErrorf("the following arguments are required: POOL_NAME")
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.legacy() {
				sub, subArgs, err := o.legacyCommand(args)
				if err != nil {
					return err
				}
				return runPool(cmd.Context(), t, o, sub, subArgs)
			}
			sub := "list"
			if len(args) > 0 {
				sub = poolCommands[args[0]]
				args = args[1:]
			}
			if err := onlyFlags(cmd.Flags(), sub, poolFlags[sub]); err != nil {
				return err
			}
			return runPool(cmd.Context(), t, o, sub, args)
		},
		ValidArgsFunction: completePoolArgs(t),
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&o.options, "option", "o", nil, "add, set: a driver option, OPTION=VALUE (repeatable)")
	fs.StringVar(&o.format, "format", "text", "output format of list, drivers and info: text or json")
	fs.BoolVarP(&o.list, "list", "l", false, "legacy: list the pools")
	fs.StringVarP(&o.info, "info", "i", "", "legacy: show a pool's configuration")
	fs.StringArrayVarP(&o.add, "add", "a", nil, "legacy: add a pool: -a NAME DRIVER")
	fs.StringVarP(&o.remove, "remove", "r", "", "legacy: remove a pool")
	fs.StringVarP(&o.set, "set", "s", "", "legacy: set the -o options of a pool")
	fs.BoolVar(&o.helpDrivers, "help-drivers", false, "legacy: list the drivers and their options")
	markMulti(fs, "add")
	for _, f := range []string{"list", "info", "add", "remove", "set", "help-drivers"} {
		_ = fs.MarkHidden(f)
	}
	_ = cmd.RegisterFlagCompletionFunc("info", completePools(t))
	_ = cmd.RegisterFlagCompletionFunc("set", completePools(t))
	_ = cmd.RegisterFlagCompletionFunc("remove", completePools(t))
	return cmd
}

// legacy reports whether an option of the old qvm-pool was given.
func (o *poolOptions) legacy() bool {
	return o.list || o.helpDrivers || o.info != "" || len(o.add) > 0 || o.remove != "" || o.set != ""
}

// legacyCommand turns the old options into a command and its arguments.
// The old -o takes comma-separated OPTION=VALUE pairs.
func (o *poolOptions) legacyCommand(args []string) (string, []string, error) {
	n := 0
	for _, b := range []bool{o.list, o.helpDrivers, o.info != "", len(o.add) > 0, o.remove != "", o.set != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return "", nil, usageErrorf("only one of -l, -i, -a, -r, -s and --help-drivers can be used")
	}
	var opts []string
	for _, v := range o.options {
		opts = append(opts, strings.Split(v, ",")...)
	}
	o.options = opts
	if o.format != "text" {
		return "", nil, usageErrorf("unrecognized arguments: --format")
	}
	extra := func(max int) error {
		if len(args) > max {
			return usageErrorf("unrecognized arguments: %s", strings.Join(args[max:], " "))
		}
		return nil
	}
	switch {
	case o.list:
		return "list", nil, extra(0)
	case o.helpDrivers:
		return "drivers", nil, extra(0)
	case o.info != "":
		return "info", []string{o.info}, extra(0)
	case o.remove != "":
		return "remove", []string{o.remove}, extra(0)
	case o.set != "":
		return "set", []string{o.set}, extra(0)
	}
	// -a NAME DRIVER: the short option takes NAME, DRIVER is left as an
	// argument; --add NAME DRIVER takes both.
	add := append(slices.Clone(o.add), args...)
	if len(add) < 2 {
		return "", nil, usageErrorf("argument -a/--add: expected 2 arguments")
	}
	if len(add) > 2 {
		return "", nil, usageErrorf("unrecognized arguments: %s", strings.Join(add[2:], " "))
	}
	return "add", add, nil
}

// parsePoolOptions splits OPTION=VALUE arguments at the first "=".
func parsePoolOptions(opts []string) ([][2]string, error) {
	out := make([][2]string, 0, len(opts))
	for _, s := range opts {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageErrorf("argument --option/-o: expected OPTION=VALUE, got '%s'", s)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func runPool(ctx context.Context, t *tool, o *poolOptions, sub string, args []string) error {
	if err := checkOutputFormat(o.format); err != nil {
		return err
	}
	c := t.client()
	switch sub {
	case "list":
		return listPools(ctx, t, c, o)
	case "drivers":
		return listPoolDrivers(ctx, t, c, o)
	case "info":
		if err := checkPools(ctx, c, args); err != nil {
			return err
		}
		pi, err := c.PoolInfo(ctx, args[0])
		if err != nil {
			return failure(err)
		}
		return printPoolInfo(t, o, args[0], pi)
	case "add":
		opts, err := parsePoolOptions(o.options)
		if err != nil {
			return err
		}
		m := map[string]string{}
		for _, kv := range opts {
			m[kv[0]] = kv[1] // a later one wins, as in the Python tool's dict
		}
		if _, ok := m["name"]; ok {
			return usageErrorf("the pool name is POOL_NAME, not an option")
		}
		if err := c.AddPool(ctx, args[0], args[1], m); err != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("Failed to add pool %s: %v\n", args[0], err)}
		}
		return nil
	case "remove":
		var errs []string
		for _, p := range args {
			err := c.RemovePool(ctx, p)
			switch {
			case err == nil:
			case admin.IsType(err, admin.TypePermissionDenied):
				errs = append(errs, fmt.Sprintf("No such pool %s\n", p))
			default:
				errs = append(errs, fmt.Sprintf("Failed to remove pool %s: %v\n", p, err))
			}
		}
		if len(errs) > 0 {
			return &exitError{code: 1, msg: strings.Join(errs, "\n")}
		}
		return nil
	case "set":
		opts, err := parsePoolOptions(o.options)
		if err != nil {
			return err
		}
		if err := checkPools(ctx, c, args); err != nil {
			return err
		}
		var errs []string
		for _, kv := range opts {
			if !slices.Contains(poolSettable, kv[0]) {
				errs = append(errs, fmt.Sprintf("Setting option %s is not supported for pool %s\n", kv[0], args[0]))
				continue
			}
			if err := c.SetPoolOption(ctx, args[0], kv[0], kv[1]); err != nil {
				errs = append(errs, fmt.Sprintf("Failed to set option %s for pool %s: %v\n", kv[0], args[0], err))
			}
		}
		if len(errs) > 0 {
			return &exitError{code: 1, msg: strings.Join(errs, "\n")}
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", sub)
}

// checkPools refuses pools that do not exist, as the Python tool's
// PoolsAction does (status 2).
func checkPools(ctx context.Context, c *admin.Client, names []string) error {
	pools, err := c.Pools(ctx)
	if err != nil {
		return failure(err)
	}
	for _, n := range names {
		if !slices.Contains(pools, n) {
			return usageErrorf("No such pools: %s", pyList(names))
		}
	}
	return nil
}

func listPools(ctx context.Context, t *tool, c *admin.Client, o *poolOptions) error {
	pools, err := c.Pools(ctx)
	if err != nil {
		return failure(err)
	}
	infos := make([]admin.PoolInfo, len(pools))
	err = parallel(ctx, len(pools), func(ctx context.Context, i int) error {
		pi, err := c.PoolInfo(ctx, pools[i])
		infos[i] = pi
		return err
	})
	if err != nil {
		return failure(err)
	}
	if o.format == "json" {
		list := []jsonObject{}
		for i, p := range pools {
			list = append(list, jsonObject{{"name", p}, {"driver", infos[i].Driver}})
		}
		return writeJSON(t.env.stdout, list)
	}
	rows := [][]string{{"NAME", "DRIVER"}}
	for i, p := range pools {
		rows = append(rows, []string{p, infos[i].Driver})
	}
	fmt.Fprint(t.env.stdout, formatTable(rows))
	return nil
}

func listPoolDrivers(ctx context.Context, t *tool, c *admin.Client, o *poolOptions) error {
	drivers, err := c.PoolDrivers(ctx)
	if err != nil {
		return failure(err)
	}
	slices.SortFunc(drivers, func(a, b admin.PoolDriver) int { return strings.Compare(a.Name, b.Name) })
	if o.format == "json" {
		list := []jsonObject{}
		for _, d := range drivers {
			list = append(list, jsonObject{{"driver", d.Name}, {"options", nonNil(d.Params)}})
		}
		return writeJSON(t.env.stdout, list)
	}
	rows := [][]string{{"DRIVER", "OPTIONS"}}
	for _, d := range drivers {
		rows = append(rows, []string{d.Name, strings.Join(d.Params, ", ")})
	}
	fmt.Fprint(t.env.stdout, formatTable(rows))
	return nil
}

// printPoolInfo prints "name" first, then the other keys of the pool's
// configuration, sorted.
func printPoolInfo(t *tool, o *poolOptions, name string, pi admin.PoolInfo) error {
	fields := slices.Clone(pi.Fields)
	fields = slices.DeleteFunc(fields, func(kv admin.KV) bool { return kv.Key == "name" })
	slices.SortStableFunc(fields, func(a, b admin.KV) int { return strings.Compare(a.Key, b.Key) })
	if o.format == "json" {
		obj := jsonObject{{"name", name}}
		for _, kv := range fields {
			obj = append(obj, jsonField{kv.Key, kv.Value})
		}
		return writeJSON(t.env.stdout, obj)
	}
	rows := [][]string{{"name", name}}
	for _, kv := range fields {
		rows = append(rows, []string{kv.Key, kv.Value})
	}
	fmt.Fprint(t.env.stdout, formatTable(rows))
	return nil
}

// completePools completes a flag's value with pool names.
func completePools(t *tool) completeFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return withDaemon(cmd, t.client().Pools)
	}
}

// completePoolArgs completes qvm-pool's commands, then pool names and
// drivers.
func completePoolArgs(t *tool) completeFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			var subs []string
			for s := range poolCommands {
				subs = append(subs, s)
			}
			slices.Sort(subs)
			return subs, cobra.ShellCompDirectiveNoFileComp
		}
		switch sub := poolCommands[args[0]]; {
		case sub == "add" && len(args) == 2:
			return withDaemon(cmd, func(ctx context.Context) ([]string, error) {
				drivers, err := t.client().PoolDrivers(ctx)
				names := make([]string, len(drivers))
				for i, d := range drivers {
					names[i] = d.Name
				}
				return names, err
			})
		case sub == "remove" || ((sub == "info" || sub == "set") && len(args) == 1):
			return withDaemon(cmd, t.client().Pools)
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}
