package main

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// lsOptions are the options of qvm-ls.
type lsOptions struct {
	format                  string
	formatSet               bool // --format given explicitly
	fields                  string
	disk, network, kernel   bool
	tree                    bool
	rawData, rawList        bool
	helpFormats, helpCols   bool
	classes, labels         []string
	tags, excludeTags       []string
	templateSource, netvmIs []string
	features, prefs         []string
	running, paused, halted bool
	internal, servicevm     string
	pendingUpdate           bool
	sortBy                  string
	reverse, ignoreCase     bool
	spinner, noSpinner      bool
	all                     bool
	exclude                 []string
}

func newLsCmd(t *tool) *cobra.Command {
	o := &lsOptions{}
	cmd := &cobra.Command{
		Use:     "TOOL [options] [VMNAME...]",
		Long:    "List Qubes domains and their parameters.",
		Args:    cobra.ArbitraryArgs,
		Example: "  TOOL\n  TOOL --running -O name,label,netvm\n  TOOL --raw-list 'sys-*'\n  TOOL -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			o.formatSet = cmd.Flags().Changed("format")
			return runLs(cmd.Context(), t, o, args)
		},
		ValidArgsFunction: completeVMs(t, -1),
	}
	cmd.Example = strings.ReplaceAll(cmd.Example, "TOOL", t.spec.name)
	fs := cmd.Flags()
	fs.StringVarP(&o.format, "format", "o", "simple", "preset format (simple, network, kernel, full, prefs, disk) or json")
	fs.StringVarP(&o.fields, "fields", "O", "", "user specified format: comma-separated columns (see --help-columns)")
	fs.BoolVarP(&o.tree, "tree", "t", false, "sort domain list as network tree")
	fs.BoolVar(&o.rawData, "raw-data", false, "display specified data of specified VMs; intended for bash-parsing")
	fs.BoolVar(&o.rawList, "raw-list", false, "same as --raw-data --fields=name")
	fs.BoolVarP(&o.disk, "disk", "d", false, "same as --format=disk")
	fs.BoolVarP(&o.network, "network", "n", false, "same as --format=network")
	fs.BoolVarP(&o.kernel, "kernel", "k", false, "same as --format=kernel")
	fs.BoolVar(&o.helpFormats, "help-formats", false, "list all available formats with their definitions and exit")
	fs.BoolVar(&o.helpCols, "help-columns", false, "list all available columns with short descriptions and exit")
	fs.StringSliceVar(&o.classes, "class", nil, "show only qubes of specific class(es)")
	fs.StringSliceVar(&o.labels, "label", nil, "show only qubes with specific label(s)")
	fs.StringSliceVar(&o.tags, "tags", nil, "show only qubes having specific tag(s)")
	fs.StringSliceVar(&o.excludeTags, "exclude-tags", nil, "exclude qubes having specific tag(s)")
	fs.BoolVar(&o.running, "running", false, "show running VMs")
	fs.BoolVar(&o.paused, "paused", false, "show paused VMs")
	fs.BoolVar(&o.halted, "halted", false, "show halted VMs")
	fs.StringArrayVar(&o.templateSource, "template-source", nil, `filter results to the qubes based on the TEMPLATE; "" means None`)
	fs.StringArrayVar(&o.netvmIs, "netvm-is", nil, "filter results to the qubes connecting via NETVM")
	fs.StringVar(&o.internal, "internal", "both", "show only internal qubes (y) or hide them (n)")
	fs.StringVar(&o.servicevm, "servicevm", "both", "show only ServiceVMs (y) or hide them (n)")
	fs.BoolVar(&o.pendingUpdate, "pending-update", false, "filter results to qubes pending for update")
	fs.StringArrayVar(&o.features, "features", nil, `filter results to qubes that match all FEATURE=VALUE; omitted VALUE means unset, '' means blank`)
	fs.StringArrayVar(&o.prefs, "prefs", nil, `filter results to qubes that match all PREFERENCE=VALUE; omitted VALUE means unset, '' means blank`)
	fs.StringVar(&o.sortBy, "sort", "NAME", "sort based on provided column rather than NAME")
	fs.BoolVar(&o.reverse, "reverse", false, "reverse sort")
	fs.BoolVar(&o.ignoreCase, "ignore-case", false, "ignore case distinctions when sorting")
	fs.BoolVar(&o.spinner, "spinner", false, "ignored; no spinner is shown")
	fs.BoolVar(&o.noSpinner, "no-spinner", false, "ignored; no spinner is shown")
	fs.BoolVar(&o.all, "all", false, "list all qubes (the default)")
	fs.StringArrayVar(&o.exclude, "exclude", nil, "exclude the qube from the listing")
	markMulti(fs, "class", "label", "tags", "exclude-tags", "template-source", "netvm-is", "features", "prefs")
	return cmd
}

