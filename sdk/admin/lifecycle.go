package admin

import "context"

// Exception classes of the lifecycle calls.
const (
	TypeVMNotStarted      = "QubesVMNotStartedError"
	TypeVMNotRunning      = "QubesVMNotRunningError"
	TypeVMNotHalted       = "QubesVMNotHaltedError"
	TypeVMNotPaused       = "QubesVMNotPausedError"
	TypeVMShutdownTimeout = "QubesVMShutdownTimeoutError"
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
