// Package errgrpc converts the error categories of internal/errdefs to and
// from gRPC status codes. It is used only at the edges: each gRPC server
// converts at exactly one boundary (UnaryServerInterceptor and
// StreamServerInterceptor), and a client calls FromGRPC where it needs the
// category of an answer back.
package errgrpc

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/errdefs"
)

var table = []struct {
	err  error
	code codes.Code
}{
	{errdefs.ErrInvalid, codes.InvalidArgument},
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrConflict, codes.Aborted},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrPermissionDenied, codes.PermissionDenied},
	{errdefs.ErrUnauthenticated, codes.Unauthenticated},
	{errdefs.ErrFailedPrecond, codes.FailedPrecondition},
}

func codeOf(cat error) codes.Code {
	for _, t := range table {
		if t.err == cat {
			return t.code
		}
	}
	return codes.Unknown
}

// Code returns the gRPC code for err: a status error's own code, else its
// category's.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	if cat := errdefs.Category(err); cat != nil {
		return codeOf(cat)
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
// text, without the category's own suffix. Status errors pass unchanged.
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
		if t.code == code && t.err != errdefs.ErrNotFound {
			msg = strings.TrimSuffix(msg, ": "+t.err.Error())
		}
	}
	return status.Error(code, msg)
}

// FromGRPC converts a gRPC status error back into an error of the matching
// category, carrying the server's message. Other errors pass unchanged.
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

// GRPCStatus lets a forwarded error keep its code and message when a
// server returns it again.
func (e *remoteError) GRPCStatus() *status.Status {
	return status.New(Code(e.cat), e.msg)
}

// UnaryServerInterceptor converts a unary handler's error with ToGRPC.
// Put it first in the server's chain so it sees what every later
// interceptor returns.
func UnaryServerInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, ToGRPC(err)
}

// StreamServerInterceptor converts a streaming handler's error with
// ToGRPC. Put it first in the server's chain.
func StreamServerInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return ToGRPC(handler(srv, ss))
}
