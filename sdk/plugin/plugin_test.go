package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qubesgo/qubesd/sdk"
	"github.com/qubesgo/qubesd/sdk/plugin"
)

// helperEnv makes the test binary act as a plugin (the re-exec pattern of
// go-plugin's own tests): its value is the mode.
const helperEnv = "QUBESD_PLUGIN_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "noise":
		// What a careless dependency's init() does.
		fmt.Println("hello from an init() that prints to stdout")
		fmt.Println("1|1|not|a handshake")
		plugin.Serve(plugin.KindPoolDriver, nopPlugin{})
	case "quiet":
		plugin.Serve(plugin.KindPoolDriver, nopPlugin{})
	case "mute":
		fmt.Fprintln(os.Stderr, "this plugin dies before its handshake")
		os.Exit(3)
	}
	os.Exit(0)
}

type nopPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (nopPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error { return nil }
func (nopPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return "dispensed", nil
}

func helper(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{helperEnv + "=" + mode}
	return cmd
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHandshake(t *testing.T) {
	if plugin.Handshake.ProtocolVersion != sdk.ProtocolVersion {
		t.Errorf("handshake protocol version %d, want sdk.ProtocolVersion %d", plugin.Handshake.ProtocolVersion, sdk.ProtocolVersion)
	}
	if plugin.Handshake.MagicCookieKey == "" || len(plugin.Handshake.MagicCookieValue) != 64 {
		t.Errorf("magic cookie %q=%q", plugin.Handshake.MagicCookieKey, plugin.Handshake.MagicCookieValue)
	}
	if !plugin.ValidKind("pool-driver") || !plugin.ValidKind("extension") || plugin.ValidKind("driver") {
		t.Error("ValidKind disagrees with the config's kinds (pool-driver, extension)")
	}
	vp := plugin.VersionedPlugins(plugin.KindExtension, nopPlugin{})
	if _, ok := vp[sdk.ProtocolVersion][plugin.KindExtension]; !ok || len(vp) != 1 {
		t.Errorf("VersionedPlugins: %v", vp)
	}
}

// launch starts a helper plugin with ClientConfig and returns the client.
func launch(t *testing.T, mode string, logs *syncBuffer) *goplugin.Client {
	t.Helper()
	cfg := plugin.ClientConfig(plugin.KindPoolDriver, nopPlugin{}, helper(mode))
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Debug, Output: logs})
	cfg.StartTimeout = 20 * time.Second
	cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{TempDir: t.TempDir()}
	c := goplugin.NewClient(cfg)
	t.Cleanup(c.Kill)
	return c
}

// TestStdoutNoiseIsSkipped: lines printed before the handshake cost a
// warning, not the plugin.
func TestStdoutNoiseIsSkipped(t *testing.T) {
	logs := &syncBuffer{}
	c := launch(t, "noise", logs)
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("a plugin printing to stdout before its handshake did not start: %v\n%s", err, logs)
	}
	if err := rpc.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
	raw, err := rpc.Dispense(plugin.KindPoolDriver)
	if err != nil || raw != "dispensed" {
		t.Errorf("Dispense: %v, %v", raw, err)
	}
	if c.NegotiatedVersion() != sdk.ProtocolVersion {
		t.Errorf("negotiated version %d", c.NegotiatedVersion())
	}
	pid, _ := strconv.Atoi(c.ID())
	c.Kill()
	if pid <= 0 {
		t.Fatalf("no pid: %q", c.ID())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("plugin process %d still there after Kill: %v", pid, err)
	}
	for _, want := range []string{"hello from an init() that prints to stdout", "1|1|not|a handshake", "line ignored"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the host's log does not mention %q:\n%s", want, logs)
		}
	}
}

// TestStdoutNoiseBreaksPlainGoPlugin shows the pitfall the guard is for:
// the same plugin launched with go-plugin's own runner does not start.
func TestStdoutNoiseBreaksPlainGoPlugin(t *testing.T) {
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: plugin.VersionedPlugins(plugin.KindPoolDriver, nopPlugin{}),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Cmd:              helper("noise"),
		Logger:           hclog.NewNullLogger(),
	})
	defer c.Kill()
	if _, err := c.Client(); err == nil || !strings.Contains(err.Error(), "Unrecognized remote plugin message") {
		t.Errorf("go-plugin's own runner: %v, want the handshake to fail", err)
	}
}

func TestQuietPluginStarts(t *testing.T) {
	c := launch(t, "quiet", &syncBuffer{})
	rpc, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := rpc.Ping(); err != nil {
		t.Error(err)
	}
}

func TestPluginDyingBeforeHandshake(t *testing.T) {
	logs := &syncBuffer{}
	c := launch(t, "mute", logs)
	_, err := c.Client()
	if err == nil {
		t.Fatal("a plugin that exits before its handshake started")
	}
	if !strings.Contains(logs.String(), "this plugin dies before its handshake") {
		t.Errorf("the plugin's stderr is not in the host's log:\n%s", logs)
	}
}

// TestNotStartedByHand: without the cookie the plugin explains itself on
// stderr, exits 1, and prints nothing on stdout.
func TestNotStartedByHand(t *testing.T) {
	cmd := helper("quiet")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("printed on stdout: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "plugin") {
		t.Errorf("stderr does not explain: %q", stderr.String())
	}
}

func TestClientConfigRefusesStdio(t *testing.T) {
	cmd := helper("quiet")
	cmd.Stdout = os.Stdout
	cfg := plugin.ClientConfig(plugin.KindPoolDriver, nopPlugin{}, cmd)
	tmp := t.TempDir()
	cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{TempDir: tmp}
	cfg.Logger = hclog.NewNullLogger()
	c := goplugin.NewClient(cfg)
	defer c.Kill()
	if _, err := c.Client(); err == nil || !strings.Contains(err.Error(), "stdout") {
		t.Errorf("a command with its own stdout: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed launch left %v behind", left)
	}
}

func TestRecoverUnary(t *testing.T) {
	logs := &syncBuffer{}
	ic := plugin.RecoverUnary(hclog.New(&hclog.LoggerOptions{Output: logs}))
	info := &grpc.UnaryServerInfo{FullMethod: "/qubesd.storage.v1.PoolDriver/Start"}
	resp, err := ic(context.Background(), nil, info, func(context.Context, any) (any, error) { panic("driver bug") })
	if resp != nil || status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "driver bug") {
		t.Errorf("panic came back as %v, %v", resp, err)
	}
	if !strings.Contains(logs.String(), "driver bug") || !strings.Contains(logs.String(), "stack") {
		t.Errorf("panic not logged with its stack: %s", logs)
	}
	resp, err = ic(context.Background(), nil, info, func(context.Context, any) (any, error) { return "ok", nil })
	if resp != "ok" || err != nil {
		t.Errorf("a normal call: %v, %v", resp, err)
	}
}

func TestLoggerLevel(t *testing.T) {
	t.Setenv(plugin.EnvLogLevel, "debug")
	if !plugin.Logger().IsDebug() {
		t.Error("QUBESD_PLUGIN_LOG_LEVEL=debug not honoured")
	}
	t.Setenv(plugin.EnvLogLevel, "")
	if l := plugin.Logger(); l.IsDebug() || !l.IsInfo() {
		t.Error("default level is not info")
	}
}
