package extension

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qubesgo/qubesd/sdk/plugin"

	hostv1 "github.com/qubesgo/qubesd/sdk/proto/host/v1"
)

// The kinds of error, to be matched with errors.Is. A user-facing error
// also carries the Qubes exception class the daemon replies with (see
// Error and ExceptionOf); the kind is for code that decides what to do.
//
//	kind                 gRPC code           default exception class
//	ErrVeto              Aborted             QubesException
//	ErrNotFound          NotFound            QubesException
//	ErrInvalid           InvalidArgument     QubesValueError
//	ErrState             FailedPrecondition  QubesVMError
//	ErrPermissionDenied  PermissionDenied    PermissionDenied
//	ErrUnimplemented     Unimplemented       QubesException
//	ErrUnavailable       Unavailable         QubesException
//
// ErrUnimplemented, ErrUnavailable and the context errors are transport
// errors: they cross the wire as gRPC statuses and never as a veto or an
// Admin API exception. The other kinds are domain errors: from HandleEvent
// and CallMethod they travel in the response, with their exception class
// and message; from host.v1 calls, as a gRPC status of the kind's code
// with the exception (host.v1.Exception) as a status detail. Either way
// they come back as an *Error of the same kind, class and message.
var (
	// ErrVeto: a handler refused a (pre-)event. From HandleEvent, the
	// daemon-side Client returns every handler error as this kind.
	ErrVeto = errors.New("vetoed")
	// ErrNotFound: no such qube, property, feature or tag.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a refused value, config, request or declaration.
	ErrInvalid = errors.New("invalid")
	// ErrState: the qube's state forbids it (running, halted, in use).
	ErrState = errors.New("wrong state")
	// ErrPermissionDenied: the daemon or the extension refuses the caller.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnimplemented: not supported by this extension or daemon.
	ErrUnimplemented = errors.New("not implemented")
	// ErrUnavailable: transient; the plugin or the daemon is not there.
	ErrUnavailable = errors.New("unavailable")
)

// Exception classes the SDK itself uses; any Qubes class name may be used
// with Exceptionf.
const (
	TypeQubesException   = "QubesException"
	TypeValueError       = "QubesValueError"
	TypeVMError          = "QubesVMError"
	TypeProtocolError    = "ProtocolError"
	TypePermissionDenied = "PermissionDenied"
)

var kinds = []struct {
	err  error
	code codes.Code
	typ  string
}{
	{ErrVeto, codes.Aborted, TypeQubesException},
	{ErrNotFound, codes.NotFound, TypeQubesException},
	{ErrInvalid, codes.InvalidArgument, TypeValueError},
	{ErrState, codes.FailedPrecondition, TypeVMError},
	{ErrPermissionDenied, codes.PermissionDenied, TypePermissionDenied},
	{ErrUnimplemented, codes.Unimplemented, TypeQubesException},
	{ErrUnavailable, codes.Unavailable, TypeQubesException},
}

// typeKinds gives the kind of the Qubes exception classes that have one.
var typeKinds = map[string]error{
	"QubesVMNotFoundError":      ErrNotFound,
	"QubesFeatureNotFoundError": ErrNotFound,
	"QubesTagNotFoundError":     ErrNotFound,
	"QubesLabelNotFoundError":   ErrNotFound,
	"QubesNoSuchPropertyError":  ErrNotFound,

	TypeValueError:                ErrInvalid,
	"QubesPropertyValueError":     ErrInvalid,
	TypeProtocolError:             ErrInvalid,
	"QubesInvalidTagError":        ErrInvalid,
	"QubesInvalidLabelError":      ErrInvalid,
	"QubesInvalidLabelValueError": ErrInvalid,
	"QubesVMInvalidUUIDError":     ErrInvalid,

	TypeVMError:              ErrState,
	"QubesVMInUseError":      ErrState,
	"QubesVMNotHaltedError":  ErrState,
	"QubesVMNotStartedError": ErrState,
	"QubesVMNotRunningError": ErrState,
	"QubesVMNotPausedError":  ErrState,
	"QubesQuarantinedError":  ErrState,

	TypePermissionDenied: ErrPermissionDenied,
}

// Error is an error with a kind, a Qubes exception class and a message.
// Errorf, Exceptionf and Vetof build one; the adapters return one for
// every domain error that crossed the wire.
type Error struct {
	// Kind is one of the Err* kinds, or nil. An error whose Type has a
	// kind (QubesVMNotFoundError: ErrNotFound) is of that kind too.
	Kind error
	// Type is the Qubes exception class the daemon replies with
	// ("QubesVMNotFoundError"); "" means the kind's default (see the
	// table above), QubesException without a kind.
	Type string
	// Message is the whole message, as Error returns it.
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind and the kind of the exception class, so that
// errors.Is(err, ErrNotFound) works for either.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if k := typeKinds[e.Type]; k != nil && k != e.Kind {
		errs = append(errs, k)
	}
	return errs
}

