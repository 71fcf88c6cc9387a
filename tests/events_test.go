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
var eventLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\S*) (\w+) (\w+(?:: \w+)?) (\S+)(?: \((.*)\))?$`)

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

// jsonEvent is a line of events --format json.
type jsonEvent struct {
	Type, Action string
	Actor        struct {
		ID         string
		Attributes map[string]string
	}
	Scope string `json:"scope"`
}

func parseJSONEvents(t *testing.T, lines []string) []jsonEvent {
	t.Helper()
	var out []jsonEvent
	for _, l := range lines {
		var m jsonEvent
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--format json printed %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// containerLives is each container's actions in order, the health ones
// shortened to "healthy".
func containerLives(evs []jsonEvent) map[string][]string {
	lives := map[string][]string{}
	for _, e := range evs {
		if e.Type == "container" {
			lives[e.Actor.ID] = append(lives[e.Actor.ID], strings.TrimPrefix(e.Action, "health_status: "))
		}
	}
	return lives
}

// inOrder reports whether want occur in got in that order.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// events, through a follower manager, sees a service created and updated,
// its tasks running, a worker going down and the leadership moving, in
// that order, without the stream ending; --since replays them. On the
// worker, events shows its containers' lives: created, started, healthy,
// then stopped for the update and replaced.
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
	worker := nodes[3]
	wf := streamCLI(t, worker, "events", "--since", start.Format(time.RFC3339Nano), "--format", "json")
	leader.MustCLI("service", "create", "-d", "--name", "ev", "--replicas", "2", "--constraint", "node.role==worker",
		"--health-cmd", "true", "--health-interval", "500ms", img.Ref)
	harness.Eventually(t, 60*time.Second, func() error { return c.Converged("ev", 2) })
	leader.MustCLI("service", "update", "-d", "--env-add", "X=1", "ev")
	// The worker's stream: its containers only (a worker serves no
	// cluster events), each old one's life to its stop (the update may
	// come before its first probe), each new one's to healthy.
	var lives map[string][]string
	harness.Eventually(t, 60*time.Second, func() error {
		evs := parseJSONEvents(t, wf.snapshot())
		lives = containerLives(evs)
		stopped, replaced := 0, 0
		for _, life := range lives {
			switch {
			case inOrder(life, []string{"create", "start", "kill", "die", "stop"}):
				stopped++
			case inOrder(life, []string{"create", "start", "healthy"}):
				replaced++
			}
		}
		if stopped < 2 || replaced < 2 {
			return fmt.Errorf("the worker's containers: %d stopped and %d new ones healthy; want 2 and 2: %v (stderr %q)", stopped, replaced, lives, wf.errText())
		}
		for _, e := range evs {
			if e.Type != "container" || e.Scope != "local" || e.Actor.Attributes["shoal.service.name"] != "ev" || !strings.HasPrefix(e.Actor.Attributes["image"], img.Ref+"@sha256:") {
				return fmt.Errorf("the worker's stream has %+v; want only the service's containers, scope local", e)
			}
		}
		return nil
	})
	// Filters on container events, replayed with --since.
	out := worker.MustCLI("events", "--since", start.Format(time.RFC3339Nano), "--until", time.Now().Format(time.RFC3339Nano),
		"--filter", "event=die", "--filter", "service=ev", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.exitCode}}")
	if got := strings.Split(strings.TrimSpace(out), "\n"); len(got) != 2 || got[0] != "container die 0" || got[1] != got[0] {
		t.Fatalf("the worker's die events of ev: %q; want 2 of container die 0", out)
	}
	if _, err := worker.CLI("events", "--filter", "type=service"); err == nil || !strings.Contains(err.Error(), "not a swarm manager") {
		t.Fatalf("the cluster's events asked of a worker: %v", err)
	}
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
	out = watcher.MustCLI("events", "--since", start.Format(time.RFC3339Nano), "--until", time.Now().Format(time.RFC3339Nano),
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
