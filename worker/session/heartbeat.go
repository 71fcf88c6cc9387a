package session

import (
	"context"
	"time"

	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Beat is what the heartbeat loop needs of the node.
type Beat interface {
	// Request is the next heartbeat: the node's description and gossip
	// address.
	Request() *shoalv1.HeartbeatRequest
	// Answered acts on the leader's answer (role, managers, gossip,
	// ingress, attachments); true ends the loop: the node left the
	// cluster.
	Answered(ctx context.Context, resp *shoalv1.HeartbeatResponse) (stop bool)
}

// Heartbeats sends a heartbeat every period (or the period the leader's
// answer names) until ctx ends or b says the node left the cluster.
func (s *Session) Heartbeats(ctx context.Context, period time.Duration, b Beat) {
	send := func(ctx context.Context) (*shoalv1.HeartbeatResponse, error) {
		req := b.Request()
		var resp *shoalv1.HeartbeatResponse
		err := s.Dispatch(ctx, func(cctx context.Context, c shoalv1.DispatcherServiceClient) error {
			var err error
			resp, err = c.Heartbeat(cctx, req)
			return err
		})
		return resp, err
	}
	s.heartbeatLoop(ctx, period, send, b.Answered)
}

func (s *Session) heartbeatLoop(ctx context.Context, period time.Duration,
	send func(context.Context) (*shoalv1.HeartbeatResponse, error),
	answered func(context.Context, *shoalv1.HeartbeatResponse) bool) {
	t := s.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		// Heartbeats leave every period, however long the last one took:
		// on a slow link the leader must not see them spaced by period
		// plus a round trip.
		start := s.clock.Now()
		resp, err := send(ctx)
		if err != nil {
			s.log.Debug("heartbeat", zap.Error(err))
		} else {
			if p := time.Duration(resp.GetPeriodMs()) * time.Millisecond; p > 0 {
				period = p
			}
			if answered(ctx, resp) {
				return
			}
		}
		t.Reset(max(period-s.clock.Since(start), 0))
	}
}
