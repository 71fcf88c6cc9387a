package grpcmetrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUnaryCountsByCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(reg, "test_api", "test API")
	info := &grpc.UnaryServerInfo{FullMethod: "/svc/Get"}
	for _, err := range []error{nil, nil, status.Error(codes.NotFound, "x"), errors.New("plain")} {
		_, _ = s.Unary(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, err })
	}
	for code, want := range map[string]float64{"OK": 2, "NotFound": 1, "Unknown": 1} {
		if got := testutil.ToFloat64(s.calls.WithLabelValues("/svc/Get", code)); got != want {
			t.Errorf("calls{code=%s} = %v; want %v", code, got, want)
		}
	}
	if n := testutil.CollectAndCount(s.latency); n != 1 {
		t.Errorf("%d latency series; want 1", n)
	}
	if err := s.Stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/svc/Watch"}, func(any, grpc.ServerStream) error { return status.Error(codes.Canceled, "") }); status.Code(err) != codes.Canceled {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.calls.WithLabelValues("/svc/Watch", "Canceled")); got != 1 {
		t.Errorf("stream calls = %v", got)
	}
}
