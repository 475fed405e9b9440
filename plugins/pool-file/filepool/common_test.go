package filepool

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func TestValidateConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     map[string]string
		reflink string // "" = valid, else a word the error must contain
		file    string
	}{
		{"dir_path only", map[string]string{"dir_path": "/var/lib/qubes"}, "", ""},
		{"the reference's keys", map[string]string{"dir_path": "/p", "revisions_to_keep": "1", "ephemeral_volatile": "False"}, "", ""},
		{"no dir_path", map[string]string{"revisions_to_keep": "1"}, "dir_path", "dir_path"},
		{"relative dir_path", map[string]string{"dir_path": "var/lib"}, "dir_path", "dir_path"},
		{"revisions_to_keep -1", map[string]string{"dir_path": "/p", "revisions_to_keep": "-1"}, "", ""},
		{"revisions_to_keep 5", map[string]string{"dir_path": "/p", "revisions_to_keep": "5"}, "", "revisions_to_keep"},
		{"revisions_to_keep -2", map[string]string{"dir_path": "/p", "revisions_to_keep": "-2"}, "revisions_to_keep", "revisions_to_keep"},
		{"revisions_to_keep x", map[string]string{"dir_path": "/p", "revisions_to_keep": "x"}, "revisions_to_keep", "revisions_to_keep"},
		{"ephemeral_volatile true", map[string]string{"dir_path": "/p", "ephemeral_volatile": "true"}, "", ""},
		{"ephemeral_volatile maybe", map[string]string{"dir_path": "/p", "ephemeral_volatile": "maybe"}, "ephemeral_volatile", "ephemeral_volatile"},
		{"setup_check False", map[string]string{"dir_path": "/p", "setup_check": "False"}, "", "setup_check"},
		{"setup_check bad", map[string]string{"dir_path": "/p", "setup_check": "nope"}, "setup_check", "setup_check"},
		{"unknown key", map[string]string{"dir_path": "/p", "volume_group": "x"}, "volume_group", "volume_group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range []struct {
				drv  pool.Driver
				want string
			}{{NewReflink(), tc.reflink}, {NewFile(), tc.file}} {
				err := d.drv.ValidateConfig(t.Context(), tc.cfg)
				if d.want == "" {
					ok(t, err, "ValidateConfig")
					continue
				}
				isKind(t, err, pool.ErrInvalid, "ValidateConfig")
				if err != nil && !strings.Contains(err.Error(), d.want) {
					t.Errorf("the error %q does not name %s", err, d.want)
				}
			}
		})
	}
}

func TestInfo(t *testing.T) {
	for _, tc := range []struct {
		d    pool.Driver
		name string
		caps pool.Capabilities
		keys []string
	}{
		{NewReflink(), "file-reflink", pool.Capabilities{Revisions: true, Shrink: true, FastClone: true, Import: true, Export: true},
			[]string{"dir_path", "revisions_to_keep", "ephemeral_volatile", "setup_check"}},
		{NewFile(), "file", pool.Capabilities{Shrink: true, FastClone: true, Import: true, Export: true},
			[]string{"dir_path", "revisions_to_keep", "ephemeral_volatile"}},
	} {
		info, err := tc.d.Info(t.Context())
		ok(t, err, "Info")
		if info.Name != tc.name || info.Capabilities != tc.caps {
			t.Errorf("Info: %s %+v, want %s %+v", info.Name, info.Capabilities, tc.name, tc.caps)
		}
		var keys []string
		for _, k := range info.PoolConfig {
			keys = append(keys, k.Name)
			if (k.Name == "dir_path") != k.Required {
				t.Errorf("%s: key %s required %v", tc.name, k.Name, k.Required)
			}
		}
		if !slices.Equal(keys, tc.keys) {
			t.Errorf("%s: pool config keys %v, want %v", tc.name, keys, tc.keys)
		}
	}
}

// TestPoolCalls: Setup makes no parents, Open finds a missing directory
// unavailable, Destroy leaves volumes alone, ListVolumes lists what is on
// disk and skips what is not a volume.
func TestPoolCalls(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			root := t.TempDir()
			drv := pool.Check(d.new())
			cfg := ptest.PoolConfig(d.name, ptest.Filesystems[0], filepath.Join(root, "no", "pool"))
			p := pool.Pool{Name: "p", Config: cfg}
			isKind(t, drv.Setup(t.Context(), p), pool.ErrNotFound, "Setup without the parent directory")
			isKind(t, drv.Open(t.Context(), p), pool.ErrUnavailable, "Open of a missing directory")
			isKind(t, drv.Create(t.Context(), p, origin("appvms/a/private", mib, 1)), pool.ErrUnavailable, "Create in a missing directory")
			if exists(filepath.Join(root, "no")) {
				t.Error("a call made the pool's missing parent directory")
			}

			drv, p = setup(t, d.name, ptest.Filesystems[0], root)
			u, err := drv.Usage(t.Context(), p)
			if ok(t, err, "Usage"); u.Size == 0 || u.Usage > u.Size || u.Details["data_size"] != u.Size {
				t.Errorf("Usage: %+v", u)
			}
			src := origin("vm-templates/fedora/root", mib, 1)
			vols := []pool.Volume{src, origin("appvms/work/private", mib, 1), snapshotOf("appvms/work/root", src),
				volatileVol("appvms/work/volatile", mib), origin("a-b", mib, 1)}
			for _, v := range vols {
				ok(t, drv.Create(t.Context(), p, v), "Create")
			}
			_, err = drv.Start(t.Context(), p, vols[1])
			ok(t, err, "Start")
			_, err = drv.Start(t.Context(), p, vols[2])
			ok(t, err, "Start")
			// Not volumes: the kernel pool's files, temporary files.
			for _, junk := range []string{"vm-kernels/6.6/modules.img", "appvms/work/private.img~x"} {
				ok(t, os.MkdirAll(filepath.Dir(filepath.Join(dir(p), junk)), 0o755), "mkdir")
				ok(t, os.WriteFile(filepath.Join(dir(p), junk), nil, 0o600), "write")
			}
			list, err := drv.ListVolumes(t.Context(), p)
			ok(t, err, "ListVolumes")
			var got []string
			for _, st := range list {
				got = append(got, st.VID)
				if st.Dirty != (st.VID == "appvms/work/private") {
					t.Errorf("ListVolumes: %s dirty %v", st.VID, st.Dirty)
				}
				if st.Size != mib {
					t.Errorf("ListVolumes: %s size %d", st.VID, st.Size)
				}
			}
			want := []string{"a-b", "appvms/work/private", "appvms/work/root", "appvms/work/volatile", "vm-templates/fedora/root"}
			if !slices.Equal(got, want) {
				t.Errorf("ListVolumes: %v, want %v", got, want)
			}
			ok(t, drv.Destroy(t.Context(), p), "Destroy")
			if !exists(filepath.Join(dir(p), "appvms", "work", "private.img")) {
				t.Error("Destroy removed a volume")
			}
			for _, v := range vols {
				ok(t, drv.Remove(t.Context(), p, v), "Remove")
			}
			if exists(filepath.Join(dir(p), "appvms", "work")) { // with the temporary file a crash left
				t.Errorf("Remove of every volume left %v", files(t, filepath.Join(dir(p), "appvms", "work")))
			}
			ok(t, os.RemoveAll(filepath.Join(dir(p), "vm-kernels")), "rm")
			ok(t, drv.Destroy(t.Context(), p), "Destroy")
			if exists(dir(p)) {
				t.Errorf("Destroy of an empty pool left %v", files(t, dir(p)))
			}
		})
	}
}
