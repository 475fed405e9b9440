package kernels_test

// driver_test.go: the driver's contract, table by table, in-process and
// over gRPC (eachImpl): what pooltest.RunReadOnly (conformance_test.go)
// cannot know, such as this driver's files and messages.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/qubesgo/qubesd/plugins/pool-kernels/kernels"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// wantErr checks err against a wanted kind (nil: no error) and message parts.
func wantErr(t *testing.T, what string, err, kind error, parts ...string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, kind) {
		t.Errorf("%s: got error %v, want one of kind %q", what, err, kind)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not say %q", what, err, p)
		}
	}
}

func TestInfo(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		info, err := im.d.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "linux-kernel" || info.Version == "" || info.Description == "" {
			t.Errorf("Info: %+v", info)
		}
		if info.Capabilities != (pool.Capabilities{}) {
			t.Errorf("Info declares capabilities %+v, want none", info.Capabilities)
		}
		want := []pool.ConfigKey{{Name: "dir_path", Required: true}}
		if len(info.PoolConfig) != 1 || info.PoolConfig[0].Name != want[0].Name || !info.PoolConfig[0].Required {
			t.Errorf("Info.PoolConfig %+v, want %+v", info.PoolConfig, want)
		}
	})
}

func TestValidateConfig(t *testing.T) {
	abs := "/var/lib/qubes/vm-kernels"
	cases := []struct {
		name  string
		cfg   map[string]string
		kind  error
		parts []string
	}{
		{"dir_path", map[string]string{"dir_path": abs}, nil, nil},
		{"dir_path with a trailing slash", map[string]string{"dir_path": abs + "/"}, nil, nil},
		{"revisions_to_keep 0", map[string]string{"dir_path": abs, "revisions_to_keep": "0"}, nil, nil},
		{"no dir_path", map[string]string{}, pool.ErrInvalid, []string{"dir_path is required"}},
		{"empty dir_path", map[string]string{"dir_path": ""}, pool.ErrInvalid, []string{"dir_path is required"}},
		{"relative dir_path", map[string]string{"dir_path": "vm-kernels"}, pool.ErrInvalid, []string{`"vm-kernels" is not an absolute path`}},
		{"revisions_to_keep 1", map[string]string{"dir_path": abs, "revisions_to_keep": "1"}, pool.ErrInvalid,
			[]string{"supports only revisions_to_keep=0"}},
		{"revisions_to_keep -1", map[string]string{"dir_path": abs, "revisions_to_keep": "-1"}, pool.ErrInvalid,
			[]string{"supports only revisions_to_keep=0"}},
		{"revisions_to_keep not a number", map[string]string{"dir_path": abs, "revisions_to_keep": "none"}, pool.ErrInvalid,
			[]string{`"none"`}},
		{"unknown key", map[string]string{"dir_path": abs, "volume_group": "qubes"}, pool.ErrInvalid, []string{`"volume_group"`}},
		{"ephemeral_volatile (not a linux-kernel key)", map[string]string{"dir_path": abs, "ephemeral_volatile": "False"},
			pool.ErrInvalid, []string{`"ephemeral_volatile"`}},
	}
	eachImpl(t, func(t *testing.T, im impl) {
		for _, c := range cases {
			err := im.d.ValidateConfig(t.Context(), c.cfg)
			wantErr(t, "ValidateConfig "+c.name, err, c.kind, c.parts...)
			// Every call goes through it: a volume call in a pool so
			// configured is refused the same way.
			if c.kind != nil {
				_, err := im.d.Start(t.Context(), pool.Pool{Name: "k", Config: c.cfg}, kernelVolume(full))
				wantErr(t, "Start in a pool with "+c.name, err, c.kind, c.parts...)
			}
		}
	})
}

