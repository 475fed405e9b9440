// Package qerr defines the kinds of error the core reports. Each Kind is the
// name of the exception class the reference daemon sends over the Admin API,
// so a handler deep in the model decides what a client sees and the API layer
// only copies it onto the wire.
package qerr

import (
	"errors"
	"fmt"
)

// Kind is an exception class name as the Admin API transmits it.
type Kind string

// The kinds the core raises. The names are wire protocol: qubesadmin clients
// map them back to their own exception classes.
const (
	Exception           Kind = "QubesException"
	ValueError          Kind = "QubesValueError"
	PropertyValueError  Kind = "QubesPropertyValueError"
	NoSuchProperty      Kind = "QubesNoSuchPropertyError"
	VMNotFound          Kind = "QubesVMNotFoundError"
	VMInvalidUUID       Kind = "QubesVMInvalidUUIDError"
	VMAlreadyExists     Kind = "QubesVMAlreadyExistsError"
	VMInUse             Kind = "QubesVMInUseError"
	VMNotHalted         Kind = "QubesVMNotHaltedError"
	VMNotStarted        Kind = "QubesVMNotStartedError"
	VMNotRunning        Kind = "QubesVMNotRunningError"
	VMNotPaused         Kind = "QubesVMNotPausedError"
	VMNotSuspended      Kind = "QubesVMNotSuspendedError"
	LabelNotFound       Kind = "QubesLabelNotFoundError"
	LabelInUse          Kind = "QubesLabelInUseError"
	InvalidLabel        Kind = "QubesInvalidLabelError"
	InvalidLabelValue   Kind = "QubesInvalidLabelValueError"
	InvalidTag          Kind = "QubesInvalidTagError"
	TagNotFound         Kind = "QubesTagNotFoundError"
	FeatureNotFound     Kind = "QubesFeatureNotFoundError"
	PoolInUse           Kind = "QubesPoolInUseError"
	Quarantined         Kind = "QubesQuarantinedError"
	ProtocolError       Kind = "ProtocolError"
	PermissionDenied    Kind = "PermissionDenied"
	StoragePoolError    Kind = "StoragePoolException"
	MemoryError         Kind = "QubesMemoryError"
	NoTemplate          Kind = "QubesNoTemplateError"
	ShutdownTimeout     Kind = "QubesVMShutdownTimeoutError"
	VolumeTokenNotFound Kind = "QubesVolumeCopyTokenNotFoundError"
	// VolumeRevisionNotFound: the reference raises it as a KeyError and
	// sends an empty reply; we send the exception (the Python client knows
	// the class).
	VolumeRevisionNotFound Kind = "QubesVolumeRevisionNotFoundError"
	VolumeCopyInUse        Kind = "QubesVolumeCopyInUseError"
)

// Error is an error of a known Kind with the message a client sees.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // the cause, if any; not shown to clients
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, &qerr.Error{Kind: k}) match any error of kind k.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == "" && t.Err == nil && t.Kind == e.Kind
}

// New returns an error of kind k with a formatted message.
func New(k Kind, format string, args ...any) *Error {
	if len(args) == 0 {
		return &Error{Kind: k, Msg: format}
	}
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a message that keeps err as cause.
func Wrap(k Kind, err error, format string, args ...any) *Error {
	e := New(k, format, args...)
	e.Err = err
	return e
}

// KindOf reports the Kind of err: the kind of the first *Error in its chain,
// or Exception for any other error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Exception
}

// Has reports whether err carries a Kind (an *Error in its chain): such an
// error is meant for the client as it is; any other is wrapped first.
func Has(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Match returns a target for errors.Is that matches every error of kind k.
func Match(k Kind) error { return &Error{Kind: k} }
