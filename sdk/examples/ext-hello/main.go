// Command ext-hello is a minimal qubesd extension. It is the starting
// point for extension authors — copy it, keep the structure, replace what
// it does. README.md beside this file walks through it.
//
// What it does:
//   - when the feature "hello" is set on a qube (domain-feature-set:hello,
//     a Sync subscription), it tags the qube "hello-seen" through the
//     daemon's Host;
//   - it refuses to let the feature "forbidden" be set
//     (domain-feature-pre-set:forbidden, a PreVeto subscription);
//   - it serves the Admin API method admin.vm.hello.Get, which answers
//     "hello <qube>".
//
// Plugin config (the daemon's TOML [plugins.NAME.config]): tag, the tag
// to set (default "hello-seen").
package main

import "github.com/qubesgo/qubesd/sdk/extension"

// main serves the extension. Print nothing on stdout: it is the plugin
// handshake's channel (log with plugin.Logger, to stderr).
func main() { extension.Serve(&Hello{}) }
