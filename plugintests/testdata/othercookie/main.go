// Command othercookie is a plugin for tests built with another handshake
// cookie, as a program that is not a qubesd plugin at all would be.
package main

import (
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/sdk/plugin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

func main() {
	hs := plugin.Handshake
	hs.MagicCookieKey, hs.MagicCookieValue = "SOME_OTHER_PLUGIN_SYSTEM", "not-qubesd"
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: plugin.VersionedPlugins(plugin.KindPoolDriver, pool.NewGRPCPlugin(nil)),
		GRPCServer:       goplugin.DefaultGRPCServer,
	})
}
