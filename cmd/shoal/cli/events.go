package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-run/shoal/internal/eventfilter"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// eventMessage is docker's events.Message, what --format sees and
// --format json prints.
type eventMessage struct {
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    eventActor
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

type eventActor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

func toEventMessage(e *shoalv1.Event, scope string) eventMessage {
	t := e.GetTime().AsTime()
	attrs := e.GetAttributes()
	if attrs == nil {
		attrs = map[string]string{}
	}
	return eventMessage{Type: e.GetType(), Action: e.GetAction(), Actor: eventActor{ID: e.GetActorId(), Attributes: attrs},
		Scope: scope, Time: t.Unix(), TimeNano: t.UnixNano()}
}

// formatEvent is docker's default events line:
// 2026-12-03T10:00:00.000000000+00:00 service create ID (name=web)
func formatEvent(m eventMessage) string {
	var b strings.Builder
	b.WriteString(time.Unix(0, m.TimeNano).Format(rfc3339NanoFixed))
	fmt.Fprintf(&b, " %s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		kv := make([]string, 0, len(m.Actor.Attributes))
		for k, v := range m.Actor.Attributes {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		fmt.Fprintf(&b, " (%s)", strings.Join(kv, ", "))
	}
	b.WriteByte('\n')
	return b.String()
}

// scoped is a batch of events from one source.
type scoped struct {
	scope  string
	events []*shoalv1.Event
}

// eventSource is one stream of events and its scope.
type eventSource struct {
	scope string
	recv  func() ([]*shoalv1.Event, error)
}

// openEventSources opens the streams a filter can match: the cluster's
// events from a manager and this node's container events from its
// daemon, docker's swarm and local scopes. A worker, or a node in no
// swarm, has only its containers' events, as docker's engine on a worker
// has; asked for by filter, the cluster's events are refused there.
func (g *globals) openEventSources(ctx context.Context, req *shoalv1.EventsRequest) ([]eventSource, func(), error) {
	f, err := eventfilter.Parse(req.GetFilters())
	if err != nil {
		return nil, nil, err
	}
	remote := strings.HasPrefix(g.host, "tcp://")
	wantSwarm, wantLocal := f.Wants(eventfilter.Swarm), f.Wants(eventfilter.Local) && !remote
	if !wantSwarm && !f.Wants(eventfilter.Local) {
		return nil, nil, errors.New("these filters match no events: container events are of scope local, the cluster's of scope swarm")
	}
	if remote && !wantSwarm {
		return nil, nil, errors.New("container events are a node's own: run `shoal events` through that node's unix socket, not a tcp:// host")
	}
	conn, err := g.dial()
	if err != nil {
		return nil, nil, err
	}
	if wantSwarm && wantLocal {
		// Both, where this node serves both: the cluster's events only on
		// a manager.
		info, err := shoalv1.NewSwarmServiceClient(conn).Info(ctx, &shoalv1.InfoRequest{})
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		wantSwarm = info.GetState() == "active" && info.GetManager()
	}
	var sources []eventSource
	if wantLocal {
		stream, err := shoalv1.NewRuntimeServiceClient(conn).ContainerEvents(ctx, &shoalv1.ContainerEventsRequest{Since: req.GetSince(), Until: req.GetUntil(), Filters: req.GetFilters()})
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		sources = append(sources, eventSource{eventfilter.Local, func() ([]*shoalv1.Event, error) {
			resp, err := stream.Recv()
			return resp.GetEvents(), err
		}})
	}
	if wantSwarm {
		stream, err := shoalv1.NewControlServiceClient(conn).Events(ctx, req)
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		sources = append(sources, eventSource{eventfilter.Swarm, func() ([]*shoalv1.Event, error) {
			resp, err := stream.Recv()
			return resp.GetEvents(), err
		}})
	}
	return sources, func() { conn.Close() }, nil
}

// mergeEvents reads every source at once and hands each batch to fn as
// it comes, in each source's order; it ends when all sources have ended,
// or with the first error.
func mergeEvents(ctx context.Context, sources []eventSource, fn func(scoped) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan scoped)
	errc := make(chan error, len(sources))
	for _, src := range sources {
		go func() {
			for {
				evs, err := src.recv()
				if err != nil {
					if errors.Is(err, io.EOF) {
						err = nil
					}
					errc <- err
					return
				}
				select {
				case batches <- scoped{src.scope, evs}:
				case <-ctx.Done():
					errc <- nil
					return
				}
			}
		}()
	}
	for open := len(sources); open > 0; {
		select {
		case b := <-batches:
			if err := fn(b); err != nil {
				return err
			}
		case err := <-errc:
			if err != nil {
				return err
			}
			open--
		}
	}
	return nil
}

func newEventsCmd(g *globals) *cobra.Command {
	var since, until, format string
	var filter filterFlag
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the cluster",
		Long: "Stream what happens in the cluster: services, networks, secrets and configs created, updated and removed; tasks\n" +
			"changing state; nodes going down and up; the leadership moving (from a manager, scope swarm). And what happens to\n" +
			"this node's containers: created, started, killed, OOM-killed, died, stopped, destroyed, turning healthy or\n" +
			"unhealthy (scope local; a worker has only these). With --since, the events kept from then come first.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, u, err := parseWindow(since, until)
			if err != nil {
				return err
			}
			filters, err := filter.parse()
			if err != nil {
				return err
			}
			var tmpl *outputTemplate
			if format != "" && format != "json" {
				if tmpl, err = parseTemplate(format); err != nil {
					return err
				}
			}
			sources, done, err := g.openEventSources(ctx, &shoalv1.EventsRequest{Since: s, Until: u, Filters: filters})
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			err = mergeEvents(ctx, sources, func(b scoped) error {
				for _, e := range b.events {
					m := toEventMessage(e, b.scope)
					switch {
					case format == "json":
						data, err := json.Marshal(m)
						if err != nil {
							return err
						}
						fmt.Fprintf(out, "%s\n", data)
					case tmpl != nil:
						var buf bytes.Buffer
						if err := tmpl.execute(&buf, m); err != nil {
							return err
						}
						_, _ = out.Write(buf.Bytes())
					default:
						_, _ = io.WriteString(out, formatEvent(m))
					}
				}
				return nil
			})
			if err != nil && ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "Show all events created since timestamp")
	fl.StringVar(&until, "until", "", "Stream events until this timestamp")
	fl.StringVar(&format, "format", "", "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	filter.register(fl, "type (service, node, task, network, secret, config, container), event (create, update, remove; container: create, start,\nkill, oom, die, stop, destroy, health_status), service, node, network, secret, config, container, image, label, scope (swarm, local)")
	return cmd
}
