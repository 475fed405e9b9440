// Command pool-dir is a minimal qubesd storage pool driver: every volume is
// a sparse file in a directory. It is the starting point for driver
// authors — copy it, keep the structure, replace the file operations with
// your storage's. README.md beside this file walks through it.
//
// Pool config (qubes.xml): dir_path, an absolute directory. Plugin config
// (the daemon's TOML [plugins.NAME.config]): none.
//
// On disk, each volume has its own directory, named by its vid with "/"
// escaped ("appvms/work/private" → "appvms%2Fwork%2Fprivate"):
//
//	clean.img     the committed content (origin volumes only)
//	running.img   the image the qube uses while the volume is started
//	import.img    an import in progress
//	rev-<ns>.img  a kept revision, made <ns> (unix nanoseconds)
//
// Every change that must not be seen half done (a new volume, a copy) is
// prepared under a temporary name and renamed into place, so a call that
// is retried after a crash finds either nothing or the finished result.
// That, and "does it exist already?" checks, make each call idempotent.
package main

import "github.com/qubesgo/qubesd/sdk/pool"

// main serves the driver. Print nothing on stdout: it is the plugin
// handshake's channel (log with plugin.Logger, to stderr).
func main() { pool.Serve(&Driver{}) }
