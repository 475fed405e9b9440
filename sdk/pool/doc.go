// Package pool is what a storage pool driver for qubesd is written with:
// the Driver interface, the error kinds, and Serve, which turns a Driver
// into a plugin binary.
//
// # Writing a driver
//
// Implement Driver (embed UnimplementedDriver for what you do not support)
// and serve it:
//
//	type Driver struct{ pool.UnimplementedDriver }
//
//	func (*Driver) Info(context.Context) (pool.Info, error) { ... }
//	func (*Driver) Create(ctx context.Context, p pool.Pool, v pool.Volume) error { ... }
//	...
//
//	func main() { pool.Serve(&Driver{}) }
//
// The daemon starts the binary, listed in its TOML config as
//
//	[plugins.mydriver]
//	kind = "pool-driver"
//	path = "qubesd-pool-mydriver"
//	[plugins.mydriver.config]   # handed to Configure, as JSON
//
// and pools in qubes.xml name the driver by Info.Name. The example in
// github.com/qubesgo/qubesd/sdk/examples/pool-dir is a minimal working
// driver (each volume a sparse file in a directory, under 100 lines) and
// the place to start; CreateSparse and CopySparse help drivers that keep
// volumes in files.
//
// The rules a driver follows are in Driver's documentation; in short:
// stateless apart from the storage (every call carries the pool config and
// the full volume spec), idempotent mutating calls, no bulk data (hand out
// paths), errors of the right kind, capabilities declared in Info.
//
// # Testing a driver
//
// Run the conformance suite, package github.com/qubesgo/qubesd/sdk/pooltest,
// from your driver's tests: in-process, and through the plugin binary as the
// pool-dir example's tests show.
//
// # Errors
//
// Return errors of the kinds ErrNotFound, ErrAlreadyExists, ErrInUse,
// ErrPoolFull, ErrInvalid, ErrUnimplemented and ErrUnavailable, wrapped
// with context (fmt.Errorf("volume %s: %w", vid, pool.ErrNotFound)) or
// built with Errorf. Each crosses the wire as a gRPC status code and comes
// back, on the daemon's side, as an error of the same kind with the same
// message (ToStatus, FromStatus). ENOSPC counts as ErrPoolFull.
//
// # The daemon's side
//
// The daemon uses a plugin through the same Driver interface: dispensing a
// GRPCPlugin (plugin.KindPoolDriver) gives a *Client, which implements
// Driver over storage.v1. Code that manages pools never knows whether a
// driver runs in-process or in a plugin process.
//
// Requests are checked by the SDK before a driver sees them (Check): pool
// name, volume id (safe to use as a relative path), revisions_to_keep,
// snap_on_start and source, revision ids, sizes; and the pool config goes
// through the driver's own ValidateConfig, so every method may trust it.
//
// Stability: this package follows the sdk module's versioning (see package
// github.com/qubesgo/qubesd/sdk). Methods may be added to Driver in a minor
// version; a driver embedding UnimplementedDriver keeps compiling, and the
// daemon treats Unimplemented from a newer method as "not supported".
package pool
