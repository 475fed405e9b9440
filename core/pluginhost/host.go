// Package pluginhost launches the plugins the configuration lists, keeps
// them running, and hands the core Go values that hide the process boundary:
// a pool driver plugin is a pool.Driver (github.com/qubesgo/qubesd/sdk/pool)
// like any in-process driver.
//
// Each plugin runs in its own process group and dies with the daemon (its
// parent-death signal is SIGKILL). It gets an explicit environment and a
// private TMPDIR, talks gRPC over go-plugin with AutoMTLS, and its stderr is
// re-logged under its name. A binary whose SHA-256 does not match the
// configured one is not started.
//
// A plugin that fails to start, exits or crashes is restarted with a
// backoff (250 ms doubling up to 30 s); meanwhile calls fail fast with
// pool.ErrUnavailable and a message that names the plugin and its last
// error, and Status reports it. Every call has a deadline, so a hung plugin
// fails its callers instead of holding them.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/config"
	"github.com/qubesgo/qubesd/core/qubes"
	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/extension"
	sdkplugin "github.com/qubesgo/qubesd/sdk/plugin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// State is where a plugin is in its life.
type State string

const (
	Starting State = "starting"
	Running  State = "running"
	// Unavailable (a pool driver) and Degraded (an extension): the plugin
	// failed and waits to be started again; LastError says why.
	Unavailable State = "unavailable"
	Degraded    State = "degraded"
	Stopped     State = "stopped"
)

// Status is what Host.Status reports of one plugin.
type Status struct {
	Name      string
	Kind      string
	State     State
	PID       int // 0 when not running
	Restarts  int // starts after the first
	LastError string
}

