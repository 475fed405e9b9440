// Command grpcecho is the plugin of the gRPC floor benchmark
// (BenchmarkGRPCFloor): package plugintests/internal/grpcecho's echo
// service, served by sdk/plugin.Serve like every qubesd plugin — same
// handshake, AutoMTLS, server options and interceptors.
package main

import (
	"google.golang.org/grpc/encoding"

	"github.com/qubesgo/qubesd/plugintests/internal/grpcecho"
	"github.com/qubesgo/qubesd/sdk/plugin"
)

func main() {
	encoding.RegisterCodec(grpcecho.RawCodec{})
	plugin.Serve(grpcecho.Kind, grpcecho.Server{})
}
