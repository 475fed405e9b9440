// Package daemon wires the core together into a running qubesd: it opens the
// store (creating a fresh system on first start), loads the model, makes
// changes durable through group commit, and serves the Admin API on its unix
// sockets. cmd/qubesd parses flags and signals and calls Start/Shutdown.
package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/api"
	"github.com/qubesgo/qubesd/core/lifecycle"
	"github.com/qubesgo/qubesd/core/pluginhost"
	"github.com/qubesgo/qubesd/core/qdb"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/core/storage"
	"github.com/qubesgo/qubesd/core/store"
	"github.com/qubesgo/qubesd/core/vmm"
)

// Daemon is a running qubesd.
type Daemon struct {
	cfg  *config.Config
	log  hclog.Logger
	opts Options
	// ctx ends when the daemon closes; bg runs its background work.
	ctx       context.Context
	cancel    context.CancelFunc
	bg        sync.WaitGroup
	store     *store.Store
	committer *store.Committer
	app       *qubes.App
	qdb       *qdb.Registry
	plugins   *pluginhost.Host
	storage   *storage.Manager
	vmm       *vmm.Conn
	lifecycle *lifecycle.Manager
	// lc is the lifecycle manager once built: libvirt events and the
	// plugins' Host calls may come before.
	lc       atomic.Pointer[lifecycle.Manager]
	renderer *vmm.Renderer
	servers  []*api.Server
	sockets  []string
	done     chan error
}

// Host describes the machine the model runs on.
type Host struct {
	MemoryMiB int
	CPUs      int
}

// ProbeHost reads the host's memory and CPU count.
func ProbeHost() Host {
	h := Host{MemoryMiB: 4096, CPUs: runtime.NumCPU()}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			if kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB")); err == nil {
				h.MemoryMiB = kb / 1024
			}
		}
	}
	return h
}

// Init creates a fresh store (the eight labels, dom0 and the default pools)
// at the configured place. It refuses to overwrite an existing store.
func Init(cfg *config.Config, log hclog.Logger) error {
	if err := os.MkdirAll(cfg.Daemon.DataDir, 0o775); err != nil {
		return fmt.Errorf("creating data directory %s: %w", cfg.Daemon.DataDir, err)
	}
	st, err := store.Open(cfg.Daemon.StorePath(), store.Options{Logger: log.Named("store"), Group: cfg.Daemon.SocketGroup})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := os.Stat(cfg.Daemon.StorePath()); err == nil {
		return fmt.Errorf("%s already exists; remove it first if you really want a new, empty system", cfg.Daemon.StorePath())
	}
	return createStore(cfg, st, log)
}

// setupPending marks, in the data directory, a new system whose pools
// have not been set up yet: that needs their drivers, which run only in
// the daemon, so `qubesd init` leaves it to the first start.
const setupPending = "pools-setup-pending"

func createStore(cfg *config.Config, st *store.Store, log hclog.Logger) error {
	app := qubes.NewSystem(modelOptions(cfg, log))
	doc, _ := app.Snapshot()
	if err := os.WriteFile(filepath.Join(cfg.Daemon.DataDir, setupPending), nil, 0o600); err != nil {
		return fmt.Errorf("marking the new system's pools for setup: %w", err)
	}
	if err := st.Save(doc); err != nil {
		return fmt.Errorf("writing the new store: %w", err)
	}
	log.Info("created a new, empty system", "store", cfg.Daemon.StorePath())
	return nil
}

func modelOptions(cfg *config.Config, log hclog.Logger) qubes.Options {
	h := ProbeHost()
	return qubes.Options{
		DataDir:        cfg.Daemon.DataDir,
		HostMemoryMiB:  h.MemoryMiB,
		HostCPUs:       h.CPUs,
		AdminMaxMemMiB: min(4096, h.MemoryMiB),
		Logger:         log.Named("model"),
	}
}

