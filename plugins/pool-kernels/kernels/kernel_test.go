package kernels_test

// kernel_test.go: Kernel and Kernels, the facts about a kernel version the
// daemon needs (in-process only: storage.v1 does not carry them yet).

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-kernels/kernels"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func TestKernel(t *testing.T) {
	dir := kernelsDir(t)
	p := testPool(dir)
	d := kernels.New(nil)
	in := func(version, name string) string { return filepath.Join(dir, version, name) }
	cases := []struct {
		version string
		want    kernels.Kernel
		kind    error
	}{
		{full, kernels.Kernel{
			Version: full, Dir: filepath.Join(dir, full), Vmlinuz: in(full, "vmlinuz"), Initramfs: in(full, "initramfs"),
			Modules: in(full, "modules.img"), ModulesSize: modulesSize,
			KernelOptsPCI:    in(full, "default-kernelopts-pci.txt"),
			KernelOptsNoPCI:  in(full, "default-kernelopts-nopci.txt"),
			KernelOptsCommon: in(full, "default-kernelopts-common.txt"),
			MemoryHotplug:    true,
		}, nil},
		// A link keeps its own name in the paths (as Qubes' kernels_dir).
		{link, kernels.Kernel{
			Version: link, Dir: filepath.Join(dir, link), Vmlinuz: in(link, "vmlinuz"), Initramfs: in(link, "initramfs"),
			Modules: in(link, "modules.img"), ModulesSize: modulesSize,
			KernelOptsPCI:    in(link, "default-kernelopts-pci.txt"),
			KernelOptsNoPCI:  in(link, "default-kernelopts-nopci.txt"),
			KernelOptsCommon: in(link, "default-kernelopts-common.txt"),
			MemoryHotplug:    true,
		}, nil},
		{noModules, kernels.Kernel{Version: noModules, Dir: filepath.Join(dir, noModules), Vmlinuz: in(noModules, "vmlinuz"),
			Initramfs: in(noModules, "initramfs")}, nil},
		{bare, kernels.Kernel{Version: bare, Dir: filepath.Join(dir, bare), Vmlinuz: in(bare, "vmlinuz")}, nil},
		{noVmlinuz, kernels.Kernel{}, pool.ErrNotFound},
		{absentVer, kernels.Kernel{}, pool.ErrNotFound},
		{"a/b", kernels.Kernel{}, pool.ErrInvalid},
		{"..", kernels.Kernel{}, pool.ErrInvalid},
	}
	for _, c := range cases {
		k, err := d.Kernel(t.Context(), p, c.version)
		if c.kind != nil {
			wantErr(t, "Kernel "+c.version, err, c.kind)
			continue
		}
		if err != nil {
			t.Errorf("Kernel %s: %v", c.version, err)
			continue
		}
		if k.Usage == 0 {
			t.Errorf("Kernel %s: usage 0", c.version)
		}
		k.Usage = 0
		if k != c.want {
			t.Errorf("Kernel %s:\n got %+v\nwant %+v", c.version, k, c.want)
		}
	}

	ks, err := d.Kernels(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range ks {
		got = append(got, k.Version)
	}
	if len(got) != len(installed) {
		t.Fatalf("Kernels: %v, want %v", got, installed)
	}
	for i := range got {
		if got[i] != installed[i] {
			t.Errorf("Kernels: %v, want %v", got, installed)
		}
	}

	// They check the pool config themselves (they are not behind pool.Check).
	for _, cfg := range []map[string]string{{}, {"dir_path": "relative"}, {"dir_path": dir, "x": "y"}} {
		bad := pool.Pool{Name: "k", Config: cfg}
		if _, err := d.Kernel(t.Context(), bad, full); !errors.Is(err, pool.ErrInvalid) {
			t.Errorf("Kernel in a pool with config %v: %v, want ErrInvalid", cfg, err)
		}
		if _, err := d.Kernels(t.Context(), bad); !errors.Is(err, pool.ErrInvalid) {
			t.Errorf("Kernels in a pool with config %v: %v, want ErrInvalid", cfg, err)
		}
	}
}
