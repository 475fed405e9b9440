package plugintests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qubesgo/qubesd/plugintests/qemu"
	"github.com/qubesgo/qubesd/sdk/admin"
)

// Real VMs through qubesd: the daemon runs on the harness's private
// libvirtd (plugintests/qemu), the guests boot the Debian cloud kernel with
// qemu.QubesdInit from a kernels pool, and everything is driven through
// the qvm tools, as a user would.

// qemuBed is a qubesd on real qemu with a kernels pool and a template.
type qemuBed struct {
	tb  testing.TB
	env *qemu.Env
	d   *qubesd
	log string // qubesd's stderr
	tpl string // the template's name
	// tplRoot is the first line the template's root volume starts with.
	tplRoot string

	mu       sync.Mutex
	watching []string // qubes whose consoles and qemu logs a failure shows
	shown    bool     // a failure message showed the diagnostics
	events   []seenEvent
}

// seenEvent is a domain-* event of the start as the test received it.
type seenEvent struct {
	at            time.Time
	subject, name string
}

// startPhases are the events that end each phase of qubesd's start.
var startPhases = []struct{ event, phase string }{
	{"domain-pre-start", "request"},
	{"domain-pre-spawn", "netvm+storage"}, // the netvm chain, the memory check, storage
	{"domain-spawn", "define+create paused"},
	{"domain-qdb-create", "QubesDB"},
	{"domain-start", "resume"},
}

// newQemuBed starts the private libvirtd, qubesd on it, and makes the
// kernels pool (from the Debian cloud kernel and an initramfs with
// qemu.QubesdInit) and a TemplateVM whose root volume starts with a known
// line. It skips under -short and when the machine cannot run VMs.
func newQemuBed(tb testing.TB) *qemuBed {
	tb.Helper()
	if testing.Short() {
		tb.Skip("boots real VMs under qemu (software emulation): skipped under -short")
	}
	env := qemu.Ensure(tb)
	vmlinuz, version := qemu.Kernel(tb)
	initrd := qemu.Initramfs(tb, qemu.QubesdInit)

	dir := newDir(tb)
	s := &qemuBed{tb: tb, env: env, log: filepath.Join(dir, "qubesd.log"), tpl: "qt-tpl"}
	s.d = &qubesd{tb: tb, dir: dir, data: filepath.Join(dir, "data"), cfg: filepath.Join(dir, "qubesd.toml"),
		sock: filepath.Join(dir, "qubesd.sock"), internal: filepath.Join(dir, "qubesd.internal.sock")}
	s.d.c = admin.New(s.d.sock)
	toml := fmt.Sprintf("[daemon]\ndata_dir = %q\nrun_dir = %q\nplugin_dir = %q\nlibvirt_uri = %q\nlog_level = \"info\"\n%s",
		s.d.data, dir, bin, env.URI, storagePlugins)
	if err := os.WriteFile(s.d.cfg, []byte(toml), 0o644); err != nil {
		tb.Fatal(err)
	}
	s.startDaemon()
	s.tb.Cleanup(s.d.stop)
	s.tb.Cleanup(s.killAll)
	s.tb.Cleanup(func() {
		s.mu.Lock()
		shown := s.shown
		s.mu.Unlock()
		if s.tb.Failed() && !shown {
			s.tb.Log("diagnostics at the end of the failed test:\n" + s.diag())
		}
	})
	s.watchEvents()

	// the kernels pool: one version, the cloud kernel with our initramfs
	kdir := filepath.Join(dir, "kernels")
	vdir := filepath.Join(kdir, version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		tb.Fatal(err)
	}
	copyFile(tb, vmlinuz, filepath.Join(vdir, "vmlinuz"))
	copyFile(tb, initrd, filepath.Join(vdir, "initramfs"))
	s.ok("qvm-pool", "add", "qt-kernels", "linux-kernel", "-o", "dir_path="+kdir)
	s.ok("qubes-prefs", "default_pool_kernel", "qt-kernels")
	// A kernel is validated against the first linux-kernel pool's
	// directory (qubes.App.KernelsDir), not default_pool_kernel's: remove
	// the system's pool so that ours is the first.
	s.ok("qvm-pool", "remove", "linux-kernel")
	s.ok("qubes-prefs", "default_kernel", version)

	// the template, small; its root volume starts with a line of its own
	s.ok("qvm-create", "-C", "TemplateVM", "-l", "black", s.tpl)
	s.ok("qvm-prefs", s.tpl, "memory", "256")
	if k := strings.TrimSpace(s.ok("qvm-prefs", s.tpl, "kernel")); k != version {
		s.fatalf("the template's kernel is %q, want the default %q", k, version)
	}
	s.tplRoot = "QUBESD-TEMPLATE-ROOT " + randomToken()
	img := s.volumeImage(s.tpl, "root")
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		s.fatalf("opening the template's root image: %v", err)
	}
	_, err = f.WriteAt([]byte(s.tplRoot+"\n"), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.fatalf("writing the template's root image %s: %v", img, err)
	}
	return s
}

