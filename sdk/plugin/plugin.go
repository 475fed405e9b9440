// Package plugin is the go-plugin glue that qubesd and every plugin built
// with this SDK share: the handshake, the plugin kinds, the plugin map, the
// serve loop of a plugin process and the client config the daemon launches
// plugins with. Defining them once here is what makes a third-party plugin
// and the daemon agree.
//
// Authors do not call this package directly: they write
//
//	func main() { pool.Serve(myDriver{}) }
//
// (see package github.com/qubesgo/qubesd/sdk/pool), which calls [Serve].
//
// # Stdout is the handshake channel
//
// A plugin process announces itself with one line on its stdout, which the
// host parses before anything else ("1|1|unix|/tmp/plugin123|grpc|...").
// Anything the plugin prints to stdout before that line — a fmt.Println in
// main, an init() of a dependency — breaks the start with "Unrecognized
// remote plugin message" (go-plugin issues #164, #199, #233; the go-plugin
// maintainers will not change it). After the handshake go-plugin replaces
// os.Stdout with a pipe that goes nowhere unless the host asks for it.
//
// So, in a plugin:
//   - never write to stdout; log to stderr with [Logger] (hclog JSON, which
//     the daemon re-logs under the plugin's name at the right level);
//   - the SDK itself never writes to stdout: only go-plugin's handshake line
//     goes there.
//
// And on the host side, [ClientConfig] launches the plugin through a runner
// that skips (and logs) every stdout line that comes before the handshake
// line, so a careless dependency costs a warning, not a plugin.
package plugin

import (
	"github.com/hashicorp/go-plugin"

	"github.com/qubesgo/qubesd/sdk"
)

// The plugin kinds: the value of `kind` in the daemon's TOML config
// ([plugins.NAME]) and the name a plugin serves its one plugin under.
const (
	KindPoolDriver = "pool-driver"
	KindExtension  = "extension"
)

// The magic cookie: the daemon sets MagicCookieKey=MagicCookieValue in the
// plugin's environment; a plugin started without it (by a person at a
// terminal) says it is a plugin and exits. It is a UX feature, not a
// security measure.
const (
	MagicCookieKey   = "QUBESD_PLUGIN"
	MagicCookieValue = "36c8bb6cedb7c9ba8b9726924305be1449d09b35fac7061faa3a455cc532ae7b"
)

// Handshake is the go-plugin handshake of every qubesd plugin. Its
// ProtocolVersion is sdk.ProtocolVersion: the daemon refuses a plugin built
// with an SDK that speaks another.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  sdk.ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// PluginSet is the plugin map of a process serving one plugin of the given
// kind: a plugin binary serves exactly one kind, under the kind's name, and
// the host dispenses it by that name.
func PluginSet(kind string, p plugin.Plugin) plugin.PluginSet {
	return plugin.PluginSet{kind: p}
}

// VersionedPlugins is PluginSet under sdk.ProtocolVersion, for go-plugin's
// ServeConfig.VersionedPlugins and ClientConfig.VersionedPlugins. A later
// SDK that speaks two protocol versions adds the older one here.
func VersionedPlugins(kind string, p plugin.Plugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{sdk.ProtocolVersion: PluginSet(kind, p)}
}

// ValidKind reports whether kind is one of the plugin kinds.
func ValidKind(kind string) bool {
	return kind == KindPoolDriver || kind == KindExtension
}
