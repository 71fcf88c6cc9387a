// Package grpcmetrics counts a gRPC server's calls by method and status
// code, with their latency, for Prometheus.
package grpcmetrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Server holds the metrics of one server's calls.
type Server struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// New registers the metrics, named prefix_requests_total and
// prefix_request_duration_seconds, with reg.
func New(reg prometheus.Registerer, prefix, what string) *Server {
	s := &Server{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_requests_total", Help: "Calls of the " + what + ", by method and gRPC status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: prefix + "_request_duration_seconds", Help: "Time to answer a call of the " + what + " (a stream: its whole life), by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
	}
	reg.MustRegister(s.calls, s.latency)
	return s
}

func (s *Server) observe(method string, start time.Time, err error) {
	s.calls.WithLabelValues(method, status.Code(err).String()).Inc()
	s.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// Unary is the interceptor for unary calls; put it first in the chain so
// it sees the codes the client gets.
func (s *Server) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.observe(info.FullMethod, start, err)
	return resp, err
}

// Stream is the interceptor for streams.
func (s *Server) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	s.observe(info.FullMethod, start, err)
	return err
}