// startDaemon runs bin/qubesd with its stderr appended to s.log and waits
// until it answers with its pool drivers running. newQemuBed registers
// the cleanups, which run last registered first: the diagnostics (while
// the files are there), the domains, then qubesd (whose stop checks that
// its plugins went with it).
func (s *qemuBed) startDaemon() {
	s.tb.Helper()
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.d.cmd = exec.Command(filepath.Join(bin, "qubesd"), "--config", s.d.cfg)
	s.d.cmd.Stderr = logf
	err = s.d.cmd.Start()
	logf.Close()
	if err != nil {
		s.tb.Fatal(err)
	}
	s.d.done = false
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.d.c.ListVMs(context.Background()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.fatalf("qubesd does not answer on %s after 30 s", s.d.sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.d.waitPlugins(s.tb, "file", "linux-kernel")
}

// watchEvents records the start's events, timed, for the split of
// qubesd's part, until the test ends.
func (s *qemuBed) watchEvents() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.tb.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = s.d.c.Events(ctx, "dom0", func(e admin.Event) error {
			if slices.ContainsFunc(startPhases, func(p struct{ event, phase string }) bool { return p.event == e.Name }) {
				s.mu.Lock()
				s.events = append(s.events, seenEvent{time.Now(), e.Subject, e.Name})
				s.mu.Unlock()
			}
			return nil
		})
	}()
}

// eventIndex is the position of subject's last event name in the stream
// (-1: none).
func (s *qemuBed) eventIndex(subject, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.events) - 1; i >= 0; i-- {
		if s.events[i].subject == subject && s.events[i].name == name {
			return i
		}
	}
	return -1
}

// phases splits qubesd's part of name's start begun at t0 and answered
// at t1 by the start's events: "request" is the CLI and the daemon up to
// domain-pre-start (for a client, its netvm's whole start), "reply" from
// domain-start to qvm-start's exit. It returns the phases' text and the
// time libvirt took to define and create the domain paused (ok false
// while an event is missing).
func (s *qemuBed) phases(name string, t0, t1 time.Time) (text string, create time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := map[string]time.Time{}
	for _, e := range s.events {
		if e.subject == name && !e.at.Before(t0) {
			if _, seen := at[e.name]; !seen {
				at[e.name] = e.at
			}
		}
	}
	var parts []string
	prev := t0
	for _, p := range startPhases {
		t, seen := at[p.event]
		if !seen {
			return fmt.Sprintf("no %s event seen", p.event), 0, false
		}
		if p.event == "domain-spawn" {
			create = t.Sub(prev)
		}
		parts = append(parts, fmt.Sprintf("%s %v", p.phase, t.Sub(prev).Round(time.Millisecond)))
		prev = t
	}
	parts = append(parts, fmt.Sprintf("reply %v", t1.Sub(prev).Round(time.Millisecond)))
	return strings.Join(parts, ", "), create, true
}

