package vmm

import (
	"errors"
	"fmt"

	"libvirt.org/go/libvirt"
)

// Sentinel errors, matched with errors.Is on any error this package returns.
var (
	// ErrNotConnected: the connection is closed, or down and being re-established.
	ErrNotConnected = errors.New("not connected to libvirt")
	// ErrNoDomain: libvirt knows no domain of that name (VIR_ERR_NO_DOMAIN).
	ErrNoDomain = errors.New("no such domain")
	// ErrInvalidState: the operation needs a running domain, or a halted one
	// (VIR_ERR_OPERATION_INVALID: "domain is not running", "already running"...).
	// kill of a halted qube maps this to QubesVMNotStartedError.
	ErrInvalidState = errors.New("operation not valid in the domain's state")
	// ErrUnsupported: the driver does not implement the operation
	// (VIR_ERR_NO_SUPPORT, VIR_ERR_OPERATION_UNSUPPORTED): e.g. PM suspend or
	// device attachment on the test driver.
	ErrUnsupported = errors.New("not supported by the libvirt driver")
)

// Error is a failed libvirt operation: what was being done, on which domain
// (empty for host-wide calls), and the cause (a libvirt.Error, reachable with
// errors.As, or one of the sentinels).
type Error struct {
	Op     string // "define", "start", "shutdown", ...
	Domain string
	Err    error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	var lv libvirt.Error
	if errors.As(e.Err, &lv) && lv.Message != "" {
		msg = lv.Message
	}
	if e.Domain == "" {
		return fmt.Sprintf("libvirt %s: %s", e.Op, msg)
	}
	return fmt.Sprintf("libvirt %s %s: %s", e.Op, e.Domain, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Is maps libvirt error codes onto the sentinels.
func (e *Error) Is(target error) bool {
	var lv libvirt.Error
	if !errors.As(e.Err, &lv) {
		return false
	}
	switch target {
	case ErrNoDomain:
		return lv.Code == libvirt.ERR_NO_DOMAIN
	case ErrInvalidState:
		return lv.Code == libvirt.ERR_OPERATION_INVALID
	case ErrUnsupported:
		return lv.Code == libvirt.ERR_NO_SUPPORT || lv.Code == libvirt.ERR_OPERATION_UNSUPPORTED
	case ErrNotConnected:
		return isConnectionError(lv)
	}
	return false
}

func wrap(op, domain string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Domain: domain, Err: err}
}

// isConnectionError: the error says the connection itself is gone, so the
// supervisor should check it and reconnect.
func isConnectionError(lv libvirt.Error) bool {
	switch lv.Code {
	case libvirt.ERR_NO_CONNECT, libvirt.ERR_INVALID_CONN, libvirt.ERR_SYSTEM_ERROR, libvirt.ERR_RPC:
		return true
	}
	return false
}

// unsupportedFlags: the driver refused a flag it does not know (the test
// driver refuses VIR_DOMAIN_START_PAUSED this way).
func unsupportedFlags(err error) bool {
	var lv libvirt.Error
	return errors.As(err, &lv) && lv.Code == libvirt.ERR_INVALID_ARG
}
