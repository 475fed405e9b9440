// Command grpcecho is a plugin for the gRPC floor benchmark
// (BenchmarkGRPCFloor): served by sdk/plugin.Serve like every qubesd plugin
// — same handshake, AutoMTLS, server options and interceptors — but with
// no qubesd layer behind it, only an echo service of raw bytes: a unary
// Echo and a bidirectional Stream that answers each message with itself.
//
// No .proto: the service is a hand-written grpc.ServiceDesc, and its
// messages are *[]byte under the codec "raw", registered here; the client
// selects it with grpc.ForceCodec, which sends the content-subtype the
// server picks the codec by (sdk/plugin.Serve takes no extra server
// options, so no grpc.ForceServerCodec).
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"

	"github.com/qubesgo/qubesd/sdk/plugin"
)

// kind is the name the echo service is served and dispensed under. It is
// not one of sdk/plugin's kinds (no daemon config can name it), but Serve
// and ClientConfig take any name: the plugin map is just {kind: plugin}.
const kind = "grpc-echo"

// rawCodec passes a message of type *[]byte as is. Keep it in step with
// the copy in plugintests/floor_test.go.
type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	p, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return *p, nil
}

// Unmarshal copies: gRPC reuses data's buffer once Unmarshal returns.
func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*p = bytes.Clone(data)
	return nil
}

// echoDesc is the service: /grpcecho.Echo/Echo (unary) and
// /grpcecho.Echo/Stream (bidirectional).
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
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/grpcecho.Echo/Echo"}
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

// echoPlugin registers the service on go-plugin's server.
type echoPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (echoPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&echoDesc, struct{}{})
	return nil
}

func (echoPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("grpcecho: server side only")
}

func main() {
	encoding.RegisterCodec(rawCodec{})
	plugin.Serve(kind, echoPlugin{})
}
