package runtimeapi

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/eventfilter"
	"github.com/shoal-run/shoal/internal/feed"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
)

// Bounds of a node's container events: those kept for --since, and a
// reader's backlog before it is cut off.
const (
	eventHistory = 1000
	eventBacklog = 1024
)

// Events is a node's container events, docker's events of type container.
type Events struct {
	feed *feed.Feed[*shoalv1.Event]
	// hidden are labels left out of the events' attributes (the worker's
	// task record: bulk, not for reading).
	hidden map[string]bool
}

// NewEvents makes a node's event feed; hidden names labels its events
// leave out.
func NewEvents(clk clock.Clock, hidden ...string) *Events {
	h := map[string]bool{}
	for _, k := range hidden {
		h[k] = true
	}
	return &Events{feed: feed.New(clk, eventHistory, eventBacklog, func(e *shoalv1.Event) time.Time { return e.GetTime().AsTime() }), hidden: h}
}

// Container records a runtime event (container.Options.Events).
func (ev *Events) Container(e container.Event) {
	attrs := map[string]string{}
	for k, v := range e.Container.Labels {
		if !ev.hidden[k] {
			attrs[k] = v
		}
	}
	for k, v := range e.Attributes {
		attrs[k] = v
	}
	attrs["name"], attrs["image"] = e.Container.Name, e.Container.Image
	ev.feed.Record(&shoalv1.Event{Type: "container", Action: e.Action, ActorId: e.Container.ID, Attributes: attrs, Time: timestamppb.New(e.Time)})
}

// Health records a container's health status change, docker's
// "health_status: healthy" and "health_status: unhealthy".
func (ev *Events) Health(st container.State, status string, at time.Time) {
	ev.Container(container.Event{Action: "health_status: " + status, Container: st, Time: at})
}

// ContainerEvents streams this node's container events: the kept ones
// from since, then new ones, until until, through docker's filters.
func (s *Server) ContainerEvents(req *shoalv1.ContainerEventsRequest, stream grpc.ServerStreamingServer[shoalv1.ContainerEventsResponse]) error {
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
	return s.Events.feed.Subscribe(stream.Context(), since, until, func(e *shoalv1.Event) bool {
		return f.Match(eventfilter.Local, e)
	}, func(evs []*shoalv1.Event) error {
		return stream.Send(&shoalv1.ContainerEventsResponse{Events: evs})
	})
}
