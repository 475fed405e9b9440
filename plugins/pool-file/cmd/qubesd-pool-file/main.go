// Command qubesd-pool-file is the qubesd storage pool driver plugin
// "file": the legacy file driver's on-disk layout, with reflinks or sparse
// copies instead of device-mapper snapshots. See package
// github.com/qubesgo/qubesd/plugins/pool-file/filepool.
package main

import (
	"github.com/qubesgo/qubesd/plugins/pool-file/filepool"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// main serves the driver; nothing may be printed on stdout (the plugin
// handshake's channel).
func main() { pool.Serve(filepool.NewFile()) }
