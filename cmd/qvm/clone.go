package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// qvm-clone: make a new qube with the properties, tags, features, notes,
// firewall and persistent volumes of another, as the Python tool (through
// qubesadmin's Qubes.clone_vm).

type cloneOptions struct {
	class        string
	ignoreErrors bool
	onePool      string
	pools        []string
}

func newCloneCmd(t *tool) *cobra.Command {
	o := &cloneOptions{}
	cmd := &cobra.Command{
		Use:  "TOOL [options] VMNAME NEWVM",
		Long: "Clone a qube: create NEWVM with VMNAME's class, label, template, properties, tags, features,\nnotes and firewall, and copy the data of its persistent volumes.",
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageErrorf("the following arguments are required: VMNAME, NEWVM")
			case len(args) == 1:
				return usageErrorf("the following arguments are required: NEWVM")
			case len(args) > 2:
				return usageErrorf("unrecognized arguments: %s", strings.Join(args[2:], " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClone(cmd.Context(), t, o, args[0], args[1])
		},
		ValidArgsFunction: completeVMs(t, 1),
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.class, "class", "C", "", "the class of the new qube (default: that of VMNAME)")
	fs.BoolVar(&o.ignoreErrors, "ignore-errors", false, "log errors in copying properties, tags, features, notes and firewall, and go on")
	// -P has no long form in the Python tool; pflag needs one.
	fs.StringVarP(&o.onePool, "P", "P", "", "the pool to use for all volumes of the new qube")
	fs.StringArrayVarP(&o.pools, "pool", "p", nil, "the pool to use for a volume, as VOLUME=POOL (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("class", completeClasses(t))
	_ = cmd.RegisterFlagCompletionFunc("P", completePools(t))
	return cmd
}

// cloneSkipProps are the properties admin.vm.Create sets, or that cannot
// be copied.
var cloneSkipProps = []string{"name", "qid", "template", "label", "uuid", "installed_by_rpm"}

func runClone(ctx context.Context, t *tool, o *cloneOptions, src, dst string) error {
	if o.onePool != "" && len(o.pools) > 0 {
		return usageErrorf("argument -p/--pool: not allowed with argument -P")
	}
	pools, err := parsePools(o.pools)
	if err != nil {
		return err
	}
	c := t.client()
	vms, err := c.ListVMs(ctx)
	if err != nil {
		return failure(err)
	}
	i := slices.IndexFunc(vms, func(vm admin.VMInfo) bool { return vm.Name == src })
	if i < 0 {
		return usageErrorf("no such domain: '%s'", src)
	}
	class := o.class
	if class == "" {
		class = vms[i].Class
	}
	template := ""
	if p, err := c.Property(ctx, src, "template"); err == nil {
		template = p.Value
	} else if !admin.IsType(err, admin.TypeNoSuchProperty) {
		return failure(err)
	}
	label, err := c.Property(ctx, src, "label")
	if err != nil {
		return failure(err)
	}
	if o.onePool == "" && len(pools) == 0 {
		// keep the source's pools where they are not the default ones
		if pools, err = sourcePools(ctx, c, src); err != nil {
			return failure(err)
		}
	}
	if o.onePool != "" || len(pools) > 0 {
		err = c.CreateInPool(ctx, class, template, dst, label.Value, admin.PoolSpec{Pool: o.onePool, Volumes: pools})
	} else {
		err = c.Create(ctx, class, template, dst, label.Value)
	}
	if err != nil {
		return failure(err)
	}
	if err := copyQubeMetadata(ctx, t, c, o, src, dst); err != nil {
		return removeHalfMade(ctx, t, c, dst, err)
	}
	if err := cloneQubeVolumes(ctx, t, c, src, dst); err != nil {
		return removeHalfMade(ctx, t, c, dst, err)
	}
	return nil
}

// removeHalfMade removes the new qube after a failed clone and returns the
// error that made it fail.
func removeHalfMade(ctx context.Context, t *tool, c *admin.Client, vm string, cause error) error {
	if err := c.Remove(context.WithoutCancel(ctx), vm); err != nil {
		t.logf("failed to remove the incomplete clone %s: %v", vm, err)
	}
	return failure(cause)
}

// sourcePools returns the pools of the source's own volumes (not those
// made from a snapshot, nor read-only ones) that differ from the global
// default_pool_<volume>.
func sourcePools(ctx context.Context, c *admin.Client, vm string) (map[string]string, error) {
	vols, err := c.Volumes(ctx, vm)
	if err != nil {
		return nil, err
	}
	slices.Sort(vols)
	pools := map[string]string{}
	for _, v := range vols {
		vi, err := c.VolumeInfo(ctx, vm, v)
		if err != nil {
			return nil, err
		}
		if vi.SnapOnStart || !vi.RW {
			continue
		}
		def := vi.Pool
		if p, err := c.GlobalProperty(ctx, "default_pool_"+v); err == nil {
			def = p.Value
		} else if !admin.IsType(err, admin.TypeNoSuchProperty) {
			return nil, err
		}
		if def != vi.Pool {
			pools[v] = vi.Pool
		}
	}
	return pools, nil
}

// copyQubeMetadata copies properties (those not at their default), tags
// (but created-by-*), features (but preload-dispvm* other than
// preload-dispvm-max), notes and firewall rules, then runs qvm-appmenus
// if it is installed. With --ignore-errors, failures are logged.
func copyQubeMetadata(ctx context.Context, t *tool, c *admin.Client, o *cloneOptions, src, dst string) error {
	fail := func(format string, a ...any) error {
		err := fmt.Errorf(format, a...)
		t.logf("%v", err)
		if o.ignoreErrors {
			return nil
		}
		return err
	}
	props, err := c.Properties(ctx, src)
	if err != nil {
		return err
	}
	for _, p := range props {
		if p.IsDefault || slices.Contains(cloneSkipProps, p.Name) {
			continue
		}
		err := c.SetProperty(ctx, dst, p.Name, p.Value)
		if admin.IsType(err, admin.TypeNoSuchProperty) {
			continue // AttributeError: the Python tool skips it
		}
		if err != nil {
			if err := fail("Failed to set %s property: %v", p.Name, err); err != nil {
				return err
			}
		}
	}
	tags, err := c.Tags(ctx, src)
	if err != nil {
		return err
	}
	for _, tag := range tags {
		if strings.HasPrefix(tag, "created-by-") {
			continue
		}
		if err := c.AddTag(ctx, dst, tag); err != nil {
			if err := fail("Failed to add %s tag: %v", tag, err); err != nil {
				return err
			}
		}
	}
	features, err := c.Features(ctx, src)
	if err != nil {
		return err
	}
	for _, f := range features {
		if strings.HasPrefix(f, "preload-dispvm") && f != "preload-dispvm-max" {
			continue
		}
		v, err := c.Feature(ctx, src, f)
		if err == nil {
			err = c.SetFeature(ctx, dst, f, v)
		}
		if err != nil {
			if err := fail("Failed to set %s feature: %v", f, err); err != nil {
				return err
			}
		}
	}
	notes, err := c.Call(ctx, "admin.vm.notes.Get", src, "", nil)
	if err == nil && len(notes) > 0 {
		_, err = c.Call(ctx, "admin.vm.notes.Set", dst, "", notes)
	}
	if err != nil {
		if err := fail("Failed to clone qube notes: %v", err); err != nil {
			return err
		}
	}
	rules, err := c.Call(ctx, "admin.vm.firewall.Get", src, "", nil)
	if admin.IsNoSuchMethod(err) {
		// A daemon without the firewall extension keeps no rules:
		// there are none to copy.
		err = nil
	} else if err == nil {
		_, err = c.Call(ctx, "admin.vm.firewall.Set", dst, "", rules)
	}
	if err != nil {
		if err := fail("Failed to set firewall: %v", err); err != nil {
			return err
		}
	}
	if path, err := exec.LookPath("qvm-appmenus"); err == nil {
		out, err := exec.CommandContext(ctx, path, "--init", "--update", "--source", src, dst).CombinedOutput()
		if err != nil {
			if err := fail("Failed to clone appmenus: %s", strings.TrimSpace(string(out))); err != nil {
				return errors.New("Failed to clone appmenus")
			}
		}
	}
	return nil
}

// cloneQubeVolumes copies the data of every save_on_stop volume of dst
// from the same volume of src, in volume name order.
func cloneQubeVolumes(ctx context.Context, t *tool, c *admin.Client, src, dst string) error {
	vols, err := c.Volumes(ctx, dst)
	if err != nil {
		return err
	}
	slices.Sort(vols)
	var persistent []string
	for _, v := range vols {
		vi, err := c.VolumeInfo(ctx, dst, v)
		if err != nil {
			return err
		}
		if vi.SaveOnStop {
			persistent = append(persistent, v)
		}
	}
	bar := newProgress(t, int64(len(persistent)), false, "cloning volumes")
	for _, v := range persistent {
		if bar != nil {
			bar.Describe("cloning " + v)
		}
		if t.verbosity() > 1 {
			t.logf("Cloning %s volume", v)
		}
		if err := c.CloneVolume(ctx, src, v, dst, v); err != nil {
			return err
		}
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	return nil
}
