// Command qubesd-pool-kernels is the linux-kernel storage pool driver
// plugin: read-only kernels for qubes, one volume per kernel version
// directory (see package github.com/qubesgo/qubesd/plugins/pool-kernels/kernels).
//
// The daemon starts it; run by hand it explains that and exits. Plugin
// config (the daemon's TOML [plugins.NAME.config]): none. Pool config
// (qubes.xml): dir_path.
package main

import (
	"github.com/qubesgo/qubesd/plugins/pool-kernels/kernels"
	"github.com/qubesgo/qubesd/sdk/plugin"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// main serves the driver. Nothing may be printed on stdout: it is the
// plugin handshake's channel; the driver logs to stderr.
func main() { pool.Serve(kernels.New(plugin.Logger())) }
