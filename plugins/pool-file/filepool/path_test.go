package filepool

import (
	"path/filepath"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-file/internal/ptest"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// TestVolumePath: VolumeInfo's Path is the file the qube gets, for every
// volume type, started or not (admin.vm.volume.Info shows it).
func TestVolumePath(t *testing.T) {
	fs := ptest.Filesystems[0]
	tpl := origin("vm-templates/t/root", 4*mib, 1)
	tests := []struct {
		driver string
		vol    pool.Volume
		want   string // relative to dir_path
	}{
		{ReflinkName, tpl, "vm-templates/t/root-dirty.img"},
		{ReflinkName, snapshotOf("appvms/w/root", tpl), "appvms/w/root-dirty.img"},
		{ReflinkName, volatileVol("appvms/w/volatile", mib), "appvms/w/volatile-dirty.img"},
		{FileName, tpl, "vm-templates/t/root.img"},
		{FileName, snapshotOf("appvms/w/root", tpl), "appvms/w/root-cow.img"},
		{FileName, volatileVol("appvms/w/volatile", mib), "appvms/w/volatile.img"},
	}
	for _, tt := range tests {
		t.Run(tt.driver+"/"+tt.vol.VID, func(t *testing.T) {
			d, p := setup(t, tt.driver, fs, t.TempDir())
			ok(t, d.Create(t.Context(), p, tpl), "Create template root")
			if tt.vol.VID != tpl.VID {
				ok(t, d.Create(t.Context(), p, tt.vol), "Create")
			}
			want := filepath.Join(dir(p), tt.want)
			for _, when := range []string{"halted", "started"} {
				if when == "started" {
					if _, err := d.Start(t.Context(), p, tt.vol); err != nil {
						t.Fatal(err)
					}
				}
				st, err := d.VolumeInfo(t.Context(), p, tt.vol)
				if err != nil || st.Path != want {
					t.Errorf("%s: Path %q, %v; want %q", when, st.Path, err, want)
				}
			}
		})
	}
}
