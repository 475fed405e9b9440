package plugintests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/sdk/admin"
)

// End-to-end storage: a real qubesd with the real pool driver plugins
// (qubesd-pool-file-reflink, qubesd-pool-file, qubesd-pool-kernels),
// driven through its socket by the qvm tools, with the pools' files
// checked on disk against the layout plugins/pool-file/filepool/doc.go
// documents.

const (
	mib = int64(1) << 20
	gib = int64(1) << 30

	// the default sizes of new volumes (core/qubes/volumes.go)
	rootSize     = 10 * gib
	privateSize  = 2 * gib
	volatileSize = 10 * gib

	// a new image holds no data: it may take a few blocks of metadata
	sparseLimit = 1 * mib
)

// storagePlugins are the default configuration's pool drivers, built by
// TestMain into bin.
const storagePlugins = `
[plugins.file]
kind = "pool-driver"
path = "qubesd-pool-file"

[plugins.file-reflink]
kind = "pool-driver"
path = "qubesd-pool-file-reflink"

[plugins.linux-kernel]
kind = "pool-driver"
path = "qubesd-pool-kernels"
`

// qubesd is a daemon started from bin with a TOML config in dir (its run
// directory; data in dir/data).
type qubesd struct {
	tb        testing.TB
	dir, data string
	cfg       string
	sock      string
	internal  string
	cmd       *exec.Cmd
	c         *admin.Client
	done      bool
}

// newDir returns a fresh short directory (unix socket paths are limited),
// removed by tb's cleanup.
func newDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "qs-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startQubesd writes a config with the given [plugins.*] tables into dir
// and starts qubesd on it; tb's cleanup stops it.
func startQubesd(tb testing.TB, dir, plugins string) *qubesd {
	tb.Helper()
	d := &qubesd{tb: tb, dir: dir, data: filepath.Join(dir, "data"), cfg: filepath.Join(dir, "qubesd.toml"),
		sock: filepath.Join(dir, "qubesd.sock"), internal: filepath.Join(dir, "qubesd.internal.sock")}
	toml := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nplugin_dir = %q\nlog_level = \"warn\"\n%s", d.data, dir, bin, plugins)
	if err := os.WriteFile(d.cfg, []byte(toml), 0o644); err != nil {
		tb.Fatal(err)
	}
	d.c = admin.New(d.sock)
	d.start(tb)
	tb.Cleanup(d.stop)
	return d
}

// start starts qubesd and waits until it answers; tb is the running test
// (d.tb, the owner, or one of its subtests).
func (d *qubesd) start(tb testing.TB) {
	tb.Helper()
	d.cmd = exec.Command(filepath.Join(bin, "qubesd"), "--config", d.cfg)
	d.cmd.Stderr = testWriter{d.tb}
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	d.done = false
	waitUntil(tb, "qubesd to answer", 20*time.Second, func() bool {
		_, err := d.c.ListVMs(context.Background())
		return err == nil
	})
}

