package pool

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qubesgo/qubesd/sdk/plugin"
)

// The kinds of error a driver returns, to be matched with errors.Is. Wrap
// them to add context (fmt.Errorf("volume %s: %w", vid, ErrNotFound)) or
// build one with Errorf. Each kind crosses gRPC as one status code and comes
// back as the same kind with the same message:
//
//	ErrNotFound       NotFound            volume, revision or pool storage absent
//	ErrAlreadyExists  AlreadyExists
//	ErrInUse          FailedPrecondition  started, import in progress
//	ErrPoolFull       ResourceExhausted   no space left in the pool
//	ErrInvalid        InvalidArgument     bad config or spec, refused operation
//	ErrUnimplemented  Unimplemented       not supported by this driver
//	ErrUnavailable    Unavailable         transient: storage or plugin not reachable now
//
// An error that is (or wraps) syscall.ENOSPC crosses as ResourceExhausted
// too, so a driver need not translate "no space left on device". Any other
// error crosses as Unknown and comes back as a plain error with
// its message. context.Canceled and context.DeadlineExceeded cross as
// Canceled and DeadlineExceeded and come back as themselves.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrInUse         = errors.New("in use")
	ErrPoolFull      = errors.New("pool full")
	ErrInvalid       = errors.New("invalid")
	ErrUnimplemented = errors.New("not implemented")
	ErrUnavailable   = errors.New("unavailable")
)

// kinds maps each kind to its gRPC code, in the order Code tests them.
var kinds = []struct {
	err  error
	code codes.Code
}{
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrInUse, codes.FailedPrecondition},
	{ErrPoolFull, codes.ResourceExhausted},
	{ErrInvalid, codes.InvalidArgument},
	{ErrUnimplemented, codes.Unimplemented},
	{ErrUnavailable, codes.Unavailable},
}

// Error is an error of a kind with its own message. Errorf builds one; the
// gRPC client adapter returns one for every error the plugin sent.
type Error struct {
	// Kind is one of the Err* kinds, or nil for an error of no kind.
	Kind error
	// Message is the whole message, as Error returns it.
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind, so that errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an error of the given kind whose message is the formatted
// text alone: pool.Errorf(pool.ErrInUse, "volume %s is started", vid).
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Code returns the gRPC status code err crosses the wire with: the code of
// its kind (ResourceExhausted for ENOSPC), Canceled or DeadlineExceeded for the context errors, the code
// of a gRPC status error, OK for nil and Unknown for anything else.
func Code(err error) codes.Code {
	return plugin.StatusCode(err, func(err error) (codes.Code, bool) {
		for _, k := range kinds {
			if errors.Is(err, k.err) {
				return k.code, true
			}
		}
		if errors.Is(err, syscall.ENOSPC) {
			return codes.ResourceExhausted, true
		}
		return 0, false
	})
}

// ToStatus converts a driver's error to the gRPC status error the server
// adapter sends: code from Code, message err.Error(). nil stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && Code(err) == s.Code() {
		return s.Err()
	}
	return status.Error(Code(err), err.Error())
}

// FromStatus converts a gRPC status error back to a driver error: an *Error
// whose Kind is the kind of the status code (nil for codes without one) and
// whose Message is the status message; Canceled and DeadlineExceeded come
// back as context.Canceled and context.DeadlineExceeded wrapped with the
// message. A nil error stays nil; an error that is not a gRPC status is
// returned as is.
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
	for _, k := range kinds {
		if k.code == s.Code() {
			return &Error{Kind: k.err, Message: s.Message()}
		}
	}
	return &Error{Message: s.Message() + " (" + s.Code().String() + ")"}
}
