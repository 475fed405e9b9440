package plugin

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StatusCode returns the gRPC status code err crosses the wire with, the
// same way for every kind of plugin: the code kindCode gives for err's kind
// when it knows one, Canceled or DeadlineExceeded for the context errors,
// the code of a gRPC status error, OK for nil and Unknown for anything
// else. Each SDK package (pool, extension) supplies its own kinds.
func StatusCode(err error, kindCode func(error) (codes.Code, bool)) codes.Code {
	if err == nil {
		return codes.OK
	}
	if c, ok := kindCode(err); ok {
		return c
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}