// lsPlan is what runLs lists: the columns and the output mode.
type lsPlan struct {
	columns []*column
	json    bool
}

func (o *lsOptions) plan() (lsPlan, error) {
	var p lsPlan
	preset := "" // chosen by an option; the default is "simple"
	for _, s := range []struct {
		set  bool
		name string
	}{{o.disk, "disk"}, {o.network, "network"}, {o.kernel, "kernel"}} {
		if s.set {
			if preset != "" {
				return p, usageErrorf("argument --%s: not allowed with --%s", s.name, preset)
			}
			preset = s.name
		}
	}
	switch {
	case o.format == "json": // an output mode: combines with the others
		p.json = true
	case lsFormats[o.format] == nil:
		return p, usageErrorf("argument --format/-o: invalid choice: %q (choose from disk, full, kernel, network, prefs, simple, json)", o.format)
	case o.formatSet:
		if preset != "" || o.fields != "" {
			return p, usageErrorf("argument --format/-o: not allowed with --fields, --disk, --network or --kernel")
		}
		preset = o.format
	}
	if o.fields != "" && preset != "" {
		return p, usageErrorf("argument --fields/-O: not allowed with --%s", preset)
	}
	if o.rawList {
		o.rawData = true
		o.fields = "name"
	}
	var names []string
	switch {
	case o.fields != "":
		names = strings.Split(o.fields, ",")
	case preset != "":
		names = lsFormats[preset]
	default:
		names = lsFormats["simple"]
	}
	for _, n := range names {
		p.columns = append(p.columns, lookupColumn(n))
	}
	for _, v := range []struct{ name, val string }{{"internal", o.internal}, {"servicevm", o.servicevm}} {
		switch v.val {
		case "both", "y", "yes", "n", "no":
		default:
			return p, usageErrorf("argument --%s: invalid choice: %q (choose from 'y', 'yes', 'n', 'no')", v.name, v.val)
		}
	}
	for _, f := range append(slices.Clone(o.features), o.prefs...) {
		if k, _, ok := strings.Cut(f, "="); !ok || k == "" {
			which := "--features"
			if slices.Contains(o.prefs, f) {
				which = "--prefs"
			}
			return p, usageErrorf("Invalid argument: %s %s", which, f)
		}
	}
	return p, nil
}

func runLs(ctx context.Context, t *tool, o *lsOptions, args []string) error {
	if o.helpFormats {
		fmt.Fprint(t.env.stdout, lsHelpFormats())
		return nil
	}
	if o.helpCols {
		fmt.Fprint(t.env.stdout, lsHelpColumns())
		return nil
	}
	plan, err := o.plan()
	if err != nil {
		return err
	}
	if o.all && len(args) > 0 {
		return usageErrorf("argument --all: not allowed with argument VMNAME")
	}
	if len(o.exclude) > 0 && len(args) > 0 {
		return usageErrorf("--exclude can only be used with --all")
	}

	c := t.client()
	infos, err := c.ListVMs(ctx)
	if err != nil {
		return failure(err)
	}
	warnQuarantined(ctx, t, c)
	l := newLsLoader(c, infos)
	vms, err := selectVMs(l.all, args, o.exclude, true)
	if err != nil {
		return err
	}
	for _, col := range plan.columns {
		l.wanted = append(l.wanted, col.props...)
	}
	l.wanted = append(l.wanted, "label", "template", "netvm", "provides_network")
	for _, f := range o.prefs {
		k, _, _ := strings.Cut(f, "=")
		l.wanted = append(l.wanted, k)
	}
	vms, err = o.filter(ctx, l, vms)
	if err != nil {
		return failure(err)
	}
	if err := fetchColumns(ctx, l, vms, plan.columns, o.tree); err != nil {
		return failure(err)
	}
	vms = present(vms)
	slices.SortFunc(vms, func(a, b *lsVM) int { return strings.Compare(a.Name, b.Name) })

	if o.rawData {
		_, err := fmt.Fprint(t.env.stdout, rawRows(vms, plan.columns, l))
		return err
	}
	var rows []lsRow
	if o.tree {
		for _, n := range networkTree(vms, l) {
			rows = append(rows, lsRow{vm: n.vm, depth: n.depth})
		}
	} else {
		for _, vm := range vms {
			rows = append(rows, lsRow{vm: vm})
		}
	}
	for i := range rows {
		for _, col := range plan.columns {
			rows[i].cells = append(rows[i].cells, col.value(rows[i].vm, l))
		}
	}
	if !o.tree {
		o.sortRows(rows, plan.columns)
	}
	if plan.json {
		return writeJSON(t.env.stdout, jsonRows(rows, plan.columns))
	}
	_, err = fmt.Fprint(t.env.stdout, tableRows(rows, plan.columns))
	return err
}