// Options tune a Host; the zero value is the production setting.
type Options struct {
	// CallTimeout bounds every call to a plugin (default 2 minutes); a
	// caller's earlier deadline wins.
	CallTimeout time.Duration
	// StartTimeout bounds a plugin's start and handshake (default 10 s).
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between restarts (defaults
	// 250 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// WatchInterval is how often a running plugin's process is checked
	// (default 200 ms).
	WatchInterval time.Duration
	// RunDir holds the plugins' private temporary directories.
	RunDir string
	// Model is the model extensions subscribe to and call back into (nil:
	// extensions are refused).
	Model *qubes.App
	// HostService is what extensions may call back; New builds one on
	// Model when nil.
	HostService extension.HostService
	// Notified, when set, is called after each Notify event an extension
	// handled (err is its handler's or the transport's error): for
	// metrics and tests. It runs on the extension's notify worker, and
	// must not block.
	Notified func(plugin, event string, err error)
}

// Host supervises the configured plugins.
type Host struct {
	log     hclog.Logger
	opts    Options
	plugins []*instance // config order
	byName  map[string]*instance
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New prepares the plugins of cfg; Start launches them.
func New(cfg *config.Config, log hclog.Logger, opts Options) (*Host, error) {
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.WatchInterval == 0 {
		opts.WatchInterval = 200 * time.Millisecond
	}
	if opts.RunDir == "" {
		opts.RunDir = cfg.Daemon.RunDir
	}
	if opts.HostService == nil && opts.Model != nil {
		opts.HostService = &HostService{App: opts.Model}
	}
	h := &Host{log: log, opts: opts, byName: map[string]*instance{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for _, name := range cfg.PluginOrder {
		p := cfg.Plugins[name]
		path, err := cfg.PluginPath(name)
		if err != nil {
			return nil, err
		}
		conf, err := json.Marshal(p.Config)
		if err != nil {
			return nil, fmt.Errorf("plugins.%s.config: cannot hand it to the plugin: %w", name, err)
		}
		in := &instance{host: h, name: name, kind: string(p.Kind), path: path, sha256: p.SHA256, config: conf,
			env: p.Env, log: log.Named(name), state: Stopped}
		in.ready = make(chan struct{})
		h.plugins = append(h.plugins, in)
		h.byName[name] = in
	}
	if opts.Model != nil {
		h.attachExtensions(opts.Model)
	}
	return h, nil
}

// Start launches every plugin and supervises it. It does not wait for the
// plugins to be ready (see WaitReady): a plugin that does not start never
// stops the daemon.
func (h *Host) Start() {
	for _, in := range h.plugins {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			in.supervise(h.ctx)
		}()
	}
}

// WaitReady waits until every plugin has either started or failed once.
func (h *Host) WaitReady(ctx context.Context) {
	for _, in := range h.plugins {
		select {
		case <-in.ready:
		case <-ctx.Done():
			return
		}
	}
}

// Stop stops every plugin and waits for the supervisors.
func (h *Host) Stop() {
	h.cancel()
	h.wg.Wait()
}

// Status reports every plugin, in configuration order.
func (h *Host) Status() []Status {
	out := make([]Status, 0, len(h.plugins))
	for _, in := range h.plugins {
		out = append(out, in.status())
	}
	return out
}

// PoolDriver returns the pool driver plugin called name as a pool.Driver.
// Its calls fail with pool.ErrUnavailable while the plugin is not running.
func (h *Host) PoolDriver(name string) (pool.Driver, error) {
	in, ok := h.byName[name]
	if !ok || in.kind != sdkplugin.KindPoolDriver {
		return nil, fmt.Errorf("no pool-driver plugin %q in the configuration", name)
	}
	return &poolProxy{in: in}, nil
}

// DriverNames lists the configured pool-driver plugins: the driver names
// pools may use.
func (h *Host) DriverNames() []string {
	var names []string
	for _, in := range h.plugins {
		if in.kind == sdkplugin.KindPoolDriver {
			names = append(names, in.name)
		}
	}
	return names
}

// instance is one configured plugin and its current process.
type instance struct {
	host   *Host
	name   string
	kind   string
	path   string
	sha256 string
	config []byte
	env    map[string]string // [plugins.NAME.env]
	log    hclog.Logger

	readyOnce sync.Once
	ready     chan struct{} // closed after the first start attempt

	mu       sync.Mutex
	state    State
	client   *goplugin.Client
	driver   pool.Driver     // pool-driver plugins
	ext      *extensionState // extension plugins
	pid      int
	restarts int
	lastErr  string
	starts   int
}

func (in *instance) status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return Status{Name: in.name, Kind: in.kind, State: in.state, PID: in.pid, Restarts: in.restarts, LastError: in.lastErr}
}

func (in *instance) setState(s State, err error) {
	in.mu.Lock()
	in.state = s
	if err != nil {
		in.lastErr = err.Error()
	}
	in.mu.Unlock()
}

// supervise starts the plugin, watches it and restarts it after failures,
// until ctx ends.
func (in *instance) supervise(ctx context.Context) {
	backoff := in.host.opts.MinBackoff
	markReady := func() { in.readyOnce.Do(func() { close(in.ready) }) }
	defer markReady()
	for {
		started := time.Now()
		err := in.start(ctx)
		if err == nil {
			markReady()
			err = in.watch(ctx)
		}
		in.kill()
		if ctx.Err() != nil {
			in.setState(Stopped, nil)
			return
		}
		if time.Since(started) > time.Minute {
			backoff = in.host.opts.MinBackoff // it ran well for a while
		}
		in.log.Error("plugin failed; restarting it", "error", err, "in", backoff)
		in.setState(in.failedState(), err)
		markReady() // a failed first start is a result too
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			in.setState(Stopped, nil)
			return
		}
		backoff = min(2*backoff, in.host.opts.MaxBackoff)
	}
}

// failedState is the state of a failed plugin of this kind.
func (in *instance) failedState() State {
	if in.kind == sdkplugin.KindExtension {
		return Degraded
	}
	return Unavailable
}

// baseEnv is what a plugin's environment holds unless its config's env
// table says otherwise. GOMAXPROCS=1: a plugin's work is a call at a time,
// and on one P the hand-offs between gRPC's goroutines stay on one CPU;
// with the Go default, the wake-ups across CPUs cost a third of every
// call's round trip (make bench: BenchmarkExtensionSyncRoundTrip). A
// plugin with parallel CPU-bound work sets GOMAXPROCS in its env table.
var baseEnv = map[string]string{
	"PATH":       "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG":       "C.UTF-8",
	"GOMAXPROCS": "1",
}

// pluginEnv is a plugin's whole environment, sorted: baseEnv, then the
// config's env table over it, and TMPDIR.
func pluginEnv(tmp string, env map[string]string) []string {
	all := maps.Clone(baseEnv)
	maps.Copy(all, env)
	all["TMPDIR"] = tmp
	out := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		out = append(out, k+"="+all[k])
	}
	return out
}

