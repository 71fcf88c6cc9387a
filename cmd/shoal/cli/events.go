package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

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

func toEventMessage(e *shoalv1.Event) eventMessage {
	t := e.GetTime().AsTime()
	attrs := e.GetAttributes()
	if attrs == nil {
		attrs = map[string]string{}
	}
	return eventMessage{Type: e.GetType(), Action: e.GetAction(), Actor: eventActor{ID: e.GetActorId(), Attributes: attrs},
		Scope: "swarm", Time: t.Unix(), TimeNano: t.UnixNano()}
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

func newEventsCmd(g *globals) *cobra.Command {
	var since, until, format string
	var filter filterFlag
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the cluster",
		Long: "Stream what happens in the cluster: services, networks, secrets and configs created, updated and removed; tasks\n" +
			"changing state; nodes going down and up; the leadership moving. With --since, the events the manager kept from\n" +
			"then come first.",
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
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			stream, err := c.Events(ctx, &shoalv1.EventsRequest{Since: s, Until: u, Filters: filters})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
				for _, e := range resp.GetEvents() {
					m := toEventMessage(e)
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
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "Show all events created since timestamp")
	fl.StringVar(&until, "until", "", "Stream events until this timestamp")
	fl.StringVar(&format, "format", "", "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	filter.register(fl, "type (service, node, task, network, secret, config), event (create, update, remove), service, node, network, secret, config, scope")
	return cmd
}
