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

// holder is a property holder: a qube (qvm-prefs) or the system
// (qubes-prefs).
type holder struct {
	list   func(context.Context) ([]string, error)
	getAll func(context.Context) ([]admin.Property, error)
	get    func(context.Context, string) (admin.Property, error)
	help   func(context.Context, string) (string, error)
	set    func(context.Context, string, string) error
	reset  func(context.Context, string) error
}

func vmHolder(c *admin.Client, vm string) holder {
	return holder{
		list:   func(ctx context.Context) ([]string, error) { return c.PropertyNames(ctx, vm) },
		getAll: func(ctx context.Context) ([]admin.Property, error) { return c.Properties(ctx, vm) },
		get:    func(ctx context.Context, p string) (admin.Property, error) { return c.Property(ctx, vm, p) },
		help:   func(ctx context.Context, p string) (string, error) { return c.PropertyHelp(ctx, vm, p) },
		set:    func(ctx context.Context, p, v string) error { return c.SetProperty(ctx, vm, p, v) },
		reset:  func(ctx context.Context, p string) error { return c.ResetProperty(ctx, vm, p) },
	}
}

func globalHolder(c *admin.Client) holder {
	return holder{
		list:   c.GlobalPropertyNames,
		getAll: c.GlobalProperties,
		get:    c.GlobalProperty,
		help:   c.GlobalPropertyHelp,
		set:    c.SetGlobalProperty,
		reset:  c.ResetGlobalProperty,
	}
}

// prefsOptions are the options of qvm-prefs and qubes-prefs.
type prefsOptions struct {
	helpProperties bool
	hideDefault    bool
	get, set       bool
	reset          bool
	format         string
}

func (o *prefsOptions) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&o.helpProperties, "help-properties", false, "list all available properties with short descriptions and exit")
	fs.BoolVar(&o.hideDefault, "hide-default", false, "do not show properties that are set to the default value")
	fs.BoolVarP(&o.get, "get", "g", false, "ignored; for compatibility with older scripts")
	fs.BoolVarP(&o.set, "set", "s", false, "ignored; for compatibility with older scripts")
	fs.BoolVarP(&o.reset, "default", "D", false, "reset property to its default value")
	addOutputFlag(fs, &o.format)
}

func newPrefsCmd(t *tool) *cobra.Command {
	o := &prefsOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME [PROPERTY [VALUE]]",
		Long: "Show or change a qube's properties.\n\nWithout PROPERTY, list them all: name, then \"-\" for a value of its own, \"D\" for a default, \"U\" for unset, then the value.",
		Args: vmAndUpTo(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c := t.client()
			if _, err := c.VM(ctx, args[0]); err != nil {
				return vmError(err)
			}
			return runPrefs(ctx, t, o, vmHolder(c, args[0]), args[1:])
		},
		ValidArgsFunction: completePrefs(t, true),
	}
	o.register(cmd)
	return cmd
}

func newQubesPrefsCmd(t *tool) *cobra.Command {
	o := &prefsOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] [PROPERTY [VALUE]]",
		Long: "Show or change global properties.\n\nWithout PROPERTY, list them all: name, then \"-\" for a value of its own, \"D\" for a default, \"U\" for unset, then the value.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usageErrorf("unrecognized arguments: %s", strings.Join(args[2:], " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrefs(cmd.Context(), t, o, globalHolder(t.client()), args)
		},
		ValidArgsFunction: completePrefs(t, false),
	}
	o.register(cmd)
	return cmd
}

// vmValuedNone are the properties for which qvm-prefs takes "none" (any
// case) to mean "no qube".
var vmValuedNone = []string{"default_dispvm", "netvm", "template", "guivm", "audiovm"}

// runPrefs does what the Python tools' qvm_prefs.process_actions does.
// args are PROPERTY and VALUE, both optional.
func runPrefs(ctx context.Context, t *tool, o *prefsOptions, h holder, args []string) error {
	if err := checkOutputFormat(o.format); err != nil {
		return err
	}
	out := t.env.stdout
	if o.helpProperties {
		return prefsHelp(ctx, t, h)
	}
	if len(args) == 0 {
		if o.reset {
			return usageErrorf("--default requires a property")
		}
		return prefsList(ctx, t, o, h)
	}
	prop := strings.ReplaceAll(args[0], "-", "_")
	propErr := func(err error) error {
		if admin.IsType(err, admin.TypeNoSuchProperty) {
			return usageErrorf("no such property: '%s'", prop)
		}
		return failure(err)
	}
	switch {
	case len(args) == 2:
		value := args[1]
		if strings.ToLower(value) == "none" && slices.Contains(vmValuedNone, prop) {
			value = ""
		}
		if err := h.set(ctx, prop, value); err != nil {
			return propErr(err)
		}
		return nil
	case o.reset:
		if err := h.reset(ctx, prop); err != nil {
			return propErr(err)
		}
		return nil
	}
	p, err := h.get(ctx, prop)
	if err != nil {
		return propErr(err)
	}
	if o.hideDefault && p.IsDefault {
		return nil
	}
	// The Python tool prints nothing for a qube or label that is none; it
	// would crash on an int or bool without a value, we print nothing.
	if p.Value != "" || p.Type == admin.PropStr {
		fmt.Fprintln(out, p.Value)
	}
	return nil
}

