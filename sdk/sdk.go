// Package sdk is the public surface of qubesd for third parties: the plugin
// protocol (proto/), the go-plugin handshake both sides share (plugin/),
// helpers to write storage pool drivers (pool/) and extensions (extension/),
// the pool-driver conformance suite (pooltest/), a fake daemon and harness
// for extension tests (extension/extensiontest/), a minimal example driver
// (examples/pool-dir/) and extension (examples/ext-hello/), and a Go client
// for the Admin API (admin/).
//
// Stability: the sdk module follows semantic versioning on its own, apart
// from the daemon. Until v1.0.0 the wire protocols carry their version in
// their names (storage.v1, extension.v1, host.v1); a protocol version, once
// released, only gains optional fields and methods.
package sdk

// ProtocolVersion is the go-plugin protocol version every plugin built with
// this SDK speaks. The daemon refuses plugins that speak another.
const ProtocolVersion = 1
