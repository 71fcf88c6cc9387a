package controlapi

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/eventfilter"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// EventLog is this manager's event recorder (manager/events).
type EventLog interface {
	Subscribe(ctx context.Context, since, until time.Time, match func(*shoalv1.Event) bool, send func([]*shoalv1.Event) error) error
}

// Events streams this manager's events, docker's way: the kept ones from
// since, then new ones, until until. The filters are docker's, shared
// with a node's container events (internal/eventfilter), so that one set
// of --filter reads both.
func (s *Server) Events(req *shoalv1.EventsRequest, stream grpc.ServerStreamingServer[shoalv1.EventsResponse]) error {
	if s.EventLog == nil {
		return fmt.Errorf("this manager records no events: %w", errdefs.ErrUnavailable)
	}
	f, err := eventfilter.Parse(req.GetFilters())
	if err != nil {
		return err
	}
	var since, until time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	if req.GetUntil() != nil {
		until = req.GetUntil().AsTime()
	}
	return s.EventLog.Subscribe(stream.Context(), since, until, func(e *shoalv1.Event) bool {
		return f.Match(eventfilter.Swarm, e)
	}, func(evs []*shoalv1.Event) error {
		return stream.Send(&shoalv1.EventsResponse{Events: evs})
	})
}
