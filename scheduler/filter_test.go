package scheduler

import (
	"fmt"
	"strings"
	"testing"
)

// TestFilters places one task where exactly one node (or none) passes the
// filter under test. Each case runs with many seeds, and the refused nodes
// are ranked at least as well as the good one, so a filter that let a
// refused node through would be caught by some seed.
func arch(a string) func(*Node) { return func(n *Node) { n.OS, n.Arch = "linux", a } }

func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []Node
		task  Task
		want  string // the only node that may take the task; "" for none
	}{
		{"ready", []Node{node("a", unready), node("b")}, Task{}, "b"},
		{"drained", []Node{node("a", drained), node("b")}, Task{}, "b"},
		{"paused", []Node{node("a", paused), node("b")}, Task{}, "b"},
		{"unknown availability", []Node{node("a", func(n *Node) { n.Availability = 7 })}, Task{}, ""},
		{"managers take tasks", []Node{node("a", manager)}, Task{}, "a"},

		{"platform", []Node{node("a", arch("arm64")), node("b", arch("amd64"))}, Task{Platforms: []string{"linux/amd64"}}, "b"},
		{"platform alias", []Node{node("a", arch("x86_64")), node("b", arch("arm64"))}, Task{Platforms: []string{"linux/amd64"}}, "a"},
		{"platform any arch", []Node{node("a", arch("arm64"))}, Task{Platforms: []string{"linux/"}}, "a"},
		{"one of the platforms", []Node{node("a", arch("s390x")), node("b", arch("aarch64"))}, Task{Platforms: []string{"linux/amd64", "linux/arm64"}}, "b"},
		{"no platform", []Node{node("a", arch("arm64"))}, Task{Platforms: []string{"windows/arm64"}}, ""},

		{"label ==", []Node{node("a", withLabels("zone", "eu")), node("b", withLabels("zone", "us"))},
			Task{Constraints: []string{"node.labels.zone==eu"}}, "a"},
		{"label value case-insensitive", []Node{node("a", withLabels("zone", "EU")), node("b", withLabels("zone", "us"))},
			Task{Constraints: []string{"node.labels.zone==eu"}}, "a"},
		{"label name case-sensitive", []Node{node("a", withLabels("Zone", "eu"))},
			Task{Constraints: []string{"node.labels.zone==eu"}}, ""},
		{"label missing fails ==", []Node{node("a")}, Task{Constraints: []string{"node.labels.zone==eu"}}, ""},
		{"label missing passes !=", []Node{node("a", withLabels("zone", "eu")), node("b")},
			Task{Constraints: []string{"node.labels.zone!=eu"}}, "b"},
		{"engine label", []Node{node("a", func(n *Node) { n.EngineLabels = map[string]string{"disk": "ssd"} }), node("b")},
			Task{Constraints: []string{"engine.labels.disk==ssd"}}, "a"},
		{"role !=", []Node{node("a", manager), node("b")}, Task{Constraints: []string{"node.role!=manager"}}, "b"},
		{"role key and value case-insensitive", []Node{node("a", manager), node("b")},
			Task{Constraints: []string{"Node.Role==MANAGER"}}, "a"},
		{"hostname", []Node{node("a"), node("b", func(n *Node) { n.Hostname = "Web-1" })},
			Task{Constraints: []string{"node.hostname==web-1"}}, "b"},
		{"id", []Node{node("a"), node("b")}, Task{Constraints: []string{"node.id==b"}}, "b"},
		{"os", []Node{node("a", func(n *Node) { n.OS = "windows" }), node("b")},
			Task{Constraints: []string{"node.platform.os==windows"}}, "a"},
		{"arch alias x86_64", []Node{node("a", func(n *Node) { n.Arch = "x86_64" }), node("b", func(n *Node) { n.Arch = "arm64" })},
			Task{Constraints: []string{"node.platform.arch==amd64"}}, "a"},
		{"arch alias aarch64", []Node{node("a"), node("b", func(n *Node) { n.Arch = "arm64" })},
			Task{Constraints: []string{"node.platform.arch==aarch64"}}, "b"},
		{"all constraints hold", []Node{node("a", withLabels("zone", "eu")), node("b", manager, withLabels("zone", "eu")), node("c")},
			Task{Constraints: []string{"node.labels.zone==eu", "node.role==worker"}}, "a"},

		{"cpu", []Node{node("a", reserved(3.5e9, 0)), node("b")}, Task{ReserveNanoCPUs: 1e9}, "b"},
		{"memory", []Node{node("a", reserved(0, 7.5*gib)), node("b")}, Task{ReserveMemory: gib}, "b"},
		{"exact fit", []Node{node("a", reserved(3e9, 7*gib))}, Task{ReserveNanoCPUs: 1e9, ReserveMemory: gib}, "a"},
		{"one byte too many", []Node{node("a", reserved(0, 7*gib+1))}, Task{ReserveMemory: gib}, ""},
		{"zero capacity refuses reservations", []Node{node("a", noCapacity)}, Task{ReserveNanoCPUs: 1}, ""},
		{"zero capacity takes unreserved tasks", []Node{node("a", noCapacity)}, Task{}, "a"},
		{"oversubscribed node takes unreserved tasks", []Node{node("a", reserved(5e9, 9*gib))}, Task{}, "a"},

		{"host port", []Node{node("a", portsInUse("8080/tcp")), node("b", portsInUse("8080/udp"))},
			Task{HostPorts: []string{"8080/tcp"}}, "b"},
		{"any host port", []Node{node("a", portsInUse("9090/tcp")), node("b")},
			Task{HostPorts: []string{"8080/tcp", "9090/tcp"}}, "b"},

		// Binpack would prefer the busier node a.
		{"max replicas", []Node{node("a", running("s", 2)), node("b")},
			Task{MaxReplicasPerNode: 2, Strategy: Binpack}, "b"},
		{"max replicas counts the service only", []Node{node("a", running("other", 5))},
			Task{MaxReplicasPerNode: 2}, "a"},
		{"max replicas over the limit", []Node{node("a", running("s", 3))}, Task{MaxReplicasPerNode: 2}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := tc.task
			task.ID, task.ServiceID = "t", "s"
			for seed := int64(0); seed < 16; seed++ {
				r := Place(tc.nodes, []Task{task}, seed)
				got, placed := r.Placements["t"]
				if got != tc.want || placed == (tc.want == "") || len(r.Placements)+len(r.Unplaced) != 1 {
					t.Fatalf("Place(%s, %+v) = %v; want t on %q", nodeIDs(tc.nodes), task, r, tc.want)
				}
				if !placed && !strings.HasPrefix(r.Unplaced["t"], "no suitable node (") {
					t.Fatalf("Place(%s, %+v) = %v; want a reason", nodeIDs(tc.nodes), task, r)
				}
			}
		})
	}
}

