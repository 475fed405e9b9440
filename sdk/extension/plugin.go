package extension

import (
	"context"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/qubesgo/qubesd/sdk/plugin"
	extensionv1 "github.com/qubesgo/qubesd/sdk/proto/extension/v1"
)

// Serve runs an extension plugin process: call it from main, and do
// nothing else there that writes to stdout (see package
// github.com/qubesgo/qubesd/sdk/plugin on why):
//
//	func main() { extension.Serve(&myExtension{}) }
//
// It serves e over gRPC, logs to stderr, and returns when the daemon stops
// the plugin.
func Serve(e Extension) {
	plugin.Serve(plugin.KindExtension, NewGRPCPlugin(e))
}

// GRPCPlugin is the go-plugin plugin of kind plugin.KindExtension. The
// plugin process serves its Extension; the daemon, with a nil Extension,
// gets a *Client when it dispenses the plugin:
//
//	cfg := plugin.ClientConfig(plugin.KindExtension, extension.NewGRPCPlugin(nil), exec.Command(path))
//	c := goplugin.NewClient(cfg)
//	rpc, err := c.Client()
//	raw, err := rpc.Dispense(plugin.KindExtension)
//	ext := raw.(*extension.Client)
//	err = ext.Configure(ctx, configJSON, myHostService)
//
// Both halves use go-plugin's broker: the daemon's Client serves the host
// service on it, the plugin dials it in Configure.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// Extension is the extension served; nil on the daemon side.
	Extension Extension
	// Logger, on the daemon side, logs the panics of the HostService the
	// Client serves (they are answered with an Internal error); nil
	// discards them.
	Logger hclog.Logger
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

// NewGRPCPlugin returns the plugin serving e (nil on the daemon side).
func NewGRPCPlugin(e Extension) *GRPCPlugin {
	return &GRPCPlugin{Extension: e}
}

// GRPCServer registers the Extension service (plugin side); Configure
// dials the host service through broker.
func (p *GRPCPlugin) GRPCServer(broker *goplugin.GRPCBroker, s *grpc.Server) error {
	dial := func(id uint32) (*grpc.ClientConn, error) { return broker.DialWithOptions(id, plugin.DialOptions()...) }
	extensionv1.RegisterExtensionServer(s, NewServer(p.Extension, dial))
	return nil
}

// GRPCClient returns a *Client on conn (daemon side), serving the host
// service through broker. ctx is cancelled when the plugin process exits;
// the client then reports ErrUnavailable.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, broker *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	c := NewClient(extensionv1.NewExtensionClient(conn), broker, p.Logger)
	c.done = ctx
	return c, nil
}