// stop ends qubesd with SIGTERM (SIGKILL after 20 s) and checks that its
// plugins are gone with it. It only reports errors (Errorf), so a subtest
// may call it.
func (d *qubesd) stop() {
	if d.done {
		return
	}
	d.done = true
	var pids []int
	if ps, err := d.c.Plugins(context.Background()); err == nil {
		for _, p := range ps {
			if p.PID > 0 {
				pids = append(pids, p.PID)
			}
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		d.tb.Errorf("qubesd %d did not exit within 20 s of SIGTERM; killing it", d.cmd.Process.Pid)
		_ = d.cmd.Process.Kill()
		<-exited
	}
	for _, pid := range pids {
		deadline := time.Now().Add(10 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			d.tb.Errorf("plugin process %d outlived qubesd", pid)
		}
	}
}

// waitPlugins waits until every plugin of names runs.
func (d *qubesd) waitPlugins(tb testing.TB, names ...string) {
	tb.Helper()
	waitUntil(tb, "the plugins "+strings.Join(names, ", ")+" to run", 20*time.Second, func() bool {
		ps, err := d.c.Plugins(context.Background())
		if err != nil {
			return false
		}
		for _, n := range names {
			if !slices.ContainsFunc(ps, func(p admin.PluginInfo) bool { return p.Name == n && p.State == "running" }) {
				return false
			}
		}
		return true
	})
}

// waitDefaultPool waits until the new system's pool varlibqubes is set up:
// its driver answers (qvm-pool info shows its usage) and its Setup made
// appvms/ and vm-templates/ (filepool/doc.go).
func (d *qubesd) waitDefaultPool(tb testing.TB) {
	tb.Helper()
	waitUntil(tb, "the pool varlibqubes to be set up", 30*time.Second, func() bool {
		out, _, err := d.qvm(nil, "qvm-pool", "info", "varlibqubes")
		return err == nil && strings.Contains(out, "\nusage ") &&
			isDir(filepath.Join(d.data, "appvms")) && isDir(filepath.Join(d.data, "vm-templates"))
	})
}

// qvm runs a tool of the qvm multi-call binary under its own name against
// the daemon.
func (d *qubesd) qvm(stdin io.Reader, tool string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(filepath.Join(bin, "qvm"), args...)
	cmd.Args[0] = tool
	cmd.Env = append(os.Environ(), admin.SocketEnv+"="+d.sock, "QUBESD_INTERNAL_SOCKET="+d.internal)
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// ok runs a tool that must succeed and returns its stdout.
func (d *qubesd) ok(tb testing.TB, tool string, args ...string) string {
	tb.Helper()
	return d.okIn(tb, nil, tool, args...)
}

func (d *qubesd) okIn(tb testing.TB, stdin io.Reader, tool string, args ...string) string {
	tb.Helper()
	out, errOut, err := d.qvm(stdin, tool, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", tool, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// fails runs a tool that must fail with exit status code and returns its
// stderr.
func (d *qubesd) fails(tb testing.TB, code int, tool string, args ...string) string {
	tb.Helper()
	out, errOut, err := d.qvm(nil, tool, args...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != code {
		tb.Fatalf("%s %s: %v, want exit status %d\nstdout:\n%s\nstderr:\n%s", tool, strings.Join(args, " "), err, code, out, errOut)
	}
	return errOut
}

// waitUntil polls cond until it holds, failing tb after timeout.
func waitUntil(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	for start := time.Now(); time.Since(start) < timeout; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	tb.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// fileStat is what the checks need of a file: apparent size, bytes
// allocated, inode.
type fileStat struct {
	size, alloc int64
	ino         uint64
	nlink       uint64
}

func statFile(tb testing.TB, path string) fileStat {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileStat{size: fi.Size(), alloc: st.Blocks * 512, ino: st.Ino, nlink: uint64(st.Nlink)}
}

// checkFiles checks that dir holds exactly the files of want, each of its
// apparent size and sparse (next to nothing allocated).
func checkFiles(t *testing.T, dir string, want map[string]int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
	for n, size := range want {
		p := filepath.Join(dir, n)
		if !exists(p) {
			continue
		}
		st := statFile(t, p)
		if st.size != size {
			t.Errorf("%s: apparent size %d, want %d", p, st.size, size)
		}
		if st.alloc >= sparseLimit {
			t.Errorf("%s: %d bytes allocated, want a sparse image (< %d)", p, st.alloc, sparseLimit)
		}
	}
}

// holeyData is a deterministic stream of n bytes: in every 4 MiB, 3 MiB
// of pseudo-random bytes (ChaCha8 from seed), then 1 MiB of zeros, so that
// an import that keeps holes allocates 3/4 of it.
type holeyData struct {
	rng    *rand.ChaCha8
	off, n int64
}

const (
	holeyPeriod  = 4 * mib
	holeyDataLen = 3 * mib // bytes of data at the start of each period
)

func newHoleyData(seed byte, n int64) *holeyData {
	return &holeyData{rng: rand.NewChaCha8([32]byte{seed, 'q', 's'}), n: n}
}

func (r *holeyData) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	pos := r.off % holeyPeriod
	var m int64
	if pos < holeyDataLen {
		m = min(int64(len(p)), holeyDataLen-pos, r.n-r.off)
		_, _ = r.rng.Read(p[:m])
	} else {
		m = min(int64(len(p)), holeyPeriod-pos, r.n-r.off)
		clear(p[:m])
	}
	r.off += m
	return int(m), nil
}

// holeyAlloc is the data holeyData of n bytes holds (what an import that
// keeps holes allocates).
func holeyAlloc(n int64) int64 {
	full := n / holeyPeriod * holeyDataLen
	return full + min(n%holeyPeriod, holeyDataLen)
}

// sumFile is the SHA-256 of the first n bytes of path (n < 0: all of it).
func sumFile(tb testing.TB, path string, n int64) [32]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if n >= 0 {
		r = io.LimitReader(f, n)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		tb.Fatal(err)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// dataAfter reports whether path has data (not a hole) at or after off
// (SEEK_DATA).
func dataAfter(tb testing.TB, path string, off int64) bool {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	const seekData = 3
	_, err = syscall.Seek(int(f.Fd()), off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		return false
	}
	if err != nil {
		tb.Fatalf("SEEK_DATA on %s: %v", path, err)
	}
	return true
}

// storagePool is one pool the lifecycle runs on: a file-reflink pool the
// test adds, or the new system's file pool.
type storagePool struct {
	driver string
	// add makes the pool and returns its name and dir_path.
	add func(t *testing.T, d *qubesd) (name, dir string)
	// files of a new qube's directory, by class, with apparent sizes
	template, app, standalone map[string]int64
	// revision matches the id of a revision
	revision *regexp.Regexp
}

var storagePools = []storagePool{
	{
		driver: "file-reflink",
		add: func(t *testing.T, d *qubesd) (string, string) {
			dir := filepath.Join(d.dir, "pool-reflink")
			// ext4 here: no reflinks, so Setup's check must be off
			d.ok(t, "qvm-pool", "add", "reflinkpool", "file-reflink", "-o", "dir_path="+dir, "-o", "setup_check=False")
			return "reflinkpool", dir
		},
		template:   map[string]int64{"root.img": rootSize, "private.img": privateSize, "volatile-dirty.img": volatileSize},
		app:        map[string]int64{"root-dirty.img": rootSize, "private.img": privateSize, "volatile-dirty.img": volatileSize},
		standalone: map[string]int64{"root.img": rootSize, "private.img": privateSize, "volatile-dirty.img": volatileSize},
		revision:   regexp.MustCompile(`^[0-9]+$`),
	},
	{
		driver: "file",
		add: func(t *testing.T, d *qubesd) (string, string) {
			d.waitDefaultPool(t)
			return "varlibqubes", d.data
		},
		template:   map[string]int64{"root.img": rootSize, "private.img": privateSize, "volatile.img": volatileSize},
		app:        map[string]int64{"root-cow.img": rootSize, "private.img": privateSize, "volatile.img": volatileSize},
		standalone: map[string]int64{"root.img": rootSize, "private.img": privateSize, "volatile.img": volatileSize},
		revision:   regexp.MustCompile(`^old$`),
	},
}

// TestStorageLifecycle runs qubes' storage through its life, step by step,
// on each pool driver: qvm-create of a template, an AppVM and a standalone
// qube in the pool; qvm-volume import from a pipe, info, list, a second
// import and revert; resize, and the refused shrink; qvm-clone; qvm-remove.
// Every step checks the daemon's answers and the pool's files.
func TestStorageLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: imports, checksums and copies of a GiB of data per pool")
	}
	for _, sp := range storagePools {
		t.Run(sp.driver, func(t *testing.T) { storageLifecycle(t, sp) })
	}
}

func storageLifecycle(t *testing.T, sp storagePool) {
	d := startQubesd(t, newDir(t), storagePlugins)
	d.waitPlugins(t, "file", "file-reflink", "linux-kernel")
	pool, dir := sp.add(t, d)
	const (
		tpl   = "st-tpl"
		app   = "st-app"
		alone = "st-alone"
		clone = "st-clone"
	)
	tplDir := filepath.Join(dir, "vm-templates", tpl)
	priv := filepath.Join(tplDir, "private.img")
	cloneDir := filepath.Join(dir, "vm-templates", clone)
	const importSize = 1 * gib
	var sum1, sum2 [32]byte // the imports' data

	// importData pipes holeyData from seed into tpl:private through
	// qvm-volume import and returns its checksum.
	importData := func(t *testing.T, seed byte) [32]byte {
		h := sha256.New()
		d.okIn(t, io.TeeReader(newHoleyData(seed, importSize), h), "qvm-volume", "import", "--size", "1GiB", tpl+":private", "-")
		var s [32]byte
		h.Sum(s[:0])
		return s
	}
	revisions := func(t *testing.T) []string {
		t.Helper()
		out := d.ok(t, "qvm-volume", "info", tpl+":private", "revisions")
		revs := strings.Fields(out)
		for _, r := range revs {
			if !sp.revision.MatchString(r) {
				t.Errorf("revision id %q does not look like one of driver %s (%s)", r, sp.driver, sp.revision)
			}
		}
		return revs
	}
	infoField := func(t *testing.T, vm, vol, key string) string {
		t.Helper()
		return strings.TrimSpace(d.ok(t, "qvm-volume", "info", vm+":"+vol, key))
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"pool", func(t *testing.T) {
			out := d.ok(t, "qvm-pool", "info", pool)
			if !regexp.MustCompile(`(?m)^driver +`+regexp.QuoteMeta(sp.driver)+`$`).MatchString(out) ||
				!regexp.MustCompile(`(?m)^dir_path +`+regexp.QuoteMeta(dir)+`$`).MatchString(out) {
				t.Errorf("qvm-pool info %s:\n%s", pool, out)
			}
			for _, sub := range []string{"appvms", "vm-templates"} {
				if !isDir(filepath.Join(dir, sub)) {
					t.Errorf("the pool's Setup did not make %s/", sub)
				}
			}
		}},
		{"create", func(t *testing.T) {
			d.ok(t, "qvm-create", "-C", "TemplateVM", "-l", "black", "-P", pool, tpl)
			d.ok(t, "qvm-create", "-t", tpl, "-l", "red", "-P", pool, app)
			d.ok(t, "qvm-create", "--standalone", "-l", "green", "-P", pool, alone)
			ls := d.ok(t, "qvm-ls", "--raw-data", "--fields=name,class,template")
			for _, want := range []string{tpl + "|TemplateVM|-", app + "|AppVM|" + tpl, alone + "|StandaloneVM|-"} {
				if !slices.Contains(strings.Split(ls, "\n"), want) {
					t.Errorf("qvm-ls does not list %q:\n%s", want, ls)
				}
			}
			for _, vm := range []string{tpl, app, alone} {
				for _, vol := range []string{"root", "private", "volatile"} {
					if got := infoField(t, vm, vol, "pool"); got != pool {
						t.Errorf("%s:%s is in pool %q, want %q", vm, vol, got, pool)
					}
				}
			}
			if got := infoField(t, app, "root", "source"); got != "vm-templates/"+tpl+"/root" {
				t.Errorf("%s:root has source %q, want the template's root", app, got)
			}
			checkFiles(t, tplDir, sp.template)
			checkFiles(t, filepath.Join(dir, "appvms", app), sp.app)
			checkFiles(t, filepath.Join(dir, "appvms", alone), sp.standalone)
		}},
		{"import", func(t *testing.T) {
			if n := len(revisions(t)); n != 0 {
				t.Errorf("a new volume has %d revisions", n)
			}
			sum1 = importData(t, 1)
			st := statFile(t, priv)
			if st.size != importSize {
				t.Errorf("the imported image's apparent size is %d, want %d", st.size, importSize)
			}
			// the import skips zeros: holes stay holes
			if want := holeyAlloc(importSize); st.alloc < want || st.alloc > want+sparseLimit {
				t.Errorf("the imported image has %d bytes allocated, want %d (its data, not its holes)", st.alloc, want)
			}
			if sumFile(t, priv, -1) != sum1 {
				t.Fatal("the committed image's content is not the imported data")
			}
			if exists(filepath.Join(tplDir, "private-import.img")) {
				t.Error("private-import.img is left after the import ended")
			}
			// the replaced (empty) content is a revision
			if n := len(revisions(t)); n != 1 {
				t.Errorf("after the import: %d revisions, want 1", n)
			}
		}},
		{"info and list", func(t *testing.T) {
			out := d.ok(t, "qvm-volume", "info", tpl+":private")
			st := statFile(t, priv)
			for _, want := range []string{
				`(?m)^pool +` + regexp.QuoteMeta(pool) + `$`,
				`(?m)^vid +vm-templates/` + tpl + `/private$`,
				`(?m)^rw +True$`,
				`(?m)^save_on_stop +True$`,
				`(?m)^snap_on_start +False$`,
				`(?m)^size +` + strconv.FormatInt(importSize, 10) + `$`,
				`(?m)^usage +` + strconv.FormatInt(st.alloc, 10) + `$`,
				`(?m)^revisions_to_keep +1$`,
				`(?m)^List of available revisions \(for revert\):\n  \S+\n\z`,
			} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("qvm-volume info %s:private does not match %s:\n%s", tpl, want, out)
				}
			}
			list := d.ok(t, "qvm-volume", "list", "-p", pool, tpl)
			row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(pool+":vm-templates/"+tpl+"/private") + ` +` + tpl + ` +private +Yes$`)
			if !row.MatchString(list) || !strings.HasPrefix(list, "POOL:VOLUME") {
				t.Errorf("qvm-volume list -p %s %s:\n%s", pool, tpl, list)
			}
			all := d.ok(t, "qvm-volume", "list", "-p", pool)
			for _, vid := range []string{"appvms/" + app + "/private", "appvms/" + app + "/root", "appvms/" + alone + "/root", "vm-templates/" + tpl + "/volatile"} {
				if !strings.Contains(all, pool+":"+vid+" ") {
					t.Errorf("qvm-volume list -p %s does not list %s:\n%s", pool, vid, all)
				}
			}
		}},
		{"second import and revert", func(t *testing.T) {
			sum2 = importData(t, 2)
			if sum2 == sum1 {
				t.Fatal("the two imports' data are the same")
			}
			if sumFile(t, priv, -1) != sum2 {
				t.Fatal("after the second import the committed image is not its data")
			}
			revs := revisions(t)
			if len(revs) != 1 { // revisions_to_keep 1: the first import's content
				t.Fatalf("after the second import: revisions %q, want one", revs)
			}
			d.ok(t, "qvm-volume", "revert", tpl+":private")
			if sumFile(t, priv, -1) != sum1 {
				t.Fatal("after qvm-volume revert the committed image is not the first import's data")
			}
			if got := infoField(t, tpl, "private", "size"); got != strconv.FormatInt(importSize, 10) {
				t.Errorf("size after the revert: %s", got)
			}
			for _, leftover := range []string{"private-import.img", "private-dirty.img", "private-cow.img"} {
				if exists(filepath.Join(tplDir, leftover)) {
					t.Errorf("%s is there after the revert", leftover)
				}
			}
		}},
		{"resize", func(t *testing.T) {
			d.ok(t, "qvm-volume", "resize", tpl+":private", "3GiB")
			st := statFile(t, priv)
			if st.size != 3*gib {
				t.Errorf("apparent size after resize 3GiB: %d", st.size)
			}
			if got := infoField(t, tpl, "private", "size"); got != strconv.FormatInt(3*gib, 10) {
				t.Errorf("qvm-volume info size after the resize: %s", got)
			}
			// the data stays; what was added is a hole
			if sumFile(t, priv, importSize) != sum1 || dataAfter(t, priv, importSize) {
				t.Error("after the resize the image is not the first import's data followed by a hole")
			}
			if want := holeyAlloc(importSize); st.alloc < want || st.alloc > want+sparseLimit {
				t.Errorf("after the resize %d bytes are allocated, want %d", st.alloc, want)
			}
			// revisions are never written in place: the kept one still has
			// the first import's data at its size
			for _, r := range revisions(t) {
				path := filepath.Join(tplDir, "private-cow.img.old")
				if sp.driver == "file-reflink" {
					m, _ := filepath.Glob(filepath.Join(tplDir, "private.img."+r+"@*Z"))
					if len(m) != 1 {
						t.Fatalf("revision %s: files %q", r, m)
					}
					path = m[0]
				}
				if st := statFile(t, path); st.size != importSize || sumFile(t, path, -1) != sum1 {
					t.Errorf("revision %s (%s) changed with the resize: size %d", r, path, st.size)
				}
			}

			msg := d.fails(t, 1, "qvm-volume", "resize", tpl+":private", "1GiB")
			want := "Error: Refusing to shrink volume " + tpl + ":private from 3221225472 to 1073741824 bytes.\n" +
				"If you really know what you are doing: Manually shrink the filesystem on the volume first, " +
				"and repartition the volume if it is partitioned. Do this in a VM, not in dom0. " +
				"Then use 'qvm-volume resize --force " + tpl + ":private 1073741824'\n"
			if msg != want {
				t.Errorf("the refused shrink says:\n%q\nwant the Python tool's:\n%q", msg, want)
			}
			if st := statFile(t, priv); st.size != 3*gib {
				t.Errorf("the refused shrink changed the image: size %d", st.size)
			}
		}},
		{"clone", func(t *testing.T) {
			// no --ignore-errors: every step must succeed (a daemon without
			// the firewall extension has no rules to copy)
			_, errOut, err := d.qvm(nil, "qvm-clone", tpl, clone)
			if err != nil {
				t.Fatalf("qvm-clone: %v\n%s", err, errOut)
			}
			if strings.TrimSpace(errOut) != "" {
				t.Errorf("qvm-clone printed: %s", errOut)
			}
			if ls := d.ok(t, "qvm-ls", "--raw-data", "--fields=name,class", clone); ls != clone+"|TemplateVM\n" {
				t.Errorf("qvm-ls %s: %q", clone, ls)
			}
			for _, vol := range []string{"root", "private", "volatile"} {
				if got := infoField(t, clone, vol, "pool"); got != pool {
					t.Errorf("%s:%s is in pool %q, want %q (the source's)", clone, vol, got, pool)
				}
			}
			cp := filepath.Join(cloneDir, "private.img")
			src, dst := statFile(t, priv), statFile(t, cp)
			if dst.size != src.size {
				t.Errorf("the clone's private is %d bytes, the source's %d", dst.size, src.size)
			}
			if sumFile(t, cp, importSize) != sum1 || dataAfter(t, cp, importSize) {
				t.Error("the clone's private is not the source's content (its data, then a hole)")
			}
			if diff := dst.alloc - src.alloc; diff < -sparseLimit || diff > sparseLimit {
				t.Errorf("the clone's private has %d bytes allocated, the source's %d: holes not kept", dst.alloc, src.alloc)
			}
			if dst.ino == src.ino {
				t.Error("the clone's private is the source's file (same inode)")
			}
			if got := infoField(t, clone, "private", "size"); got != strconv.FormatInt(3*gib, 10) {
				t.Errorf("qvm-volume info %s:private size: %s", clone, got)
			}
			// the source is untouched
			if sumFile(t, priv, importSize) != sum1 || statFile(t, priv).size != 3*gib {
				t.Error("the clone changed the source")
			}
			if st := statFile(t, filepath.Join(cloneDir, "root.img")); st.size != rootSize || st.alloc >= sparseLimit {
				t.Errorf("the clone's root: size %d, %d bytes allocated, want the source's empty 10 GiB", st.size, st.alloc)
			}
		}},
		{"remove", func(t *testing.T) {
			d.ok(t, "qvm-remove", "-f", clone)
			d.ok(t, "qvm-remove", "-f", app)
			d.ok(t, "qvm-remove", "-f", tpl, alone)
			for _, gone := range []string{cloneDir, tplDir, filepath.Join(dir, "appvms", app), filepath.Join(dir, "appvms", alone)} {
				if exists(gone) {
					ents, _ := os.ReadDir(gone)
					var names []string
					for _, e := range ents {
						names = append(names, e.Name())
					}
					t.Errorf("%s is still there after qvm-remove, holding %q", gone, names)
				}
			}
			for _, sub := range []string{"appvms", "vm-templates"} {
				if !isDir(filepath.Join(dir, sub)) {
					t.Errorf("qvm-remove removed the pool's %s/", sub)
				}
			}
			ls := d.ok(t, "qvm-ls", "--raw-list")
			for _, vm := range []string{tpl, app, alone, clone} {
				if slices.Contains(strings.Split(ls, "\n"), vm) {
					t.Errorf("qvm-ls still lists %s:\n%s", vm, ls)
				}
			}
			if list := d.ok(t, "qvm-volume", "list", "-p", pool); strings.Count(list, "\n") != 1 {
				t.Errorf("qvm-volume list -p %s after the removals:\n%s", pool, list)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Fatalf("step %q failed; the later steps depend on it", s.name)
		}
	}
}

// TestStorageUnavailablePool: a pool whose driver plugin is not running
// (killed with its binary gone; then qubesd restarted without it). Its
// qubes are still listed and their properties edited; a volume operation
// fails with a message that names the pool; other pools work; the pool
// comes back with its binary.
func TestStorageUnavailablePool(t *testing.T) {
	dir := newDir(t)
	plugin := filepath.Join(dir, "plugins", "qubesd-pool-flaky")
	if err := os.MkdirAll(filepath.Dir(plugin), 0o755); err != nil {
		t.Fatal(err)
	}
	copyBinary := func() {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(bin, "qubesd-pool-file-reflink"))
		if err == nil {
			err = os.WriteFile(plugin+".tmp", b, 0o755)
		}
		if err == nil {
			err = os.Rename(plugin+".tmp", plugin)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	copyBinary()
	d := startQubesd(t, dir, storagePlugins+fmt.Sprintf("\n[plugins.flaky]\nkind = \"pool-driver\"\npath = %q\n", plugin))
	d.waitPlugins(t, "file", "linux-kernel", "flaky")
	d.waitDefaultPool(t)
	poolDir := filepath.Join(dir, "pool-flaky")
	d.ok(t, "qvm-pool", "add", "flakypool", "flaky", "-o", "dir_path="+poolDir, "-o", "setup_check=False")
	d.ok(t, "qvm-create", "--standalone", "-l", "red", "-P", "flakypool", "sq")
	if st := statFile(t, filepath.Join(poolDir, "appvms", "sq", "private.img")); st.size != privateSize {
		t.Fatalf("sq's private image: %d bytes", st.size)
	}
	flaky := func() admin.PluginInfo {
		ps, err := d.c.Plugins(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Name == "flaky" {
				return p
			}
		}
		t.Fatal("no plugin flaky")
		return admin.PluginInfo{}
	}

	// checks runs what must work, and what must fail, while the pool is
	// unavailable.
	checks := func(t *testing.T, label string) {
		if ls := d.ok(t, "qvm-ls", "--raw-data", "--fields=name,class", "sq"); ls != "sq|StandaloneVM\n" {
			t.Errorf("qvm-ls sq: %q", ls)
		}
		d.ok(t, "qvm-prefs", "sq", "label", label)
		if got := strings.TrimSpace(d.ok(t, "qvm-prefs", "sq", "label")); got != label {
			t.Errorf("qvm-prefs sq label: %q after setting %q", got, label)
		}
		d.ok(t, "qvm-prefs", "sq", "memory", "777")
		if got := strings.TrimSpace(d.ok(t, "qvm-prefs", "sq", "memory")); got != "777" {
			t.Errorf("qvm-prefs sq memory: %q after setting 777", got)
		}
		// qubes.xml has the edit
		if x, err := os.ReadFile(filepath.Join(d.data, "qubes.xml")); err != nil || !strings.Contains(string(x), `<property name="label">`+label+`</property>`) {
			t.Errorf("qubes.xml does not hold the new label %s (%v)", label, err)
		}
		for _, args := range [][]string{
			{"info", "sq:private"},
			{"resize", "sq:private", "3GiB"},
			{"revert", "sq:private"},
		} {
			msg := d.fails(t, 1, "qvm-volume", args...)
			if !strings.HasPrefix(msg, "Error: ") || !strings.Contains(msg, "pool flakypool (driver flaky)") || !strings.Contains(msg, "plugin flaky is not running") {
				t.Errorf("qvm-volume %s: %q, want an error naming the pool flakypool and its driver", strings.Join(args, " "), msg)
			}
		}
		if msg := d.fails(t, 1, "qvm-clone", "sq", "sq2"); !strings.Contains(msg, "pool flakypool") {
			t.Errorf("qvm-clone of a qube in the unavailable pool: %q, want an error naming the pool", msg)
		}
		if ls := d.ok(t, "qvm-ls", "--raw-list"); slices.Contains(strings.Split(ls, "\n"), "sq2") {
			t.Error("the failed clone left a qube sq2")
		}
		// the pool's config is still shown; the pool's files are untouched
		if out := d.ok(t, "qvm-pool", "info", "flakypool"); !strings.Contains(out, "driver") || !strings.Contains(out, poolDir) {
			t.Errorf("qvm-pool info flakypool:\n%s", out)
		}
		if st := statFile(t, filepath.Join(poolDir, "appvms", "sq", "private.img")); st.size != privateSize {
			t.Errorf("sq's private image changed: %d bytes", st.size)
		}
		// another pool works
		name := "other-" + label
		d.ok(t, "qvm-create", "--standalone", "-l", "red", "-P", "varlibqubes", name)
		if !exists(filepath.Join(d.data, "appvms", name, "private.img")) {
			t.Errorf("a qube in varlibqubes has no private image while flakypool is down")
		}
	}

	if !t.Run("plugin killed, binary gone", func(t *testing.T) {
		pid := flaky().PID
		if err := os.Remove(plugin); err != nil {
			t.Fatal(err)
		}
		kill(t, pid, syscall.SIGKILL)
		waitUntil(t, "the plugin to be unavailable", 20*time.Second, func() bool {
			p := flaky()
			return p.State == "unavailable" && p.PID == 0 && p.Restarts > 0
		})
		if p := flaky(); !strings.Contains(p.LastError, plugin) {
			t.Errorf("the plugin's last error does not name its binary: %q", p.LastError)
		}
		checks(t, "blue")
	}) {
		t.FailNow()
	}
	if !t.Run("qubesd restarted without the binary", func(t *testing.T) {
		d.stop()
		d.start(t)
		d.waitPlugins(t, "file", "linux-kernel")
		waitUntil(t, "the plugin to be unavailable", 20*time.Second, func() bool { return flaky().State == "unavailable" })
		if got := strings.TrimSpace(d.ok(t, "qvm-prefs", "sq", "label")); got != "blue" {
			t.Errorf("after the restart sq's label is %q, want blue", got)
		}
		checks(t, "purple")
	}) {
		t.FailNow()
	}
	t.Run("binary back", func(t *testing.T) {
		copyBinary()
		waitUntil(t, "the plugin to run again", 60*time.Second, func() bool { return flaky().State == "running" })
		if got := strings.TrimSpace(d.ok(t, "qvm-volume", "info", "sq:private", "size")); got != strconv.FormatInt(privateSize, 10) {
			t.Errorf("qvm-volume info sq:private size: %s", got)
		}
		d.ok(t, "qvm-volume", "resize", "sq:private", "3GiB")
		if st := statFile(t, filepath.Join(poolDir, "appvms", "sq", "private.img")); st.size != 3*gib {
			t.Errorf("after the resize sq's private image is %d bytes", st.size)
		}
		d.ok(t, "qvm-remove", "-f", "sq")
		if exists(filepath.Join(poolDir, "appvms", "sq")) {
			t.Error("qvm-remove left sq's directory")
		}
	})
}
