package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

type checkOptions struct {
	running, paused, template, networked bool
	all                                  bool
	exclude                              []string
}

func newCheckCmd(t *tool) *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use: "TOOL [options] VMNAME...",
		Long: "Exit successfully if the given qubes exist (and, with a check option, pass it).\n\n" +
			"Exit status: 0 if all pass, 3 if only some pass, 1 if none pass or a qube does not exist.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	fs := cmd.Flags()
	fs.BoolVar(&o.running, "running", false, "determine if (any of given) VM is running")
	fs.BoolVar(&o.paused, "paused", false, "determine if (any of given) VM is paused")
	fs.BoolVar(&o.template, "template", false, "determine if (any of given) VM is a template")
	fs.BoolVar(&o.networked, "networked", false, "determine if (any of given) VM can reach network")
	fs.BoolVar(&o.all, "all", false, "check all qubes but dom0")
	fs.StringArrayVar(&o.exclude, "exclude", nil, "exclude the qube from --all")
	return cmd
}

// checkFilter is one of qvm-check's checks.
type checkFilter struct {
	status string
	check  func(ctx context.Context, vm *lsVM) (bool, error)
}

func runCheck(ctx context.Context, t *tool, o *checkOptions, args []string) error {
	if err := checkAllOrNames(o.all, args, o.exclude); err != nil {
		return err
	}
	c := t.client()
	infos, err := c.ListVMs(ctx)
	if err != nil {
		return failure(err)
	}
	l := newLsLoader(c, infos)
	var domains []*lsVM
	var invalid []string
	if o.all {
		domains, _ = selectVMs(l.all, nil, o.exclude, false)
	} else {
		for _, n := range args {
			if vm := l.byName[n]; vm != nil {
				if !slices.Contains(domains, vm) {
					domains = append(domains, vm)
				}
			} else if !slices.Contains(invalid, n) {
				invalid = append(invalid, n)
			}
		}
	}

	var filters []checkFilter
	if o.running {
		filters = append(filters, checkFilter{"running", func(_ context.Context, vm *lsVM) (bool, error) { return vm.running(), nil }})
	}
	if o.paused {
		filters = append(filters, checkFilter{"paused", func(_ context.Context, vm *lsVM) (bool, error) { return vm.State == "Paused", nil }})
	}
	if o.template {
		filters = append(filters, checkFilter{"template", func(_ context.Context, vm *lsVM) (bool, error) { return vm.Class == "TemplateVM", nil }})
	}
	if o.networked {
		filters = append(filters, checkFilter{"networked", func(ctx context.Context, vm *lsVM) (bool, error) {
			return networked(ctx, c, vm.Name)
		}})
	}

	code := 0
	if len(filters) > 0 {
		var status []string
		passed := slices.Clone(domains)
		for _, f := range filters {
			status = append(status, f.status)
			ok := make([]bool, len(domains))
			if err := parallel(ctx, len(domains), func(ctx context.Context, i int) error {
				var err error
				ok[i], err = f.check(ctx, domains[i])
				return err
			}); err != nil {
				return failure(err)
			}
			passed = slices.DeleteFunc(passed, func(vm *lsVM) bool { return !ok[slices.Index(domains, vm)] })
		}
		if len(passed) != len(domains) {
			code = 3
			if len(passed) == 0 {
				code = 1
			}
		}
		printCheck(t, passed, status)
	} else {
		if len(domains) == 0 {
			code = 1
		} else {
			printCheck(t, domains, []string{"exists"})
		}
	}
	if len(invalid) > 0 {
		for _, n := range invalid {
			// A warning: shown even with -q (without the program name, as
			// Python's last-resort logging handler prints it).
			if t.verbosity() >= 1 {
				fmt.Fprintf(t.env.stderr, "%s: %s: non-existent!\n", t.spec.name, n)
			} else {
				fmt.Fprintf(t.env.stderr, "%s: non-existent!\n", n)
			}
		}
		code = 1
	}
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}

func printCheck(t *tool, vms []*lsVM, status []string) {
	if len(vms) == 0 {
		t.logf("None of qubes: %s", strings.Join(status, ", "))
		return
	}
	names := make([]string, len(vms))
	for i, vm := range vms {
		names[i] = vm.Name
	}
	slices.Sort(names)
	for _, n := range names {
		t.logf("%s: %s", n, strings.Join(status, ", "))
	}
}

// networked reports whether a qube can reach the network: it provides
// network itself or has a netvm. A qube without these properties (dom0)
// cannot.
func networked(ctx context.Context, c *admin.Client, vm string) (bool, error) {
	p, err := c.Property(ctx, vm, "provides_network")
	if admin.IsType(err, admin.TypeNoSuchProperty) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if p.Value == "True" {
		return true, nil
	}
	n, err := c.Property(ctx, vm, "netvm")
	if admin.IsType(err, admin.TypeNoSuchProperty) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return n.Value != "", nil
}
