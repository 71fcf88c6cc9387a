package errgrpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// categories lists every category with the gRPC code it must map to. It is
// written out here rather than read from the package's table so that a
// changed mapping fails the test.
var categories = []struct {
	name string
	cat  error
	code codes.Code
}{
	{"invalid", errdefs.ErrInvalid, codes.InvalidArgument},
	{"not found", errdefs.ErrNotFound, codes.NotFound},
	{"already exists", errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{"conflict", errdefs.ErrConflict, codes.Aborted},
	{"unavailable", errdefs.ErrUnavailable, codes.Unavailable},
	{"permission denied", errdefs.ErrPermissionDenied, codes.PermissionDenied},
	{"unauthenticated", errdefs.ErrUnauthenticated, codes.Unauthenticated},
	{"failed precondition", errdefs.ErrFailedPrecond, codes.FailedPrecondition},
}

func TestCode(t *testing.T) {
	for _, c := range categories {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range []error{
				c.cat,
				fmt.Errorf("service %q: %w", "web", c.cat),
				fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", c.cat)),
				errors.Join(errors.New("unrelated"), fmt.Errorf("x: %w", c.cat)),
			} {
				if got := Code(err); got != c.code {
					t.Errorf("Code(%q) = %v; want %v", err, got, c.code)
				}
			}
		})
	}

	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"nil", nil, codes.OK},
		{"plain", errors.New("boom"), codes.Unknown},
		{"deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"canceled", fmt.Errorf("dial: %w", context.Canceled), codes.Canceled},
		{"status", status.Error(codes.ResourceExhausted, "too many"), codes.ResourceExhausted},
		{"wrapped status", fmt.Errorf("forward: %w", status.Error(codes.NotFound, "gone")), codes.NotFound},
	} {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("%s: Code(%v) = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestToGRPC(t *testing.T) {
	if ToGRPC(nil) != nil {
		t.Fatal("ToGRPC(nil) != nil")
	}
	for _, c := range categories {
		t.Run(c.name, func(t *testing.T) {
			err := fmt.Errorf("service %q: %w", "web", c.cat)
			g := ToGRPC(err)
			s, ok := status.FromError(g)
			if !ok {
				t.Fatalf("ToGRPC(%q) = %v is no status error", err, g)
			}
			if s.Code() != c.code {
				t.Errorf("ToGRPC(%q) code = %v; want %v", err, s.Code(), c.code)
			}
			// The code carries the category; the message keeps the context
			// and drops the category's own suffix, except "not found",
			// which is the message's point.
			want := `service "web"`
			if c.cat == errdefs.ErrNotFound {
				want = `service "web": not found`
			}
			if s.Message() != want {
				t.Errorf("ToGRPC(%q) message = %q; want %q", err, s.Message(), want)
			}
		})
	}

	t.Run("category not at the end is kept", func(t *testing.T) {
		err := fmt.Errorf("%w: node abc is gone", errdefs.ErrNotFound)
		s := status.Convert(ToGRPC(err))
		if s.Code() != codes.NotFound || s.Message() != err.Error() {
			t.Errorf("ToGRPC(%q) = %v %q; want NotFound %q", err, s.Code(), s.Message(), err.Error())
		}
	})

	t.Run("only the matching category suffix is trimmed", func(t *testing.T) {
		// The text ends in another category's message; the code is NotFound.
		err := fmt.Errorf("%w: the peer said: conflict", errdefs.ErrNotFound)
		s := status.Convert(ToGRPC(err))
		if s.Code() != codes.NotFound || s.Message() != err.Error() {
			t.Errorf("ToGRPC(%q) = %v %q; want NotFound %q", err, s.Code(), s.Message(), err.Error())
		}
	})

	t.Run("uncategorized", func(t *testing.T) {
		err := errors.New("disk on fire")
		s := status.Convert(ToGRPC(err))
		if s.Code() != codes.Unknown || s.Message() != "disk on fire" {
			t.Errorf("ToGRPC(%q) = %v %q; want Unknown %q", err, s.Code(), s.Message(), "disk on fire")
		}
	})

	t.Run("context", func(t *testing.T) {
		err := fmt.Errorf("wait for leader: %w", context.DeadlineExceeded)
		s := status.Convert(ToGRPC(err))
		if s.Code() != codes.DeadlineExceeded || s.Message() != err.Error() {
			t.Errorf("ToGRPC(%q) = %v %q", err, s.Code(), s.Message())
		}
	})

	t.Run("status errors pass through", func(t *testing.T) {
		err := status.Error(codes.ResourceExhausted, "slow down")
		if g := ToGRPC(err); g != err {
			t.Errorf("ToGRPC(status) = %v; want the same error back", g)
		}
	})
}

func TestFromGRPC(t *testing.T) {
	if FromGRPC(nil) != nil {
		t.Fatal("FromGRPC(nil) != nil")
	}
	plain := errors.New("local")
	if got := FromGRPC(plain); got != plain {
		t.Errorf("FromGRPC(non-status) = %v; want it unchanged", got)
	}

	for _, c := range categories {
		t.Run(c.name, func(t *testing.T) {
			err := FromGRPC(status.Error(c.code, "service web: boom"))
			if !errors.Is(err, c.cat) {
				t.Errorf("FromGRPC(%v) = %v; errors.Is(_, %v) = false", c.code, err, c.cat)
			}
			if !errdefs.Is(err, c.cat) {
				t.Errorf("errdefs.Is(FromGRPC(%v), %v) = false", c.code, c.cat)
			}
			for _, other := range categories {
				if other.cat != c.cat && errdefs.Is(err, other.cat) {
					t.Errorf("errdefs.Is(FromGRPC(%v), %v) = true; want false", c.code, other.cat)
				}
			}
			if err.Error() != "service web: boom" {
				t.Errorf("FromGRPC message = %q; want %q", err.Error(), "service web: boom")
			}
			if got := Code(err); got != c.code {
				t.Errorf("Code(FromGRPC(%v)) = %v", c.code, got)
			}
		})
	}

	for _, tc := range []struct {
		code codes.Code
		cat  error
	}{
		{codes.DeadlineExceeded, context.DeadlineExceeded},
		{codes.Canceled, context.Canceled},
	} {
		err := FromGRPC(status.Error(tc.code, "took too long"))
		if !errors.Is(err, tc.cat) || err.Error() != "took too long" {
			t.Errorf("FromGRPC(%v) = %q; want %q wrapping %v", tc.code, err, "took too long", tc.cat)
		}
	}

	unknown := FromGRPC(status.Error(codes.Internal, "kaboom"))
	if unknown.Error() != "kaboom" {
		t.Errorf("FromGRPC(Internal) message = %q", unknown.Error())
	}
	for _, c := range categories {
		if errdefs.Is(unknown, c.cat) {
			t.Errorf("FromGRPC(Internal) is %v", c.cat)
		}
	}
}

// TestCategoryOfAnswer covers what a client sees once it converts a
// call's error: the category of the status code, and nothing for codes
// that have none.
func TestCategoryOfAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		cat  error
		want bool
	}{
		{"nil", nil, errdefs.ErrNotFound, false},
		{"local", fmt.Errorf("x: %w", errdefs.ErrNotFound), errdefs.ErrNotFound, true},
		{"local other", fmt.Errorf("x: %w", errdefs.ErrNotFound), errdefs.ErrConflict, false},
		{"status", status.Error(codes.Aborted, "moved"), errdefs.ErrConflict, true},
		{"status other", status.Error(codes.Aborted, "moved"), errdefs.ErrNotFound, false},
		{"wrapped status", fmt.Errorf("fwd: %w", status.Error(codes.NotFound, "gone")), errdefs.ErrNotFound, true},
		{"unknown status", status.Error(codes.Unknown, "not found"), errdefs.ErrNotFound, false},
		{"plain error with same text", errors.New("not found"), errdefs.ErrNotFound, false},
	} {
		if got := errdefs.Is(FromGRPC(tc.err), tc.cat); got != tc.want {
			t.Errorf("%s: errdefs.Is(FromGRPC(%v), %v) = %v; want %v", tc.name, tc.err, tc.cat, got, tc.want)
		}
	}
}

