package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// propList is an ordered set of property assignments: a later assignment of
// the same property replaces the value in place, as in the Python tool's
// dict.
type propList struct{ kvs []admin.KV }

func (l *propList) put(k, v string) {
	for i := range l.kvs {
		if l.kvs[i].Key == k {
			l.kvs[i].Value = v
			return
		}
	}
	l.kvs = append(l.kvs, admin.KV{Key: k, Value: v})
}

func (l *propList) get(k string) (string, bool) {
	for _, kv := range l.kvs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return "", false
}

// pop removes k and returns its value.
func (l *propList) pop(k string) (string, bool) {
	v, ok := l.get(k)
	l.kvs = slices.DeleteFunc(l.kvs, func(kv admin.KV) bool { return kv.Key == k })
	return v, ok
}

// propFlag is a command-line option that assigns a property: key "" means
// the value is "NAME=VALUE" (--prop), otherwise the value is the property's
// (--label, --template).
type propFlag struct {
	list *propList
	key  string
}

func (f *propFlag) String() string { return "" }

func (f *propFlag) Type() string {
	if f.key == "" {
		return "NAME=VALUE"
	}
	return "VALUE"
}

func (f *propFlag) Set(s string) error {
	if f.key != "" {
		f.list.put(f.key, s)
		return nil
	}
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("Invalid property token: '%s'", s)
	}
	f.list.put(k, v)
	return nil
}

type createOptions struct {
	class       string
	standalone  bool
	disp        bool
	props       propList
	pools       []string
	onePool     string
	helpClasses bool
	rootCopy    string
	rootMove    string
	noRoot      bool
}

func newCreateCmd(t *tool) *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] --label LABEL VMNAME",
		Long: "Create a new qube.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("unrecognized arguments: %s", strings.Join(args[1:], " "))
			}
			return nil
		},
		Example: "  TOOL --label red work\n  TOOL -t debian-12-xfce -l green --prop memory=800 mail\n  TOOL -C TemplateVM -l black -P varlibqubes tpl",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.props.put("name", args[0])
			}
			return runCreate(cmd.Context(), t, o)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	cmd.Example = strings.ReplaceAll(cmd.Example, "TOOL", t.spec.name)
	fs := cmd.Flags()
	fs.StringVarP(&o.class, "class", "C", "AppVM", "the class of the new qube")
	fs.BoolVar(&o.standalone, "standalone", false, "shortcut for --class StandaloneVM")
	fs.BoolVar(&o.disp, "disp", false, "alias for --class DispVM --label red")
	fs.Var(&propFlag{list: &o.props}, "property", `set the qube's property, like "memory" or "vcpus" (repeatable)`)
	fs.Var(&propFlag{list: &o.props}, "prop", "same as --property")
	fs.StringArrayVarP(&o.pools, "pool", "p", nil, "the pool to use for a volume, as VOLUME=POOL (repeatable)")
	// -P has no long form in the Python tool; pflag needs one.
	fs.StringVarP(&o.onePool, "P", "P", "", "the pool to use for all volumes")
	fs.VarP(&propFlag{list: &o.props, key: "template"}, "template", "t", "the template to use")
	fs.VarP(&propFlag{list: &o.props, key: "label"}, "label", "l", "the label of the new qube (red, yellow, green, ...)")
	fs.BoolVar(&o.helpClasses, "help-classes", false, "list the available classes and exit")
	fs.StringVarP(&o.rootCopy, "root-copy-from", "r", "", "use the given root.img (copied); not supported yet")
	fs.StringVarP(&o.rootMove, "root-move-from", "R", "", "use the given root.img (moved); not supported yet")
	fs.BoolVar(&o.noRoot, "no-root", false, "")
	_ = fs.MarkHidden("no-root")
	_ = cmd.RegisterFlagCompletionFunc("template", completeVMsFlag(t))
	_ = cmd.RegisterFlagCompletionFunc("label", completeLabels(t))
	_ = cmd.RegisterFlagCompletionFunc("class", completeClasses(t))
	return cmd
}

func runCreate(ctx context.Context, t *tool, o *createOptions) error {
	c := t.client()
	if o.helpClasses {
		classes, err := c.VMClasses(ctx)
		if err != nil {
			return failure(err)
		}
		fmt.Fprintln(t.env.stdout, strings.Join(classes, "\n"))
		return nil
	}
	pools, err := parsePools(o.pools)
	if err != nil {
		return err
	}
	if o.disp {
		if _, ok := o.props.get("label"); !ok {
			o.props.put("label", "red")
		}
		o.class = "DispVM"
	}
	if o.standalone {
		o.class = "StandaloneVM"
	}
	label, ok := o.props.pop("label")
	if !ok {
		return usageErrorf("--label option is mandatory")
	}
	name, ok := o.props.pop("name")
	if !ok {
		return usageErrorf("VMNAME is mandatory")
	}
	if o.rootCopy != "" || o.rootMove != "" {
		return usageErrorf("--root-copy-from/--root-move-from are not supported by this qvm-create yet")
	}
	if o.onePool != "" && len(pools) > 0 {
		return usageErrorf("only one of -P and --pool can be used")
	}

	labels, err := c.Labels(ctx)
	if err != nil {
		return failure(err)
	}
	label, err = resolveLabel(ctx, c, labels, label)
	if err != nil {
		return err
	}
	classes, err := c.VMClasses(ctx)
	if err != nil {
		return failure(err)
	}
	if !slices.Contains(classes, o.class) {
		return usageErrorf("no such domain class: '%s'", o.class)
	}
	template, _ := o.props.pop("template")
	if o.class == "StandaloneVM" && template != "" {
		return failure(errors.New("a StandaloneVM based on a template is a copy of it; this qvm-create cannot make one yet (use qvm-clone)"))
	}

	if o.onePool != "" || len(pools) > 0 {
		err = c.CreateInPool(ctx, o.class, template, name, label, admin.PoolSpec{Pool: o.onePool, Volumes: pools}, o.props.kvs...)
	} else {
		err = c.Create(ctx, o.class, template, name, label, o.props.kvs...)
	}
	var partial *admin.PartialCreateError
	switch {
	case errors.As(err, &partial):
		for _, f := range partial.Failed {
			fmt.Fprintf(t.env.stderr, "%s: error: Error setting property %s (but VM created): %v\n", t.spec.name, f.Property, f.Err)
		}
		return exitStatus(2)
	case err != nil:
		return failure(fmt.Errorf("Error creating VM: %w", err))
	}
	return nil
}

// resolveLabel returns the label name for a name or an index, or a usage
// error listing the labels.
func resolveLabel(ctx context.Context, c *admin.Client, labels []string, label string) (string, error) {
	if slices.Contains(labels, label) {
		return label, nil
	}
	if label != "" && strings.Trim(label, "0123456789") == "" {
		for _, l := range labels {
			i, err := c.LabelIndex(ctx, l)
			if err != nil {
				return "", failure(err)
			}
			if fmt.Sprint(i) == strings.TrimLeft(label, "0") || (i == 0 && strings.Trim(label, "0") == "") {
				return l, nil
			}
		}
	}
	return "", usageErrorf("no such label: '%s'; available: %s", label, strings.Join(labels, ", "))
}
