package session

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
)

// CallEach moves on to the next manager only when one is unavailable: a
// refusal that is the caller's fault ends the tries, with its category.
func TestCallEachStopsOnTheCallersFault(t *testing.T) {
	targets := []string{"m1:4242", "m2:4242", "m3:4242"}
	for _, tc := range []struct {
		code      codes.Code
		wantCalls int
		wantCat   error
	}{
		{codes.InvalidArgument, 1, errdefs.ErrInvalid},
		{codes.PermissionDenied, 1, errdefs.ErrPermissionDenied},
		{codes.Unavailable, 3, errdefs.ErrUnavailable},
		{codes.NotFound, 3, errdefs.ErrNotFound},
	} {
		s := New(Config{})
		var called []string
		// The connections are lazy: fn answers without dialling.
		err := s.CallEach(context.Background(), targets, &tlsutil.Identity{}, func(_ context.Context, c *grpc.ClientConn) error {
			called = append(called, c.Target())
			return status.Error(tc.code, "refused")
		})
		s.CloseConns()
		if len(called) != tc.wantCalls {
			t.Errorf("CallEach with every manager answering %v called %v; want the first %d", tc.code, called, tc.wantCalls)
		}
		if !errdefs.Is(err, tc.wantCat) {
			t.Errorf("CallEach with every manager answering %v = %v; want category %v", tc.code, err, tc.wantCat)
		}
	}
}