// killAll kills every running qube we made (qubesd's view), then destroys
// what libvirt still runs of them.
func (s *qemuBed) killAll() {
	s.mu.Lock()
	names := slices.Clone(s.watching)
	s.mu.Unlock()
	for _, n := range names {
		_, _, _ = s.d.qvm(nil, "qvm-kill", n)
		_, _ = s.env.Virsh("destroy", n)
	}
}

// watch adds qubes whose console and qemu log the diagnostics show.
func (s *qemuBed) watch(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if !slices.Contains(s.watching, n) {
			s.watching = append(s.watching, n)
		}
	}
}

// console is the serial console log of qube name (kvm.xml writes it to
// the qube's directory).
func (s *qemuBed) console(name string) string {
	return filepath.Join(s.d.data, "appvms", name, "console.log")
}

// diag is what a failure needs to be understood: every watched qube's
// console and qemu log, libvirt's domains, and qubesd's stderr, each cut
// to its tail.
func (s *qemuBed) diag() string {
	var b strings.Builder
	s.mu.Lock()
	names := slices.Clone(s.watching)
	s.mu.Unlock()
	for _, n := range names {
		fmt.Fprintf(&b, "--- console of %s (%s):\n%s\n", n, s.console(n), tailFile(s.console(n), 25))
		fmt.Fprintf(&b, "--- qemu log of %s (%s):\n%s\n", n, s.env.QemuLog(n), tailFile(s.env.QemuLog(n), 15))
	}
	out, err := s.env.Virsh("list", "--all")
	fmt.Fprintf(&b, "--- virsh list --all (%v):\n%s\n", err, out)
	fmt.Fprintf(&b, "--- qubesd's stderr (%s):\n%s", s.log, tailFile(s.log, 40))
	return b.String()
}

func (s *qemuBed) fatalf(format string, args ...any) {
	s.tb.Helper()
	s.mu.Lock()
	s.shown = true
	s.mu.Unlock()
	s.tb.Fatalf(format+"\n%s", append(args, s.diag())...)
}

func (s *qemuBed) errorf(format string, args ...any) {
	s.tb.Helper()
	s.mu.Lock()
	s.shown = true
	s.mu.Unlock()
	s.tb.Errorf(format+"\n%s", append(args, s.diag())...)
}

