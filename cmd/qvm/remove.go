package main

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

type removeOptions struct {
	force   bool
	all     bool
	exclude []string
}

func newRemoveCmd(t *tool) *cobra.Command {
	o := &removeOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME...",
		Long: "Remove qubes from the system.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&o.force, "force", "f", false, "do not prompt for confirmation")
	fs.BoolVar(&o.all, "all", false, "remove all qubes (asks to type IKNOWWHATIAMDOING)")
	fs.StringArrayVar(&o.exclude, "exclude", nil, "exclude the qube from --all")
	return cmd
}

func runRemove(ctx context.Context, t *tool, o *removeOptions, args []string) error {
	if err := checkAllOrNames(o.all, args, o.exclude); err != nil {
		return err
	}
	c := t.client()
	infos, err := c.ListVMs(ctx)
	if err != nil {
		return failure(err)
	}
	l := newLsLoader(c, infos)
	vms, err := selectVMs(l.all, args, o.exclude, false)
	if err != nil {
		return err
	}
	stderr, stdout := t.env.stderr, t.env.stdout
	if slices.ContainsFunc(vms, func(vm *lsVM) bool { return vm.Name == admin.AdminVM }) {
		fmt.Fprintln(stderr, "Domain 'dom0' cannot be removed.")
		return exitStatus(1)
	}
	in := bufio.NewReader(t.env.stdin)
	ask := func(prompt string) string {
		fmt.Fprint(stdout, prompt)
		line, _ := in.ReadString('\n')
		return strings.TrimRight(line, "\r\n")
	}
	if o.all && !o.force && len(o.exclude) == 0 {
		fmt.Fprintln(stderr, "WARNING!!! Removing all domains may leave your system in an unrecoverable state!")
		if ask("Are you certain? [N/IKNOWWHATIAMDOING]") != "IKNOWWHATIAMDOING" {
			fmt.Fprintln(stderr, "Remove cancelled.")
			return exitStatus(1)
		}
	}
	if !o.force {
		fmt.Fprintln(stderr, "This will completely remove the selected VM(s)...")
		for _, vm := range vms {
			fmt.Fprintln(stdout, " ", vm.Name)
		}
		if strings.ToUpper(ask("Are you sure? [y/N] ")) != "Y" {
			fmt.Fprintln(stderr, "Remove cancelled.")
			return exitStatus(1)
		}
	}
	for _, vm := range vms {
		err := c.Remove(ctx, vm.Name)
		if admin.IsType(err, admin.TypeVMInUse) {
			deps, derr := dependencies(ctx, c, l, vm.Name)
			if derr == nil && len(deps) > 0 {
				fmt.Fprintf(stderr, "VM %s cannot be removed. It is in use as:\n", vm.Name)
				for _, d := range deps {
					fmt.Fprintln(stderr, " -", d)
				}
			}
		}
		if err != nil {
			return failure(err)
		}
	}
	return nil
}

// dependencies lists where qube ref is used, as the Python tool's
// vm_dependencies does: global properties that name it, and properties of
// other qubes set (not by default) to it — leaving out the template of a
// preloaded disposable, which the daemon removes with it.
func dependencies(ctx context.Context, c *admin.Client, l *lsLoader, ref string) ([]string, error) {
	globals, err := c.GlobalProperties(ctx)
	if err != nil {
		return nil, err
	}
	var deps []string
	byName := map[string]admin.Property{}
	for _, p := range globals {
		byName[p.Name] = p
	}
	for _, g := range []string{"default_dispvm", "default_netvm", "default_guivm", "default_audiovm",
		"default_template", "clockvm", "updatevm", "management_dispvm"} {
		if p, ok := byName[g]; ok && p.Value == ref {
			deps = append(deps, "global property "+g)
		}
	}
	others := slices.DeleteFunc(slices.Clone(l.all), func(vm *lsVM) bool { return vm.Name == ref })
	if err := l.loadProps(ctx, others); err != nil {
		return nil, err
	}
	for _, vm := range present(others) {
		preload, _ := vm.prop("is_preload")
		template, _ := vm.prop("template")
		for _, name := range []string{"template", "netvm", "guivm", "audiovm", "default_dispvm", "management_dispvm"} {
			p, ok := vm.prop(name)
			if !ok || p.Value != ref || p.IsDefault {
				continue
			}
			if preload.Value == "True" && (name == "template" || (name == "default_dispvm" && template.Value == ref)) {
				continue
			}
			deps = append(deps, name+" for "+vm.Name)
		}
	}
	return deps, nil
}
