package filepool

// common.go: what both drivers share — the pool config, the pool calls
// (Open, Setup, Destroy, Usage), where a volume's files are, and the
// checks every volume call starts with.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// The driver names pools in qubes.xml refer to.
const (
	ReflinkName = "file-reflink"
	FileName    = "file"
)

// Version is the drivers' version, reported in Info.
const Version = "1.0.0"

// The pool config keys (the reference's constructor parameters).
const (
	keyDirPath           = "dir_path"
	keyRevisionsToKeep   = "revisions_to_keep"
	keyEphemeralVolatile = "ephemeral_volatile"
	keySetupCheck        = "setup_check"
)

// prefixes are the directories Setup makes in dir_path, where the
// reference keeps a template's volumes (vm-templates/NAME/) and every
// other qube's (appvms/NAME/).
var prefixes = []string{"appvms", "vm-templates"}

// common is the part of a driver both share.
type common struct {
	pool.UnimplementedDriver
	name string
	// maxRevisions is the highest revisions_to_keep (-1: no limit).
	maxRevisions int
	// setupCheck: the driver has the setup_check key (file-reflink).
	setupCheck bool
}

// poolConfig is a pool config, parsed.
type poolConfig struct {
	dir        string
	setupCheck bool
}

func (c *common) configKeys() []pool.ConfigKey {
	keep := "revisions kept by a new volume's commits (-1 disables snapshots of running origin volumes)"
	if c.maxRevisions >= 0 {
		keep += fmt.Sprintf("; at most %d", c.maxRevisions)
	}
	keys := []pool.ConfigKey{
		{Name: keyDirPath, Description: "absolute directory holding the volumes (appvms/, vm-templates/)", Required: true},
		{Name: keyRevisionsToKeep, Description: keep, Default: "1"},
		{Name: keyEphemeralVolatile, Description: "volatile volumes are encrypted with a throw-away key by default (the daemon does it)", Default: "False"},
	}
	if c.setupCheck {
		keys = append(keys, pool.ConfigKey{Name: keySetupCheck,
			Description: "Setup refuses a file system without reflinks unless False; used by Setup only, not kept in qubes.xml", Default: "True"})
	}
	return keys
}

// parse checks a pool config and returns it parsed; the errors are
// ErrInvalid and name the key.
func (c *common) parse(cfg map[string]string) (poolConfig, error) {
	pc := poolConfig{setupCheck: true}
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		v := cfg[k]
		switch {
		case k == keyDirPath:
			if !filepath.IsAbs(v) {
				return pc, pool.Errorf(pool.ErrInvalid, "pool config %s=%q: must be an absolute directory", k, v)
			}
			pc.dir = filepath.Clean(v)
		case k == keyRevisionsToKeep:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < -1 {
				return pc, pool.Errorf(pool.ErrInvalid, "pool config %s=%q: must be an integer, -1 or more", k, v)
			}
			if c.maxRevisions >= 0 && n > c.maxRevisions {
				return pc, pool.Errorf(pool.ErrInvalid, "pool config %s=%q: the %s driver keeps at most %d revision", k, v, c.name, c.maxRevisions)
			}
		case k == keyEphemeralVolatile:
			if _, err := parseBool(v); err != nil {
				return pc, pool.Errorf(pool.ErrInvalid, "pool config %s: %v", k, err)
			}
		case k == keySetupCheck && c.setupCheck:
			b, err := parseBool(v)
			if err != nil {
				return pc, pool.Errorf(pool.ErrInvalid, "pool config %s: %v", k, err)
			}
			pc.setupCheck = b
		default:
			return pc, pool.Errorf(pool.ErrInvalid, "pool config: unknown key %q for the %s driver", k, c.name)
		}
	}
	if pc.dir == "" {
		return pc, pool.Errorf(pool.ErrInvalid, "pool config: %s is required", keyDirPath)
	}
	return pc, nil
}

// parseBool reads a boolean as Qubes' property.bool does.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "no", "false", "off", "":
		return false, nil
	case "1", "yes", "true", "on":
		return true, nil
	}
	return false, fmt.Errorf("invalid literal for a boolean: %q (True or False)", s)
}

// dir is the pool's directory: the SDK ran ValidateConfig before the call.
func dir(p pool.Pool) string { return filepath.Clean(p.Config[keyDirPath]) }

func (c *common) ValidateConfig(_ context.Context, cfg map[string]string) error {
	_, err := c.parse(cfg)
	return err
}

// Open checks that dir_path is there: a disk that is not mounted makes
// the pool unavailable rather than its volumes missing.
func (c *common) Open(_ context.Context, p pool.Pool) error {
	fi, err := os.Stat(dir(p))
	if err != nil || !fi.IsDir() {
		return pool.Errorf(pool.ErrUnavailable, "pool %s: directory %s is not there (%v)", p.Name, dir(p), err)
	}
	return nil
}

// Setup makes dir_path (not its parents: a missing mount point must not
// become a directory on the wrong disk), then appvms/ and vm-templates/ in
// it. file-reflink first checks that the file system makes reflinks,
// unless setup_check is False.
func (c *common) Setup(_ context.Context, p pool.Pool) error {
	pc, err := c.parse(p.Config)
	if err != nil {
		return err
	}
	created, err := mkdir(pc.dir)
	if err != nil {
		return fmt.Errorf("pool %s: %w", p.Name, err)
	}
	if c.setupCheck && pc.setupCheck {
		ok, err := reflinkSupported(pc.dir)
		if err == nil && !ok {
			err = pool.Errorf(pool.ErrInvalid, "The filesystem for %q does not support reflinks. If you can live with VM startup delays"+
				" and wasted disk space, pass the \"setup_check=False\" option.", pc.dir)
		}
		if err != nil {
			if created {
				os.Remove(pc.dir)
			}
			return err
		}
	}
	for _, pre := range prefixes {
		if _, err := mkdir(filepath.Join(pc.dir, pre)); err != nil {
			return fmt.Errorf("pool %s: %w", p.Name, err)
		}
	}
	return nil
}

