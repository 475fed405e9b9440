package kernels

// driver.go: the Driver, its description and config, and the pool calls.
// The volume calls are in driver_volumes.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// Name is the driver's name, as pools in qubes.xml refer to it.
const Name = "linux-kernel"

// Version is the plugin's version.
const Version = "0.1.0"

// Pool config keys.
const (
	KeyDirPath         = "dir_path"
	KeyRevisionsToKeep = "revisions_to_keep"
)

// Driver is the linux-kernel pool driver. It keeps no state: the kernels
// directory is read afresh by every call, so kernels installed or removed
// by packages show at once. It is safe for concurrent use.
//
// The SDK checks every request before a method sees it (pool.Check, which
// pool.Serve puts in front): vids are well formed and the pool config has
// passed ValidateConfig. The methods check the rest — that a vid is a single
// version name, and the volume spec — themselves.
type Driver struct {
	pool.UnimplementedDriver
	log hclog.Logger
}

var _ pool.Driver = (*Driver)(nil)

// New returns the driver, logging to log (nil: nowhere). The plugin passes
// plugin.Logger().
func New(log hclog.Logger) *Driver {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Driver{log: log}
}

// Info declares no capability: no revisions, no resize, no clone, no
// import or export, no ephemeral volumes.
func (*Driver) Info(context.Context) (pool.Info, error) {
	return pool.Info{
		Name:        Name,
		Version:     Version,
		Description: "read-only kernels for qubes: one volume per dir_path/<version>/ with vmlinuz (initramfs and modules.img optional)",
		PoolConfig: []pool.ConfigKey{{
			Name:        KeyDirPath,
			Description: "absolute directory with a subdirectory per kernel version (Qubes: " + DefaultDirPath + ")",
			Required:    true,
		}},
	}, nil
}

// ValidateConfig accepts dir_path, an absolute path, and optionally
// revisions_to_keep, which must be 0. The SDK runs it before every call, so
// the other methods can trust p.Config.
func (*Driver) ValidateConfig(_ context.Context, cfg map[string]string) error {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k != KeyDirPath && k != KeyRevisionsToKeep {
			return pool.Errorf(pool.ErrInvalid, "pool config: unknown key %q (linux-kernel accepts %s, and %s=0)", k, KeyDirPath, KeyRevisionsToKeep)
		}
	}
	dir, ok := cfg[KeyDirPath]
	switch {
	case !ok || dir == "":
		return pool.Errorf(pool.ErrInvalid, "pool config: %s is required (the kernels directory, e.g. %s)", KeyDirPath, DefaultDirPath)
	case !filepath.IsAbs(dir):
		return pool.Errorf(pool.ErrInvalid, "pool config: %s %q is not an absolute path", KeyDirPath, dir)
	}
	if r, ok := cfg[KeyRevisionsToKeep]; ok {
		if n, err := strconv.Atoi(r); err != nil || n != 0 {
			return pool.Errorf(pool.ErrInvalid, "pool config: %s %q: linux-kernel supports only %s=0", KeyRevisionsToKeep, r, KeyRevisionsToKeep)
		}
	}
	return nil
}

// dirPath is the kernels directory of a pool whose config passed
// ValidateConfig.
func dirPath(p pool.Pool) string { return filepath.Clean(p.Config[KeyDirPath]) }

// Open checks that the kernels directory is there and readable: a missing
// one makes the pool unavailable (a disk not mounted, a broken install)
// rather than every kernel missing.
func (*Driver) Open(_ context.Context, p pool.Pool) error {
	dir := dirPath(p)
	fi, err := os.Stat(dir)
	switch {
	case absent(err):
		return pool.Errorf(pool.ErrUnavailable, "pool %s: the kernels directory %s does not exist", p.Name, dir)
	case err != nil:
		return pool.Errorf(pool.ErrUnavailable, "pool %s: %v", p.Name, err)
	case !fi.IsDir():
		return pool.Errorf(pool.ErrUnavailable, "pool %s: %s is not a directory", p.Name, dir)
	}
	f, err := os.Open(dir)
	if err == nil {
		_, err = f.ReadDir(1)
		f.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return pool.Errorf(pool.ErrUnavailable, "pool %s: cannot read the kernels directory: %v", p.Name, err)
	}
	return nil
}

