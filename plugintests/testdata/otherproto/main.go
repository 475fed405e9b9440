// Command otherproto is a plugin for tests that speaks another protocol
// version than the daemon, as one built with a future SDK would.
package main

import (
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/sdk/plugin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func main() {
	hs := plugin.Handshake
	hs.ProtocolVersion = 99
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: hs,
		VersionedPlugins: map[int]goplugin.PluginSet{
			99: {plugin.KindPoolDriver: pool.NewGRPCPlugin(nil)},
		},
		GRPCServer: goplugin.DefaultGRPCServer,
	})
}
