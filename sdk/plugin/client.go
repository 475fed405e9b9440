package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
)

// ClientConfig returns the go-plugin client config that launches the plugin
// binary described by cmd, of the given kind; p is the host half of the
// kind's plugin (for a pool driver, pool.NewGRPCPlugin(nil)).
//
// It sets the shared Handshake and plugin map, gRPC as the only protocol,
// AutoMTLS (only this process can talk to the plugin), and a runner that
// skips — and logs as warnings — the stdout lines a plugin prints before its
// handshake line (see the package documentation). The caller sets the rest
// as it needs: Logger, Managed, StartTimeout, SkipHostEnv, SyncStdout...
//
// From cmd it takes Path, Args, Dir, Env (go-plugin's variables are added to
// it, and the daemon's environment unless SkipHostEnv), ExtraFiles and
// SysProcAttr (e.g. Setpgid and Pdeathsig); cmd itself is never started and
// must not have Stdout or Stderr set.
//
// go-plugin checks ClientConfig.SecureConfig only against
// ClientConfig.Cmd, which this config does not use: verify the binary's
// checksum before calling ClientConfig (and keep the binary where untrusted
// users cannot write, or the check is racy anyway).
func ClientConfig(kind string, p plugin.Plugin, cmd *exec.Cmd) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(kind, p),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		GRPCDialOptions:  DialOptions(),
		RunnerFunc: func(logger hclog.Logger, spec *exec.Cmd, socketDir string) (runner.Runner, error) {
			r, err := newGuardedRunner(logger, cmd, spec)
			if err != nil {
				// go-plugin made socketDir for this launch and, with no
				// runner, will not remove it.
				os.Remove(socketDir)
				return nil, err
			}
			return r, nil
		},
	}
}

// handshakeLine matches go-plugin's handshake line:
// CORE-PROTOCOL|APP-PROTOCOL|NETWORK|ADDRESS|PROTOCOL[|...].
var handshakeLine = regexp.MustCompile(`^\d+\|\d+\|(unix|tcp)\|[^|]+\|(grpc|netrpc)`)

// guardedRunner runs a plugin as a child process, like go-plugin's own
// command runner, and filters its stdout until the handshake line.
type guardedRunner struct {
	logger  hclog.Logger
	cmd     *exec.Cmd
	raw     io.ReadCloser // the plugin's real stdout
	stdout  *io.PipeReader
	stdoutW *io.PipeWriter
	stderr  io.ReadCloser
	pid     int
	skipped atomic.Int64
}

var _ runner.Runner = (*guardedRunner)(nil)

// newGuardedRunner builds the command from the caller's template and the
// spec go-plugin prepared (its environment and stdin).
func newGuardedRunner(logger hclog.Logger, tmpl, spec *exec.Cmd) (*guardedRunner, error) {
	if tmpl == nil || tmpl.Path == "" {
		return nil, errors.New("plugin: no command to run")
	}
	if tmpl.Err != nil {
		return nil, fmt.Errorf("plugin: %w", tmpl.Err)
	}
	if tmpl.Stdout != nil || tmpl.Stderr != nil {
		return nil, errors.New("plugin: the command's stdout and stderr belong to go-plugin; leave them nil")
	}
	cmd := &exec.Cmd{
		Path:        tmpl.Path,
		Args:        slices.Clone(tmpl.Args),
		Dir:         tmpl.Dir,
		Env:         append(slices.Clone(tmpl.Env), spec.Env...),
		Stdin:       spec.Stdin,
		ExtraFiles:  tmpl.ExtraFiles,
		SysProcAttr: tmpl.SysProcAttr,
	}
	if len(cmd.Args) == 0 {
		cmd.Args = []string{cmd.Path}
	}
	raw, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	r, w := io.Pipe()
	return &guardedRunner{logger: logger, cmd: cmd, raw: raw, stdout: r, stdoutW: w, stderr: stderr}, nil
}

func (g *guardedRunner) Start(context.Context) error {
	g.logger.Debug("starting plugin", "path", g.cmd.Path, "args", g.cmd.Args)
	if err := g.cmd.Start(); err != nil {
		return err
	}
	g.pid = g.cmd.Process.Pid
	go g.filter()
	return nil
}

// filter copies the plugin's stdout to what go-plugin reads, dropping every
// line before the handshake line. It ends when the plugin closes its stdout
// (it exits), which is what go-plugin waits for before calling Wait.
func (g *guardedRunner) filter() {
	br := bufio.NewReader(g.raw)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if handshakeLine.MatchString(line) {
				if _, werr := io.WriteString(g.stdoutW, line); werr == nil {
					_, err = io.Copy(g.stdoutW, br)
				}
				g.stdoutW.CloseWithError(err)
				return
			}
			g.skipped.Add(1)
			g.logger.Warn("plugin wrote to stdout before its handshake; line ignored (plugins must log to stderr)",
				"path", g.cmd.Path, "line", truncate(line, 200))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			g.stdoutW.CloseWithError(err)
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (g *guardedRunner) Wait(context.Context) error { return g.cmd.Wait() }

// Kill kills the process; calling it again, or after the process exited,
// is not an error.
func (g *guardedRunner) Kill(context.Context) error {
	if g.cmd.Process == nil {
		return nil
	}
	if err := g.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (g *guardedRunner) Stdout() io.ReadCloser { return g.stdout }
func (g *guardedRunner) Stderr() io.ReadCloser { return g.stderr }
func (g *guardedRunner) Name() string          { return g.cmd.Path }
func (g *guardedRunner) ID() string            { return strconv.Itoa(g.pid) }

func (g *guardedRunner) Diagnose(context.Context) string {
	msg := "the plugin did not print a go-plugin handshake line on stdout: is " + g.cmd.Path +
		" a qubesd plugin built with the SDK (protocol version " + strconv.Itoa(int(Handshake.ProtocolVersion)) +
		"), for this architecture, and executable? Its stderr is logged above."
	if n := g.skipped.Load(); n > 0 {
		msg += fmt.Sprintf(" (%d other stdout line(s) ignored)", n)
	}
	return msg
}

func (g *guardedRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (g *guardedRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// flowWindow is the HTTP/2 flow-control window, per stream and per
// connection, of every plugin connection. Setting it turns gRPC's
// bandwidth-delay estimator off: on an otherwise idle connection the
// estimator follows the data of a call with a PING and its ack, which on
// a local socket is pure overhead (measured: a unary call about a tenth
// faster). 1 MiB is far above what any plugin call carries.
const flowWindow = 1 << 20

// DialOptions are the gRPC options of every connection to a plugin
// service, either way (ClientConfig sets them; use them when you dial
// through go-plugin's broker).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(flowWindow), grpc.WithInitialConnWindowSize(flowWindow)}
}

// ServerOptions are the gRPC options of every plugin service's server,
// either way (Serve sets them; add them when you serve through go-plugin's
// broker).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(flowWindow), grpc.InitialConnWindowSize(flowWindow)}
}
