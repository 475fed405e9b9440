// Package grpcecho is the gRPC floor benchmark's echo service
// (BenchmarkGRPCFloor): a unary Echo and a bidirectional Stream that
// answer each message with itself, with no qubesd layer behind them. The
// plugin testdata/grpcecho serves it through sdk/plugin.Serve like every
// qubesd plugin; the benchmark is its client. No .proto: the service is a
// hand-written grpc.ServiceDesc whose messages are *[]byte under RawCodec.
package grpcecho

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Kind is the name the echo service is served and dispensed under. It is
// not one of sdk/plugin's kinds (no daemon config can name it), but Serve
// and ClientConfig take any name: the plugin map is just {kind: plugin}.
const Kind = "grpc-echo"

// RawCodec passes a message of type *[]byte as is. The plugin registers
// it (encoding.RegisterCodec); the client selects it with grpc.ForceCodec,
// which sends its name as the content-subtype the server picks it by
// (sdk/plugin.Serve takes no extra server options, so no
// grpc.ForceServerCodec).
type RawCodec struct{}

func (RawCodec) Name() string { return "raw" }

func (RawCodec) Marshal(v any) ([]byte, error) {
	p, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return *p, nil
}

// Unmarshal copies: gRPC reuses data's buffer once Unmarshal returns.
func (RawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*p = bytes.Clone(data)
	return nil
}

// The service's methods, for the client.
const (
	EchoMethod   = "/grpcecho.Echo/Echo"
	StreamMethod = "/grpcecho.Echo/Stream"
)

// StreamDesc describes the Stream method to the client.
var StreamDesc = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

// echoDesc is the service: Echo (unary) and Stream (bidirectional).
var echoDesc = grpc.ServiceDesc{
	ServiceName: "grpcecho.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler:    echoUnary,
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		Handler:       echoStream,
		ServerStreams: true,
		ClientStreams: true,
	}},
}

// echoUnary answers the request with itself, through the server's
// interceptors as generated code does (sdk/plugin.Serve installs one).
func echoUnary(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new([]byte)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return in, nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}
	return interceptor(ctx, in, info, func(_ context.Context, req any) (any, error) { return req, nil })
}

// echoStream sends each message back until the client closes its side.
func echoStream(_ any, stream grpc.ServerStream) error {
	for {
		var m []byte
		if err := stream.RecvMsg(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.SendMsg(&m); err != nil {
			return err
		}
	}
}

// Server is the plugin side: it registers the service on go-plugin's
// server.
type Server struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (Server) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&echoDesc, struct{}{})
	return nil
}

func (Server) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("grpcecho: server side only")
}