// Options change how a daemon is put together, for tests.
type Options struct {
	// PoolDrivers, when set, serve the pools instead of the configured
	// pool-driver plugins (in-process drivers for tests).
	PoolDrivers storage.Drivers
}

// Start opens the store, loads the model and starts serving. A missing
// store is created first. It returns once the sockets accept connections.
func Start(cfg *config.Config, log hclog.Logger) (*Daemon, error) {
	return StartWith(cfg, log, Options{})
}

// StartWith is Start with options.
func StartWith(cfg *config.Config, log hclog.Logger, opts Options) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, opts: opts, done: make(chan error, 3)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.start(); err != nil {
		d.close()
		return nil, err
	}
	notifySystemd("READY=1\nSTATUS=serving " + cfg.Daemon.SocketPath())
	return d, nil
}

func (d *Daemon) start() (err error) {
	cfg, log := d.cfg, d.log
	for _, dir := range []string{cfg.Daemon.DataDir, cfg.Daemon.RunDir} {
		if err := os.MkdirAll(dir, 0o775); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	d.store, err = store.Open(cfg.Daemon.StorePath(), store.Options{Logger: log.Named("store"), Group: cfg.Daemon.SocketGroup})
	if err != nil {
		return err
	}
	doc, rep, err := d.store.Load()
	if errors.Is(err, fs.ErrNotExist) {
		if err := createStore(cfg, d.store, log); err != nil {
			return err
		}
		doc, rep, err = d.store.Load()
	}
	if err != nil {
		return err
	}
	if rep.FellBack {
		log.Error("qubes.xml did not load; started from the newest good generation instead",
			"used", rep.Path, "broken_file_kept_as", rep.Broken, "errors", fmt.Sprint(rep.Errors))
	}
	t0 := time.Now()
	app, mrep, err := qubes.Load(doc, modelOptions(cfg, log))
	if err != nil {
		return fmt.Errorf("loading %s: %w", rep.Path, err)
	}
	d.app = app
	for _, q := range mrep.Quarantined {
		log.Error("qube quarantined: kept in qubes.xml unchanged, not usable until its record is fixed",
			"qube", q.Name, "class", q.Class, "error", q.Err)
	}
	for _, r := range mrep.Repairs {
		log.Warn("store repaired while loading", "repair", r)
	}
	log.Info("model loaded", "qubes", app.Len(), "quarantined", len(mrep.Quarantined), "took", time.Since(t0))
	d.committer = store.NewCommitter(d.store, app.Snapshot, log.Named("store"))

	// dom0 always runs, so its QubesDB is open for the daemon's life; the
	// other qubes' open and close with them (core/vmm).
	d.qdb = &qdb.Registry{}
	if dom0 := app.AdminVM(); dom0 != nil {
		d.qdb.Open(dom0.Name())
	}
	if err := d.openVMM(); err != nil {
		return err
	}
	d.plugins, err = pluginhost.New(cfg, log.Named("plugin"), pluginhost.Options{
		Model: app,
		HostService: &pluginhost.HostService{
			App:        app,
			PowerState: func(q *qubes.Qube) string { return d.powerState(q) },
			Commit:     d.committer.Commit,
			QDB:        d.qdb,
			Devices:    d.vmm,
		},
	})
	if err != nil {
		return err
	}
	d.plugins.Start() // a plugin that fails to start never stops the daemon

	// Pools name their driver by plugin name: the host serves them. The
	// import journal lives with qubes.xml: an import a crash interrupted
	// is ended (discarded) once the drivers are up.
	var drivers storage.Drivers = d.plugins
	if d.opts.PoolDrivers != nil {
		drivers = d.opts.PoolDrivers
	}
	d.storage = storage.New(app, drivers, storage.Options{Logger: log.Named("storage"), StateDir: cfg.Daemon.DataDir, Commit: d.committer.Commit,
		ReservePercent: uint64(cfg.Daemon.PoolReservePercent)})
	d.bg.Go(d.storageStartup)
	if err := d.startLifecycle(); err != nil {
		return err
	}
	admin := api.New(api.Options{App: app, Committer: d.committer, Logger: log.Named("api"), Plugins: d.plugins, Storage: d.storage, Lifecycle: d.lifecycle})
	if err := d.listen(cfg.Daemon.SocketPath(), admin); err != nil {
		return err
	}
	internal := api.New(api.Options{App: app, Committer: d.committer, Logger: log.Named("api"), Methods: api.InternalMethods, Storage: d.storage, States: d.lifecycle})
	if err := d.listen(cfg.Daemon.InternalSocketPath(), internal); err != nil {
		return err
	}
	misc := api.New(api.Options{App: app, Committer: d.committer, Logger: log.Named("api"), Methods: api.NoMethods})
	return d.listen(cfg.Daemon.MiscSocketPath(), misc)
}

// openVMM connects to libvirt (daemon.libvirt_uri) and prepares the
// domain XML renderer. It runs before the plugins start, so that the Host
// service can attach devices.
func (d *Daemon) openVMM() error {
	uri := d.cfg.Daemon.LibvirtURI
	flavour, err := vmm.FlavourForURI(uri)
	if err != nil {
		return err
	}
	// <flavour>.xml next to the configuration file overrides the embedded template
	overrides := ""
	if fi, err := os.Stat(d.cfg.Source); err == nil && fi.Mode().IsRegular() {
		overrides = filepath.Dir(d.cfg.Source)
	}
	if d.renderer, err = vmm.NewRenderer(flavour, overrides); err != nil {
		return err
	}
	// events may arrive before the manager exists: those are of domains
	// it adopts (or ignores) right after
	d.vmm, err = vmm.Open(vmm.Options{URI: uri, Logger: d.log, OnEvent: func(ev vmm.Event) {
		if m := d.lc.Load(); m != nil {
			m.HandleEvent(ev)
		}
	}})
	if err != nil {
		return fmt.Errorf("connecting to libvirt: %w", err)
	}
	return nil
}

// startLifecycle builds the lifecycle manager and adopts the qubes libvirt
// reports running.
func (d *Daemon) startLifecycle() error {
	d.lifecycle = lifecycle.New(lifecycle.Options{App: d.app, Storage: d.storage, Conn: d.vmm, Renderer: d.renderer,
		QDB: d.qdb, Logger: d.log, Commit: d.committer.Commit})
	d.lc.Store(d.lifecycle)
	adopted, err := d.lifecycle.Adopt()
	if err != nil {
		d.log.Warn("cannot list libvirt's domains; running qubes are not adopted, and disposables left behind by a crash are not removed until the next start", "error", err)
	} else if orphans := d.lifecycle.Orphans(); len(orphans) > 0 {
		// disposables a crash left behind (found before the API serves) go
		// once their pools' drivers are up
		d.bg.Go(func() {
			ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
			defer cancel()
			d.plugins.WaitReady(ctx)
			if n := d.lifecycle.ReapDisposables(ctx, orphans); len(n) > 0 {
				d.log.Info("removed disposables left behind by a crash", "qubes", n)
			}
		})
	}
	if err == nil {
		// the storage of the qubes that do not run is stopped (the
		// reference's app.stop_storage()) once the pools' drivers are up;
		// per-qube start locks keep it from racing the first starts
		d.bg.Go(func() {
			ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
			defer cancel()
			d.plugins.WaitReady(ctx)
			d.lifecycle.StopHaltedStorage(ctx)
		})
	}
	d.log.Info("connected to libvirt", "uri", d.cfg.Daemon.LibvirtURI, "template", d.renderer.Source(), "adopted", len(adopted))
	return nil
}

// powerState is a qube's power state, before the lifecycle exists too.
func (d *Daemon) powerState(q *qubes.Qube) string {
	if m := d.lc.Load(); m != nil {
		return m.PowerState(q)
	}
	return api.StaticPowerStates{}.PowerState(q)
}

// Lifecycle returns the lifecycle manager.
func (d *Daemon) Lifecycle() *lifecycle.Manager { return d.lifecycle }

// storageStartup runs once the plugins have had their first start: it
// sets up the pools of a new system and ends the imports a crash left
// behind. Failures are logged; the pools concerned stay unavailable.
func (d *Daemon) storageStartup() {
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	defer cancel()
	d.plugins.WaitReady(ctx)
	pending := filepath.Join(d.cfg.Daemon.DataDir, setupPending)
	if _, err := os.Stat(pending); err == nil {
		var pools []storage.Pool
		_ = d.app.Read(func() error { pools = d.storage.Pools(); return nil })
		ok := true
		for _, p := range pools {
			if err := d.storage.SetupPool(ctx, p); err != nil {
				d.log.Error("setting up a pool of the new system failed; it stays unavailable until it is fixed and qubesd restarted", "pool", p.Name, "driver", p.Driver, "error", err)
				ok = false
			}
		}
		if ok {
			_ = os.Remove(pending)
		}
	}
	if err := d.storage.CleanupAbandonedImports(ctx); err != nil {
		d.log.Error("ending the volume imports a crash left behind", "error", err)
	}
}

// listen opens a unix socket, replacing a stale one, and serves srv on it.
func (d *Daemon) listen(path string, srv *api.Server) error {
	if err := removeStaleSocket(path); err != nil {
		return err
	}
	old := syscall.Umask(0o007)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	d.sockets = append(d.sockets, path)
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	if g := d.cfg.Daemon.SocketGroup; g != "" {
		if grp, err := user.LookupGroup(g); err == nil {
			gid, _ := strconv.Atoi(grp.Gid)
			if err := os.Chown(path, -1, gid); err != nil {
				d.log.Warn("cannot give the socket to its group", "socket", path, "group", g, "error", err)
			}
		} else {
			d.log.Debug("socket group does not exist; the socket keeps the daemon's group", "group", g)
		}
	}
	d.servers = append(d.servers, srv)
	go func() { d.done <- srv.Serve(l) }()
	d.log.Info("listening", "socket", path)
	return nil
}

// removeStaleSocket removes a socket nobody listens on. A live socket means
// another daemon runs; anything else at the path is left alone.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; move it away or change daemon.run_dir", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("another qubesd is already serving %s; stop it first", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s exists and cannot be checked (%v); remove it if no qubesd runs", path, err)
	}
	return os.Remove(path)
}