// mkdir makes dir, not its parents, and says whether it did.
func mkdir(dir string) (bool, error) {
	err := os.Mkdir(dir, 0o755)
	if err == nil {
		return true, syncDir(filepath.Dir(dir))
	}
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return false, nil
		}
		return false, pool.Errorf(pool.ErrInvalid, "%s exists and is not a directory", dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, pool.Errorf(pool.ErrNotFound, "creating %s: its parent directory does not exist", dir)
	}
	return false, err
}

// Destroy removes what Setup made, if it is empty: volumes are never
// removed by it (the reference's Destroy does nothing).
func (c *common) Destroy(_ context.Context, p pool.Pool) error {
	for _, pre := range prefixes {
		if err := removeEmptyDir(filepath.Join(dir(p), pre)); err != nil {
			return err
		}
	}
	return removeEmptyDir(dir(p))
}

// Usage reports the file system's size and use, as the reference does.
func (c *common) Usage(_ context.Context, p pool.Pool) (pool.Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir(p), &st); err != nil {
		return pool.Usage{}, osError(err, "pool %s", p.Name)
	}
	size, used := st.Blocks*uint64(st.Frsize), (st.Blocks-st.Bfree)*uint64(st.Frsize)
	return pool.Usage{Size: size, Usage: used, Details: map[string]uint64{"data_size": size, "data_usage": used}}, nil
}

// volPath is where volume vid's files start: dir_path/<vid> (the SDK
// checked that vid is a safe relative path).
func volPath(p pool.Pool, vid string) string { return filepath.Join(dir(p), filepath.FromSlash(vid)) }

// refLayout reports whether vid is laid out as the reference lays out a
// qube's volumes (appvms/NAME/VOLUME or vm-templates/NAME/VOLUME) and the
// qube's directory is there. The reference keeps no file for a stopped
// snapshot or volatile volume; such a volume of a pool it made exists as
// long as its qube's directory does.
func refLayout(p pool.Pool, vid string) bool {
	el := strings.Split(vid, "/")
	if len(el) != 3 || !slices.Contains(prefixes, el[0]) {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir(p), el[0], el[1]))
	return err == nil && fi.IsDir()
}

// inParent runs create, which makes a file in path's directory, after
// making that directory (and the ones between it and dir_path) if needed.
// Removing a volume removes its directory once empty, so a create racing
// with the removal of a neighbour retries.
func inParent(p pool.Pool, path string, create func() error) error {
	if _, err := os.Stat(dir(p)); err != nil {
		return pool.Errorf(pool.ErrUnavailable, "pool %s: directory %s is not there (%v)", p.Name, dir(p), err)
	}
	var err error
	for range 5 {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err = create(); !errors.Is(err, pool.ErrNotFound) || exists(filepath.Dir(path)) {
			return err
		}
	}
	return err
}

// removeVolumeDir removes the directory of the volume at path once it is
// empty, as the reference does with a qube's directory; never dir_path or
// appvms/ and vm-templates/.
func removeVolumeDir(p pool.Pool, path string) error {
	parent := filepath.Dir(path)
	if parent == dir(p) || filepath.Dir(parent) == dir(p) && slices.Contains(prefixes, filepath.Base(parent)) {
		return nil
	}
	return removeEmptyDir(parent)
}

// walkVolumes calls fn for every file under dir_path that may belong to a
// volume, with its path relative to dir_path (slash-separated). It skips
// vm-kernels/, where the reference's kernel pool lives inside
// /var/lib/qubes, and temporary files.
func walkVolumes(p pool.Pool, fn func(rel string)) error {
	root := dir(p)
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			return nil
		}
		if d.IsDir() {
			if filepath.Dir(path) == root && d.Name() == "vm-kernels" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.Contains(d.Name(), tmpMark) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err == nil {
			fn(filepath.ToSlash(rel))
		}
		return nil
	})
}

// isodate formats a time as the reference's revision timestamps: UTC,
// seconds, no zone.
func isodate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

func notFound(p pool.Pool, v pool.Volume) error {
	return pool.Errorf(pool.ErrNotFound, "volume %s not found in pool %s", v.VID, p.Name)
}

func inUse(v pool.Volume, what string) error {
	return pool.Errorf(pool.ErrInUse, "volume %s is started: cannot %s", v.VID, what)
}

// onlyOrigin refuses what only an origin volume (save_on_stop) has.
func onlyOrigin(v pool.Volume, what string) error {
	if v.Type() == pool.Origin {
		return nil
	}
	return pool.Errorf(pool.ErrInvalid, "cannot %s: volume %s is %s, not save_on_stop", what, v.VID, v.Type())
}

// refuseOriginSnapshot refuses snap_on_start together with save_on_stop,
// which no file driver supports.
func refuseOriginSnapshot(v pool.Volume) error {
	if v.Type() != pool.OriginSnapshot {
		return nil
	}
	return pool.Errorf(pool.ErrUnimplemented, "volume %s: snap_on_start together with save_on_stop is not supported", v.VID)
}
