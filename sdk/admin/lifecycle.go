package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Exception classes of the lifecycle calls.
const (
	TypeVMNotStarted      = "QubesVMNotStartedError"
	TypeVMNotRunning      = "QubesVMNotRunningError"
	TypeVMNotHalted       = "QubesVMNotHaltedError"
	TypeVMNotPaused       = "QubesVMNotPausedError"
	TypeVMShutdownTimeout = "QubesVMShutdownTimeoutError"
	TypeVMAlreadyStarted  = "QubesVMAlreadyStartedError"
)

// ShutdownOptions are the arguments of admin.vm.Shutdown.
type ShutdownOptions struct {
	// Force shuts the qube down even if other running qubes depend on it
	// (as their netvm, for example).
	Force bool
	// Wait makes the call return only once the qube has halted (or the
	// daemon's shutdown timeout expired: QubesVMShutdownTimeoutError).
	Wait bool
}

// arg is the call's argument: "", "force", "wait" or "force+wait".
func (o ShutdownOptions) arg() string {
	switch {
	case o.Force && o.Wait:
		return "force+wait"
	case o.Force:
		return "force"
	case o.Wait:
		return "wait"
	}
	return ""
}

// Start starts vm (admin.vm.Start). A qube that is not halted gives
// QubesVMNotHaltedError.
func (c *Client) Start(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Start", vm, "", nil)
	return err
}

// Shutdown asks vm to shut down (admin.vm.Shutdown). A qube that is not
// running gives QubesVMNotStartedError; one other running qubes depend on,
// without o.Force, QubesVMInUseError.
func (c *Client) Shutdown(ctx context.Context, vm string, o ShutdownOptions) error {
	_, err := c.Call(ctx, "admin.vm.Shutdown", vm, o.arg(), nil)
	return err
}

// Kill stops vm at once, without a graceful shutdown (admin.vm.Kill). A
// halted qube gives QubesVMNotStartedError.
func (c *Client) Kill(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Kill", vm, "", nil)
	return err
}

// Pause pauses vm (admin.vm.Pause). A qube that is not running gives
// QubesVMNotRunningError.
func (c *Client) Pause(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Pause", vm, "", nil)
	return err
}

// Unpause resumes a paused vm (admin.vm.Unpause). A qube that is not
// paused gives QubesVMNotPausedError.
func (c *Client) Unpause(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Unpause", vm, "", nil)
	return err
}

// Suspend puts vm to sleep (S3) with admin.vm.Suspend; a daemon whose
// hypervisor cannot suspend the guest pauses it instead. A qube that is not
// running gives QubesVMNotRunningError.
func (c *Client) Suspend(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Suspend", vm, "", nil)
	return err
}

// Resume wakes a suspended vm (admin.vm.Resume); on a qube that is paused
// rather than suspended it unpauses it. A qube that is neither gives
// QubesVMNotPausedError.
func (c *Client) Resume(ctx context.Context, vm string) error {
	_, err := c.Call(ctx, "admin.vm.Resume", vm, "", nil)
	return err
}

// parseCurrentState parses admin.vm.CurrentState's reply,
// "mem=<n> mem_static_max=<n> cputime=<n> power_state=<state>", strictly:
// every field is key=value, the three numbers are integers and power_state
// is not empty. Keys it does not know are kept in Fields. The error names
// the reply.
func parseCurrentState(body []byte) (VMState, error) {
	bad := func(format string, a ...any) (VMState, error) {
		return VMState{}, fmt.Errorf("admin.vm.CurrentState: %w: %s in reply %q", ErrMalformedReply, fmt.Sprintf(format, a...), body)
	}
	st := VMState{Fields: map[string]string{}}
	for _, kv := range strings.Fields(string(body)) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return bad("field %q is not key=value", kv)
		}
		if _, dup := st.Fields[k]; dup {
			return bad("key %q twice", k)
		}
		st.Fields[k] = v
	}
	for _, f := range []struct {
		key string
		dst *int64
	}{{"mem", &st.Mem}, {"mem_static_max", &st.MemStaticMax}, {"cputime", &st.CPUTime}} {
		v, ok := st.Fields[f.key]
		if !ok {
			return bad("no %s", f.key)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("%s=%q is not an integer", f.key, v)
		}
		*f.dst = n
	}
	st.PowerState = st.Fields["power_state"]
	if st.PowerState == "" {
		return bad("no power_state")
	}
	return st, nil
}

// DisposableOptions are the choices of admin.vm.CreateDisposable.
type DisposableOptions struct {
	// Preload creates a preloaded disposable (argument "preload"): the
	// daemon starts it in the background and the call returns nothing.
	Preload bool
	// UUID asks for the new qube's UUID rather than its name (payload
	// "uuid"); the reply is then "uuid:<uuid>".
	UUID bool
}

// CreateDisposable creates a disposable qube (admin.vm.CreateDisposable)
// and returns its name — or, with o.UUID, "uuid:<uuid>", which the daemon
// accepts as the destination of later calls. dest is the disposable
// template to base it on, or AdminVM for the caller's default_dispvm. With
// o.Preload the daemon replies nothing and CreateDisposable returns "".
//
// The new qube is not started: start it with Start. A reply that is not
// what was asked for (empty, or without the "uuid:" prefix when o.UUID is
// set) is an error wrapping ErrMalformedReply.
func (c *Client) CreateDisposable(ctx context.Context, dest string, o DisposableOptions) (string, error) {
	var arg string
	var payload []byte
	if o.Preload {
		arg = "preload"
	}
	if o.UUID {
		payload = []byte("uuid")
	}
	body, err := c.Call(ctx, "admin.vm.CreateDisposable", dest, arg, payload)
	if err != nil {
		return "", err
	}
	name := string(body)
	switch {
	case o.Preload:
		return name, nil
	case name == "":
		return "", fmt.Errorf("admin.vm.CreateDisposable: %w: the daemon named no new qube (empty reply)", ErrMalformedReply)
	case o.UUID && !strings.HasPrefix(name, "uuid:"):
		return "", fmt.Errorf("admin.vm.CreateDisposable: %w: asked for a UUID, got %q", ErrMalformedReply, name)
	case strings.ContainsAny(name, " \x00\n"):
		return "", fmt.Errorf("admin.vm.CreateDisposable: %w: %q is not a qube name", ErrMalformedReply, name)
	}
	return name, nil
}