// TestRoundTripCategory sends every category through a server boundary and
// back: the client sees the same category and code.
func TestRoundTripCategory(t *testing.T) {
	for _, c := range categories {
		t.Run(c.name, func(t *testing.T) {
			orig := fmt.Errorf("secret %q: %w", "db-password", c.cat)
			back := FromGRPC(ToGRPC(orig))
			if !errdefs.Is(back, c.cat) || !errors.Is(back, c.cat) {
				t.Errorf("FromGRPC(ToGRPC(%q)) = %v; lost category %v", orig, back, c.cat)
			}
			if Code(back) != c.code {
				t.Errorf("Code after round trip = %v; want %v", Code(back), c.code)
			}
			// The context the server wrote survives.
			if want := `secret "db-password"`; back.Error() != want && back.Error() != orig.Error() {
				t.Errorf("message after round trip = %q; want %q or %q", back.Error(), want, orig.Error())
			}
		})
	}
}

// TestRoundTripMessage checks that what a client prints still says what
// was wrong: fmt.Errorf("service %q: %w", name, errdefs.ErrNotFound) must still say
// "not found" on the client, and the server's context survives for every
// category.
func TestRoundTripMessage(t *testing.T) {
	orig := fmt.Errorf("service %q: %w", "web", errdefs.ErrNotFound)
	if back := FromGRPC(ToGRPC(orig)); back.Error() != orig.Error() {
		t.Errorf("FromGRPC(ToGRPC(%q)).Error() = %q; want %q", orig, back.Error(), orig.Error())
	}
	for _, c := range categories {
		orig := fmt.Errorf("node %s was changed by someone else; read it again and retry: %w", "n1", c.cat)
		back := FromGRPC(ToGRPC(orig)).Error()
		if !strings.HasPrefix(back, "node n1 was changed by someone else; read it again and retry") {
			t.Errorf("FromGRPC(ToGRPC(%q)).Error() = %q; lost the server's message", orig, back)
		}
	}
}

