package plugin

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EnvLogLevel names the environment variable that sets the level of
// [Logger] (trace, debug, info, warn, error; default info). The daemon
// passes its own level through it.
const EnvLogLevel = "QUBESD_PLUGIN_LOG_LEVEL"

// Logger returns the logger a plugin logs with: hclog, JSON lines on
// stderr, at the level EnvLogLevel says. The daemon parses those lines and
// re-logs them under the plugin's name. Never log to stdout (see the
// package documentation).
func Logger() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// Serve runs the plugin process: it serves p, under the name kind, over
// gRPC with go-plugin's standard configuration, and returns when the daemon
// stops the plugin. Started by hand (without the magic cookie in the
// environment), it prints an explanation on stderr and exits with status 1.
//
// A panic in a gRPC handler is logged with its stack and answered with an
// Internal error instead of killing the process: the daemon sees one failed
// call, not a dead plugin.
//
// Kind-specific wrappers call it: pool.Serve for pool drivers.
func Serve(kind string, p plugin.Plugin) {
	logger := Logger()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(kind, p),
		GRPCServer:       grpcServer(logger),
		Logger:           logger,
	})
}

// grpcServer is go-plugin's DefaultGRPCServer with a panic guard.
func grpcServer(logger hclog.Logger) func([]grpc.ServerOption) *grpc.Server {
	return func(opts []grpc.ServerOption) *grpc.Server {
		opts = append(opts, ServerOptions()...)
		opts = append(opts, grpc.ChainUnaryInterceptor(RecoverUnary(logger)))
		return plugin.DefaultGRPCServer(opts)
	}
}

// RecoverUnary returns a gRPC interceptor that turns a handler's panic into
// an Internal error and logs it with its stack.
func RecoverUnary(logger hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				resp, err = nil, status.Error(codes.Internal, Panicked(logger, info.FullMethod, r).Error())
			}
		}()
		return handler(ctx, req)
	}
}

// Panicked logs a recovered panic r of the work described by what (a gRPC
// method, an event) with the stack, and returns the error to answer with.
// Call it from the deferred function that recovered.
func Panicked(logger hclog.Logger, what string, r any) error {
	logger.Error("plugin panicked", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return fmt.Errorf("plugin panicked in %s: %v", what, r)
}
