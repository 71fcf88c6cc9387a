package tests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// eventLine is docker's default events line.
var eventLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\S*) (\w+) (\w+) (\S+)(?: \((.*)\))?$`)

type eventRow struct {
	typ, action, id string
	attrs           map[string]string
}

func parseEvents(t *testing.T, lines []string) []eventRow {
	t.Helper()
	var out []eventRow
	for _, l := range lines {
		m := eventLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not an events line: %q", l)
		}
		r := eventRow{typ: m[2], action: m[3], id: m[4], attrs: map[string]string{}}
		for _, kv := range strings.Split(m[5], ", ") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				r.attrs[k] = v
			}
		}
		out = append(out, r)
	}
	return out
}

// index is the first row at or after from that match accepts, or -1.
func index(rows []eventRow, from int, match func(eventRow) bool) int {
	for i := max(from, 0); i < len(rows); i++ {
		if match(rows[i]) {
			return i
		}
	}
	return -1
}

// events, through a follower manager, sees a service created and updated,
// its tasks running, a worker going down and the leadership moving, in
// that order, without the stream ending; --since replays them.
func TestEvents(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "events"})
	nodes := hosts(t, 4)
	c := harness.NewCluster(t, nodes[:3], nodes[3:])
	leader := c.Leader(30 * time.Second)
	var watcher *harness.Node
	for _, m := range c.Managers {
		if m != leader {
			watcher = m
			break
		}
	}
	// --since: whatever happens before the stream is up is replayed, so
	// the test need not wait for it.
	start := time.Now()
	f := streamCLI(t, watcher, "events", "--since", start.Format(time.RFC3339Nano))
	leader.MustCLI("service", "create", "-d", "--name", "ev", "--replicas", "2", img.Ref)
	harness.Eventually(t, 60*time.Second, func() error { return c.Converged("ev", 2) })
	leader.MustCLI("service", "update", "-d", "--env-add", "X=1", "ev")
	worker := nodes[3]
	wid := nodeID(t, worker)
	worker.KillHost()
	harness.Eventually(t, 30*time.Second, func() error {
		rows := parseEvents(t, f.snapshot())
		if index(rows, 0, func(r eventRow) bool { return r.typ == "node" && r.id == wid && r.attrs["state.new"] == "down" }) < 0 {
			return fmt.Errorf("no node down event for %s yet", wid)
		}
		return nil
	})
	oldLeader := nodeID(t, leader)
	leader.KillHost()
	var rows []eventRow
	harness.Eventually(t, 60*time.Second, func() error {
		rows = parseEvents(t, f.snapshot())
		if index(rows, 0, func(r eventRow) bool { return r.typ == "node" && r.attrs["leader.new"] == "true" && r.id != oldLeader }) < 0 {
			return fmt.Errorf("no leader change yet (stream: %d events, stderr %q)", len(rows), f.errText())
		}
		return nil
	})
	select {
	case err := <-f.done:
		t.Fatalf("the events stream ended: %v %s", err, f.errText())
	default:
	}
	// In order.
	steps := []struct {
		what  string
		match func(eventRow) bool
	}{
		{"service create", func(r eventRow) bool { return r.typ == "service" && r.action == "create" && r.attrs["name"] == "ev" }},
		{"task create", func(r eventRow) bool {
			return r.typ == "task" && r.action == "create" && r.attrs["service.name"] == "ev"
		}},
		{"task running", func(r eventRow) bool {
			return r.typ == "task" && r.attrs["service.name"] == "ev" && r.attrs["state.new"] == "running"
		}},
		{"service update", func(r eventRow) bool { return r.typ == "service" && r.action == "update" && r.attrs["name"] == "ev" }},
		{"node down", func(r eventRow) bool { return r.typ == "node" && r.id == wid && r.attrs["state.new"] == "down" }},
		{"leader change", func(r eventRow) bool { return r.typ == "node" && r.attrs["leader.new"] == "true" && r.id != oldLeader }},
	}
	at := 0
	for _, s := range steps {
		i := index(rows, at, s.match)
		if i < 0 {
			t.Fatalf("no %s after event %d in\n%s", s.what, at, strings.Join(f.snapshot(), "\n"))
		}
		at = i + 1
	}
	// Filters, and --since replays from the manager's history; --until
	// ends the stream.
	out := watcher.MustCLI("events", "--since", start.Format(time.RFC3339Nano), "--until", time.Now().Format(time.RFC3339Nano),
		"--filter", "type=service", "--format", "json")
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m struct {
			Type, Action string
			Actor        struct{ Attributes map[string]string }
			Scope        string `json:"scope"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--format json printed %q: %v", l, err)
		}
		if m.Type != "service" || m.Scope != "swarm" || m.Actor.Attributes["name"] != "ev" {
			t.Fatalf("--filter type=service replayed %q", l)
		}
		kinds = append(kinds, m.Action)
	}
	if strings.Join(kinds, ",") != "create,update" {
		t.Fatalf("--since replayed the service's %v; want create,update", kinds)
	}
	if _, err := watcher.CLI("events", "--filter", "colour=red"); err == nil || !strings.Contains(err.Error(), "invalid filter 'colour'") {
		t.Fatalf("an unknown filter: %v", err)
	}
}
