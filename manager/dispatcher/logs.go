package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/auth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Logs is the leader's log broker (manager/logbroker), which nodes listen
// to and publish to through their sessions.
type Logs interface {
	Listen(ctx context.Context, node string, send func(*shoalv1.LogSubscription) error) error
	Publish(ctx context.Context, node string, recv func() (*shoalv1.PublishLogsRequest, error)) error
}

func (d *Dispatcher) logs() (Logs, error) {
	if d.cfg.Logs == nil {
		return nil, fmt.Errorf("this manager relays no logs: %w", errdefs.ErrUnavailable)
	}
	return d.cfg.Logs, nil
}

// ListenLogSubscriptions streams the calling node's log subscriptions.
func (d *Dispatcher) ListenLogSubscriptions(_ *shoalv1.ListenLogSubscriptionsRequest, stream grpc.ServerStreamingServer[shoalv1.ListenLogSubscriptionsResponse]) error {
	l, err := d.logs()
	if err != nil {
		return err
	}
	caller, _ := auth.From(stream.Context())
	return l.Listen(stream.Context(), caller.NodeID, func(s *shoalv1.LogSubscription) error {
		return stream.Send(&shoalv1.ListenLogSubscriptionsResponse{Subscription: s})
	})
}

// PublishLogs relays the calling node's lines for one subscription.
func (d *Dispatcher) PublishLogs(stream grpc.ClientStreamingServer[shoalv1.PublishLogsRequest, shoalv1.PublishLogsResponse]) error {
	l, err := d.logs()
	if err != nil {
		return err
	}
	caller, _ := auth.From(stream.Context())
	err = l.Publish(stream.Context(), caller.NodeID, stream.Recv)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return stream.SendAndClose(&shoalv1.PublishLogsResponse{})
}
