package extension

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorKindsRoundTrip(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.code.String(), func(t *testing.T) {
			for _, err := range []error{
				k.err,
				fmt.Errorf("qube work: %w", k.err),
				Errorf(k.err, "qube %s: something", "work"),
			} {
				st := ToStatus(err)
				if got := status.Code(st); got != k.code {
					t.Errorf("ToStatus(%v): code %v, want %v", err, got, k.code)
				}
				back := FromStatus(st)
				if !errors.Is(back, k.err) {
					t.Errorf("FromStatus(ToStatus(%v)) = %v: not of kind %v", err, back, k.err)
				}
				if back.Error() != err.Error() {
					t.Errorf("message %q came back as %q", err, back)
				}
				if typ, _ := ExceptionOf(back); typ != k.typ {
					t.Errorf("%v came back with class %q, want the kind's default %q", err, typ, k.typ)
				}
				for _, other := range kinds {
					if other.err != k.err && errors.Is(back, other.err) {
						t.Errorf("%v also matches kind %v", back, other.err)
					}
				}
			}
		})
	}
}

// TestExceptionClassCrossesHostStatus: the class the daemon raised reaches
// the extension through the status detail, with the class's kind.
func TestExceptionClassCrossesHostStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
		kind error
		typ  string
	}{
		{Exceptionf("QubesVMNotFoundError", "No such domain: 'x'"), codes.NotFound, ErrNotFound, "QubesVMNotFoundError"},
		{Exceptionf("QubesPropertyValueError", "bad value"), codes.InvalidArgument, ErrInvalid, "QubesPropertyValueError"},
		{Exceptionf("QubesVMNotHaltedError", "running"), codes.FailedPrecondition, ErrState, "QubesVMNotHaltedError"},
		{&Error{Kind: ErrVeto, Type: "QubesValueError", Message: "no"}, codes.Aborted, ErrVeto, "QubesValueError"},
		{Exceptionf("QubesVMAlreadyExistsError", "exists"), codes.Unknown, nil, "QubesVMAlreadyExistsError"},
		{errors.New("boom"), codes.Unknown, nil, "QubesException"},
	} {
		st := ToStatus(c.err)
		if status.Code(st) != c.code {
			t.Errorf("%v: code %v, want %v", c.err, status.Code(st), c.code)
		}
		back := FromStatus(st)
		typ, msg := ExceptionOf(back)
		if typ != c.typ || msg != c.err.Error() {
			t.Errorf("%v came back as %s %q", c.err, typ, msg)
		}
		if c.kind != nil && !errors.Is(back, c.kind) {
			t.Errorf("%v came back without kind %v", c.err, c.kind)
		}
	}
	// A veto of class QubesValueError is a veto and an ErrInvalid.
	back := FromStatus(ToStatus(&Error{Kind: ErrVeto, Type: "QubesValueError", Message: "no"}))
	if !errors.Is(back, ErrVeto) || !errors.Is(back, ErrInvalid) {
		t.Errorf("veto of class QubesValueError: %#v", back)
	}
}

func TestExceptionOf(t *testing.T) {
	for _, c := range []struct {
		err      error
		typ, msg string
	}{
		{nil, "", ""},
		{errors.New("plain"), "QubesException", "plain"},
		{Vetof("refused %d", 1), "QubesException", "refused 1"},
		{Errorf(ErrInvalid, "bad"), "QubesValueError", "bad"},
		{Errorf(ErrPermissionDenied, "no"), "PermissionDenied", "no"},
		{fmt.Errorf("ctx: %w", Exceptionf("QubesVMError", "inner")), "QubesVMError", "ctx: inner"},
		{fmt.Errorf("ctx: %w", ErrState), "QubesVMError", "ctx: wrong state"},
	} {
		typ, msg := ExceptionOf(c.err)
		if typ != c.typ || msg != c.msg {
			t.Errorf("ExceptionOf(%v) = %q, %q; want %q, %q", c.err, typ, msg, c.typ, c.msg)
		}
	}
}

func TestFromStatus(t *testing.T) {
	if FromStatus(nil) != nil {
		t.Error("FromStatus(nil) != nil")
	}
	plain := errors.New("not a status")
	if FromStatus(plain) != plain {
		t.Error("a non-status error is not returned as is")
	}
	if err := FromStatus(status.Error(codes.DeadlineExceeded, "slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DeadlineExceeded came back as %v", err)
	}
	if err := FromStatus(status.Error(codes.Canceled, "gone")); !errors.Is(err, context.Canceled) {
		t.Errorf("Canceled came back as %v", err)
	}
	err := FromStatus(status.Error(codes.Internal, "plugin panicked"))
	if err.Error() != "plugin panicked (Internal)" {
		t.Errorf("Internal came back as %q", err)
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			t.Errorf("an Internal error matches kind %v", k.err)
		}
	}
	if s := ToStatus(status.Error(codes.ResourceExhausted, "x")); status.Code(s) != codes.ResourceExhausted {
		t.Errorf("a status error is not kept: %v", s)
	}
	if Code(context.Canceled) != codes.Canceled || Code(nil) != codes.OK {
		t.Error("Code of the context errors / nil")
	}
}

func TestTransport(t *testing.T) {
	for _, err := range []error{ErrUnimplemented, ErrUnavailable, context.Canceled, fmt.Errorf("x: %w", context.DeadlineExceeded)} {
		if !isTransport(err) {
			t.Errorf("%v is not a transport error", err)
		}
	}
	for _, err := range []error{ErrVeto, ErrInvalid, errors.New("x"), Exceptionf("QubesVMError", "x"), &Error{Kind: ErrVeto, Message: "x"}} {
		if isTransport(err) {
			t.Errorf("%v is a transport error", err)
		}
	}
}
