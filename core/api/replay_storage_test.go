package api

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// The storage the transcripts assume (shared/fixtures/README.md, "State
// the transcripts assume"), served by drivers that answer as the
// reference's file-reflink and linux-kernel pools did on the recording
// machine. core may not import plugins/, and the fixture's figures (pool
// filesystem size) are the recording host's, so these fakes are the
// fixture's drivers, not general ones.

// refLayout creates the reference's data directory: sparse images of the
// qubes' private volumes and the template's, and the kernel.
func refLayout(t testing.TB, dir string) {
	t.Helper()
	sparse := func(path string, size int64) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	vms := []string{"sys-net", "sys-firewall"}
	for i := 1; i <= 10; i++ {
		vms = append(vms, "vm00"+string(rune('0'+i/10))+string(rune('0'+i%10)))
	}
	for _, vm := range vms {
		sparse(filepath.Join(dir, "appvms", vm, "private.img"), 2<<30)
		sparse(filepath.Join(dir, "appvms", vm, "private-precache.img"), 2<<30)
	}
	tpl := filepath.Join(dir, "vm-templates", "debian-12-xfce")
	sparse(filepath.Join(tpl, "root.img"), 10<<30)
	sparse(filepath.Join(tpl, "root-precache.img"), 10<<30)
	sparse(filepath.Join(tpl, "private.img"), 2<<30)
	sparse(filepath.Join(tpl, "private-precache.img"), 2<<30)
	for _, f := range []string{"vmlinuz", "initramfs", "modules.img"} {
		sparse(filepath.Join(dir, "vm-kernels", "6.6.0-baseline", f), 0)
	}
}

// refDriverParams are the drivers the reference listed (ListDrivers), with
// their parameters and the required ones.
var refDriverParams = map[string]struct {
	revisions bool
	keys      []string
	required  []string
}{
	"callback":     {false, []string{"conf_id"}, []string{"conf_id"}},
	"file":         {true, []string{"dir_path"}, []string{"dir_path"}},
	"file-reflink": {true, []string{"dir_path", "setup_check"}, []string{"dir_path"}},
	"linux-kernel": {false, []string{"dir_path"}, []string{"dir_path"}},
	"lvm_thin":     {true, []string{"volume_group", "thin_pool"}, []string{"volume_group", "thin_pool"}},
	"zfs":          {true, []string{"container", "snap_on_start_forensics"}, []string{"container"}},
}

// refDrivers serves every driver name with a refDriver; it is also the
// plugin status listing them as pool-driver plugins.
type refDrivers struct{}

func (refDrivers) PoolDriver(name string) (pool.Driver, error) {
	if _, ok := refDriverParams[name]; !ok {
		return nil, qerr.New(qerr.StoragePoolError, "no pool-driver plugin %q", name)
	}
	return &refDriver{name: name}, nil
}

func (refDrivers) DriverNames() []string { return slices.Sorted(maps.Keys(refDriverParams)) }

// refDriver answers as the reference's driver of that name did.
type refDriver struct {
	pool.UnimplementedDriver
	name string
}

// The recording host's filesystem, as file-reflink pools reported it
// (normalize.json replaces the figures on both sides).
const refFSSize, refFSUsage = 270553174016, 13497069568

func (d *refDriver) Info(context.Context) (pool.Info, error) {
	p := refDriverParams[d.name]
	info := pool.Info{Name: d.name, Capabilities: pool.Capabilities{Revisions: p.revisions, Import: true, FastClone: true, Shrink: true}}
	for _, k := range p.keys {
		info.PoolConfig = append(info.PoolConfig, pool.ConfigKey{Name: k, Required: slices.Contains(p.required, k)})
	}
	return info, nil
}

func (d *refDriver) ValidateConfig(context.Context, map[string]string) error { return nil }

func (d *refDriver) Setup(_ context.Context, p pool.Pool) error {
	if d.name == "file-reflink" && p.Config["setup_check"] != "False" {
		// the recording machine's filesystem had no reflinks
		return qerr.New(qerr.StoragePoolError, "The filesystem for '%s' does not support reflinks. If you can live with delays on VM startup/shutdown/etc. and wasted disk space, pass the 'setup_check=False' option.", p.Config["dir_path"])
	}
	return nil
}

func (d *refDriver) Usage(context.Context, pool.Pool) (pool.Usage, error) {
	if d.name != "file-reflink" && d.name != "file" {
		return pool.Usage{}, nil
	}
	return pool.Usage{Size: refFSSize, Usage: refFSUsage, Details: map[string]uint64{"data_size": refFSSize, "data_usage": refFSUsage}}, nil
}

func (d *refDriver) ListVolumes(context.Context, pool.Pool) ([]pool.VolumeState, error) {
	return nil, nil
}
func (d *refDriver) Create(context.Context, pool.Pool, pool.Volume) error { return nil }
func (d *refDriver) Remove(context.Context, pool.Pool, pool.Volume) error { return nil }
func (d *refDriver) Resize(context.Context, pool.Pool, pool.Volume, uint64) error {
	return nil
}
func (d *refDriver) Revert(_ context.Context, _ pool.Pool, v pool.Volume, rev string) error {
	return pool.Errorf(pool.ErrNotFound, "volume %s has no revision %s", v.VID, rev)
}
func (d *refDriver) ListRevisions(context.Context, pool.Pool, pool.Volume) ([]pool.Revision, error) {
	return nil, nil
}

// VolumeInfo gives the paths the reference's drivers show.
func (d *refDriver) VolumeInfo(_ context.Context, p pool.Pool, v pool.Volume) (pool.VolumeState, error) {
	st := pool.VolumeState{VID: v.VID, Size: v.Size}
	dir := strings.TrimRight(p.Config["dir_path"], "/")
	switch d.name {
	case "file-reflink":
		st.Path = dir + "/" + v.VID + "-dirty.img"
	case "file":
		st.Path = dir + "/" + v.VID + ".img"
	case "linux-kernel":
		st.Path = dir + "/" + v.VID + "/modules.img"
	case "lvm_thin":
		st.Path = "/dev/" + v.VID
	}
	return st, nil
}
func (d *refDriver) CloneFrom(context.Context, pool.Pool, pool.Volume, pool.Volume) error {
	return nil
}
func (d *refDriver) ImportBegin(_ context.Context, p pool.Pool, v pool.Volume, size uint64) (string, error) {
	path := filepath.Join(p.Config["dir_path"], v.VID+"-import.img")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return path, f.Truncate(int64(size))
}
func (d *refDriver) ImportEnd(_ context.Context, p pool.Pool, v pool.Volume, success bool) error {
	return os.Remove(filepath.Join(p.Config["dir_path"], v.VID+"-import.img"))
}

var _ storage.Drivers = refDrivers{}
