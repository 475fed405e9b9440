package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorKindsRoundTrip(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.code.String(), func(t *testing.T) {
			for _, err := range []error{
				k.err,
				fmt.Errorf("volume a/b: %w", k.err),
				Errorf(k.err, "volume %s: something", "a/b"),
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
				for _, other := range kinds {
					if other.err != k.err && errors.Is(back, other.err) {
						t.Errorf("%v also matches kind %v", back, other.err)
					}
				}
			}
		})
	}
}

func TestCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{errors.New("boom"), codes.Unknown},
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, codes.ResourceExhausted},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied},
	} {
		if got := Code(c.err); got != c.want {
			t.Errorf("Code(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(FromStatus(ToStatus(syscall.ENOSPC)), ErrPoolFull) {
		t.Error("ENOSPC does not come back as ErrPoolFull")
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
	err := FromStatus(status.Error(codes.DeadlineExceeded, "Start: too slow"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DeadlineExceeded came back as %v", err)
	}
	err = FromStatus(status.Error(codes.Internal, "plugin panicked"))
	var e *Error
	if !errors.As(err, &e) || e.Kind != nil || err.Error() != "plugin panicked (Internal)" {
		t.Errorf("Internal came back as %#v", err)
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			t.Errorf("an Internal error matches kind %v", k.err)
		}
	}
}
