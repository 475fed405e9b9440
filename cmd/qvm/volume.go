package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// qvm-volume: list and manage the volumes of qubes, as the Python tool.

// volumeCommands maps qvm-volume's commands and their aliases to the
// command.
var volumeCommands = map[string]string{
	"info": "info", "i": "info",
	"config": "config", "c": "config", "set": "config", "s": "config",
	"resize": "resize", "extend": "resize",
	"list": "list", "ls": "list", "l": "list",
	"revert": "revert", "rv": "revert", "r": "revert",
	"import": "import",
	"clone":  "clone",
	"clear":  "clear",
}

const volumeChoices = "'info', 'i', 'config', 'c', 'set', 's', 'resize', 'extend', 'list', 'ls', 'l', 'revert', 'rv', 'r', 'import', 'clone', 'clear'"

// volumeFlags are the options each command takes (besides the common ones).
var volumeFlags = map[string][]string{
	"list":   {"pool", "full", "all", "exclude", "format"},
	"info":   {"format"},
	"resize": {"force"},
	"clone":  {"force"},
	"clear":  {"force"},
	"import": {"size", "no-resize", "internal-socket"},
}

// InternalSocketEnv overrides where qvm-volume import finds qubesd's
// internal socket.
const InternalSocketEnv = "QUBESD_INTERNAL_SOCKET"

type volumeOptions struct {
	pools          []string
	full           bool
	all            bool
	exclude        []string
	format         string
	force          bool
	size           string
	noResize       bool
	internalSocket string
}

