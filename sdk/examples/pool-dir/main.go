// Command pool-dir is a minimal qubesd storage pool driver: every volume is
// a sparse file in a directory. It is the starting point for driver
// authors — copy it, keep the structure, replace the file operations with
// your storage's. README.md beside this file walks through it.
//
// Pool config (qubes.xml): dir_path, an absolute directory. Plugin config
// (the daemon's TOML [plugins.NAME.config]): none.
//
// On disk, each volume has its own directory in dir_path, named by its vid
// with "/" escaped ("appvms/work/private" → "appvms%2Fwork%2Fprivate"):
//
//	clean.img     the committed content (origin volumes only)
//	running.img   the image the qube uses while the volume is started
//
// A volatile volume's running.img is zeros, a snapshot volume's a copy of
// its source's clean.img, an origin volume's a copy of its own; Stop
// renames an origin volume's running.img over its clean.img (the commit)
// and deletes the others'.
//
// Crash safety and idempotency: images are written under a temporary name
// and renamed into place (pool.CreateSparse, pool.CopySparse), a commit is
// a rename, and every call first looks whether its work is done already.
// So a call retried after a crash finds either nothing or the finished
// result, and completes what is missing (a Create that made the directory
// but not clean.img makes clean.img).
//
// # Capabilities
//
// It declares only Shrink (Resize truncates, either way). The others are
// left out to keep the example short: pooltest skips their tests, and the
// daemon does not make their calls. To add one, declare it in
// Info.Capabilities and write its methods:
//
//   - Revisions: in Stop, when revisions_to_keep > 0, rename clean.img to
//     rev-<time>.img before renaming running.img over it (never a copy:
//     there is always one whole copy of the data), then delete the oldest
//     rev-*.img beyond revisions_to_keep. ListRevisions lists them oldest
//     first; Revert copies one over clean.img (pool.CopySparse), ErrInUse
//     while started, ErrNotFound for an unknown revision.
//   - Export: ExportBegin returns clean.img's path. A commit renames a new
//     file over it, so a reader keeps reading what it opened.
//   - Import: ImportBegin makes import.img (pool.CreateSparse; ErrInUse
//     while started) and returns its path; ImportEnd(true) commits it as
//     Stop commits running.img, ImportEnd(false) deletes it.
//   - FastClone: CloneFrom is Create with clean.img a copy of the source's
//     (pool.CopySparse). Build the volume's directory under a temporary
//     name and rename it into place, so that a clone of a missing source
//     leaves nothing behind.
package main

import "github.com/qubesgo/qubesd/sdk/pool"

// main serves the driver. Print nothing on stdout: it is the plugin
// handshake's channel (log with plugin.Logger, to stderr).
func main() { pool.Serve(&Driver{}) }
