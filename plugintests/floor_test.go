package plugintests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qubesgo/qubesd/plugintests/internal/grpcecho"
	sdkplugin "github.com/qubesgo/qubesd/sdk/plugin"
)

// BenchmarkGRPCFloor: the floor the plugin round trips are measured
// against, in the same run. A ~100-byte message goes to a plugin process
// and back over the very connection qubesd's plugins use — launched with
// sdk/plugin.ClientConfig (handshake, AutoMTLS, unix socket, DialOptions)
// with core/pluginhost's environment, served by sdk/plugin.Serve (its
// ServerOptions and interceptor) — to a bare echo service
// (testdata/grpcecho) with no qubesd layer on either side:
//   - unary: one unary call, the floor of a pool driver call
//     (BenchmarkPoolCallRoundTrip);
//   - stream: one message and its answer on an open bidirectional stream,
//     the floor of an extension event (BenchmarkExtensionSyncRoundTrip,
//     which travels on the extension's Events stream).
//
// Compare p50s from one invocation, e.g.
//
//	go test -run='^$' -bench='GRPCFloor|ExtensionSync|PoolCall' -benchtime=3000x -count=3 ./plugintests/
func BenchmarkGRPCFloor(b *testing.B) {
	conn := startEcho(b)
	msg := bytes.Repeat([]byte("0123456789"), 10)
	call := grpc.ForceCodec(grpcecho.RawCodec{})

	b.Run("unary", func(b *testing.B) {
		ctx := context.Background()
		roundTrip := func() error {
			var out []byte
			if err := conn.Invoke(ctx, grpcecho.EchoMethod, &msg, &out, call); err != nil {
				return err
			}
			if !bytes.Equal(out, msg) {
				return fmt.Errorf("echo answered %q", out)
			}
			return nil
		}
		measureRoundTrips(b, roundTrip)
	})

	b.Run("stream", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st, err := conn.NewStream(ctx, &grpcecho.StreamDesc, grpcecho.StreamMethod, call)
		if err != nil {
			b.Fatal(err)
		}
		roundTrip := func() error {
			if err := st.SendMsg(&msg); err != nil {
				return err
			}
			var out []byte
			if err := st.RecvMsg(&out); err != nil {
				return err
			}
			if !bytes.Equal(out, msg) {
				return fmt.Errorf("echo answered %q", out)
			}
			return nil
		}
		measureRoundTrips(b, roundTrip)
		if err := st.CloseSend(); err != nil {
			b.Fatal(err)
		}
		var out []byte
		if err := st.RecvMsg(&out); !errors.Is(err, io.EOF) {
			b.Fatalf("stream end: %v", err)
		}
	})
}

// floorEnv is the plugin environment core/pluginhost gives every plugin:
// a copy of its baseEnv (core/pluginhost/host.go) — GOMAXPROCS=1 matters
// here, it shapes the round trip — plus TMPDIR, as its pluginEnv does.
// Keep it in step with baseEnv.
func floorEnv(tmp string) []string {
	return []string{
		"GOMAXPROCS=1",
		"LANG=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"TMPDIR=" + tmp,
	}
}

// startEcho launches testdata/grpcecho the way core/pluginhost launches a
// plugin (instance.start) and returns its connection; the process is
// killed when b ends.
func startEcho(b *testing.B) *grpc.ClientConn {
	b.Helper()
	cmd := exec.Command(filepath.Join(bin, "grpcecho"))
	cmd.Env = floorEnv(b.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cc := sdkplugin.ClientConfig(grpcecho.Kind, echoClient{}, cmd)
	cc.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{b}})
	cc.SkipHostEnv = true
	cc.StartTimeout = 10 * time.Second
	cc.SyncStdout, cc.SyncStderr = io.Discard, io.Discard
	client := goplugin.NewClient(cc)
	b.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rpc.Dispense(grpcecho.Kind)
	if err != nil {
		b.Fatal(err)
	}
	return raw.(*grpc.ClientConn)
}

// echoClient is the host half of grpcecho's plugin: it hands out
// go-plugin's connection as is.
type echoClient struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (echoClient) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("grpc-echo: client side only")
}

func (echoClient) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return conn, nil
}

// measureRoundTrips times roundTrip in b's loop, after one untimed warm-up
// call, and reports the latencies.
func measureRoundTrips(b *testing.B, roundTrip func() error) {
	b.Helper()
	if err := roundTrip(); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		err := roundTrip()
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportLatency(b, lat)
}