// ok runs a qvm tool that must succeed and returns its stdout.
func (s *qemuBed) ok(tool string, args ...string) string {
	s.tb.Helper()
	out, errOut, err := s.d.qvm(nil, tool, args...)
	if err != nil {
		s.fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", tool, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// volumeImage is the image file of a volume in the default (file) pool.
func (s *qemuBed) volumeImage(vm, vol string) string {
	s.tb.Helper()
	vid := strings.TrimSpace(s.ok("qvm-volume", "info", vm+":"+vol, "vid"))
	pool := strings.TrimSpace(s.ok("qvm-volume", "info", vm+":"+vol, "pool"))
	m := regexp.MustCompile(`(?m)^dir_path +(\S+)$`).FindStringSubmatch(s.ok("qvm-pool", "info", pool))
	if m == nil {
		s.fatalf("qvm-pool info %s shows no dir_path", pool)
	}
	return filepath.Join(m[1], vid+".img")
}

// newAppVM creates an AppVM of the template.
func (s *qemuBed) newAppVM(name string, prefs ...string) {
	s.tb.Helper()
	s.ok("qvm-create", "-t", s.tpl, "-l", "red", name)
	for i := 0; i+1 < len(prefs); i += 2 {
		s.ok("qvm-prefs", name, prefs[i], prefs[i+1])
	}
	s.watch(name)
}

// state is the qube's state as qvm-ls shows it.
func (s *qemuBed) state(name string) string {
	s.tb.Helper()
	for _, l := range strings.Split(s.ok("qvm-ls", "--raw-data", "--fields=name,state"), "\n") {
		if n, st, ok := strings.Cut(l, "|"); ok && n == name {
			return st
		}
	}
	s.fatalf("qvm-ls does not list %s", name)
	return ""
}

// boot is one qvm-start measured: qubesd's part (until qvm-start returns:
// admin.vm.Start answers once the domain was resumed) and the guest's
// (from then until its marker is on the console).
type boot struct {
	console       string
	qubesd, guest time.Duration
	phases        string        // qubesd's part, split by its events
	create        time.Duration // of qubesd's part: libvirt's define and paused create
}

// String is the boot's timing, for the log.
func (b boot) String() string {
	ini, _ := qemu.ConsoleLine(b.console, "QUBESD-INIT uptime=")
	ready, _ := qemu.ConsoleLine(b.console, "QUBESD-READY uptime=")
	return fmt.Sprintf("qvm-start -> marker %v: qubesd %v (%s), guest %v (kernel to /init %ss, marker at %ss of guest uptime)",
		(b.qubesd + b.guest).Round(time.Millisecond), b.qubesd.Round(time.Millisecond), b.phases,
		b.guest.Round(time.Millisecond), ini, ready)
}

// start runs qvm-start on names (the first is the one timed) and waits
// for the marker of each on its console, which it empties first.
func (s *qemuBed) start(names ...string) boot {
	s.tb.Helper()
	for _, n := range names {
		if err := os.Truncate(s.console(n), 0); err != nil && !os.IsNotExist(err) {
			s.tb.Fatal(err)
		}
	}
	t0 := time.Now()
	s.ok("qvm-start", names[0])
	t1 := time.Now()
	var b boot
	for i, n := range names {
		c := s.waitConsole(n, qemu.Marker(n), 180*time.Second)
		if i == 0 {
			b = boot{console: c, qubesd: t1.Sub(t0), guest: time.Since(t1)}
		}
	}
	// the event stream may lag the reply by a little
	for range 50 {
		var ok bool
		if b.phases, b.create, ok = s.phases(names[0], t0, t1); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return b
}

// waitConsole polls qube name's console for a line containing want and
// returns the console; a QUBESD-QDB-ERROR line or the timeout fails.
func (s *qemuBed) waitConsole(name, want string, timeout time.Duration) string {
	s.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(s.console(name))
		c := string(b)
		if _, ok := qemu.ConsoleLine(c, want); ok {
			return c
		}
		if e, ok := qemu.ConsoleLine(c, "QUBESD-QDB-ERROR"); ok {
			s.fatalf("the guest %s could not read its QubesDB:%s", name, e)
		}
		if time.Now().After(deadline) {
			s.fatalf("%q not on the console of %s after %v", want, name, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestQemuQubesd boots an AppVM for real through qubesd: its name reaches
// the guest through QubesDB; a token the guest writes to its private
// volume survives a shutdown and a restart, while what it scribbled on
// its root volume (a snapshot of the template's) is gone; qvm-kill stops
// it; then a netvm chain of two, started by starting the client; last, a
// domain XML template without the QubesDB channel fails the start cleanly.
func TestQemuQubesd(t *testing.T) {
	s := newQemuBed(t)
	t.Logf("libvirt %s", s.env.URI)
	const app = "qt-app"
	token := randomToken()
	s.newAppVM(app, "kernelopts", "qubes.token="+token)
	if p := strings.TrimSpace(s.ok("qvm-volume", "info", app+":kernel", "pool")); p != "qt-kernels" {
		s.errorf("%s:kernel is in pool %q, want qt-kernels (default_pool_kernel)", app, p)
	}

	// first boot: an empty private volume, the template's root; the guest
	// writes the token to private and scribbles on root
	b := s.start(app)
	t.Logf("boot 1: %v", b)
	wantLines(s, app, b.console, map[string]string{
		"QUBESD-DISK-READ vda": s.tplRoot,
		"QUBESD-DISK-READ vdb": "",
		"QUBESD-DISK-WROTE":    token,
	})
	if n, _ := qemu.ConsoleLine(b.console, "QUBESD-QDB-SNAPSHOT entries="); n == "" || n == "0" {
		s.errorf("the guest got %q QubesDB entries, want the start's", n)
	}
	if st := s.state(app); st != "Running" {
		s.errorf("qvm-ls shows %s %s after its marker, want Running", app, st)
	}

	// ACPI shutdown, waited for: private committed, root's snapshot dropped
	start := time.Now()
	s.ok("qvm-shutdown", "--wait", app)
	t.Logf("qvm-shutdown --wait: %v", time.Since(start).Round(time.Millisecond))
	if st := s.state(app); st != "Halted" {
		s.errorf("qvm-ls shows %s %s after qvm-shutdown --wait, want Halted", app, st)
	}
	if out, err := s.env.Virsh("list", "--name"); err != nil || strings.TrimSpace(out) != "" {
		s.errorf("libvirt still runs %q (%v) after qvm-shutdown --wait", out, err)
	}

	// second boot: the token is on private, root is the template's again
	b = s.start(app)
	t.Logf("boot 2: %v", b)
	wantLines(s, app, b.console, map[string]string{
		"QUBESD-DISK-READ vdb": "QUBESD-PRIVATE " + token,
		"QUBESD-DISK-READ vda": s.tplRoot,
	})
	s.ok("qvm-kill", app)
	if st := s.state(app); st != "Halted" {
		s.errorf("qvm-ls shows %s %s after qvm-kill, want Halted", app, st)
	}
	if out, err := s.env.Virsh("list", "--name"); err != nil || strings.TrimSpace(out) != "" {
		s.errorf("libvirt still runs %q (%v) after qvm-kill", out, err)
	}

	// a netvm chain of two: starting the client starts its netvm first
	const net, client = "qt-net", "qt-client"
	s.newAppVM(net, "provides_network", "True")
	s.newAppVM(client, "netvm", net)
	b = s.start(client, net)
	t.Logf("netvm chain: %v", b)
	// the event stream is in firing order
	if n, c := s.eventIndex(net, "domain-start"), s.eventIndex(client, "domain-pre-spawn"); n < 0 || c < 0 || n > c {
		s.errorf("%s's domain-start is event %d, %s's domain-pre-spawn event %d: want the netvm started first (-1: not seen)", net, n, client, c)
	}
	for _, n := range []string{net, client} {
		if st := s.state(n); st != "Running" {
			s.errorf("qvm-ls shows %s %s after qvm-start %s, want Running", n, st, client)
		}
	}
	// a netvm with a running client refuses a plain shutdown
	if out, errOut, err := s.d.qvm(nil, "qvm-shutdown", net); err == nil || !strings.Contains(errOut, "There are other VMs connected to this VM: "+client) {
		s.errorf("qvm-shutdown %s with %s running: %v\nstdout:\n%s\nstderr:\n%s", net, client, err, out, errOut)
	}
	// the client's uplink is hot-unplugged and plugged again in the
	// running domain when its netvm changes
	mac := strings.TrimSpace(s.ok("qvm-prefs", client, "mac"))
	hasIface := func() bool {
		out, err := s.env.Virsh("domiflist", client)
		if err != nil {
			s.fatalf("virsh domiflist %s: %v", client, err)
		}
		return strings.Contains(out, mac)
	}
	if !hasIface() {
		s.errorf("the running %s has no interface with its MAC %s", client, mac)
	}
	s.ok("qvm-prefs", client, "netvm", "")
	for deadline := time.Now().Add(30 * time.Second); hasIface() && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// a detach completes when the guest lets the device go
	}
	if hasIface() {
		s.errorf("%s's interface %s is still there 30 s after its netvm was set to none", client, mac)
	}
	s.ok("qvm-prefs", client, "netvm", net)
	if !hasIface() {
		s.errorf("%s's interface %s was not attached again when its netvm was set back to %s", client, mac, net)
	}
	s.ok("qvm-kill", client)
	s.ok("qvm-kill", net)
	for _, n := range []string{net, client} {
		if st := s.state(n); st != "Halted" {
			s.errorf("qvm-ls shows %s %s after qvm-kill, want Halted", n, st)
		}
	}
	if out, err := s.env.Virsh("list", "--name"); err != nil || strings.TrimSpace(out) != "" {
		s.errorf("libvirt still runs %q (%v) after the kills", out, err)
	}

	// a domain XML template without the QubesDB channel: the start fails,
	// saying why, and leaves nothing behind
	tmpl, err := os.ReadFile(filepath.Join("..", "core", "vmm", "templates", "kvm.xml"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(tmpl), "{{- with .QubesDBSocket}}")
	j := strings.Index(string(tmpl[max(i, 0):]), "{{- end}}")
	if i < 0 || j < 0 {
		t.Fatalf("no QubesDB channel block in core/vmm/templates/kvm.xml:\n%s", tmpl)
	}
	noChannel := string(tmpl[:i]) + string(tmpl[i+j+len("{{- end}}"):])
	s.d.stop()
	if err := os.WriteFile(filepath.Join(s.d.dir, "kvm.xml"), []byte(noChannel), 0o644); err != nil {
		t.Fatal(err)
	}
	s.startDaemon()
	out, errOut, err := s.d.qvm(nil, "qvm-start", app)
	if err == nil || !strings.Contains(errOut, "QubesDB channel") {
		s.fatalf("qvm-start %s without a QubesDB channel: %v, want a failure naming the channel\nstdout:\n%s\nstderr:\n%s", app, err, out, errOut)
	}
	t.Logf("without a QubesDB channel: %s", strings.TrimSpace(errOut))
	if st := s.state(app); st != "Halted" {
		s.errorf("qvm-ls shows %s %s after its failed start, want Halted", app, st)
	}
	if out, err := s.env.Virsh("list", "--all", "--name"); err != nil || slices.Contains(strings.Fields(out), app) {
		s.errorf("libvirt still has %s (%q, %v) after its failed start, want it undefined", app, out, err)
	}
}

// wantLines checks console lines: for each prefix, the rest of the first
// line with it, trimmed, must be the value.
func wantLines(s *qemuBed, name, console string, want map[string]string) {
	s.tb.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		got, ok := qemu.ConsoleLine(console, k)
		got = strings.TrimSpace(got)
		switch {
		case !ok:
			s.errorf("no %q line on the console of %s", k, name)
		case got != want[k]:
			s.errorf("console of %s: %s %q, want %q", name, k, got, want[k])
		}
	}
}

// BenchmarkQemuStartToMarker measures, for one AppVM booted for real
// through qubesd, the wall time from qvm-start to the guest's marker
// (ns/op), split into qubesd's part (until qvm-start returns: storage
// started, domain defined, created paused, QubesDB pushed, resumed;
// libvirt-create is the define and paused create within it, mostly qemu's
// own start-up) and the guest's boot to the marker. The kill after each
// boot is not timed.
func BenchmarkQemuStartToMarker(b *testing.B) {
	s := newQemuBed(b)
	const app = "qt-bench"
	s.newAppVM(app)
	var qd, create, guest time.Duration
	b.ResetTimer()
	for range b.N {
		r := s.start(app)
		b.Logf("%v", r)
		qd += r.qubesd
		create += r.create
		guest += r.guest
		b.StopTimer()
		s.ok("qvm-kill", app)
		b.StartTimer()
	}
	b.ReportMetric(float64(qd.Milliseconds())/float64(b.N), "qubesd-ms/op")
	b.ReportMetric(float64(create.Milliseconds())/float64(b.N), "libvirt-create-ms/op")
	b.ReportMetric(float64(guest.Milliseconds())/float64(b.N), "guest-ms/op")
}

func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// tailFile is the last n lines of a file, or why there are none.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