// Errorf returns an error of the given kind whose message is the formatted
// text: extension.Errorf(extension.ErrNotFound, "no rule %d", n).
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Exceptionf returns an error that reaches the user as the Qubes exception
// class typ: extension.Exceptionf("QubesVMNotRunningError", "%s is not
// running", vm). Its kind is the class's, if it has one.
func Exceptionf(typ, format string, args ...any) error {
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Vetof returns a veto: the error a PreVeto handler returns to refuse an
// event. The message is what the user sees; the class is QubesException.
func Vetof(format string, args ...any) error {
	return &Error{Kind: ErrVeto, Message: fmt.Sprintf(format, args...)}
}

// ExceptionOf returns the Qubes exception class and message the daemon
// replies with for err ("2\x00<typ>\x00\x00<msg>\x00"): the Type of an
// *Error in err's chain, else the default class of err's kind, else
// QubesException; the message is err.Error(), wrapping context included.
func ExceptionOf(err error) (typ, msg string) {
	if err == nil {
		return "", ""
	}
	var e *Error
	if errors.As(err, &e) && e.Type != "" {
		return e.Type, err.Error()
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.typ, err.Error()
		}
	}
	return TypeQubesException, err.Error()
}

// isTransport reports whether err crosses the wire as a gRPC status rather
// than as a veto or exception: ErrUnimplemented, ErrUnavailable, the
// context errors.
func isTransport(err error) bool {
	if errors.Is(err, ErrVeto) {
		return false
	}
	return errors.Is(err, ErrUnimplemented) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Code returns the gRPC status code err crosses the wire with: its kind's
// code, Canceled or DeadlineExceeded for the context errors, the code of a
// gRPC status error, OK for nil and Unknown otherwise.
func Code(err error) codes.Code {
	return plugin.StatusCode(err, func(err error) (codes.Code, bool) {
		for _, k := range kinds {
			if errors.Is(err, k.err) {
				return k.code, true
			}
		}
		return 0, false
	})
}

// ToStatus converts an error to the gRPC status error an adapter sends:
// code from Code, message err.Error() and, for a domain error, the
// exception (class and message, see ExceptionOf) as a host.v1.Exception
// status detail. nil stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && Code(err) == s.Code() {
		return s.Err()
	}
	code := Code(err)
	st := status.New(code, err.Error())
	if !isTransport(err) {
		typ, msg := ExceptionOf(err)
		if d, derr := st.WithDetails(&hostv1.Exception{Type: typ, Message: msg}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// FromStatus converts a gRPC status error back: an *Error whose Kind is the
// kind of the status code (nil for codes without one), whose Type is the
// exception class of its host.v1.Exception detail (if any) and whose
// Message is the status message. Canceled and DeadlineExceeded come back
// as context.Canceled and context.DeadlineExceeded wrapped with the
// message. nil stays nil; an error that is not a gRPC status is returned
// as is.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch s.Code() {
	case codes.OK:
		return nil
	case codes.Canceled:
		return fmt.Errorf("%s: %w", s.Message(), context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", s.Message(), context.DeadlineExceeded)
	}
	e := &Error{Message: s.Message()}
	for _, d := range s.Details() {
		if ex, ok := d.(*hostv1.Exception); ok {
			e.Type = ex.GetType()
			break
		}
	}
	for _, k := range kinds {
		if k.code == s.Code() {
			e.Kind = k.err
		}
	}
	if e.Kind == nil && e.Type == "" {
		e.Message += " (" + s.Code().String() + ")"
	}
	return e
}

// exceptionToProto is the exception a domain error travels as in a
// HandleEvent or CallMethod response.
func exceptionToProto(err error) *hostv1.Exception {
	typ, msg := ExceptionOf(err)
	return &hostv1.Exception{Type: typ, Message: msg}
}

// exceptionFromProto is the inverse; kind is the error's kind (ErrVeto for
// a veto), or nil to take the class's.
func exceptionFromProto(ex *hostv1.Exception, kind error) *Error {
	typ := ex.GetType()
	if typ == "" {
		typ = TypeQubesException
	}
	return &Error{Kind: kind, Type: typ, Message: ex.GetMessage()}
}
