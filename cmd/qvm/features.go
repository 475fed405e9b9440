package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

type featuresOptions struct {
	unset  bool
	format string
}

func newFeaturesCmd(t *tool) *cobra.Command {
	o := &featuresOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME [FEATURE [VALUE]]",
		Long: "Manage a qube's features.\n\nWithout FEATURE, list them; with FEATURE, print its value (exit status 1 if it is not set); with VALUE, set it.",
		Args: vmAndUpTo(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFeatures(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeFeatures(t),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&o.unset, "unset", "D", false, "unset the feature")
	fs.BoolVar(&o.unset, "default", false, "same as --unset")
	fs.BoolVar(&o.unset, "delete", false, "same as --unset")
	addOutputFlag(fs, &o.format)
	return cmd
}

func runFeatures(ctx context.Context, t *tool, o *featuresOptions, args []string) error {
	if err := checkOutputFormat(o.format); err != nil {
		return err
	}
	c := t.client()
	vm := args[0]
	if _, err := c.VM(ctx, vm); err != nil {
		return vmError(err)
	}
	switch {
	case len(args) == 1:
		if o.unset {
			return usageErrorf("--unset requires a feature")
		}
		return listFeatures(ctx, t, o, c, vm)
	case o.unset:
		if len(args) == 3 {
			return usageErrorf("cannot both set and unset a value")
		}
		if err := c.RemoveFeature(ctx, vm, args[1]); err != nil && !admin.IsNotFound(err) {
			return failure(err)
		}
	case len(args) == 2:
		v, err := c.Feature(ctx, vm, args[1])
		if admin.IsNotFound(err) {
			return exitStatus(1)
		}
		if err != nil {
			return failure(err)
		}
		fmt.Fprintln(t.env.stdout, v)
	default:
		if err := c.SetFeature(ctx, vm, args[1], args[2]); err != nil {
			return failure(err)
		}
	}
	return nil
}

func listFeatures(ctx context.Context, t *tool, o *featuresOptions, c *admin.Client, vm string) error {
	names, err := c.Features(ctx, vm)
	if err != nil {
		return failure(err)
	}
	values := make([]string, len(names))
	found := make([]bool, len(names))
	err = parallel(ctx, len(names), func(ctx context.Context, i int) error {
		v, err := c.Feature(ctx, vm, names[i])
		if admin.IsNotFound(err) { // removed meanwhile
			return nil
		}
		values[i], found[i] = v, err == nil
		return err
	})
	if err != nil {
		return failure(err)
	}
	if o.format == "json" {
		obj := jsonObject{}
		for i, n := range names {
			if found[i] {
				obj = append(obj, jsonField{n, values[i]})
			}
		}
		return writeJSON(t.env.stdout, obj)
	}
	var rows [][]string
	for i, n := range names {
		if found[i] {
			rows = append(rows, []string{n, values[i]})
		}
	}
	fmt.Fprint(t.env.stdout, formatTable(rows))
	return nil
}
