package pooltest_test

// readonly_test.go: RunReadOnly against a minimal read-only driver, so that
// the suite itself is exercised in this module.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/qubesgo/qubesd/sdk/pool"
	"github.com/qubesgo/qubesd/sdk/pooltest"
)

// images is a pool of read-only volumes: every directory dir_path/<vid>
// holding a "label" file is a volume; its "image.iso", if any, is the
// cdrom a qube gets.
type images struct{ pool.UnimplementedDriver }

func (images) Info(context.Context) (pool.Info, error) {
	return pool.Info{Name: "images", PoolConfig: []pool.ConfigKey{{Name: "dir_path", Required: true}}}, nil
}

func (images) ValidateConfig(_ context.Context, cfg map[string]string) error {
	for k := range cfg {
		if k != "dir_path" {
			return pool.Errorf(pool.ErrInvalid, "unknown key %q", k)
		}
	}
	if !filepath.IsAbs(cfg["dir_path"]) {
		return pool.Errorf(pool.ErrInvalid, "dir_path %q: not an absolute path", cfg["dir_path"])
	}
	return nil
}

func (images) Open(_ context.Context, p pool.Pool) error {
	if fi, err := os.Stat(p.Config["dir_path"]); err != nil || !fi.IsDir() {
		return pool.Errorf(pool.ErrUnavailable, "pool %s: no directory %s", p.Name, p.Config["dir_path"])
	}
	return nil
}

func (images) Usage(context.Context, pool.Pool) (pool.Usage, error) { return pool.Usage{}, nil }

func (d images) ListVolumes(ctx context.Context, p pool.Pool) ([]pool.VolumeState, error) {
	entries, err := os.ReadDir(p.Config["dir_path"])
	if err != nil {
		return nil, err
	}
	var vols []pool.VolumeState
	for _, e := range entries {
		if st, err := d.VolumeInfo(ctx, p, pool.Volume{VID: e.Name()}); err == nil {
			vols = append(vols, st)
		}
	}
	return vols, nil
}

// image returns v's image path ("" without one), or ErrNotFound.
func image(p pool.Pool, v pool.Volume) (string, uint64, error) {
	dir := filepath.Join(p.Config["dir_path"], v.VID)
	if _, err := os.Stat(filepath.Join(dir, "label")); err != nil {
		return "", 0, pool.Errorf(pool.ErrNotFound, "volume %s: %v", v.VID, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "image.iso"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return filepath.Join(dir, "image.iso"), uint64(fi.Size()), nil
}

func checked(p pool.Pool, v pool.Volume) (string, uint64, error) {
	if v.RW || v.SaveOnStop {
		return "", 0, pool.Errorf(pool.ErrInvalid, "volume %s: read-only only", v.VID)
	}
	return image(p, v)
}

func (images) Create(_ context.Context, p pool.Pool, v pool.Volume) error {
	_, _, err := checked(p, v)
	return err
}

func (images) Start(_ context.Context, p pool.Pool, v pool.Volume) (pool.BlockDevice, error) {
	path, _, err := checked(p, v)
	if err != nil || path == "" {
		return pool.BlockDevice{}, err
	}
	return pool.BlockDevice{Path: path, DevType: "cdrom"}, nil
}

func (images) Stop(context.Context, pool.Pool, pool.Volume) error   { return nil }
func (images) Remove(context.Context, pool.Pool, pool.Volume) error { return nil }

func (images) Resize(_ context.Context, p pool.Pool, v pool.Volume, _ uint64) error {
	if _, _, err := image(p, v); err != nil {
		return err
	}
	return pool.Errorf(pool.ErrInvalid, "volume %s: read-only", v.VID)
}

func (images) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	path, size, err := image(p, v)
	return pool.VolumeState{VID: v.VID, Size: size, Usage: size, Path: path}, err
}

func (images) Verify(_ context.Context, p pool.Pool, v pool.Volume) error {
	_, _, err := checked(p, v)
	return err
}

func TestRunReadOnly(t *testing.T) {
	pooltest.RunReadOnly(t, func(t *testing.T) (pool.Driver, pool.Pool, pooltest.ReadOnlyFixture) {
		dir := filepath.Join(t.TempDir(), "images")
		files := map[string]string{
			"installer/label": "installer", "installer/image.iso": "an ISO image",
			"blank/label":          "no image",
			"incomplete/image.iso": "no label",
		}
		for name, content := range files {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		incomplete := pool.Volume{VID: "incomplete", Name: "cdrom"}
		return images{}, pool.Pool{Name: "images", Config: map[string]string{"dir_path": dir}}, pooltest.ReadOnlyFixture{
			Volumes: []pooltest.FixtureVolume{
				{Spec: pool.Volume{VID: "installer", Name: "cdrom"}, Disk: true},
				{Spec: pool.Volume{VID: "blank", Name: "cdrom"}},
			},
			Absent:     pool.Volume{VID: "no-such-image", Name: "cdrom"},
			Incomplete: &incomplete,
			Vanish: func() {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}
