package api

import (
	"context"
	"sort"

	"github.com/qubesgo/qubesd/core/events"
	"github.com/qubesgo/qubesd/core/qubes"
)

// DestRule says which destinations a method accepts.
type DestRule uint8

const (
	DestAny     DestRule = iota // dom0 or a qube
	DestAdminVM                 // dom0 only
	DestVM                      // any qube but dom0
)

// Presence says whether a method takes an argument or a payload.
type Presence uint8

const (
	Forbidden Presence = iota
	Required
	Optional
)

// Scope is the policy scope of a method: local methods act on their
// destination, global ones on the whole system.
type Scope uint8

const (
	Local Scope = iota
	Global
)

// Method is one row of the method table. The same row drives dispatch,
// argument and payload checks, locking and durability, and the
// admin-permission event.
type Method struct {
	Name    string
	Dest    DestRule
	Arg     Presence
	Payload Presence
	// Write methods change the model: they run under the model's write lock
	// and reply only once the change is durable.
	Write bool
	Scope Scope
	// Handle answers a call with the body of a "0" reply.
	Handle func(c *Call) ([]byte, error)
	// Stream, for event streams, takes over the connection instead.
	Stream func(ctx context.Context, c *Call, send func([]byte) error) error

	// Run, instead of Handle, serves methods with slow work outside the
	// model lock (storage: a clone copies gigabytes, a driver may hang).
	// The server runs, in order:
	//
	//  1. Prepare (optional), with no lock held: the method's own argument
	//     and payload checks, in the reference's order. It takes App.Read
	//     itself when it reads the model, and may set c.Perm (the extra
	//     kwargs of the admin-permission event) and c.State (what it
	//     parsed, for Run).
	//  2. the admin-permission event, under the read lock;
	//  3. Run, with no lock held. Run takes App.Read or App.Write itself,
	//     only to read records and to record results — never across a
	//     driver call — and returns the model version to make durable
	//     (that of its last App.Write; 0 when it changed nothing). The
	//     server commits that version, as for Write methods, before it
	//     replies; an error reply is sent as is, after committing what Run
	//     changed before it failed (a non-zero version with the error).
	//
	// Write still says whether the method changes anything (policy, docs);
	// the locking is Run's own.
	Run     func(ctx context.Context, c *Call) (body []byte, version uint64, err error)
	Prepare func(ctx context.Context, c *Call) error
	// NoPermission skips the admin-permission event of a Run method: the
	// second half of an internal operation whose first half asked.
	NoPermission bool
}

// Call is one validated request on its way through a handler.
type Call struct {
	Server  *Server
	App     *qubes.App
	Method  *Method
	Src     *qubes.Qube
	Dest    *qubes.Qube
	Arg     string
	Payload []byte // untrusted: handlers validate before use
	// Perm are the extra kwargs of the admin-permission event (set by a
	// Run method's Prepare).
	Perm []events.KV
	// PermMethod, when set, is the method the admin-permission event
	// names instead of this one (internal.vm.volume.ImportBegin asks for
	// admin.vm.volume.Import or ImportWithSize, the call the user made).
	PermMethod string
	// State carries what Prepare parsed to Run.
	State any
}

// methodTable holds every method by name.
type methodTable map[string]*Method

func (t methodTable) add(ms ...*Method) {
	for _, m := range ms {
		if _, dup := t[m.Name]; dup {
			panic("api: method registered twice: " + m.Name)
		}
		t[m.Name] = m
	}
}

// Names returns the method names, sorted.
func (t methodTable) Names() []string {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// newMethodTable builds the table of every method the core serves.
func newMethodTable() methodTable {
	t := methodTable{}
	addVMMethods(t)
	addLifecycleMethods(t)
	addDisposableMethods(t)
	addPropertyMethods(t)
	addBulkPropertyMethods(t)
	addFeatureMethods(t)
	addTagMethods(t)
	addLabelMethods(t)
	addEventMethods(t)
	addPluginMethods(t)
	addPoolMethods(t)
	addVolumeMethods(t)
	return t
}
