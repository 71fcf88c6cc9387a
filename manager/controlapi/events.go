package controlapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// EventLog is this manager's event recorder (manager/events).
type EventLog interface {
	Subscribe(ctx context.Context, since, until time.Time, match func(*shoalv1.Event) bool, send func([]*shoalv1.Event) error) error
}

var eventFilters = []filterKey{
	{"type", []string{"service", "node", "task", "network", "secret", "config"}},
	{"event", []string{"create", "update", "remove"}},
	{"scope", []string{"swarm", "local"}},
	{"service", nil}, {"node", nil}, {"network", nil}, {"secret", nil}, {"config", nil},
}

// eventMatch is docker's events filter: each key given must match; a
// key's values match any of them. service and node match their own
// events and their tasks'.
func eventMatch(f filters) func(*shoalv1.Event) bool {
	named := func(e *shoalv1.Event, typ, v string) bool {
		return e.GetType() == typ && (strings.HasPrefix(e.GetActorId(), v) || e.GetAttributes()["name"] == v)
	}
	return func(e *shoalv1.Event) bool {
		a := e.GetAttributes()
		return f.any("type", func(v string) bool { return e.GetType() == v }) &&
			f.any("event", func(v string) bool { return e.GetAction() == v }) &&
			f.any("scope", func(v string) bool { return v == "swarm" }) &&
			f.any("service", func(v string) bool {
				return named(e, "service", v) || (e.GetType() == "task" && (strings.HasPrefix(a["service.id"], v) || a["service.name"] == v))
			}) &&
			f.any("node", func(v string) bool {
				return named(e, "node", v) || (e.GetType() == "task" && v != "" && strings.HasPrefix(a["node.id"], v))
			}) &&
			f.any("network", func(v string) bool { return named(e, "network", v) }) &&
			f.any("secret", func(v string) bool { return named(e, "secret", v) }) &&
			f.any("config", func(v string) bool { return named(e, "config", v) })
	}
}

// Events streams this manager's events, docker's way: the kept ones from
// since, then new ones, until until.
func (s *Server) Events(req *shoalv1.EventsRequest, stream grpc.ServerStreamingServer[shoalv1.EventsResponse]) error {
	if s.EventLog == nil {
		return fmt.Errorf("this manager records no events: %w", errdefs.ErrUnavailable)
	}
	f, err := parseFilters(req.GetFilters(), eventFilters...)
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
	return s.EventLog.Subscribe(stream.Context(), since, until, eventMatch(f), func(evs []*shoalv1.Event) error {
		return stream.Send(&shoalv1.EventsResponse{Events: evs})
	})
}