func TestOpenSetup(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		file := filepath.Join(t.TempDir(), "a-file")
		must(t, os.WriteFile(file, nil, 0o644))
		cases := []struct {
			name  string
			dir   string
			kind  error
			parts []string
		}{
			{"kernels directory", dir, nil, nil},
			{"missing directory", filepath.Join(dir, "..", "missing"), pool.ErrUnavailable, []string{"missing does not exist"}},
			{"a file", file, pool.ErrUnavailable, []string{file + " is not a directory"}},
		}
		for _, c := range cases {
			wantErr(t, "Open of a "+c.name, im.d.Open(t.Context(), testPool(c.dir)), c.kind, c.parts...)
		}
		// Setup makes a missing directory, and leaves an existing one alone.
		before := tree(t, dir)
		for i := range 2 {
			must(t, im.d.Setup(t.Context(), testPool(dir)))
			newDir := filepath.Join(t.TempDir(), "new", "vm-kernels")
			wantErr(t, fmt.Sprintf("Setup %d of a missing directory", i), im.d.Setup(t.Context(), testPool(newDir)), nil)
			wantErr(t, "Open after Setup", im.d.Open(t.Context(), testPool(newDir)), nil)
		}
		if after := tree(t, dir); after != before {
			t.Errorf("Setup changed the kernels directory:\n%s\nbecame\n%s", before, after)
		}
		wantErr(t, "Setup over a file", im.d.Setup(t.Context(), testPool(file)), pool.ErrInvalid, "not a directory")
		// Destroy never removes kernels.
		must(t, im.d.Destroy(t.Context(), testPool(dir)))
		if after := tree(t, dir); after != before {
			t.Errorf("Destroy changed the kernels directory")
		}
	})
}

func TestListVolumes(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		vols, err := im.d.ListVolumes(t.Context(), testPool(dir))
		if err != nil {
			t.Fatal(err)
		}
		var vids []string
		for _, v := range vols {
			vids = append(vids, v.VID)
			if v.Dirty || v.Outdated {
				t.Errorf("%s: dirty %v outdated %v, want neither", v.VID, v.Dirty, v.Outdated)
			}
			if v.Usage == 0 {
				t.Errorf("%s: usage 0, want the space its files take", v.VID)
			}
			wantSize := uint64(0)
			if v.VID == full || v.VID == link {
				wantSize = modulesSize
			}
			if v.Size != wantSize {
				t.Errorf("%s: size %d, want %d (modules.img's)", v.VID, v.Size, wantSize)
			}
		}
		if !slices.Equal(vids, installed) {
			t.Errorf("ListVolumes: %v, want %v", vids, installed)
		}
		if im.log == nil {
			return
		}
		// What was left out is logged with the reason.
		log := im.log.String()
		for entry, reason := range map[string]string{
			noVmlinuz:  "missing file",
			vmlinuzDir: "missing file",
			plainFile:  "is not a directory",
			dangling:   "does not exist",
			nested:     "missing file",
			badName:    "only the characters",
		} {
			found := false
			for line := range strings.Lines(log) {
				if strings.Contains(line, "entry="+entry) || strings.Contains(line, `entry="`+entry+`"`) {
					found = strings.Contains(line, reason)
				}
			}
			if !found {
				t.Errorf("no log line saying %q was ignored because %q:\n%s", entry, reason, log)
			}
		}
	})
}

func TestVolumeInfo(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		cases := []struct {
			version string
			size    uint64
			kind    error
			parts   []string
		}{
			{full, modulesSize, nil, nil},
			{link, modulesSize, nil, nil},
			{noModules, 0, nil, nil},
			{bare, 0, nil, nil},
			{noVmlinuz, 0, pool.ErrNotFound, []string{`kernel "broken-1.0" not properly installed: missing file ` + filepath.Join(dir, noVmlinuz, "vmlinuz")}},
			{vmlinuzDir, 0, pool.ErrNotFound, []string{"missing file"}},
			{plainFile, 0, pool.ErrNotFound, []string{"is not a directory"}},
			{dangling, 0, pool.ErrNotFound, []string{"does not exist"}},
			{absentVer, 0, pool.ErrNotFound, []string{`kernel "7.0.0-absent" not installed: ` + filepath.Join(dir, absentVer) + " does not exist"}},
		}
		for _, c := range cases {
			st, err := im.d.VolumeInfo(t.Context(), testPool(dir), kernelVolume(c.version))
			wantErr(t, "VolumeInfo "+c.version, err, c.kind, c.parts...)
			if err == nil && (st.VID != c.version || st.Size != c.size || st.Dirty || st.Outdated) {
				t.Errorf("VolumeInfo %s: %+v, want size %d", c.version, st, c.size)
			}
		}
	})
}

