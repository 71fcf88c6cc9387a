package session

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker"
)

// callTimeout bounds one call to one manager before the next is tried.
const callTimeout = 3 * time.Second

// reconnect bounds gRPC's reconnect back-off (by default it grows to two
// minutes): a manager back after a few seconds down must hear from its
// nodes again within its heartbeat deadline (three periods), or it takes
// them for down and moves their tasks.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
	MinConnectTimeout: 2 * time.Second,
}

// conn is a connection to the manager at addr presenting id, made once.
func (s *Session) conn(addr string, id *tlsutil.Identity) (*grpc.ClientConn, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if c, ok := s.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(id.ClientConfig())), grpc.WithConnectParams(reconnect),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.MaxRecvMsgSize)))
	if err != nil {
		return nil, err
	}
	s.conns[addr] = c
	return c, nil
}

// CloseConns drops the connections so the next calls present the current
// certificate.
func (s *Session) CloseConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for a, c := range s.conns {
		c.Close()
		delete(s.conns, a)
	}
}

// CallEach calls fn on each target in turn until one succeeds. An error
// that is the caller's fault (not unavailability) ends the tries.
func (s *Session) CallEach(ctx context.Context, targets []string, id *tlsutil.Identity, fn func(context.Context, *grpc.ClientConn) error) error {
	if len(targets) == 0 {
		return fmt.Errorf("no manager address known: %w", errdefs.ErrUnavailable)
	}
	var last error
	for _, addr := range targets {
		conn, err := s.conn(addr, id)
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err = fn(cctx, conn)
		cancel()
		if err == nil {
			return nil
		}
		// The category is known once the status is converted: errdefs
		// knows nothing of gRPC codes.
		last = fmt.Errorf("manager %s: %w", addr, errgrpc.FromGRPC(err))
		if errdefs.Is(last, errdefs.ErrInvalid) || errdefs.Is(last, errdefs.ErrPermissionDenied) {
			return last
		}
	}
	return last
}

// Dispatch runs fn against the managers' dispatcher, as the node's
// targets order them, until one answers; it fails with
// worker.ErrNotInSwarm while the node is in no cluster.
func (s *Session) Dispatch(ctx context.Context, fn func(context.Context, shoalv1.DispatcherServiceClient) error) error {
	targets, id := s.node.Targets()
	if id == nil {
		return worker.ErrNotInSwarm
	}
	return s.CallEach(ctx, targets, id, func(cctx context.Context, c *grpc.ClientConn) error {
		return fn(cctx, shoalv1.NewDispatcherServiceClient(c))
	})
}
