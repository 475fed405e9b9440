package extension

import "context"

// Host is how an extension calls the daemon back (host.v1). The plugin
// gets one in Configure, connected over go-plugin's broker; the SDK dials
// it once there and every call reuses the connection.
//
// Every method takes the dispatch id of the event or Admin API call being
// handled (Event.DispatchID, Call.DispatchID), or 0 outside one. With the
// id the daemon runs the call as part of that dispatch, under the locks it
// already holds, so a handler calling back never deadlocks; with 0 the
// call takes the normal path — from a handler that would wait for the
// dispatch that waits for the handler.
//
// Subjects are qube names; "" is the app (global properties) where the
// method says so. Errors have kinds (errors.Is): ErrNotFound (no such
// qube, property, feature, tag), ErrInvalid (a value refused), ErrState
// (the qube's state forbids it), ErrVeto (a pre-event handler refused the
// change), ErrPermissionDenied, ErrUnavailable (the daemon is shutting
// down); they are *Error values carrying the Qubes exception class
// (Error.Type) and message the daemon raised, so a handler may return them
// as they are.
//
// HostService is the same interface on the daemon's side: the daemon
// implements it, and an extension running in-process may be handed the
// daemon's HostService as its Host.
type Host interface {
	// GetProperty reads a property of the qube subject, or a global
	// property when subject is "". Values are in the Admin API's text
	// form.
	GetProperty(ctx context.Context, dispatchID uint64, subject, name string) (Property, error)
	// SetProperty sets a property (fires property-pre-set:NAME, which may
	// veto, and property-set:NAME).
	SetProperty(ctx context.Context, dispatchID uint64, subject, name, value string) error
	// ResetProperty resets a property to its default.
	ResetProperty(ctx context.Context, dispatchID uint64, subject, name string) error

	// GetFeature reads a feature of a qube; ok is false when it is not set.
	GetFeature(ctx context.Context, dispatchID uint64, subject, name string) (value string, ok bool, err error)
	// SetFeature sets a feature of a qube.
	SetFeature(ctx context.Context, dispatchID uint64, subject, name, value string) error
	// RemoveFeature removes a feature of a qube (ErrNotFound if unset).
	RemoveFeature(ctx context.Context, dispatchID uint64, subject, name string) error

	// ListTags lists the tags of a qube.
	ListTags(ctx context.Context, dispatchID uint64, subject string) ([]string, error)
	// AddTag adds a tag to a qube; adding a tag it has does nothing.
	AddTag(ctx context.Context, dispatchID uint64, subject, tag string) error
	// RemoveTag removes a tag from a qube (ErrNotFound if it lacks it).
	RemoveTag(ctx context.Context, dispatchID uint64, subject, tag string) error

	// ListQubes lists every qube the daemon knows.
	ListQubes(ctx context.Context, dispatchID uint64) ([]QubeInfo, error)

	// QdbWrite writes an entry of a qube's QubesDB. path is absolute, e.g.
	// "/qubes-service/clocksync": at most 63 bytes of [a-zA-Z0-9_./:@-],
	// no "//", not ending in "/"; value is at most 3071 bytes without a
	// NUL byte. A qube has a QubesDB only while it runs: on a halted qube
	// the call fails with QubesVMNotRunningError.
	QdbWrite(ctx context.Context, dispatchID uint64, qube, path string, value []byte) error
	// QdbRemove removes an entry of a qube's QubesDB; a path ending in
	// "/" removes the whole subtree. A missing entry is not an error.
	QdbRemove(ctx context.Context, dispatchID uint64, qube, path string) error

	// FireEvent fires an event on subject ("" = the app) as if the core
	// had, and returns what the handlers returned, in dispatch order. With
	// pre, it is a pre-event: a handler's refusal comes back as an error
	// of kind ErrVeto. Kwarg values are of the types listed under
	// "Values" in the package documentation.
	FireEvent(ctx context.Context, dispatchID uint64, subject, name string, kwargs []KV, pre bool) ([]any, error)

	// AttachDevice attaches a device to a running qube through libvirt
	// (xml is the libvirt device XML); DetachDevice detaches it.
	AttachDevice(ctx context.Context, dispatchID uint64, qube, xml string) error
	DetachDevice(ctx context.Context, dispatchID uint64, qube, xml string) error
}

// HostService is what the daemon implements to serve host.v1 to its
// extensions: Client.Configure serves it over go-plugin's broker, so the
// daemon never touches protobuf. It is Host under the daemon's name.
//
// An implementation honours the dispatch id (see Host), and returns errors
// the way Host documents them: an *Error whose Type is the Qubes exception
// class (Exceptionf) or an error of a kind (Errorf). A pre-event vetoed by
// a handler is an error of kind ErrVeto, for FireEvent as for the setters.
type HostService = Host

// Property is a property's value as GetProperty reads it.
type Property struct {
	// Value is the Admin API's text form ("" for None).
	Value string
	// IsDefault: the property has its default value.
	IsDefault bool
	// Type is the Admin API's type name: str, int, bool, vm, label.
	Type string
}

// QubeInfo is one qube as ListQubes reports it.
type QubeInfo struct {
	Name string
	// Class: AdminVM, AppVM, TemplateVM, StandaloneVM, DispVM.
	Class string
	// PowerState as admin.vm.List reports it (Running, Halted, ...).
	PowerState string
}