// start launches the process, completes the handshake and configures the
// plugin.
func (in *instance) start(ctx context.Context) error {
	in.mu.Lock()
	in.state = Starting
	if in.starts > 0 {
		in.restarts++
	}
	in.starts++
	in.mu.Unlock()

	if err := in.verifyChecksum(); err != nil {
		return err
	}
	tmp := filepath.Join(in.host.opts.RunDir, "plugins", in.name, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("creating the plugin's TMPDIR %s: %w", tmp, err)
	}
	cmd := exec.Command(in.path)
	cmd.Env = pluginEnv(tmp, in.env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	var host goplugin.Plugin
	switch {
	case in.kind == sdkplugin.KindPoolDriver:
		host = pool.NewGRPCPlugin(nil)
	case in.kind == sdkplugin.KindExtension && in.ext != nil:
		p := extension.NewGRPCPlugin(nil)
		p.Logger = in.log
		host = p
	default:
		return fmt.Errorf("plugins of kind %q cannot run here (an extension needs the daemon's model)", in.kind)
	}
	cc := sdkplugin.ClientConfig(in.kind, host, cmd)
	cc.Logger = in.log
	cc.SkipHostEnv = true
	cc.StartTimeout = in.host.opts.StartTimeout
	cc.SyncStdout, cc.SyncStderr = io.Discard, io.Discard
	client := goplugin.NewClient(cc)
	in.mu.Lock()
	in.client = client
	in.mu.Unlock()

	rpc, err := client.Client()
	if err != nil {
		switch msg := err.Error(); {
		case strings.Contains(msg, "incompatible API version"):
			return fmt.Errorf("%s speaks another plugin protocol version than this qubesd (%d): rebuild it with a matching SDK (%w)", in.path, sdk.ProtocolVersion, err)
		case strings.Contains(msg, "Unrecognized remote plugin message"), strings.Contains(msg, "exited before we could connect"):
			return fmt.Errorf("%s did not complete qubesd's plugin handshake: is it a qubesd plugin built with the qubesd SDK? (%w)", in.path, err)
		}
		return fmt.Errorf("starting %s: %w", in.path, err)
	}
	raw, err := rpc.Dispense(in.kind)
	if err != nil {
		return fmt.Errorf("handshake with %s: %w", in.path, err)
	}
	cctx, cancel := context.WithTimeout(ctx, in.host.opts.CallTimeout)
	defer cancel()
	var d pool.Driver
	var what string
	switch x := raw.(type) {
	case pool.Driver:
		info, err := x.Info(cctx)
		if err != nil {
			return fmt.Errorf("asking %s for its info: %w", in.path, err)
		}
		if err := x.Configure(cctx, in.config); err != nil {
			return fmt.Errorf("plugins.%s.config refused by the plugin: %w", in.name, err)
		}
		d, what = x, "driver "+info.Name+" "+info.Version
	case *extension.Client:
		info, err := x.Info(cctx)
		if err != nil {
			return fmt.Errorf("asking %s for its info: %w", in.path, err)
		}
		if err := x.Configure(cctx, in.config, in.host.opts.HostService); err != nil {
			return fmt.Errorf("plugins.%s.config refused by the plugin: %w", in.name, err)
		}
		subs, err := x.Subscriptions(cctx)
		if err != nil {
			return fmt.Errorf("asking %s for its subscriptions: %w", in.path, err)
		}
		methods, err := x.Methods(cctx)
		if err != nil {
			return fmt.Errorf("asking %s for its Admin API methods: %w", in.path, err)
		}
		in.setExtension(x, subs, methods)
		what = "extension " + info.Name + " " + info.Version
	default:
		return fmt.Errorf("%s serves %T, not a %s", in.path, raw, in.kind)
	}
	// the runner's ID is the process id (ReattachConfig has none when a
	// runner starts the process)
	pid, _ := strconv.Atoi(client.ID())
	in.mu.Lock()
	in.driver, in.pid, in.state = d, pid, Running
	in.mu.Unlock()
	in.log.Info("plugin running", "plugin", what, "pid", pid)
	return nil
}

// verifyChecksum refuses a binary that does not match the configured hash.
func (in *instance) verifyChecksum() error {
	if in.sha256 == "" {
		return nil
	}
	f, err := os.Open(in.path)
	if err != nil {
		return fmt.Errorf("plugin binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading %s: %w", in.path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != in.sha256 {
		return fmt.Errorf("%s has SHA-256 %s, but plugins.%s.sha256 says %s: refusing to start it (update sha256 after installing a new version)", in.path, got, in.name, in.sha256)
	}
	return nil
}

// watch returns when the plugin process exits or ctx ends.
func (in *instance) watch(ctx context.Context) error {
	t := time.NewTicker(in.host.opts.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			in.mu.Lock()
			c := in.client
			in.mu.Unlock()
			if c == nil || c.Exited() {
				return errors.New("the plugin process exited")
			}
		}
	}
}

// kill stops the current process, if any.
func (in *instance) kill() {
	in.mu.Lock()
	c := in.client
	in.client, in.driver, in.pid = nil, nil, 0
	in.mu.Unlock()
	if in.ext != nil {
		in.ext.mu.Lock()
		if in.ext.client != nil {
			_ = in.ext.client.Close()
		}
		in.ext.client = nil // keep subs: PreVeto ones fail closed while down
		in.ext.mu.Unlock()
	}
	if c != nil {
		c.Kill()
	}
}

// current returns the running driver or an ErrUnavailable error that says
// why there is none.
func (in *instance) current() (pool.Driver, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state == Running && in.driver != nil {
		return in.driver, nil
	}
	why := string(in.state)
	if in.lastErr != "" {
		why += "; last error: " + in.lastErr
	}
	return nil, pool.Errorf(pool.ErrUnavailable, "plugin %s is not running (%s)", in.name, why)
}

// failed records that a call found the plugin broken, so that the watcher
// restarts it without waiting for its next check.
func (in *instance) failed(method string, err error) {
	in.mu.Lock()
	c := in.client
	in.mu.Unlock()
	if c != nil && c.Exited() {
		in.log.Error("plugin died during a call", "method", method, "error", err)
	}
}