func TestStart(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		cases := []struct {
			version string
			path    string // "" = no disk
			kind    error
			parts   []string
		}{
			{full, filepath.Join(dir, full, "modules.img"), nil, nil},
			{link, filepath.Join(dir, link, "modules.img"), nil, nil},
			{noModules, "", nil, nil},
			{bare, "", nil, nil},
			{noVmlinuz, "", pool.ErrNotFound, []string{"not properly installed", "vmlinuz"}},
			{absentVer, "", pool.ErrNotFound, []string{"not installed"}},
		}
		for _, c := range cases {
			v := kernelVolume(c.version)
			var first pool.BlockDevice
			for i := range 2 { // a second Start gives the same device
				dev, err := im.d.Start(t.Context(), testPool(dir), v)
				wantErr(t, fmt.Sprintf("Start %d of %s", i, c.version), err, c.kind, c.parts...)
				if err != nil {
					break
				}
				if dev.Path != c.path || dev.RW || (dev.DevType != "" && dev.DevType != "disk") {
					t.Errorf("Start %s: device %+v, want path %q, read-only disk", c.version, dev, c.path)
				}
				if i == 1 && dev != first {
					t.Errorf("Start %s again: %+v, first %+v", c.version, dev, first)
				}
				first = dev
			}
			if c.path != "" {
				got, err := os.ReadFile(c.path)
				if err != nil || !strings.HasPrefix(string(got), "modules "+full) {
					t.Errorf("reading %s: %q, %v", c.path, got[:min(len(got), 32)], err)
				}
			}
			for i := range 2 {
				wantErr(t, fmt.Sprintf("Stop %d of %s", i, c.version), im.d.Stop(t.Context(), testPool(dir), v), nil)
			}
		}
	})
}

// TestRefusedSpecs: a kernel volume is read-only, neither saved nor
// snapshotted, not ephemeral, without revisions; the calls that take a spec
// refuse any other, with the reason.
func TestRefusedSpecs(t *testing.T) {
	cases := []struct {
		name   string
		change func(v *pool.Volume)
		parts  []string
	}{
		{"rw", func(v *pool.Volume) { v.RW = true }, []string{"supports only read-only volumes"}},
		{"save_on_stop", func(v *pool.Volume) { v.SaveOnStop = true }, []string{"does not support save_on_stop=True"}},
		{"origin read-only", func(v *pool.Volume) { v.SaveOnStop, v.RevisionsToKeep = true, 1 }, []string{"save_on_stop"}},
		{"snap_on_start", func(v *pool.Volume) { v.SnapOnStart, v.SourceVID = true, bare }, []string{"does not support snap_on_start=True"}},
		{"snap_on_start without a source (the SDK refuses it)", func(v *pool.Volume) { v.SnapOnStart = true }, []string{"snap_on_start without a source"}},
		{"ephemeral", func(v *pool.Volume) { v.Ephemeral = true }, []string{"cannot be ephemeral"}},
		{"revisions_to_keep 1", func(v *pool.Volume) { v.RevisionsToKeep = 1 }, []string{"supports only revisions_to_keep=0, not 1"}},
		{"revisions_to_keep -1", func(v *pool.Volume) { v.RevisionsToKeep = -1 }, []string{"supports only revisions_to_keep=0, not -1"}},
	}
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		p := testPool(dir)
		for _, c := range cases {
			v := kernelVolume(full)
			c.change(&v)
			calls := map[string]error{
				"Create": im.d.Create(t.Context(), p, v),
				"Verify": im.d.Verify(t.Context(), p, v),
			}
			_, calls["Start"] = im.d.Start(t.Context(), p, v)
			for call, err := range calls {
				wantErr(t, call+" with "+c.name, err, pool.ErrInvalid, c.parts...)
			}
		}
	})
}

