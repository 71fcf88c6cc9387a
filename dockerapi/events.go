package dockerapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moby/moby/api/types/events"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// events streams Docker's events: the cluster's (scope swarm) when this
// node is a manager, and this node's containers' (scope local), each
// event as one JSON object, as they come.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	fs, err := filters(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var since, until *timestamppb.Timestamp
	for _, p := range []struct {
		key string
		set **timestamppb.Timestamp
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(p.key); v != "" {
			t, err := unixTime(v)
			if err != nil {
				return invalidParam(p.key, v, "a Unix time in seconds")
			}
			*p.set = timestamppb.New(t)
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	type source struct {
		scope string
		recv  func() ([]*shoalv1.Event, error)
	}
	var sources []source
	local, err := s.cfg.Runtime.ContainerEvents(ctx, &shoalv1.ContainerEventsRequest{Since: since, Until: until, Filters: fs})
	if err != nil {
		return err
	}
	sources = append(sources, source{"local", func() ([]*shoalv1.Event, error) {
		m, err := local.Recv()
		return m.GetEvents(), err
	}})
	if info, err := s.cfg.Swarm.Info(ctx, &shoalv1.InfoRequest{}); err == nil && info.GetManager() && info.GetState() == "active" {
		cluster, err := s.cfg.Control.Events(ctx, &shoalv1.EventsRequest{Since: since, Until: until, Filters: fs})
		if err != nil {
			return err
		}
		sources = append(sources, source{"swarm", func() ([]*shoalv1.Event, error) {
			m, err := cluster.Recv()
			return m.GetEvents(), err
		}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	var wg sync.WaitGroup
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				evs, err := src.recv()
				if err != nil {
					// One source ending (until, or the manager going
					// away) ends the stream for both, as docker's does.
					cancel()
					return
				}
				mu.Lock()
				for _, e := range evs {
					if enc.Encode(eventMessage(e, src.scope)) != nil {
						cancel()
					}
				}
				if fl != nil {
					fl.Flush()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return nil
}

func eventMessage(e *shoalv1.Event, scope string) events.Message {
	t := e.GetTime().AsTime()
	if e.GetTime() == nil {
		t = time.Now()
	}
	return events.Message{
		Type: events.Type(e.GetType()), Action: events.Action(e.GetAction()),
		Actor: events.Actor{ID: e.GetActorId(), Attributes: e.GetAttributes()},
		Scope: scope, Time: t.Unix(), TimeNano: t.UnixNano(),
	}
}
