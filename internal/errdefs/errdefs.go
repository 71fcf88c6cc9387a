// Package errdefs holds the error categories shared by every Shoal package
// and converts them to and from gRPC status codes at exactly one boundary.
//
// Packages wrap a category with context (fmt.Errorf("service %q: %w", name,
// errdefs.ErrNotFound)); servers call ToGRPC once before answering and
// clients call FromGRPC once after. Messages are lower case and say what was
// wrong and what to do.
package errdefs

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The categories.
var (
	ErrInvalid          = errors.New("invalid argument")
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrConflict         = errors.New("conflict")
	ErrUnavailable      = errors.New("unavailable")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrFailedPrecond    = errors.New("failed precondition")
)

var table = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalid, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrConflict, codes.Aborted},
	{ErrUnavailable, codes.Unavailable},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrFailedPrecond, codes.FailedPrecondition},
}

// Is reports whether err is of category cat, whether it was made locally or
// came back from a gRPC call.
func Is(err, cat error) bool {
	if errors.Is(err, cat) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK && s.Code() != codes.Unknown {
		for _, t := range table {
			if t.err == cat {
				return s.Code() == t.code
			}
		}
	}
	return false
}

// Code returns the gRPC code for err's category.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	for _, t := range table {
		if errors.Is(err, t.err) {
			return t.code
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

// ToGRPC converts err to a gRPC status error. The message keeps the whole
// text, without the category's own suffix.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := Code(err)
	msg := err.Error()
	// The category's own words are dropped where the message already says
	// what went wrong ("...: invalid argument"), but "not found" is the
	// message's point.
	for _, t := range table {
		if t.code == code && t.err != ErrNotFound {
			msg = strings.TrimSuffix(msg, ": "+t.err.Error())
		}
	}
	return status.Error(code, msg)
}

// FromGRPC converts a gRPC status error back into an error of the matching
// category, carrying the server's message.
func FromGRPC(err error) error {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	for _, t := range table {
		if t.code == s.Code() {
			return &remoteError{msg: s.Message(), cat: t.err}
		}
	}
	switch s.Code() {
	case codes.DeadlineExceeded:
		return &remoteError{msg: s.Message(), cat: context.DeadlineExceeded}
	case codes.Canceled:
		return &remoteError{msg: s.Message(), cat: context.Canceled}
	}
	return errors.New(s.Message())
}

type remoteError struct {
	msg string
	cat error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.cat }

// GRPCStatus lets a forwarded error keep its code when it is returned
// again by a server.
func (e *remoteError) GRPCStatus() *status.Status {
	return status.New(Code(e.cat), e.msg)
}