// Storage returns the storage manager.
func (d *Daemon) Storage() *storage.Manager { return d.storage }

// Plugins returns the plugin host.
func (d *Daemon) Plugins() *pluginhost.Host { return d.plugins }

// App returns the model.
func (d *Daemon) App() *qubes.App { return d.app }

// QDB returns the QubesDB of the running qubes.
func (d *Daemon) QDB() *qdb.Registry { return d.qdb }

// Done reports a server that stopped on its own (an accept error).
func (d *Daemon) Done() <-chan error { return d.done }

// Shutdown stops accepting, finishes calls in flight, makes every change
// durable and releases the store.
func (d *Daemon) Shutdown(ctx context.Context) error {
	notifySystemd("STOPPING=1")
	var errs []error
	for _, s := range d.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if d.committer != nil {
		_, v := d.app.Snapshot()
		if err := d.committer.Commit(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("final save: %w", err))
		}
	}
	d.close()
	return errors.Join(errs...)
}

func (d *Daemon) close() {
	d.cancel()
	d.bg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range d.servers {
		_ = s.Shutdown(ctx)
	}
	if d.lifecycle != nil {
		d.lifecycle.Close()
	}
	if d.vmm != nil {
		_ = d.vmm.Close()
	}
	if d.plugins != nil {
		d.plugins.Stop()
	}
	if d.committer != nil {
		_ = d.committer.Close()
	}
	if d.store != nil {
		_ = d.store.Close()
	}
	for _, p := range d.sockets {
		_ = os.Remove(p)
	}
}

// notifySystemd sends a state to systemd when it started us as Type=notify.
func notifySystemd(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}
