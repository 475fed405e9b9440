package qerr_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/qubesgo/qubesd/core/qerr"
)

func TestKindOf(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	tests := []struct {
		name string
		err  error
		kind qerr.Kind
		msg  string
	}{
		{"plain", qerr.New(qerr.VMNotFound, "No such domain: %s", "'x'"), qerr.VMNotFound, "No such domain: 'x'"},
		{"wrapped by fmt", fmt.Errorf("loading: %w", qerr.New(qerr.LabelNotFound, "Label does not exist: x")), qerr.LabelNotFound, "loading: Label does not exist: x"},
		{"foreign error", errors.New("boom"), qerr.Exception, "boom"},
		{"with cause", qerr.Wrap(qerr.StoragePoolError, cause, "pool p unavailable"), qerr.StoragePoolError, "pool p unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := qerr.KindOf(tc.err); got != tc.kind {
				t.Errorf("KindOf = %s, want %s", got, tc.kind)
			}
			if tc.err.Error() != tc.msg {
				t.Errorf("message %q, want %q", tc.err, tc.msg)
			}
		})
	}
}

func TestMatchAndUnwrap(t *testing.T) {
	err := fmt.Errorf("ctx: %w", qerr.Wrap(qerr.VMInUse, io.EOF, "in use"))
	if !errors.Is(err, qerr.Match(qerr.VMInUse)) {
		t.Error("errors.Is does not match the kind")
	}
	if errors.Is(err, qerr.Match(qerr.VMNotFound)) {
		t.Error("errors.Is matches another kind")
	}
	if !errors.Is(err, io.EOF) {
		t.Error("the cause is not reachable through Unwrap")
	}
}
