// Package admin is a Go client for the Qubes OS Admin API: the protocol that
// qubesd, the admin daemon in dom0, serves on its unix socket
// (/var/run/qubesd.sock), and that management VMs reach through qrexec.
//
// The package is part of the public SDK module (github.com/qubesgo/qubesd/sdk)
// and is meant to be imported by third parties: scripts, GUIs, management
// tools. It depends on the standard library only, and it works against any
// daemon that speaks the protocol — the reference Python qubesd as well as
// the Go rebuild.
//
// # Calls
//
// One call is one connection. The client sends
//
//	method+arg SP src SP "name" SP dest NUL payload
//
// half-closes its write side, and reads the reply to EOF. A reply is one of
//
//	"0\x00" body                         success; the body is returned
//	"2\x00" Type NUL traceback NUL msg NUL an exception; returned as *Error
//	""                                   the daemon dropped the call; ErrEmptyReply
//
// [Client.Call] does exactly that; [Client.Raw] sends bytes verbatim and
// returns the reply unparsed, for tools that want the wire itself.
//
// The typed helpers ([Client.ListVMs], [Client.Property], [Client.SetFeature],
// [Client.Create], ...) are thin wrappers around one Admin API method each
// (Create also sets properties afterwards); each helper's documentation names
// the method it calls and the text format it parses.
//
// # Errors
//
// An exception sent by the daemon is an [*Error] carrying the Python class
// name of the exception (Type) and its message; Error() is the message alone,
// ready to print. [IsType] tests the class name; [IsNotFound] (or
// errors.Is(err, [ErrNotFound])) tests for the "KeyError family" that
// clients treat as "absent": QubesVMNotFoundError, QubesFeatureNotFoundError,
// QubesTagNotFoundError and QubesLabelNotFoundError. A socket that cannot be
// reached gives a [*ConnError] that names the socket.
//
// # Events
//
// [Client.Events] subscribes to admin.Events and calls a function for every
// frame; [Client.Stats] does the same for admin.vm.Stats. [EventDecoder]
// parses such a stream from any reader.
//
// # Example
//
//	c := admin.New(admin.SocketFromEnv())
//	vms, err := c.ListVMs(ctx)
//	if err != nil {
//		log.Fatal(err)
//	}
//	for _, vm := range vms {
//		label, err := c.Property(ctx, vm.Name, "label")
//		...
//	}
//
// Stability: this package follows the sdk module's versioning; until v1.0.0
// additions are compatible and removals are announced in the changelog.
package admin