// TestVersionNames: a version is one path element; nothing outside the
// kernels directory, nor nested in it, is ever reached.
func TestVersionNames(t *testing.T) {
	why := map[string]string{
		"":                       "empty",
		".":                      "not a directory name",
		"..":                     "not a directory name",
		"../etc":                 "single path element",
		"a/b":                    "single path element",
		nested + "/deeper":       "single path element",
		"/etc":                   "single path element",
		full + "/../" + full:     "single path element",
		"bad name":               "only the characters",
		"ver\x00sion":            "only the characters",
		"~root":                  "only the characters",
		"$(reboot)":              "only the characters",
		"ker\nnel":               "only the characters",
		strings.Repeat("a", 256): "longer than 255 bytes",
	}
	var bad []string
	for v := range why {
		bad = append(bad, v)
	}
	slices.Sort(bad)
	t.Run("ValidateVersion", func(t *testing.T) {
		for _, v := range bad {
			wantErr(t, fmt.Sprintf("ValidateVersion(%q)", v), kernels.ValidateVersion(v), pool.ErrInvalid, why[v])
		}
		for _, v := range []string{full, bare, "pvgrub2-pvh", "5.4+git@x:1_2", ".hidden", "...", strings.Repeat("a", 255)} {
			wantErr(t, fmt.Sprintf("ValidateVersion(%q)", v), kernels.ValidateVersion(v), nil)
		}
	})
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		// Something worth reaching outside the kernels directory.
		must(t, os.WriteFile(filepath.Join(dir, "..", "vmlinuz"), []byte("outside"), 0o644))
		before := tree(t, filepath.Dir(dir))
		p := testPool(dir)
		for _, version := range bad {
			v := kernelVolume(version)
			calls := map[string]error{
				"Create": im.d.Create(t.Context(), p, v),
				"Remove": im.d.Remove(t.Context(), p, v),
				"Stop":   im.d.Stop(t.Context(), p, v),
				"Verify": im.d.Verify(t.Context(), p, v),
				"Resize": im.d.Resize(t.Context(), p, v, 1<<20),
				"Revert": im.d.Revert(t.Context(), p, v, ""),
			}
			_, calls["Start"] = im.d.Start(t.Context(), p, v)
			_, calls["VolumeInfo"] = im.d.VolumeInfo(t.Context(), p, v)
			_, calls["ListRevisions"] = im.d.ListRevisions(t.Context(), p, v)
			for call, err := range calls {
				wantErr(t, fmt.Sprintf("%s of %q", call, version), err, pool.ErrInvalid)
			}
		}
		if after := tree(t, filepath.Dir(dir)); after != before {
			t.Errorf("calls with bad versions changed the file system:\n%s\nbecame\n%s", before, after)
		}
	})
}

func TestVerify(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		cases := []struct {
			version string
			kind    error
			parts   []string
		}{
			{full, nil, nil},
			{link, nil, nil},
			{noModules, nil, nil},
			{bare, nil, nil},
			{noVmlinuz, pool.ErrNotFound, []string{`kernel "broken-1.0" not properly installed: missing file ` + filepath.Join(dir, noVmlinuz, "vmlinuz")}},
			{vmlinuzDir, pool.ErrNotFound, []string{"missing file " + filepath.Join(dir, vmlinuzDir, "vmlinuz")}},
			{plainFile, pool.ErrNotFound, []string{filepath.Join(dir, plainFile) + " is not a directory"}},
			{dangling, pool.ErrNotFound, []string{"not installed", "does not exist"}},
			{absentVer, pool.ErrNotFound, []string{`kernel "7.0.0-absent" not installed`}},
		}
		for _, c := range cases {
			wantErr(t, "Verify "+c.version, im.d.Verify(t.Context(), testPool(dir), kernelVolume(c.version)), c.kind, c.parts...)
		}
		// vmlinuz removed after the qube was made: Verify, run before each
		// start, says so.
		must(t, os.Remove(filepath.Join(dir, bare, "vmlinuz")))
		wantErr(t, "Verify after vmlinuz was removed", im.d.Verify(t.Context(), testPool(dir), kernelVolume(bare)),
			pool.ErrNotFound, "missing file "+filepath.Join(dir, bare, "vmlinuz"))
	})
}