// prefsEntry is one line of a property listing.
type prefsEntry struct {
	name  string
	prop  admin.Property
	unset bool // listed by List but without a value (no default)
}

func prefsList(ctx context.Context, t *tool, o *prefsOptions, h holder) error {
	names, err := h.list(ctx)
	if err != nil {
		return failure(err)
	}
	byName := map[string]admin.Property{}
	all, err := h.getAll(ctx)
	switch {
	case errors.Is(err, admin.ErrEmptyReply):
		// GetAll refused (qrexec policy): ask property by property, as the
		// Python client does.
		for _, n := range names {
			p, err := h.get(ctx, n)
			if err != nil {
				if errors.Is(err, admin.ErrEmptyReply) || admin.IsType(err, admin.TypeVMNotFound) {
					continue
				}
				return failure(err)
			}
			byName[n] = p
		}
	case err != nil:
		return failure(err)
	default:
		for _, p := range all {
			byName[p.Name] = p
		}
	}
	entries := make([]prefsEntry, 0, len(names))
	for _, n := range names {
		p, ok := byName[n]
		// A property GetAll does not list, or an int or bool without a
		// value, has no value: the Python client raises AttributeError.
		unset := !ok || (p.Value == "" && (p.Type == admin.PropInt || p.Type == admin.PropBool))
		entries = append(entries, prefsEntry{name: n, prop: p, unset: unset})
	}
	slices.SortFunc(entries, func(a, b prefsEntry) int { return strings.Compare(a.name, b.name) })

	if o.format == "json" {
		list := make([]jsonObject, 0, len(entries))
		for _, e := range entries {
			if e.unset {
				list = append(list, jsonObject{{"name", e.name}, {"type", nil}, {"default", nil}, {"value", nil}})
				continue
			}
			if o.hideDefault && e.prop.IsDefault {
				continue
			}
			list = append(list, jsonObject{{"name", e.name}, {"type", e.prop.Type}, {"default", e.prop.IsDefault},
				{"value", typedValue(e.prop.Type, e.prop.Value)}})
		}
		return writeJSON(t.env.stdout, list)
	}
	fmt.Fprint(t.env.stdout, formatPrefs(entries, o.hideDefault))
	return nil
}

// formatPrefs formats a listing as qvm-prefs does: the name padded to the
// longest name, two spaces, "-", "D" or "U", two spaces, the value.
func formatPrefs(entries []prefsEntry, hideDefault bool) string {
	width := 0
	for _, e := range entries {
		width = max(width, len(e.name))
	}
	var b strings.Builder
	for _, e := range entries {
		switch {
		case e.unset:
			fmt.Fprintf(&b, "%-*s  U\n", width, e.name)
		case !e.prop.IsDefault:
			fmt.Fprintf(&b, "%-*s  -  %s\n", width, e.name, displayValue(e.prop))
		case !hideDefault:
			fmt.Fprintf(&b, "%-*s  D  %s\n", width, e.name, displayValue(e.prop))
		}
	}
	return b.String()
}

// displayValue is a property value as the Python tools print it: a qube or
// label that is none prints as "None".
func displayValue(p admin.Property) string {
	if p.Value == "" && (p.Type == admin.PropVM || p.Type == admin.PropLabel) {
		return "None"
	}
	return p.Value
}

func prefsHelp(ctx context.Context, t *tool, h holder) error {
	names, err := h.list(ctx)
	if err != nil {
		return failure(err)
	}
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	names = slices.Sorted(slices.Values(names))
	helps := make([]string, len(names))
	if err := parallel(ctx, len(names), func(ctx context.Context, i int) error {
		var err error
		helps[i], err = h.help(ctx, names[i])
		return err
	}); err != nil {
		return failure(err)
	}
	var b strings.Builder
	for i, n := range names {
		b.WriteString(wrapText(fmt.Sprintf("%-*s  %s", width, n, helps[i]), 80, "  ", strings.Repeat(" ", width+6)))
		b.WriteString("\n")
	}
	_, err = fmt.Fprint(t.env.stdout, b.String())
	return err
}