// Setup makes the kernels directory if it is absent (with its parents), so
// that a pool added before any kernel package is installed opens. It never
// touches what is in it.
func (*Driver) Setup(_ context.Context, p pool.Pool) error {
	dir := dirPath(p)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return pool.Errorf(pool.ErrInvalid, "pool %s: %s is not a directory", p.Name, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pool %s: %w", p.Name, err)
	}
	return nil
}

// Destroy does nothing: the kernels belong to the packages that installed
// them, not to the pool (Qubes does nothing either).
func (*Driver) Destroy(context.Context, pool.Pool) error { return nil }

// Usage reports no size (the kernels share a file system with other
// things; Qubes reports none) and, as usage, what the installed kernels
// take.
func (d *Driver) Usage(ctx context.Context, p pool.Pool) (pool.Usage, error) {
	ks, err := d.Kernels(ctx, p)
	var u pool.Usage
	for _, k := range ks {
		u.Usage += k.Usage
	}
	return u, err
}

// ListVolumes lists the installed kernel versions, by name.
func (d *Driver) ListVolumes(ctx context.Context, p pool.Pool) ([]pool.VolumeState, error) {
	ks, err := d.Kernels(ctx, p)
	if err != nil {
		return nil, err
	}
	vols := make([]pool.VolumeState, 0, len(ks))
	for _, k := range ks {
		vols = append(vols, state(k))
	}
	return vols, nil
}

// Kernels returns what every installed kernel version of the pool provides,
// ordered by version name. Entries of the kernels directory that are not
// installed versions are skipped, and logged at debug level with the
// reason (see the package documentation); a version that cannot be read is
// skipped with a warning. A missing kernels directory is ErrNotFound.
func (d *Driver) Kernels(ctx context.Context, p pool.Pool) ([]Kernel, error) {
	if err := d.ValidateConfig(ctx, p.Config); err != nil {
		return nil, err
	}
	dir := dirPath(p)
	entries, err := os.ReadDir(dir)
	if absent(err) {
		return nil, pool.Errorf(pool.ErrNotFound, "pool %s: the kernels directory %s does not exist", p.Name, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	var ks []Kernel
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := ValidateVersion(e.Name()); err != nil {
			d.log.Debug("ignoring an entry of the kernels directory: not a valid kernel version name",
				"pool", p.Name, "entry", e.Name(), "reason", err.Error())
			continue
		}
		k, err := inspect(dir, e.Name())
		switch {
		case errors.Is(err, pool.ErrNotFound):
			d.log.Debug("ignoring an entry of the kernels directory: not an installed kernel",
				"pool", p.Name, "entry", e.Name(), "reason", err.Error())
			continue
		case err != nil:
			d.log.Warn("ignoring a kernel that cannot be read", "pool", p.Name, "entry", e.Name(), "error", err.Error())
			continue
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// Kernel returns what an installed kernel version provides: ErrInvalid for
// a malformed version, ErrNotFound (saying what is missing) for one that is
// not installed.
func (d *Driver) Kernel(ctx context.Context, p pool.Pool, version string) (Kernel, error) {
	if err := d.ValidateConfig(ctx, p.Config); err != nil {
		return Kernel{}, err
	}
	return inspect(dirPath(p), version)
}

// state is a kernel's volume state: never dirty nor outdated.
func state(k Kernel) pool.VolumeState {
	// path is modules.img's place even when there is none, as in the
	// reference (Start then gives no disk)
	return pool.VolumeState{VID: k.Version, Size: k.ModulesSize, Usage: k.Usage, Path: filepath.Join(k.Dir, FileModules)}
}