// TestNoOps: Create, Remove, Start and Stop change nothing, twice in a row
// as once; Stop and Remove of a version that is not installed succeed,
// Create of one fails.
func TestNoOps(t *testing.T) {
	type step struct {
		name    string
		version string
		call    func(im impl, p pool.Pool, v pool.Volume) error
		kind    error
	}
	create := func(im impl, p pool.Pool, v pool.Volume) error { return im.d.Create(t.Context(), p, v) }
	remove := func(im impl, p pool.Pool, v pool.Volume) error { return im.d.Remove(t.Context(), p, v) }
	stop := func(im impl, p pool.Pool, v pool.Volume) error { return im.d.Stop(t.Context(), p, v) }
	start := func(im impl, p pool.Pool, v pool.Volume) error {
		_, err := im.d.Start(t.Context(), p, v)
		return err
	}
	steps := []step{
		{"Create", full, create, nil},
		{"Create without modules.img", noModules, create, nil},
		{"Create of a version not installed", absentVer, create, pool.ErrNotFound},
		{"Create without vmlinuz", noVmlinuz, create, pool.ErrNotFound},
		{"Start", full, start, nil},
		{"Stop", full, stop, nil},
		{"Stop of a stopped volume", full, stop, nil},
		{"Stop of a version not installed", absentVer, stop, nil},
		{"Stop without vmlinuz", noVmlinuz, stop, nil},
		{"Remove", full, remove, nil},
		{"Remove of a version not installed", absentVer, remove, nil},
		{"Remove without vmlinuz", noVmlinuz, remove, nil},
	}
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		p := testPool(dir)
		before := tree(t, dir)
		for _, s := range steps {
			for i := range 2 {
				wantErr(t, fmt.Sprintf("%s (%d)", s.name, i), s.call(im, p, kernelVolume(s.version)), s.kind)
			}
			if after := tree(t, dir); after != before {
				t.Fatalf("%s changed the kernels directory:\n%s\nbecame\n%s", s.name, before, after)
			}
		}
		// Removing one qube's kernel volume leaves it for the others.
		wantErr(t, "VolumeInfo after Remove", func() error {
			_, err := im.d.VolumeInfo(t.Context(), p, kernelVolume(full))
			return err
		}(), nil)
	})
}

// TestVanishedPool: the kernels directory disappears (a disk not mounted,
// a broken install): Open says the pool is unavailable, calls that need a
// kernel say it is not there, Stop and Remove still succeed.
func TestVanishedPool(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		p := testPool(dir)
		must(t, im.d.Open(t.Context(), p))
		must(t, os.RemoveAll(dir))
		wantErr(t, "Open", im.d.Open(t.Context(), p), pool.ErrUnavailable, "the kernels directory "+dir+" does not exist")
		_, err := im.d.ListVolumes(t.Context(), p)
		wantErr(t, "ListVolumes", err, pool.ErrNotFound, dir+" does not exist")
		_, err = im.d.Usage(t.Context(), p)
		wantErr(t, "Usage", err, pool.ErrNotFound, dir+" does not exist")
		v := kernelVolume(full)
		_, err = im.d.Start(t.Context(), p, v)
		wantErr(t, "Start", err, pool.ErrNotFound, "the kernels directory "+dir+" does not exist")
		_, err = im.d.VolumeInfo(t.Context(), p, v)
		wantErr(t, "VolumeInfo", err, pool.ErrNotFound, "does not exist")
		wantErr(t, "Verify", im.d.Verify(t.Context(), p, v), pool.ErrNotFound, "does not exist")
		wantErr(t, "Create", im.d.Create(t.Context(), p, v), pool.ErrNotFound, "does not exist")
		wantErr(t, "Stop", im.d.Stop(t.Context(), p, v), nil)
		wantErr(t, "Remove", im.d.Remove(t.Context(), p, v), nil)

		// A file where the directory was.
		must(t, os.WriteFile(dir, []byte("x"), 0o644))
		wantErr(t, "Open of a file", im.d.Open(t.Context(), p), pool.ErrUnavailable, "not a directory")
		_, err = im.d.Start(t.Context(), p, v)
		wantErr(t, "Start in a file", err, pool.ErrNotFound)
		must(t, os.Remove(dir))

		// Setup brings back an empty pool.
		must(t, im.d.Setup(t.Context(), p))
		must(t, im.d.Open(t.Context(), p))
		if vols, err := im.d.ListVolumes(t.Context(), p); err != nil || len(vols) != 0 {
			t.Errorf("ListVolumes of an empty pool: %v, %v", vols, err)
		}
	})
}

