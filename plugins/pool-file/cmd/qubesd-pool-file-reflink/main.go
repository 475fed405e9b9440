// Command qubesd-pool-file-reflink is the qubesd storage pool driver
// plugin "file-reflink": volumes as image files, snapshots by reflink where
// the file system allows. See package
// github.com/qubesgo/qubesd/plugins/pool-file/filepool.
package main

import (
	"github.com/qubesgo/qubesd/plugins/pool-file/filepool"
	"github.com/qubesgo/qubesd/sdk/pool"
)

// main serves the driver; nothing may be printed on stdout (the plugin
// handshake's channel).
func main() { pool.Serve(filepool.NewReflink()) }