// TestForwardedError models a follower manager that forwards a call to the
// leader and returns the leader's error to its own client: code and message
// must survive the second hop unchanged.
func TestForwardedError(t *testing.T) {
	leader := ToGRPC(fmt.Errorf("node %s was changed by someone else: %w", "abc", errdefs.ErrConflict))
	atFollower := FromGRPC(leader)
	for _, hop := range []error{atFollower, fmt.Errorf("forward to leader: %w", atFollower)} {
		again := ToGRPC(hop)
		s, ok := status.FromError(again)
		if !ok {
			t.Fatalf("ToGRPC(%v) is not a status", hop)
		}
		if s.Code() != codes.Aborted {
			t.Errorf("forwarded code = %v; want Aborted", s.Code())
		}
		if !errdefs.Is(FromGRPC(again), errdefs.ErrConflict) {
			t.Errorf("client of follower lost the conflict category: %v", FromGRPC(again))
		}
	}
	s := status.Convert(ToGRPC(atFollower))
	if s.Message() != status.Convert(leader).Message() {
		t.Errorf("forwarded message = %q; want %q", s.Message(), status.Convert(leader).Message())
	}
}

// TestRemoteErrorKeepsStatus covers a server that returns a client error
// as is, without ToGRPC: grpc-go reads the status from GRPCStatus.
func TestRemoteErrorKeepsStatus(t *testing.T) {
	for _, c := range categories {
		err := FromGRPC(status.Error(c.code, "node n1 is down"))
		s, ok := status.FromError(err)
		if !ok {
			t.Errorf("status.FromError(FromGRPC(%v)) is not ok", c.code)
			continue
		}
		if s.Code() != c.code || s.Message() != "node n1 is down" {
			t.Errorf("status of FromGRPC(%v) = %v %q; want %v %q", c.code, s.Code(), s.Message(), c.code, "node n1 is down")
		}
	}
}

// TestServerInterceptors checks that both interceptors turn a handler's
// category into its code and message, and leave success alone.
func TestServerInterceptors(t *testing.T) {
	for _, c := range categories {
		t.Run(c.name, func(t *testing.T) {
			herr := fmt.Errorf("node %s: %w", "n1", c.cat)
			want := status.Convert(ToGRPC(herr))
			resp, err := UnaryServerInterceptor(context.Background(), "req", nil, func(context.Context, any) (any, error) { return "partial", herr })
			if s, ok := status.FromError(err); !ok || s.Code() != c.code || s.Message() != want.Message() || resp != "partial" {
				t.Errorf("unary: %v, %v; want %v %q", resp, err, c.code, want.Message())
			}
			err = StreamServerInterceptor(nil, nil, nil, func(any, grpc.ServerStream) error { return herr })
			if s, ok := status.FromError(err); !ok || s.Code() != c.code || s.Message() != want.Message() {
				t.Errorf("stream: %v; want %v %q", err, c.code, want.Message())
			}
		})
	}
	resp, err := UnaryServerInterceptor(context.Background(), "req", nil, func(_ context.Context, req any) (any, error) { return req, nil })
	if resp != "req" || err != nil {
		t.Errorf("unary success = %v, %v; want req, nil", resp, err)
	}
	if err := StreamServerInterceptor(nil, nil, nil, func(any, grpc.ServerStream) error { return nil }); err != nil {
		t.Errorf("stream success = %v; want nil", err)
	}
}
