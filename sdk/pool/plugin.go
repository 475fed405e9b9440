package pool

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qubesgo/qubesd/sdk/plugin"
	storagev1 "github.com/qubesgo/qubesd/sdk/proto/storage/v1"
)

// Serve runs a pool driver plugin process: call it from main, and do
// nothing else there that writes to stdout (see package
// github.com/qubesgo/qubesd/sdk/plugin on why):
//
//	func main() { pool.Serve(&myDriver{}) }
//
// It serves d over gRPC behind the SDK's request checks, logs to stderr,
// and returns when the daemon stops the plugin.
func Serve(d Driver) {
	plugin.Serve(plugin.KindPoolDriver, NewGRPCPlugin(d))
}

// GRPCPlugin is the go-plugin plugin of kind plugin.KindPoolDriver. The
// plugin process serves its Driver; the daemon, with a nil Driver, gets a
// *Client (a Driver) when it dispenses the plugin:
//
//	cfg := plugin.ClientConfig(plugin.KindPoolDriver, pool.NewGRPCPlugin(nil), exec.Command(path))
//	c := goplugin.NewClient(cfg)
//	rpc, err := c.Client()
//	raw, err := rpc.Dispense(plugin.KindPoolDriver)
//	driver := raw.(pool.Driver)
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// Driver is the driver served; nil on the daemon side.
	Driver Driver
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

// NewGRPCPlugin returns the plugin serving d (nil on the daemon side).
func NewGRPCPlugin(d Driver) *GRPCPlugin {
	return &GRPCPlugin{Driver: d}
}

// GRPCServer registers the PoolDriver service (plugin side).
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	storagev1.RegisterPoolDriverServer(s, NewServer(p.Driver))
	return nil
}

// GRPCClient returns a *Client on conn (daemon side). ctx is cancelled when
// the plugin process exits; the client then reports ErrUnavailable.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{c: storagev1.NewPoolDriverClient(conn), done: ctx}, nil
}
