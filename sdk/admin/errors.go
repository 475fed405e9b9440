package admin

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Names of exception classes that clients commonly act on. The daemon sends
// the Python class name of the exception; see the Admin API specification
// for the full list.
const (
	TypeVMNotFound         = "QubesVMNotFoundError"
	TypeFeatureNotFound    = "QubesFeatureNotFoundError"
	TypeTagNotFound        = "QubesTagNotFoundError"
	TypeLabelNotFound      = "QubesLabelNotFoundError"
	TypeNoSuchProperty     = "QubesNoSuchPropertyError"
	TypeVMInUse            = "QubesVMInUseError"
	TypeVMAlreadyExists    = "QubesVMAlreadyExistsError"
	TypeValueError         = "QubesValueError"
	TypePropertyValueError = "QubesPropertyValueError"
	TypeProtocolError      = "ProtocolError"
	TypePermissionDenied   = "PermissionDenied"
	TypeQubesException     = "QubesException"
)

// ErrEmptyReply is returned when qubesd closed the connection without
// sending anything. The reference daemon does that after an unexpected
// internal error, on a malformed request, and qrexec does it when policy
// denies a call.
var ErrEmptyReply = errors.New("got empty response from qubesd; see journalctl in dom0 for details")

// ErrMalformedReply is wrapped by the errors returned for replies that are
// neither a success, an exception nor empty.
var ErrMalformedReply = errors.New("malformed reply from qubesd")

// ErrNotFound matches (with errors.Is) every *Error whose type is one of the
// "KeyError family" the reference client treats as "absent":
// QubesVMNotFoundError, QubesFeatureNotFoundError, QubesTagNotFoundError and
// QubesLabelNotFoundError.
var ErrNotFound = errors.New("not found")

var notFoundTypes = map[string]bool{
	TypeVMNotFound:      true,
	TypeFeatureNotFound: true,
	TypeTagNotFound:     true,
	TypeLabelNotFound:   true,
}

// Error is an exception sent by qubesd ("2\x00" replies).
type Error struct {
	// Type is the Python class name of the exception, e.g.
	// "QubesVMNotFoundError".
	Type string
	// Message is the exception's text, meant for people.
	Message string
	// Traceback is the daemon's traceback; only a daemon started with
	// --debug sends one.
	Traceback string
}

// Error returns the message alone (or the type, if the message is empty),
// so that a command-line tool can print it as is.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Type
	}
	return e.Message
}

// Is reports whether e belongs to the family target stands for: ErrNotFound
// matches the not-found types.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && notFoundTypes[e.Type]
}

// IsType reports whether err is (or wraps) an *Error of class typ.
func IsType(err error, typ string) bool {
	var e *Error
	return errors.As(err, &e) && e.Type == typ
}

// IsNotFound reports whether err is (or wraps) an exception of the KeyError
// family: QubesVMNotFoundError, QubesFeatureNotFoundError,
// QubesTagNotFoundError or QubesLabelNotFoundError.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsNoSuchMethod reports whether err is the daemon saying it does not know
// the method called (ProtocolError "no such method: ...").
func IsNoSuchMethod(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Type == "ProtocolError" && strings.HasPrefix(e.Message, "no such method")
}

// ParseReply interprets a raw reply: "0\x00body" gives body; an exception
// gives *Error; an empty reply gives ErrEmptyReply; anything else an error
// wrapping ErrMalformedReply.
//
// The message of an exception is a Python format string applied to no
// arguments by the reference client, so "%%" in it stands for "%"; ParseReply
// undoes that escape.
func ParseReply(reply []byte) ([]byte, error) {
	switch {
	case len(reply) == 0:
		return nil, ErrEmptyReply
	case bytes.HasPrefix(reply, []byte("0\x00")):
		return reply[2:], nil
	case bytes.HasPrefix(reply, []byte("2\x00")):
		e, err := parseException(reply[2:])
		if err != nil {
			return nil, err
		}
		return nil, e
	case bytes.HasPrefix(reply, []byte("1\x00")):
		return nil, fmt.Errorf("%w: an event frame where a reply was expected", ErrMalformedReply)
	default:
		return nil, fmt.Errorf("%w: it starts with %q", ErrMalformedReply, prefix(reply, 16))
	}
}

// parseException parses "Type\x00traceback\x00message\x00[args...]" (the
// part after the "2\x00" header).
func parseException(b []byte) (*Error, error) {
	parts := bytes.SplitN(b, []byte{0}, 4)
	if len(parts) < 4 {
		return nil, fmt.Errorf("%w: truncated exception %q", ErrMalformedReply, prefix(b, 64))
	}
	return &Error{
		Type:      string(parts[0]),
		Traceback: string(parts[1]),
		Message:   strings.ReplaceAll(string(parts[2]), "%%", "%"),
	}, nil
}

func prefix(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// PropertySetError reports a property that could not be set.
type PropertySetError struct {
	VM       string // the qube
	Property string // the property name
	Value    string // the value that was sent
	Err      error  // the daemon's answer
}

func (e *PropertySetError) Error() string {
	return fmt.Sprintf("setting %s of %s: %v", e.Property, e.VM, e.Err)
}

func (e *PropertySetError) Unwrap() error { return e.Err }

// PartialCreateError is returned by Create and CreateInPool when the qube was
// created but some of the requested properties could not be set.
type PartialCreateError struct {
	VM     string              // the qube, which exists
	Failed []*PropertySetError // the properties that were not set, in order
}

func (e *PartialCreateError) Error() string {
	names := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		names[i] = f.Property
	}
	return fmt.Sprintf("qube %s was created, but some properties were not set (%s): %v",
		e.VM, strings.Join(names, ", "), e.Failed[0].Err)
}

// Unwrap returns the individual failures.
func (e *PartialCreateError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f
	}
	return errs
}