// TestReadOnlyCalls: no resize, no revisions.
func TestReadOnlyCalls(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		p := testPool(dir)
		wantErr(t, "Resize", im.d.Resize(t.Context(), p, kernelVolume(full), 1<<30), pool.ErrInvalid, "read-only")
		wantErr(t, "Resize of a version not installed", im.d.Resize(t.Context(), p, kernelVolume(absentVer), 1<<30), pool.ErrNotFound)
		wantErr(t, "Resize to 0", im.d.Resize(t.Context(), p, kernelVolume(full), 0), pool.ErrInvalid)
		revs, err := im.d.ListRevisions(t.Context(), p, kernelVolume(full))
		if err != nil || len(revs) != 0 {
			t.Errorf("ListRevisions: %v, %v, want none", revs, err)
		}
		_, err = im.d.ListRevisions(t.Context(), p, kernelVolume(absentVer))
		wantErr(t, "ListRevisions of a version not installed", err, pool.ErrNotFound)
		wantErr(t, "Revert", im.d.Revert(t.Context(), p, kernelVolume(full), ""), pool.ErrNotFound, "no revisions")
		wantErr(t, "Revert to a malformed revision", im.d.Revert(t.Context(), p, kernelVolume(full), "../x"), pool.ErrInvalid)
		for name, err := range map[string]error{
			"CloneFrom": im.d.CloneFrom(t.Context(), p, kernelVolume(bare), kernelVolume(full)),
			"ImportEnd": im.d.ImportEnd(t.Context(), p, kernelVolume(full), true),
		} {
			wantErr(t, name, err, pool.ErrUnimplemented)
		}
		_, err = im.d.ImportBegin(t.Context(), p, kernelVolume(full), 1<<20)
		wantErr(t, "ImportBegin", err, pool.ErrUnimplemented)
		_, err = im.d.ExportBegin(t.Context(), p, kernelVolume(full))
		wantErr(t, "ExportBegin", err, pool.ErrUnimplemented)
	})
}

func TestUsage(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		p := testPool(dir)
		u, err := im.d.Usage(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, version := range installed {
			st, err := im.d.VolumeInfo(t.Context(), p, kernelVolume(version))
			must(t, err)
			sum += st.Usage
		}
		if u.Size != 0 || u.Usage != sum || u.Usage == 0 {
			t.Errorf("Usage %+v, want size 0 (unknown) and usage %d (the kernels')", u, sum)
		}
		// An empty pool uses nothing.
		u, err = im.d.Usage(t.Context(), testPool(t.TempDir()))
		if err != nil || u.Usage != 0 {
			t.Errorf("Usage of an empty pool: %+v, %v", u, err)
		}
	})
}

// TestConcurrent: every qube using a kernel has a volume with the same vid,
// so calls on one vid come at once.
func TestConcurrent(t *testing.T) {
	eachImpl(t, func(t *testing.T, im impl) {
		dir := kernelsDir(t)
		p := testPool(dir)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 16 {
			wg.Go(func() {
				v := kernelVolume(installed[i%len(installed)])
				if err := im.d.Verify(t.Context(), p, v); err != nil {
					errs <- err
				}
				if _, err := im.d.Start(t.Context(), p, v); err != nil {
					errs <- err
				}
				if _, err := im.d.ListVolumes(t.Context(), p); err != nil {
					errs <- err
				}
				if err := im.d.Stop(t.Context(), p, v); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