// lsRow is one line of the listing.
type lsRow struct {
	vm    *lsVM
	depth int // in the network tree
	cells []cell
}

// rawRows formats --raw-data output: cells joined by "|", no header.
func rawRows(vms []*lsVM, cols []*column, l *lsLoader) string {
	var b strings.Builder
	for _, vm := range vms {
		for i, col := range cols {
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString(col.value(vm, l).String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// sortRows sorts rows (already in name order) by the --sort column, if it
// is shown, as the Python tool does: a stable sort, by number for numeric
// columns.
func (o *lsOptions) sortRows(rows []lsRow, cols []*column) {
	key := strings.ToUpper(o.sortBy)
	idx := slices.IndexFunc(cols, func(c *column) bool { return c.head == key })
	if idx < 0 {
		return
	}
	less := func(a, b lsRow) bool {
		x, y := a.cells[idx].String(), b.cells[idx].String()
		if cols[idx].numeric {
			return sortNumber(x) < sortNumber(y)
		}
		if o.ignoreCase {
			x, y = strings.ToUpper(x), strings.ToUpper(y)
		}
		return x < y
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if o.reverse {
			return less(rows[j], rows[i])
		}
		return less(rows[i], rows[j])
	})
}

// tableRows formats the listing as a table with a header.
func tableRows(rows []lsRow, cols []*column) string {
	table := make([][]string, 0, len(rows)+1)
	head := make([]string, len(cols))
	for i, col := range cols {
		head[i] = col.head
	}
	table = append(table, head)
	for _, r := range rows {
		line := make([]string, len(r.cells))
		for i, c := range r.cells {
			line[i] = c.String()
			if r.depth > 0 && cols[i].head == "NAME" {
				line[i] = strings.Repeat("  ", r.depth-1) + "└─" + line[i]
			}
		}
		table = append(table, line)
	}
	return formatTable(table)
}

// jsonRows returns the listing as JSON objects keyed by column.
func jsonRows(rows []lsRow, cols []*column) []jsonObject {
	out := make([]jsonObject, 0, len(rows))
	for _, r := range rows {
		obj := make(jsonObject, len(cols))
		for i, col := range cols {
			obj[i] = jsonField{col.key(), r.cells[i].json}
		}
		out = append(out, obj)
	}
	return out
}

// sortNumber is the sort key of a numeric column: the number, without a
// trailing "%", or 0.
func sortNumber(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "%"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// selectVMs chooses the qubes named on the command line (with shell
// wildcards), or all of them minus exclude. withAdminVM keeps dom0 in "all".
func selectVMs(all []*lsVM, names, exclude []string, withAdminVM bool) ([]*lsVM, error) {
	byName := map[string]*lsVM{}
	for _, vm := range all {
		byName[vm.Name] = vm
	}
	if len(names) == 0 {
		var out []*lsVM
		for _, vm := range all {
			if slices.Contains(exclude, vm.Name) || (!withAdminVM && vm.Class == "AdminVM") {
				continue
			}
			out = append(out, vm)
		}
		return out, nil
	}
	var chosen []string
	for _, n := range names {
		if strings.ContainsAny(n, "*?[") {
			pat := wildcard(n)
			for _, vm := range all {
				if ok, _ := path.Match(pat, vm.Name); ok && !slices.Contains(chosen, vm.Name) {
					chosen = append(chosen, vm.Name)
				}
			}
		} else if !slices.Contains(chosen, n) {
			chosen = append(chosen, n)
		}
	}
	out := make([]*lsVM, 0, len(chosen))
	for _, n := range chosen {
		vm := byName[n]
		if vm == nil {
			return nil, usageErrorf("no such domain: '%s'", n)
		}
		out = append(out, vm)
	}
	return out, nil
}

// wildcard turns a Python fnmatch pattern into a path.Match pattern.
func wildcard(p string) string {
	p = strings.ReplaceAll(p, `\`, `\\`)
	return strings.ReplaceAll(p, "[!", "[^")
}

// filter applies qvm-ls's filters in the Python tool's order, fetching for
// each only what it needs about the qubes still listed.
func (o *lsOptions) filter(ctx context.Context, l *lsLoader, vms []*lsVM) ([]*lsVM, error) {
	keep := func(pred func(vm *lsVM) bool) {
		vms = slices.DeleteFunc(present(vms), func(vm *lsVM) bool { return !pred(vm) })
	}
	if len(o.classes) > 0 {
		keep(func(vm *lsVM) bool { return slices.Contains(o.classes, vm.Class) })
	}
	if len(o.labels) > 0 {
		if err := l.loadProps(ctx, vms); err != nil {
			return nil, err
		}
		keep(func(vm *lsVM) bool { p, _ := vm.prop("label"); return slices.Contains(o.labels, p.Value) })
	}
	if len(o.tags) > 0 || len(o.excludeTags) > 0 {
		if err := l.loadTags(ctx, vms); err != nil {
			return nil, err
		}
		hasAny := func(vm *lsVM, tags []string) bool {
			return slices.ContainsFunc(tags, func(t string) bool { return vm.tags[t] })
		}
		if len(o.tags) > 0 {
			keep(func(vm *lsVM) bool { return hasAny(vm, o.tags) })
		}
		if len(o.excludeTags) > 0 {
			keep(func(vm *lsVM) bool { return !hasAny(vm, o.excludeTags) })
		}
	}
	// --template-source and --netvm-is: a qube without the property counts
	// as "", one whose value is none matches nothing (as in Python).
	for _, f := range []struct {
		prop   string
		values []string
	}{{"template", o.templateSource}, {"netvm", o.netvmIs}} {
		if len(f.values) == 0 {
			continue
		}
		if err := l.loadProps(ctx, vms); err != nil {
			return nil, err
		}
		keep(func(vm *lsVM) bool {
			p, ok := vm.prop(f.prop)
			if !ok {
				return slices.Contains(f.values, "")
			}
			return p.Value != "" && slices.Contains(f.values, p.Value)
		})
	}
	truthy := []string{"1", "true", "True"}
	for _, f := range []struct{ name, val string }{{"internal", o.internal}, {"servicevm", o.servicevm}} {
		if f.val == "both" {
			continue
		}
		if err := l.loadFeature(ctx, vms, f.name); err != nil {
			return nil, err
		}
		want := f.val == "y" || f.val == "yes"
		keep(func(vm *lsVM) bool {
			v, ok := vm.feature(f.name)
			return (ok && slices.Contains(truthy, v)) == want
		})
	}
	if o.pendingUpdate {
		if err := l.loadFeature(ctx, vms, "updates-available"); err != nil {
			return nil, err
		}
		keep(func(vm *lsVM) bool { v, _ := vm.feature("updates-available"); return v != "" })
	}
	for _, f := range o.features {
		key, value, _ := strings.Cut(f, "=")
		if err := l.loadFeature(ctx, vms, key); err != nil {
			return nil, err
		}
		keep(func(vm *lsVM) bool {
			v, ok := vm.feature(key)
			switch value {
			case "":
				return !ok
			case "''", `""`:
				return ok && v == ""
			}
			return ok && v == value
		})
	}
	for _, f := range o.prefs {
		key, value, _ := strings.Cut(f, "=")
		if err := l.loadProps(ctx, vms); err != nil {
			return nil, err
		}
		keep(func(vm *lsVM) bool {
			p, ok := vm.prop(key)
			switch value {
			case "":
				return !ok || p.Value == ""
			case "''", `""`:
				return ok && p.Value == "" && p.Type == admin.PropStr
			}
			v := p.Value
			if ok && v == "" && (p.Type == admin.PropVM || p.Type == admin.PropLabel) {
				v = "None"
			}
			return ok && v == value
		})
	}
	var states []string
	for _, s := range []struct {
		on   bool
		name string
	}{{o.running, "running"}, {o.paused, "paused"}, {o.halted, "halted"}} {
		if s.on {
			states = append(states, s.name)
		}
	}
	if len(states) > 0 {
		keep(func(vm *lsVM) bool { return slices.Contains(states, strings.ToLower(vm.State)) })
	}
	return present(vms), nil
}

// fetchColumns fetches what the columns need about vms.
func fetchColumns(ctx context.Context, l *lsLoader, vms []*lsVM, cols []*column, tree bool) error {
	var need needs
	var vols []string
	allVols := false
	for _, c := range cols {
		need |= c.needs
		if c.needs&needVolumes != 0 {
			if c.volumes == nil {
				allVols = true
			}
			vols = append(vols, c.volumes...)
		}
	}
	if tree {
		need |= needProps
	}
	if need&needProps != 0 {
		if err := l.loadProps(ctx, vms); err != nil {
			return err
		}
	}
	if need&needNetvmProps != 0 {
		if err := l.loadNetvmProps(ctx, present(vms)); err != nil {
			return err
		}
	}
	if need&needVolumes != 0 {
		if allVols {
			vols = nil
		}
		if err := l.loadVolumes(ctx, present(vms), vols); err != nil {
			return err
		}
	}
	if need&needState != 0 {
		if err := l.loadState(ctx, present(vms)); err != nil {
			return err
		}
	}
	return nil
}

// treeNode is a qube and its depth in the network tree.
type treeNode struct {
	depth int
	vm    *lsVM
}

// networkTree orders vms as the Python qvm-ls --tree does: qubes without
// network first, then each network provider without a netvm followed by the
// qubes connected to it, recursively.
func networkTree(vms []*lsVM, l *lsLoader) []treeNode {
	listed := map[*lsVM]bool{}
	for _, vm := range vms {
		listed[vm] = true
	}
	netvm := func(vm *lsVM) (string, bool) {
		p, ok := vm.prop("netvm")
		return p.Value, ok
	}
	provides := func(vm *lsVM) bool { p, _ := vm.prop("provides_network"); return p.Value == "True" }
	var children func(parent *lsVM, depth int) []treeNode
	children = func(parent *lsVM, depth int) []treeNode {
		var out []treeNode
		// connected_vms, in the order of admin.vm.List
		for _, vm := range l.all {
			if nv, _ := netvm(vm); nv != parent.Name || !listed[vm] {
				continue
			}
			out = append(out, treeNode{depth, vm})
			if provides(vm) {
				out = append(out, children(vm, depth+1)...)
			}
		}
		return out
	}
	var tree []treeNode
	rest := slices.Clone(vms)
	for _, vm := range vms {
		nv, ok := netvm(vm)
		if !ok || (nv == "" && !provides(vm)) {
			tree = append(tree, treeNode{0, vm})
			rest = slices.DeleteFunc(rest, func(x *lsVM) bool { return x == vm })
		}
	}
	for _, vm := range rest {
		if nv, _ := netvm(vm); nv == "" && provides(vm) {
			tree = append(tree, treeNode{0, vm})
			tree = append(tree, children(vm, 1)...)
		}
	}
	return tree
}

func lsHelpFormats() string {
	names := make([]string, 0, len(lsFormats))
	width := 0
	for n := range lsFormats {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Available formats:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, n, strings.ToUpper(strings.Join(lsFormats[n], ",")))
	}
	b.WriteString("\n")
	return b.String()
}

func lsHelpColumns() string {
	heads := make([]string, 0, len(builtinColumns))
	width := 0
	for h := range builtinColumns {
		heads = append(heads, h)
		width = max(width, len(h))
	}
	sort.Strings(heads)
	var b strings.Builder
	b.WriteString("Available columns:\n")
	for _, h := range heads {
		b.WriteString(wrapText(fmt.Sprintf("%-*s  %s", width, h, builtinColumns[h].doc), 80, "  ", strings.Repeat(" ", width+6)))
		b.WriteString("\n")
	}
	b.WriteString("\nAdditionally any VM property may be used as a column, see qvm-prefs --help-properties for available values\n\n")
	return b.String()
}

// warnQuarantined tells the user about qubes the daemon could not load: they
// are not in the listing, and the user should know why. Daemons without
// admin.vm.quarantine.List (the reference) have none to report.
func warnQuarantined(ctx context.Context, t *tool, c *admin.Client) {
	if t.verbosity() < 1 {
		return
	}
	qs, err := c.Quarantined(ctx)
	if err != nil {
		return
	}
	for _, q := range qs {
		fmt.Fprintf(t.env.stderr, "%s: warning: %s (%s) is not listed: its record in qubes.xml does not load (%s); it is kept unchanged until fixed\n",
			t.spec.name, q.Name, q.Class, q.Error)
	}
}