func TestUnplacedReasons(t *testing.T) {
	eu := withLabels("zone", "eu")
	for _, tc := range []struct {
		name  string
		nodes []Node
		task  Task
		want  string
	}{
		{"no nodes", nil, Task{}, "no nodes in the cluster"},
		{"mixed", []Node{
			node("a", eu, reserved(0, 7.5*gib)),
			node("b", eu, reserved(1e9, 7.25*gib)),
			node("c", eu, drained),
			node("d", withLabels("zone", "us")),
			node("e", eu, unready),
		}, Task{Constraints: []string{"node.labels.zone==eu"}, ReserveMemory: gib},
			"no suitable node (2 nodes lack 1 GiB of memory; 1 node is drained; 1 node fails constraint node.labels.zone==eu; 1 node is not ready)"},
		{"first failing filter counts", []Node{node("a", unready, drained, reserved(4e9, 0)), node("b", drained, withLabels("zone", "us"))},
			Task{Constraints: []string{"node.labels.zone==eu"}, ReserveNanoCPUs: 1e9},
			"no suitable node (1 node is drained; 1 node is not ready)"},
		{"more nodes first", []Node{node("a", paused), node("b", paused), node("c", unready), node("d", unready), node("e", unready)},
			Task{}, "no suitable node (3 nodes are not ready; 2 nodes are paused)"},
		{"constraints by text", []Node{node("a", eu), node("b", manager)},
			Task{Constraints: []string{"node.role==manager", "node.labels.zone==eu"}},
			"no suitable node (1 node fails constraint node.labels.zone==eu; 1 node fails constraint node.role==manager)"},
		{"cpu", []Node{node("a", reserved(3e9, 0))}, Task{ReserveNanoCPUs: 2e9}, "no suitable node (1 node lacks 2 CPUs)"},
		{"platform", []Node{node("a", arch("arm64")), node("b", arch("arm64"), drained)}, Task{Platforms: []string{"linux/amd64", "linux/386"}},
			"no suitable node (1 node is drained; 1 node is not of the image's platforms (linux/amd64, linux/386))"},
		{"one cpu", []Node{node("a", reserved(3.5e9, 0)), node("b", reserved(3.5e9, 0))}, Task{ReserveNanoCPUs: 1e9},
			"no suitable node (2 nodes lack 1 CPU)"},
		{"cpu and memory", []Node{node("a", reserved(3.75e9, 7.75*gib))}, Task{ReserveNanoCPUs: 0.5e9, ReserveMemory: 512 << 20},
			"no suitable node (1 node lacks 0.5 CPUs and 512 MiB of memory)"},
		{"zero capacity", []Node{node("a", noCapacity)}, Task{ReserveMemory: 1.5 * gib},
			"no suitable node (1 node lacks 1.5 GiB of memory)"},
		{"port", []Node{node("a", portsInUse("80/tcp", "443/tcp"))}, Task{HostPorts: []string{"443/tcp", "80/tcp"}},
			"no suitable node (1 node has host port 443/tcp in use)"},
		{"max replicas", []Node{node("a", running("s", 2)), node("b", running("s", 2))}, Task{MaxReplicasPerNode: 2},
			"no suitable node (2 nodes have reached the limit of 2 replicas per node)"},
		{"unknown availability", []Node{node("a", func(n *Node) { n.Availability = 7 })}, Task{},
			"no suitable node (1 node has unknown availability 7)"},
		{"invalid constraint", []Node{node("a")}, Task{Constraints: []string{"node.zone==eu"}},
			`invalid constraint "node.zone==eu": unknown key "node.zone"; want ` + keyList},
		{"invalid constraint and no nodes", nil, Task{Constraints: []string{"zone"}},
			`invalid constraint "zone": want key==value or key!=value, e.g. node.labels.zone==eu`},
		{"invalid preference", []Node{node("a")}, Task{Preferences: []string{"spread=zone"}},
			`invalid placement preference "spread=zone": unknown key "zone"; want ` + keyList},
		{"empty preference", []Node{node("a")}, Task{Preferences: []string{"spread="}},
			`invalid placement preference "spread=": want a spread descriptor such as node.labels.zone`},
		{"negative reservation", []Node{node("a")}, Task{ReserveMemory: -1}, "invalid task: negative memory reservation -1"},
		{"unknown strategy", []Node{node("a")}, Task{Strategy: 9}, "invalid task: unknown strategy 9"},
	} {
		task := tc.task
		task.ID, task.ServiceID = "t", "s"
		r := Place(tc.nodes, []Task{task}, 1)
		if got := r.Unplaced["t"]; got != tc.want || len(r.Placements) != 0 {
			t.Errorf("%s: Place(%s, %+v) = %v; want reason %q", tc.name, nodeIDs(tc.nodes), task, r, tc.want)
		}
	}
}

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Constraint // Key, Op, Value
		err  string
	}{
		{in: "node.labels.zone==eu", want: Constraint{Key: "node.labels.zone", Op: Equal, Value: "eu"}},
		{in: "  node.role != manager ", want: Constraint{Key: "node.role", Op: NotEqual, Value: "manager"}},
		{in: "Node.Labels.Zone==EU", want: Constraint{Key: "node.labels.Zone", Op: Equal, Value: "EU"}},
		{in: "NODE.PLATFORM.ARCH==x86_64", want: Constraint{Key: "node.platform.arch", Op: Equal, Value: "x86_64"}},
		{in: "engine.labels.com.example/disk==ssd", want: Constraint{Key: "engine.labels.com.example/disk", Op: Equal, Value: "ssd"}},
		{in: "node.hostname!=web 1", want: Constraint{Key: "node.hostname", Op: NotEqual, Value: "web 1"}},
		{in: "node.id==abc", want: Constraint{Key: "node.id", Op: Equal, Value: "abc"}},
		{in: "node.platform.os==linux", want: Constraint{Key: "node.platform.os", Op: Equal, Value: "linux"}},

		{in: "node.labels.zone", err: `invalid constraint "node.labels.zone": want key==value or key!=value, e.g. node.labels.zone==eu`},
		{in: "node.labels.zone=eu", err: `invalid constraint "node.labels.zone=eu": want key==value or key!=value, e.g. node.labels.zone==eu`},
		{in: "", err: `invalid constraint "": want key==value or key!=value, e.g. node.labels.zone==eu`},
		{in: "==eu", err: `invalid constraint "==eu": no key before ==`},
		{in: "node.labels.zone!=", err: `invalid constraint "node.labels.zone!=": no value after !=`},
		{in: "node.zone==eu", err: `invalid constraint "node.zone==eu": unknown key "node.zone"; want ` + keyList},
		{in: "node.labels.==eu", err: `invalid constraint "node.labels.==eu": no label name after node.labels.`},
		{in: "node.labels.a b==c", err: `invalid constraint "node.labels.a b==c": label name "a b" contains ' '`},
		{in: "node.labels.zone==eu==us", err: `invalid constraint "node.labels.zone==eu==us": value "eu==us" contains '='; only one == or != is allowed`},
		{in: "node.labels.zone!=eu==us", err: `invalid constraint "node.labels.zone!=eu==us": value "eu==us" contains '='; only one == or != is allowed`},
		{in: "node.role==boss", err: `invalid constraint "node.role==boss": node.role is manager or worker, not "boss"`},
	} {
		got, err := ParseConstraint(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseConstraint(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.Key != tc.want.Key || got.Op != tc.want.Op || got.Value != tc.want.Value {
			t.Errorf("ParseConstraint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		again, err := ParseConstraint(got.String())
		if err != nil || again != got {
			t.Errorf("ParseConstraint(%q) = %+v, %v; want %+v (round trip of String)", got.String(), again, err, got)
		}
	}
}

func TestConstraintMatches(t *testing.T) {
	n := node("a", manager, withLabels("zone", "eu"), func(n *Node) { n.Arch = "aarch64" })
	for _, tc := range []struct {
		c    Constraint
		want bool
	}{
		{mustParse(t, "node.labels.zone==EU"), true},
		{mustParse(t, "node.labels.zone!=eu"), false},
		{mustParse(t, "node.labels.rack!=r1"), true},
		{mustParse(t, "node.platform.arch==arm64"), true},
		{mustParse(t, "node.platform.arch!=ARM64"), false},
		// Built by hand, not parsed.
		{Constraint{Key: "node.role", Op: NotEqual, Value: "manager"}, false},
		{Constraint{Key: "node.role", Op: Equal, Value: "Manager"}, true},
		{Constraint{Key: "nonsense", Value: "x"}, false},
	} {
		if got := tc.c.Matches(&n); got != tc.want {
			t.Errorf("%+v.Matches(%+v) = %v; want %v", tc.c, n, got, tc.want)
		}
	}
}

func mustParse(t *testing.T, s string) Constraint {
	t.Helper()
	c, err := ParseConstraint(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		f    func(int64) string
		in   int64
		want string
	}{
		{formatBytes, 0, "0 B"},
		{formatBytes, 512, "512 B"},
		{formatBytes, 1024, "1 KiB"},
		{formatBytes, 1536, "1.5 KiB"},
		{formatBytes, 512 << 20, "512 MiB"},
		{formatBytes, gib, "1 GiB"},
		{formatBytes, 1.25 * gib, "1.25 GiB"},
		{formatBytes, 1000 << 20, "1000 MiB"},
		{formatBytes, 3 << 40, "3 TiB"},
		{formatCPUs, 1e9, "1 CPU"},
		{formatCPUs, 2e9, "2 CPUs"},
		{formatCPUs, 0.5e9, "0.5 CPUs"},
		{formatCPUs, 0.25e9, "0.25 CPUs"},
		{formatCPUs, 1, "0.000000001 CPUs"},
	} {
		if got := tc.f(tc.in); got != tc.want {
			t.Errorf("format(%d) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestPinnedTask: a task pinned to a node (a global service's) goes there
// or nowhere, whichever node ranks best, and its reason names its node
// and the one filter it fails there.
func TestPinnedTask(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []Node
		task  Task
		want  string // the reason; "" for placed on the pinned node
	}{
		{"placed on its node, not the emptier one", []Node{node("a"), node("b", running("s", 3), reserved(3e9, 0))}, Task{Node: "b"}, ""},
		{"constraints hold", []Node{node("a"), node("b", withLabels("zone", "eu"))}, Task{Node: "b", Constraints: []string{"node.labels.zone==eu"}}, ""},
		{"not ready", []Node{node("a"), node("b", unready)}, Task{Node: "b"}, "node b is not ready"},
		{"drained", []Node{node("a"), node("b", drained)}, Task{Node: "b"}, "node b is drained"},
		{"paused", []Node{node("a"), node("b", paused)}, Task{Node: "b"}, "node b is paused"},
		{"constraint", []Node{node("a", withLabels("zone", "eu")), node("b")}, Task{Node: "b", Constraints: []string{"node.labels.zone==eu"}},
			"node b fails constraint node.labels.zone==eu"},
		{"memory", []Node{node("a"), node("b", reserved(0, 7.5*gib))}, Task{Node: "b", ReserveMemory: gib}, "node b lacks 1 GiB of memory"},
		{"cpu and memory", []Node{node("b", reserved(4e9, 8*gib))}, Task{Node: "b", ReserveNanoCPUs: 1e9, ReserveMemory: gib},
			"node b lacks 1 CPU and 1 GiB of memory"},
		{"host port", []Node{node("a"), node("b", portsInUse("80/tcp"))}, Task{Node: "b", HostPorts: []string{"80/tcp"}}, "node b has host port 80/tcp in use"},
		{"max replicas", []Node{node("b", running("s", 1))}, Task{Node: "b", MaxReplicasPerNode: 1}, "node b has reached the limit of 1 replicas per node"},
		{"first failing filter", []Node{node("b", drained, reserved(0, 8*gib))}, Task{Node: "b", ReserveMemory: gib}, "node b is drained"},
		{"not in the cluster", []Node{node("a")}, Task{Node: "z"}, "node z is not in the cluster"},
		{"no nodes", nil, Task{Node: "z"}, "node z is not in the cluster"},
		{"invalid constraint", []Node{node("b")}, Task{Node: "b", Constraints: []string{"zone"}},
			`invalid constraint "zone": want key==value or key!=value, e.g. node.labels.zone==eu`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := tc.task
			task.ID, task.ServiceID = "t", "s"
			for seed := int64(0); seed < 8; seed++ {
				for _, opt := range []options{{}, {noDriver: true}, {svcIndex: 1}} {
					r := place(tc.nodes, []Task{task}, seed, opt)
					if tc.want == "" {
						if got := r.Placements["t"]; got != task.Node || len(r.Unplaced) != 0 {
							t.Fatalf("place(%s, %+v, %d, %+v) = %v; want t on %s", nodeIDs(tc.nodes), task, seed, opt, r, task.Node)
						}
						continue
					}
					if got := r.Unplaced["t"]; got != tc.want || len(r.Placements) != 0 {
						t.Fatalf("place(%s, %+v, %d, %+v) = %v; want reason %q", nodeIDs(tc.nodes), task, seed, opt, r, tc.want)
					}
				}
			}
		})
	}
}

// TestPinnedInBatch: pinned tasks count against the nodes for the rest
// of the batch like any other, and a pinned task of a service does not
// stop its other tasks going elsewhere.
func TestPinnedInBatch(t *testing.T) {
	nodes := []Node{node("a"), node("b")}
	tasks := []Task{
		// Services in ID order: g's pinned task takes a's port and most
		// of its memory before h and s are placed.
		{ID: "g.a", ServiceID: "g", Node: "a", HostPorts: []string{"80/tcp"}, ReserveMemory: 7 * gib},
		{ID: "h.a", ServiceID: "h", Node: "a", HostPorts: []string{"80/tcp"}},
		{ID: "h.b", ServiceID: "h", Node: "b", HostPorts: []string{"80/tcp"}},
		{ID: "s.1", ServiceID: "s", ReserveMemory: 2 * gib, Strategy: Binpack},
		{ID: "s.2", ServiceID: "s", ReserveMemory: 2 * gib, Strategy: Binpack},
	}
	r := Place(nodes, tasks, 1)
	want := Result{
		Placements: map[string]string{"g.a": "a", "h.b": "b", "s.1": "b", "s.2": "b"},
		Unplaced:   map[string]string{"h.a": "node a has host port 80/tcp in use"},
	}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Fatalf("Place(a b, %+v) = %v; want %v", tasks, r, want)
	}
}