func newVolumeCmd(t *tool) *cobra.Command {
	o := &volumeOptions{}
	cmd := &cobra.Command{
		Use: "TOOL [options] [COMMAND [ARGS...]]",
		Long: "Manage the storage volumes of qubes.\n\n" +
			"  list (ls, l) [-p POOL]... [--full] [--all [--exclude VM]... | VMNAME...]\n" +
			"                       list volumes (the default command)\n" +
			"  info (i) VM:VOLUME [PROPERTY]\n" +
			"                       show a volume's properties, or one of them ('revisions' lists the revisions)\n" +
			"  config (c, set, s) VM:VOLUME PROPERTY VALUE\n" +
			"                       set rw, revisions_to_keep or ephemeral\n" +
			"  resize (extend) [-f] VM:VOLUME SIZE\n" +
			"                       resize a volume (SIZE in bytes, or like 10GiB, 10G); shrinking needs --force\n" +
			"  revert (rv, r) VM:VOLUME [REVISION]\n" +
			"                       revert to a revision (default: the latest)\n" +
			"  import [--size SIZE | --no-resize] VM:VOLUME PATH\n" +
			"                       import a file, or standard input ('-'), into a volume\n" +
			"  clone [-f] SRC_VM:VOLUME DST_VM:VOLUME\n" +
			"                       copy a volume's data into another qube's volume\n" +
			"  clear [-f] VM:VOLUME  empty a volume",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			sub, ok := volumeCommands[args[0]]
			if !ok {
				return usageErrorf("argument command: invalid choice: '%s' (choose from %s)", args[0], volumeChoices)
			}
			n := len(args) - 1
			need := map[string][2]int{ // min, max positional arguments
				"info": {1, 2}, "config": {3, 3}, "resize": {2, 2}, "revert": {1, 2},
				"import": {2, 2}, "clone": {2, 2}, "clear": {1, 1},
			}
			names := map[string][]string{
				"info": {"VM:VOLUME"}, "config": {"VM:VOLUME", "property", "value"}, "resize": {"VM:VOLUME", "size"},
				"revert": {"VM:VOLUME"}, "import": {"VM:VOLUME", "PATH"},
				"clone": {"SOURCE_VM:SOURCE_VOLUME", "DESTINATION_VM:DESTINATION_VOLUME"}, "clear": {"VM:VOLUME"},
			}
			if sub == "list" {
				return nil
			}
			if r := need[sub]; n < r[0] {
				return usageErrorf("the following arguments are required: %s", strings.Join(names[sub][n:], ", "))
			} else if n > r[1] {
				return usageErrorf("unrecognized arguments: %s", strings.Join(args[1+r[1]:], " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sub := "list"
			if len(args) > 0 {
				sub = volumeCommands[args[0]]
				args = args[1:]
			}
			if err := onlyFlags(cmd.Flags(), sub, volumeFlags[sub]); err != nil {
				return err
			}
			return runVolume(cmd.Context(), t, o, sub, args)
		},
		ValidArgsFunction: completeVolumeArgs(t),
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&o.pools, "pool", "p", nil, "list: only volumes in this pool (repeatable)")
	fs.BoolVar(&o.full, "full", false, "list: print the full line for each POOL:VOLUME and qube, even on a terminal")
	fs.BoolVar(&o.all, "all", false, "list: all qubes")
	fs.StringArrayVar(&o.exclude, "exclude", nil, "list: exclude the qube from --all")
	fs.BoolVarP(&o.force, "force", "f", false, "resize: allow shrinking; clone, clear: do not ask for confirmation")
	fs.StringVar(&o.size, "size", "", "import: set the volume's size to this (bytes, or like 10GiB) before importing")
	fs.BoolVar(&o.noResize, "no-resize", false, "import: do not resize the volume before importing")
	fs.StringVar(&o.internalSocket, "internal-socket", "", "import: qubesd's internal socket (default: $"+InternalSocketEnv+", else qubesd.internal.sock beside the qubesd socket)")
	addOutputFlag(fs, &o.format)
	_ = cmd.RegisterFlagCompletionFunc("pool", completePools(t))
	_ = cmd.RegisterFlagCompletionFunc("exclude", completeVMsFlag(t))
	return cmd
}

// onlyFlags refuses the options that command sub of a tool does not take,
// as argparse's subparsers do.
func onlyFlags(fs *pflag.FlagSet, sub string, allowed []string) error {
	var bad []string
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "verbose", "quiet", "force-root", "socket", "version", "help":
			return
		}
		if !slices.Contains(allowed, f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		if sub == "" {
			return usageErrorf("unrecognized arguments: %s", strings.Join(bad, " "))
		}
		return usageErrorf("unrecognized arguments for %s: %s", sub, strings.Join(bad, " "))
	}
	return nil
}

// volumeRef is a VM:VOLUME argument.
type volumeRef struct{ vm, volume string }

func (r volumeRef) String() string { return r.vm + ":" + r.volume }

// parseVolumeRef splits VM:VOLUME as the Python tool does: exactly one
// colon.
func parseVolumeRef(s string) (volumeRef, error) {
	f := strings.Split(s, ":")
	if len(f) != 2 {
		return volumeRef{}, usageErrorf("expected a vm & volume combination like foo:bar")
	}
	return volumeRef{f[0], f[1]}, nil
}

// resolveVolume checks that the qube exists and has the volume, with the
// Python tool's messages.
func resolveVolume(ctx context.Context, c *admin.Client, vms []admin.VMInfo, ref volumeRef) error {
	if !slices.ContainsFunc(vms, func(vm admin.VMInfo) bool { return vm.Name == ref.vm }) {
		return &exitError{code: 1, msg: fmt.Sprintf("no vm '%s'", ref.vm)}
	}
	vols, err := c.Volumes(ctx, ref.vm)
	if err != nil {
		return volumeFailure(err)
	}
	if !slices.Contains(vols, ref.volume) {
		return &exitError{code: 1, msg: fmt.Sprintf("vm '%s' has no volume '%s'", ref.vm, ref.volume)}
	}
	return nil
}

// errorLine is an error the Python tool prints as "Error: msg" (its
// print_error), with status 1.
type errorLine struct{ err error }

func (e *errorLine) Error() string { return e.err.Error() }
func (e *errorLine) Unwrap() error { return e.err }

// volumeFailure reports an error as qvm-volume does: "Error: msg", status
// 1; command-line errors keep their form.
func volumeFailure(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	return &errorLine{err}
}

func runVolume(ctx context.Context, t *tool, o *volumeOptions, sub string, args []string) error {
	if err := checkOutputFormat(o.format); err != nil {
		return err
	}
	err := runVolumeCmd(ctx, t, o, sub, args)
	var el *errorLine
	if errors.As(err, &el) {
		fmt.Fprintln(t.env.stderr, "Error:", el.err)
		return exitStatus(1)
	}
	return err
}

func runVolumeCmd(ctx context.Context, t *tool, o *volumeOptions, sub string, args []string) error {
	c := t.client()
	if sub == "list" {
		return listVolumes(ctx, t, c, o, args)
	}
	// the VM:VOLUME arguments: the first one, and clone's second one
	nrefs := 1
	if sub == "clone" {
		nrefs = 2
	}
	var refs []volumeRef
	for _, a := range args[:nrefs] {
		r, err := parseVolumeRef(a)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	vms, err := c.ListVMs(ctx)
	if err != nil {
		return volumeFailure(err)
	}
	for _, r := range refs {
		if err := resolveVolume(ctx, c, vms, r); err != nil {
			return err
		}
	}
	ref, args := refs[0], args[1:]
	switch sub {
	case "info":
		return volumeInfo(ctx, t, c, o, ref, args)
	case "config":
		switch args[0] {
		case "rw", "revisions_to_keep", "ephemeral":
		default:
			return &errorLine{fmt.Errorf("Invalid property: %s", args[0])}
		}
		return volumeFailure(c.SetVolumeOption(ctx, ref.vm, ref.volume, args[0], args[1]))
	case "resize":
		size, err := parseSize(args[0])
		if err != nil {
			return &errorLine{err}
		}
		return volumeFailure(resizeVolume(ctx, c, ref, size, o.force))
	case "revert":
		rev := ""
		if len(args) > 0 && args[0] != "" {
			rev = args[0]
		} else {
			revs, err := c.VolumeRevisions(ctx, ref.vm, ref.volume)
			if err != nil {
				return volumeFailure(err)
			}
			if len(revs) == 0 {
				return &errorLine{errors.New("No snapshots available")}
			}
			rev = revs[len(revs)-1]
		}
		return volumeFailure(c.RevertVolume(ctx, ref.vm, ref.volume, rev))
	case "clone":
		return cloneVolumeData(ctx, t, c, ref, refs[1], o.force)
	case "clear":
		if !o.force {
			fmt.Fprint(t.env.stdout, "This will empty the volume!\n(Data may be preserved in a revision.)\n")
			if !confirm(t, "Are you sure? [y/N] ") {
				fmt.Fprintln(t.env.stdout, "Clear cancelled.")
				return nil
			}
		}
		return volumeFailure(c.ClearVolume(ctx, ref.vm, ref.volume))
	case "import":
		return importVolume(ctx, t, c, o, ref, args[0])
	}
	return fmt.Errorf("unknown command %q", sub)
}

// confirm asks a yes/no question on stdout, as Python's input() does; only
// "y" or "Y" is yes, and the end of input is no.
func confirm(t *tool, prompt string) bool {
	fmt.Fprint(t.env.stdout, prompt)
	line, _ := bufio.NewReader(t.env.stdin).ReadString('\n')
	return strings.ToLower(strings.TrimRight(line, "\r\n")) == "y"
}

// resizeVolume resizes, refusing to shrink unless allowShrink, with the
// reference client's message.
func resizeVolume(ctx context.Context, c *admin.Client, ref volumeRef, size int64, allowShrink bool) error {
	if !allowShrink {
		vi, err := c.VolumeInfo(ctx, ref.vm, ref.volume)
		if err != nil {
			return err
		}
		if size < vi.Size {
			return fmt.Errorf("Refusing to shrink volume %s from %d to %d bytes.\n"+
				"If you really know what you are doing: Manually shrink the filesystem on the volume first, "+
				"and repartition the volume if it is partitioned. Do this in a VM, not in dom0. "+
				"Then use 'qvm-volume resize --force %s %d'", ref, vi.Size, size, ref, size)
		}
	}
	return c.ResizeVolume(ctx, ref.vm, ref.volume, size)
}

func cloneVolumeData(ctx context.Context, t *tool, c *admin.Client, src, dst volumeRef, force bool) error {
	for _, r := range []volumeRef{src, dst} {
		vi, err := c.VolumeInfo(ctx, r.vm, r.volume)
		if err != nil {
			return volumeFailure(err)
		}
		if !vi.SaveOnStop {
			return &errorLine{errors.New("Volumes must be save_on_stop for cloning")}
		}
	}
	if !force {
		fmt.Fprintf(t.env.stdout, "This will clone the data from %s into %s!\n(Data in %s may be preserved in a revision.)\n", src, dst, dst)
		if !confirm(t, "Are you sure? [y/N] ") {
			fmt.Fprintln(t.env.stdout, "Clone cancelled.")
			return nil
		}
	}
	return volumeFailure(c.CloneVolume(ctx, src.vm, src.volume, dst.vm, dst.volume))
}

// sizeUnits are the suffixes parseSize knows, in the order the Python
// tool tries them.
var sizeUnits = []struct {
	unit string
	mult int64
}{
	{"K", 1000}, {"KB", 1000}, {"M", 1000 * 1000}, {"MB", 1000 * 1000},
	{"G", 1000 * 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"KI", 1024}, {"KIB", 1024}, {"MI", 1024 * 1024}, {"MIB", 1024 * 1024},
	{"GI", 1024 * 1024 * 1024}, {"GIB", 1024 * 1024 * 1024},
}

// parseSize reads a size as qubesadmin.utils.parse_size does: a number of
// bytes, or a number with a unit K, KB, M, MB, G, GB (powers of 1000) or
// Ki, KiB, Mi, MiB, Gi, GiB (powers of 1024), in any case.
func parseSize(s string) (int64, error) {
	size := strings.ToUpper(strings.TrimSpace(s))
	invalid := fmt.Errorf("Invalid size: %s.", size)
	num, mult := size, int64(1)
	if strings.Trim(size, "0123456789") != "" {
		found := false
		for _, u := range sizeUnits {
			if strings.HasSuffix(size, u.unit) {
				num, mult, found = strings.TrimSpace(size[:len(size)-len(u.unit)]), u.mult, true
				break
			}
		}
		if !found {
			return 0, invalid
		}
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(num, "+"), 10, 64)
	if err != nil || n < 0 || (n > 0 && mult > (1<<63-1)/n) {
		return 0, invalid
	}
	return n * mult, nil
}

func volumeInfo(ctx context.Context, t *tool, c *admin.Client, o *volumeOptions, ref volumeRef, args []string) error {
	prop := ""
	if len(args) > 0 {
		prop = args[0]
	}
	if prop == "revisions" {
		revs, err := c.VolumeRevisions(ctx, ref.vm, ref.volume)
		if err != nil {
			return volumeFailure(err)
		}
		if o.format == "json" {
			return writeJSON(t.env.stdout, nonNil(revs))
		}
		for _, r := range revs {
			fmt.Fprintln(t.env.stdout, r)
		}
		return nil
	}
	vi, err := c.VolumeInfo(ctx, ref.vm, ref.volume)
	if err != nil {
		return volumeFailure(err)
	}
	items := []struct {
		key  string
		text string
		json any
	}{
		{"pool", vi.Pool, vi.Pool},
		{"vid", vi.VID, vi.VID},
		{"rw", pyBool(vi.RW), vi.RW},
		{"source", vi.Source, nullIfEmpty(vi.Source)},
		{"save_on_stop", pyBool(vi.SaveOnStop), vi.SaveOnStop},
		{"snap_on_start", pyBool(vi.SnapOnStart), vi.SnapOnStart},
		{"size", strconv.FormatInt(vi.Size, 10), vi.Size},
		{"usage", strconv.FormatInt(vi.Usage, 10), vi.Usage},
		{"revisions_to_keep", strconv.FormatInt(vi.RevisionsToKeep, 10), vi.RevisionsToKeep},
		{"ephemeral", pyBool(vi.Ephemeral), vi.Ephemeral},
		{"is_outdated", pyBool(vi.IsOutdated), vi.IsOutdated},
	}
	if prop != "" {
		for _, it := range items {
			if it.key == prop {
				if o.format == "json" {
					return writeJSON(t.env.stdout, it.json)
				}
				fmt.Fprintln(t.env.stdout, it.text)
				return nil
			}
		}
		return &errorLine{fmt.Errorf("No such property: %s", prop)}
	}
	revs, err := c.VolumeRevisions(ctx, ref.vm, ref.volume)
	if err != nil {
		return volumeFailure(err)
	}
	if o.format == "json" {
		obj := jsonObject{}
		for _, it := range items {
			obj = append(obj, jsonField{it.key, it.json})
		}
		obj = append(obj, jsonField{"revisions", nonNil(revs)})
		return writeJSON(t.env.stdout, obj)
	}
	var rows [][]string
	for _, it := range items {
		text := it.text
		if it.key == "revisions_to_keep" && vi.RevisionsToKeep == -1 {
			text = "-1 (snapshot disabled)"
		}
		rows = append(rows, []string{it.key, text})
	}
	fmt.Fprint(t.env.stdout, formatTable(rows))
	if len(revs) == 0 {
		fmt.Fprintln(t.env.stdout, "List of available revisions (for revert): none")
		return nil
	}
	fmt.Fprintln(t.env.stdout, "List of available revisions (for revert):")
	for _, r := range revs {
		fmt.Fprintln(t.env.stdout, "  "+r)
	}
	return nil
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// volumeRow is one volume of the listing and the qubes that use it.
type volumeRow struct {
	pool, vid string
	revisions bool
	users     [][2]string // qube, volume name
}

func listVolumes(ctx context.Context, t *tool, c *admin.Client, o *volumeOptions, names []string) error {
	if o.all && len(names) > 0 {
		return usageErrorf("argument --all: not allowed with argument VMNAME")
	}
	if !o.all && len(o.exclude) > 0 {
		return usageErrorf("--exclude can only be used with --all")
	}
	if len(o.pools) > 0 {
		pools, err := c.Pools(ctx)
		if err != nil {
			return volumeFailure(err)
		}
		for _, p := range o.pools {
			if !slices.Contains(pools, p) {
				return usageErrorf("No such pools: %s", pyList(o.pools))
			}
		}
	}
	infos, err := c.ListVMs(ctx)
	if err != nil {
		return volumeFailure(err)
	}
	all := make([]*lsVM, 0, len(infos))
	for _, i := range infos {
		all = append(all, &lsVM{VMInfo: i})
	}
	vms, err := selectVMs(all, names, o.exclude, !o.all)
	if err != nil {
		return err
	}
	if len(names) == 0 { // the Python tool goes through app.domains: by name
		slices.SortStableFunc(vms, func(a, b *lsVM) int { return strings.Compare(a.Name, b.Name) })
	}
	type vmVols struct {
		names []string
		infos []admin.VolumeInfo
		revs  []bool
	}
	data := make([]vmVols, len(vms))
	err = parallel(ctx, len(vms), func(ctx context.Context, i int) error {
		vols, err := c.Volumes(ctx, vms[i].Name)
		if err != nil {
			return err
		}
		d := vmVols{names: vols, infos: make([]admin.VolumeInfo, len(vols)), revs: make([]bool, len(vols))}
		for j, v := range vols {
			vi, err := c.VolumeInfo(ctx, vms[i].Name, v)
			if err != nil {
				return err
			}
			d.infos[j] = vi
			if len(o.pools) > 0 && !slices.Contains(o.pools, vi.Pool) {
				continue
			}
			revs, err := c.VolumeRevisions(ctx, vms[i].Name, v)
			if err != nil {
				return err
			}
			d.revs[j] = len(revs) > 0
		}
		data[i] = d
		return nil
	})
	if err != nil {
		return volumeFailure(err)
	}
	var rows []*volumeRow
	byKey := map[[2]string]*volumeRow{}
	for i, vm := range vms {
		for j, vi := range data[i].infos {
			if len(o.pools) > 0 && !slices.Contains(o.pools, vi.Pool) {
				continue
			}
			k := [2]string{vi.Pool, vi.VID}
			r := byKey[k]
			if r == nil {
				r = &volumeRow{pool: vi.Pool, vid: vi.VID}
				byKey[k] = r
				rows = append(rows, r)
			}
			r.revisions = data[i].revs[j] // the last one wins, as in the Python tool
			r.users = append(r.users, [2]string{vm.Name, data[i].names[j]})
		}
	}
	slices.SortStableFunc(rows, func(a, b *volumeRow) int {
		if c := strings.Compare(a.pool, b.pool); c != 0 {
			return c
		}
		return strings.Compare(a.vid, b.vid)
	})
	if o.format == "json" {
		list := []jsonObject{}
		for _, r := range rows {
			for _, u := range r.users {
				list = append(list, jsonObject{{"pool", r.pool}, {"vid", r.vid}, {"vm", u[0]}, {"volume", u[1]}, {"revert_possible", r.revisions}})
			}
		}
		return writeJSON(t.env.stdout, list)
	}
	full := o.full || !isTerminal(t.env.stdout)
	table := [][]string{{"POOL:VOLUME", "VMNAME", "VOLUME_NAME", "REVERT_POSSIBLE"}}
	for _, r := range rows {
		name := r.pool + ":" + r.vid
		revert := "No"
		if r.revisions {
			revert = "Yes"
		}
		if len(r.users) == 0 {
			table = append(table, []string{name, ""})
			continue
		}
		// The Python tool prints the last qube first (list.pop()), then
		// the others in order.
		users := append([][2]string{r.users[len(r.users)-1]}, r.users[:len(r.users)-1]...)
		for i, u := range users {
			cell := name
			if i > 0 && !full {
				cell = ""
			}
			table = append(table, []string{cell, u[0], u[1], revert})
		}
	}
	fmt.Fprint(t.env.stdout, formatTable(table))
	return nil
}

// pyList formats strings as Python prints a list of them.
func pyList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = "'" + v + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// newProgress returns a progress bar on stderr for total units (bytes if
// bytes is set), or nil when stdout or stderr is not a terminal or -q was
// given.
func newProgress(t *tool, total int64, bytes bool, desc string) *progressbar.ProgressBar {
	if t.verbosity() < 1 || !isTerminal(t.env.stdout) || !isTerminal(t.env.stderr) {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(t.env.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100e6),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionOnCompletion(func() {}),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowElapsedTimeOnFinish())
	}
	return progressbar.NewOptions64(total, opts...)
}

// internalSocket is where qubesd's internal API listens: --internal-socket,
// else $QUBESD_INTERNAL_SOCKET, else qubesd.internal.sock in the directory
// of the qubesd socket (/var/run/qubesd.internal.sock by default).
func (t *tool) internalSocket(flag string) string {
	if flag != "" {
		return flag
	}
	if s := t.env.getenv(InternalSocketEnv); s != "" {
		return s
	}
	return filepath.Join(filepath.Dir(t.client().Socket()), "qubesd.internal.sock")
}

// importVolume imports a file or stdin into a volume through qubesd's
// internal API, as the reference's admin.vm.volume.Import script does:
// internal.vm.volume.ImportBegin gives "<size> <path>", exactly size bytes
// are written to path (sparse, without truncating), then
// internal.vm.volume.ImportEnd reports "ok" or "fail\n<error>", and its
// reply is the result.
func importVolume(ctx context.Context, t *tool, c *admin.Client, o *volumeOptions, ref volumeRef, input string) error {
	if o.noResize && o.size != "" {
		return usageErrorf("argument --no-resize: not allowed with argument --size")
	}
	var in io.Reader = t.env.stdin
	var inFile *os.File
	if input == "-" {
		inFile, _ = t.env.stdin.(*os.File)
	} else {
		f, err := os.Open(input)
		if err != nil {
			return &errorLine{err}
		}
		defer f.Close()
		in, inFile = f, f
	}
	payload := ""
	if !o.noResize {
		if o.size != "" {
			n, err := parseSize(o.size)
			if err != nil {
				return usageErrorf("argument --size: %v", err)
			}
			payload = strconv.FormatInt(n, 10)
		} else {
			var st os.FileInfo
			err := errors.New("not a regular file")
			if inFile != nil {
				if st, err = inFile.Stat(); err == nil && !st.Mode().IsRegular() {
					err = errors.New("not a regular file")
				}
			}
			if err != nil {
				return &errorLine{fmt.Errorf("Failed to get %s file size (%v), specify it explicitly with --size, or use --no-resize option", input, err)}
			}
			payload = strconv.FormatInt(st.Size(), 10)
		}
	}
	ic := admin.New(t.internalSocket(o.internalSocket))
	body, err := ic.Call(ctx, "internal.vm.volume.ImportBegin", ref.vm, ref.volume, []byte(payload))
	if err != nil {
		return volumeFailure(err)
	}
	size, path, err := admin.ParseImportBegin(body)
	if err != nil {
		_, _ = ic.Call(context.WithoutCancel(ctx), "internal.vm.volume.ImportEnd", ref.vm, ref.volume, []byte("fail\nbad reply from ImportBegin"))
		return volumeFailure(err)
	}
	bar := newProgress(t, size, true, "importing "+ref.String())
	var written func(int)
	if bar != nil {
		written = func(n int) { _ = bar.Add(n) }
	}
	copyErr := admin.WriteImport(ctx, path, in, size, written)
	if bar != nil {
		_ = bar.Finish()
	}
	// ImportEnd must be sent even when interrupted: the daemon holds the
	// volume until then.
	_, err = ic.Call(context.WithoutCancel(ctx), "internal.vm.volume.ImportEnd", ref.vm, ref.volume, admin.ImportEndPayload(copyErr))
	if err != nil {
		return volumeFailure(err)
	}
	if copyErr != nil { // a daemon that did not report the failure
		return &errorLine{fmt.Errorf("Data import failed: %v", copyErr)}
	}
	return nil
}

// completeVolumeArgs completes qvm-volume's commands, then VM:VOLUME.
func completeVolumeArgs(t *tool) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			var subs []string
			for s := range volumeCommands {
				subs = append(subs, s)
			}
			slices.Sort(subs)
			return subs, cobra.ShellCompDirectiveNoFileComp
		}
		sub := volumeCommands[args[0]]
		switch {
		case sub == "list":
			return withDaemon(cmd, t.vmNames)
		case sub == "import" && len(args) == 2:
			return nil, cobra.ShellCompDirectiveDefault
		case len(args) == 1 || (sub == "clone" && len(args) == 2):
			return withDaemon(cmd, func(ctx context.Context) ([]string, error) {
				return volumeRefs(ctx, t, toComplete)
			})
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// volumeRefs lists VM: names, or VM:VOLUME once a colon is typed.
func volumeRefs(ctx context.Context, t *tool, toComplete string) ([]string, error) {
	vm, _, typed := strings.Cut(toComplete, ":")
	if !typed {
		names, err := t.vmNames(ctx)
		for i := range names {
			names[i] += ":"
		}
		return names, err
	}
	vols, err := t.client().Volumes(ctx, vm)
	out := make([]string, len(vols))
	for i, v := range vols {
		out[i] = vm + ":" + v
	}
	return out, err
}
