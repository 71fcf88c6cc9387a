package scheduler

import (
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// spreadOf returns max - min of the counts over the given nodes.
func spreadOf(counts map[string]int, nodes []Node) int {
	lo, hi := int(^uint(0)>>1), 0
	for _, n := range nodes {
		lo, hi = min(lo, counts[n.ID]), max(hi, counts[n.ID])
	}
	return hi - lo
}

func TestSpreadEvenly(t *testing.T) {
	for _, tc := range []struct {
		nodes, services, tasks int
	}{
		{1, 1, 5}, {3, 1, 7}, {10, 1, 25}, {10, 3, 7}, {7, 5, 13}, {100, 10, 1000},
	} {
		var nodes []Node
		for i := range tc.nodes {
			nodes = append(nodes, node(fmt.Sprintf("n%d", i)))
		}
		var tasks []Task
		for s := range tc.services {
			tasks = append(tasks, replicas(fmt.Sprintf("s%d", s), tc.tasks, Task{ReserveNanoCPUs: 1e6})...)
		}
		for seed := range int64(4) {
			r := Place(nodes, tasks, seed)
			if len(r.Unplaced) != 0 {
				t.Fatalf("Place(%v) = %v; want all placed", tc, r)
			}
			// Per service and overall, the counts differ by at most one.
			perService := map[string]map[string]int{}
			for _, task := range tasks {
				if perService[task.ServiceID] == nil {
					perService[task.ServiceID] = map[string]int{}
				}
				perService[task.ServiceID][r.Placements[task.ID]]++
			}
			for s, c := range perService {
				if d := spreadOf(c, nodes); d > 1 {
					t.Errorf("Place(%v) = %v; want %s's tasks per node to differ by <= 1, got %d", tc, c, s, d)
				}
			}
			if c := perNode(r); spreadOf(c, nodes) > 1 {
				t.Errorf("Place(%v) = %v; want tasks per node to differ by <= 1", tc, c)
			}
		}
	}
}

func TestSpreadRanking(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []Node
		tasks []Task
		want  map[string]int // tasks per node
	}{
		{"existing tasks of the service first",
			[]Node{node("a", running("s", 3)), node("b", running("s", 1)), node("c")},
			replicas("s", 3, Task{}), map[string]int{"b": 1, "c": 2}},
		{"then all tasks",
			[]Node{node("a", running("x", 3)), node("b", running("x", 1)), node("c")},
			replicas("s", 2, Task{}), map[string]int{"b": 1, "c": 1}},
		{"service tasks before all tasks",
			[]Node{node("a", running("x", 9)), node("b", running("s", 1))},
			replicas("s", 1, Task{}), map[string]int{"a": 1}},
		{"recent failures ranked down",
			[]Node{node("a", failed("s", 1)), node("b"), node("c")},
			replicas("s", 2, Task{}), map[string]int{"b": 1, "c": 1}},
		{"fewer failures above task counts",
			[]Node{node("a", failed("s", 1), running("s", 5)), node("b", failed("s", 2)), node("c", failed("s", 3))},
			replicas("s", 1, Task{}), map[string]int{"a": 1}},
		{"failures of other services do not count",
			[]Node{node("a", failed("x", 9)), node("b", running("s", 1))},
			replicas("s", 1, Task{}), map[string]int{"a": 1}},
		{"failed node used when it is the only one left",
			[]Node{node("a", failed("s", 1)), node("b")},
			replicas("s", 3, Task{MaxReplicasPerNode: 2}), map[string]int{"a": 1, "b": 2}},
	} {
		for seed := range int64(8) {
			r := Place(tc.nodes, tc.tasks, seed)
			if got := perNode(r); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: Place(%s, %v) = %v; want %v per node", tc.name, nodeIDs(tc.nodes), tc.tasks, r, tc.want)
				break
			}
		}
	}
}

func TestPreferences(t *testing.T) {
	zone := func(z string) func(*Node) { return withLabels("zone", z) }
	rack := func(z, r string) func(*Node) { return withLabels("zone", z, "rack", r) }
	byZone := Task{Preferences: []string{"node.labels.zone"}}
	for _, tc := range []struct {
		name   string
		nodes  []Node
		tasks  []Task
		bucket map[string]string // counts nodes under these names; which node of a bucket gets a task is a tie
		want   map[string]int    // tasks per node or bucket
	}{
		{"even over values, missing label is a value",
			[]Node{node("a1", zone("a")), node("b1", zone("b")), node("b2", zone("b")), node("b3", zone("b")), node("x")},
			replicas("s", 6, byZone), map[string]string{"b1": "b", "b2": "b", "b3": "b"}, map[string]int{"a1": 2, "b": 2, "x": 2}},
		{"spread= prefix",
			[]Node{node("a1", zone("a")), node("b1", zone("b")), node("b2", zone("b"))},
			replicas("s", 4, Task{Preferences: []string{"spread=node.labels.zone"}}), nil, map[string]int{"a1": 2, "b1": 1, "b2": 1}},
		{"hierarchical",
			[]Node{node("e1", rack("eu", "r1")), node("e2", rack("eu", "r1")), node("e3", rack("eu", "r2")), node("u1", rack("us", "r1"))},
			replicas("s", 8, Task{Preferences: []string{"node.labels.zone", "node.labels.rack"}}), nil,
			map[string]int{"e1": 1, "e2": 1, "e3": 2, "u1": 4}},
		{"existing tasks count",
			[]Node{node("a1", zone("a"), running("s", 2)), node("a2", zone("a"), running("s", 1)), node("b1", zone("b"))},
			replicas("s", 4, byZone), nil, map[string]int{"b1": 3, "a2": 1}},
		{"existing tasks on a full node count",
			[]Node{node("a1", zone("a"), running("s", 2), reserved(4e9, 0)), node("a2", zone("a")), node("b1", zone("b"))},
			replicas("s", 2, Task{Preferences: []string{"node.labels.zone"}, ReserveNanoCPUs: 1e9}), nil, map[string]int{"b1": 2}},
		{"tasks on drained nodes do not count",
			[]Node{node("a1", zone("a"), running("s", 5), drained), node("a2", zone("a")), node("b1", zone("b"))},
			replicas("s", 2, byZone), nil, map[string]int{"a2": 1, "b1": 1}},
		{"a full value overflows to the others",
			[]Node{node("a1", zone("a"), reserved(3e9, 0)), node("b1", zone("b")), node("b2", zone("b"))},
			replicas("s", 6, Task{Preferences: []string{"node.labels.zone"}, ReserveNanoCPUs: 1e9}),
			map[string]string{"b1": "b", "b2": "b"}, map[string]int{"a1": 1, "b": 5}},
		{"preferences above failures",
			[]Node{node("a1", zone("a"), failed("s", 3)), node("b1", zone("b")), node("b2", zone("b"))},
			replicas("s", 2, byZone), map[string]string{"b1": "b", "b2": "b"}, map[string]int{"a1": 1, "b": 1}},
		{"binpack within a value",
			[]Node{node("a1", zone("a")), node("a2", zone("a"), reserved(1e9, 0)), node("b1", zone("b"))},
			replicas("s", 4, Task{Preferences: []string{"node.labels.zone"}, ReserveNanoCPUs: 1e9, Strategy: Binpack}), nil,
			map[string]int{"a2": 2, "b1": 2}},
		{"other keys: node.role",
			[]Node{node("m1", manager), node("w1"), node("w2"), node("w3")},
			replicas("s", 4, Task{Preferences: []string{"node.role"}}),
			map[string]string{"w1": "w", "w2": "w", "w3": "w"}, map[string]int{"m1": 2, "w": 2}},
	} {
		for seed := range int64(8) {
			r := Place(tc.nodes, tc.tasks, seed)
			got := map[string]int{}
			for n, c := range perNode(r) {
				if b, ok := tc.bucket[n]; ok {
					n = b
				}
				got[n] += c
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: Place(%s, %v, %d) = %v; want %v per node", tc.name, nodeIDs(tc.nodes), tc.tasks, seed, r, tc.want)
				break
			}
		}
	}
}

// sortedCounts turns per-node counts into "#i" -> i-th largest count, for
// cases where which node of a set gets a count is a tie.
func sortedCounts(c map[string]int) map[string]int {
	v := slices.Sorted(maps.Values(c))
	out := map[string]int{}
	for i, n := range v {
		out[fmt.Sprintf("#%d", i)] = n
	}
	return out
}

func TestPreferenceEvenness(t *testing.T) {
	// 3 zones of different sizes, 4 racks each: tasks split evenly over
	// the zones, then over each zone's racks.
	var nodes []Node
	for z, size := range []int{1, 4, 9} {
		for i := range size * 4 {
			nodes = append(nodes, node(fmt.Sprintf("z%d-r%d-n%d", z, i%4, i/4),
				withLabels("zone", fmt.Sprint(z), "rack", fmt.Sprint(i%4))))
		}
	}
	tasks := replicas("s", 100, Task{Preferences: []string{"node.labels.zone", "node.labels.rack"}})
	r := Place(nodes, tasks, 7)
	zones, racks := map[string]int{}, map[string]int{}
	for _, n := range nodes {
		c := perNode(r)[n.ID]
		zones[n.Labels["zone"]] += c
		racks[n.Labels["zone"]+"/"+n.Labels["rack"]] += c
	}
	if !reflect.DeepEqual(zones, map[string]int{"0": 34, "1": 33, "2": 33}) && !reflect.DeepEqual(sortedCounts(zones), map[string]int{"#0": 33, "#1": 33, "#2": 34}) {
		t.Errorf("Place(100 tasks over 3 zones) = %v per zone; want 33 or 34 each", zones)
	}
	for rk, c := range racks {
		z := zones[rk[:1]]
		if c < z/4 || c > (z+3)/4 {
			t.Errorf("Place(100 tasks over 3 zones) = %d on rack %s of a zone with %d; want %d..%d", c, rk, z, z/4, (z+3)/4)
		}
	}
}

func TestBinpack(t *testing.T) {
	cpu := Task{ReserveNanoCPUs: 1e9, Strategy: Binpack}
	for _, tc := range []struct {
		name  string
		nodes []Node
		tasks []Task
		want  map[string]int // sorted counts unless a node is named
	}{
		{"fills one node, then the next",
			[]Node{node("a"), node("b"), node("c")}, replicas("s", 6, cpu), map[string]int{"#0": 2, "#1": 4}},
		{"fullest node first",
			[]Node{node("a"), node("b", reserved(2e9, 0)), node("c", reserved(1e9, 0))},
			replicas("s", 2, cpu), map[string]int{"b": 2}},
		{"dominant share: memory",
			[]Node{node("a", reserved(1e9, 0)), node("b", reserved(0, 4*gib))},
			replicas("s", 1, cpu), map[string]int{"b": 1}},
		{"most tasks without reservations",
			[]Node{node("a"), node("b", running("x", 5)), node("c", running("x", 2))},
			replicas("s", 3, Task{Strategy: Binpack}), map[string]int{"b": 3}},
		{"max replicas per node",
			[]Node{node("a"), node("b"), node("c")},
			replicas("s", 7, Task{Strategy: Binpack, MaxReplicasPerNode: 3}), map[string]int{"#0": 1, "#1": 3, "#2": 3}},
		{"across services",
			[]Node{node("a"), node("b")},
			append(replicas("s", 2, cpu), replicas("t", 2, cpu)...), map[string]int{"#0": 4}},
	} {
		for seed := range int64(8) {
			r := Place(tc.nodes, tc.tasks, seed)
			got := perNode(r)
			if _, named := tc.want["#0"]; named {
				got = sortedCounts(got)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: Place(%s, %v, %d) = %v; want %v per node", tc.name, nodeIDs(tc.nodes), tc.tasks, seed, r, tc.want)
				break
			}
		}
	}
}

func TestBatchHostPorts(t *testing.T) {
	nodes := []Node{node("a"), node("b"), node("c", portsInUse("8080/tcp"))}
	web := Task{HostPorts: []string{"80/tcp"}}
	tasks := append(replicas("s", 2, web), replicas("t", 2, web)...)
	tasks = append(tasks, replicas("u", 1, Task{HostPorts: []string{"8080/tcp"}})...)
	tasks = append(tasks, replicas("v", 1, Task{HostPorts: []string{"80/udp"}})...)
	r := Place(nodes, tasks, 3)
	want := "no suitable node (3 nodes have host port 80/tcp in use)"
	if len(r.Placements) != 5 || r.Unplaced["t.001"] != want {
		t.Fatalf("Place(%s, %v) = %v; want t.001 unplaced: %q", nodeIDs(nodes), tasks, r, want)
	}
	used := map[string]bool{}
	for _, id := range []string{"s.000", "s.001", "t.000", "u.000"} {
		port := "80/tcp"
		if id == "u.000" {
			port = "8080/tcp"
		}
		k := r.Placements[id] + " " + port
		if used[k] || k == "c 8080/tcp" {
			t.Fatalf("Place(%s, %v) = %v; want host port %s used once per node", nodeIDs(nodes), tasks, r, port)
		}
		used[k] = true
	}
}

func TestBatchReservations(t *testing.T) {
	nodes := []Node{node("a", reserved(1e9, 0))}
	tasks := append(replicas("s", 2, Task{ReserveNanoCPUs: 1.5e9}), replicas("t", 2, Task{ReserveNanoCPUs: 1e9, ReserveMemory: gib})...)
	tasks = append(tasks, replicas("u", 1, Task{ReserveMemory: 7 * gib})...)
	tasks = append(tasks, replicas("v", 1, Task{})...)
	r := Place(nodes, tasks, 1)
	// s takes the 3 free CPUs; then t lacks CPU, while u (memory only)
	// and v (nothing) fit.
	want := Result{
		Placements: map[string]string{"s.000": "a", "s.001": "a", "u.000": "a", "v.000": "a"},
		Unplaced: map[string]string{
			"t.000": "no suitable node (1 node lacks 1 CPU)",
			"t.001": "no suitable node (1 node lacks 1 CPU)",
		},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Place(%s, %v) = %v; want %v", nodeIDs(nodes), tasks, r, want)
	}
}

func TestBatchMaxReplicas(t *testing.T) {
	nodes := []Node{node("a", running("s", 1)), node("b")}
	tasks := replicas("s", 4, Task{MaxReplicasPerNode: 2})
	// A second spec of the same service (say, during an update) counts
	// the first one's placements.
	tasks = append(tasks, Task{ID: "s.new", ServiceID: "s", MaxReplicasPerNode: 2, ReserveMemory: 1})
	r := Place(nodes, tasks, 1)
	reason := "no suitable node (2 nodes have reached the limit of 2 replicas per node)"
	if got := perNode(r); !reflect.DeepEqual(got, map[string]int{"a": 1, "b": 2}) ||
		len(r.Unplaced) != 2 || r.Unplaced["s.new"] != reason {
		t.Errorf("Place(%s, %v) = %v; want a:1 b:2, others unplaced: %q", nodeIDs(nodes), tasks, r, reason)
	}
}

func TestDeterminism(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	var nodes []Node
	for i := range 200 {
		nodes = append(nodes, node(fmt.Sprintf("n%03d", i),
			withLabels("zone", fmt.Sprint(rnd.Intn(3)), "rack", fmt.Sprint(rnd.Intn(5))),
			reserved(rnd.Int63n(3e9), rnd.Int63n(6*gib)), running("s1", rnd.Intn(3))))
	}
	var tasks []Task
	for s := range 12 {
		tmpl := Task{ReserveNanoCPUs: rnd.Int63n(1e9), Strategy: Strategy(s % 2)}
		if s%3 == 0 {
			tmpl.Preferences = []string{"node.labels.zone", "node.labels.rack"}
		}
		if s%4 == 0 {
			tmpl.Constraints = []string{"node.labels.zone!=2"}
		}
		tasks = append(tasks, replicas(fmt.Sprintf("s%d", s), 50+rnd.Intn(100), tmpl)...)
	}
	first := Place(nodes, tasks, 42)
	if again := Place(nodes, tasks, 42); !reflect.DeepEqual(first, again) {
		t.Fatalf("Place(%d nodes, %d tasks, 42) differs between two calls", len(nodes), len(tasks))
	}
	// The order of the slices does not matter.
	n2, t2 := slices.Clone(nodes), slices.Clone(tasks)
	rnd.Shuffle(len(n2), func(i, j int) { n2[i], n2[j] = n2[j], n2[i] })
	rnd.Shuffle(len(t2), func(i, j int) { t2[i], t2[j] = t2[j], t2[i] })
	if shuffled := Place(n2, t2, 42); !reflect.DeepEqual(first, shuffled) {
		t.Fatalf("Place(%d nodes, %d tasks, 42) differs when the inputs are shuffled", len(nodes), len(tasks))
	}
	if other := Place(nodes, tasks, 43); reflect.DeepEqual(first, other) {
		t.Errorf("Place(%d nodes, %d tasks) is the same for seeds 42 and 43; want ties broken differently", len(nodes), len(tasks))
	}
	// One task on ten equal nodes: the seed picks the node.
	chosen := map[string]bool{}
	for seed := range int64(32) {
		chosen[Place(nodes[:10], replicas("s", 1, Task{}), seed).Placements["s.000"]] = true
	}
	if len(chosen) < 3 {
		t.Errorf("Place(10 equal nodes, 1 task) chose %v over 32 seeds; want ties spread by the seed", sortedKeys(chosen))
	}
}

func TestDuplicateIDs(t *testing.T) {
	nodes := []Node{node("a", withLabels("zone", "eu")), node("a", withLabels("zone", "us")), node("b", drained)}
	tasks := []Task{
		{ID: "t", ServiceID: "s", Constraints: []string{"node.labels.zone==eu"}},
		{ID: "t", ServiceID: "s", Constraints: []string{"node.labels.zone==us"}},
		{ID: "u", ServiceID: "s", Constraints: []string{"node.labels.zone==us"}},
	}
	r := Place(nodes, tasks, 1)
	// The first node a and the first task t count; equal counts list
	// availability before constraints.
	want := Result{
		Placements: map[string]string{"t": "a"},
		Unplaced:   map[string]string{"u": "no suitable node (1 node is drained; 1 node fails constraint node.labels.zone==us)"},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Place(%s, %v) = %v; want %v", nodeIDs(nodes), tasks, r, want)
	}
}

func TestPlaceEmpty(t *testing.T) {
	r := Place([]Node{node("a")}, nil, 0)
	if r.Placements == nil || r.Unplaced == nil || len(r.Placements)+len(r.Unplaced) != 0 {
		t.Errorf("Place([a], nil) = %#v; want empty, non-nil maps", r)
	}
}

func TestPlaceDoesNotModifyInput(t *testing.T) {
	nodes := []Node{node("a", running("s", 1), portsInUse("1/tcp")), node("b")}
	tasks := replicas("s", 3, Task{ReserveNanoCPUs: 1e9, HostPorts: []string{"80/tcp"}, Preferences: []string{"node.id"}})
	n0, t0 := cloneNodes(nodes), slices.Clone(tasks)
	Place(nodes, tasks, 1)
	if !reflect.DeepEqual(nodes, n0) || !reflect.DeepEqual(tasks, t0) {
		t.Errorf("Place(%v, %v) modified its input", n0, t0)
	}
}

func cloneNodes(nodes []Node) []Node {
	out := slices.Clone(nodes)
	for i := range out {
		out[i].ServiceTasks = maps.Clone(out[i].ServiceTasks)
		out[i].HostPorts = maps.Clone(out[i].HostPorts)
		out[i].Labels = maps.Clone(out[i].Labels)
	}
	return out
}

// TestPinnedGroups: one group per node, each pinned with node.id (as for a
// global service), takes the indexed path and still places every task.
func TestPinnedGroups(t *testing.T) {
	var nodes []Node
	var tasks []Task
	for i := range 500 {
		id := fmt.Sprintf("n%d", i)
		mods := []func(*Node){}
		if i%100 == 7 {
			mods = append(mods, drained)
		}
		nodes = append(nodes, node(id, mods...))
		tasks = append(tasks, Task{ID: "g." + id, ServiceID: "g", Constraints: []string{"node.id==" + strings.ToUpper(id)}, ReserveNanoCPUs: 1e9})
	}
	r := Place(nodes, tasks, 1)
	for _, task := range tasks {
		id := strings.TrimPrefix(task.ID, "g.")
		if n, _ := strconv.Atoi(id[1:]); n%100 == 7 {
			want := "no suitable node (495 nodes fail constraint node.id==" + strings.ToUpper(id) + "; 5 nodes are drained)"
			if got := r.Unplaced[task.ID]; got != want {
				t.Errorf("Place(500 nodes, pinned tasks)[%s] = %q; want %q", task.ID, got, want)
			}
		} else if got := r.Placements[task.ID]; got != id {
			t.Errorf("Place(500 nodes, pinned tasks)[%s] = %q; want %q", task.ID, got, id)
		}
	}
}

// TestManyConstraints: more distinct constraints than the cache holds are
// evaluated directly, with the same result.
func TestManyConstraints(t *testing.T) {
	var nodes []Node
	for i := range 20 {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i)))
	}
	var tasks []Task
	for s := range maxCachedConstraints + 50 {
		tasks = append(tasks, replicas(fmt.Sprintf("s%03d", s), 3, Task{
			Constraints: []string{fmt.Sprintf("node.hostname!=n%d", s%20), fmt.Sprintf("node.labels.k%d!=v", s)},
		})...)
	}
	r := Place(nodes, tasks, 1)
	if len(r.Placements) != len(tasks) {
		t.Fatalf("Place(20 nodes, %d tasks) placed %d; want all", len(tasks), len(r.Placements))
	}
	for _, task := range tasks {
		var s int
		fmt.Sscanf(task.ServiceID, "s%d", &s)
		if got, avoid := r.Placements[task.ID], fmt.Sprintf("n%d", s%20); got == avoid {
			t.Errorf("Place(20 nodes, %d tasks)[%s] = %s; want not %s", len(tasks), task.ID, got, avoid)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		got  fmt.Stringer
		want string
	}{
		{Active, "active"}, {Pause, "pause"}, {Drain, "drain"}, {Availability(9), "Availability(9)"},
		{Spread, "spread"}, {Binpack, "binpack"}, {Strategy(9), "Strategy(9)"},
		{Equal, "=="}, {NotEqual, "!="},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("%#v.String() = %q; want %q", tc.got, s, tc.want)
		}
	}
}

// TestSpecKey: different specs never share a group, whatever bytes their
// strings hold.
func TestSpecKey(t *testing.T) {
	specs := []Task{
		{ServiceID: "s", Constraints: []string{"a", "b"}},
		{ServiceID: "s", Constraints: []string{"a,b"}},
		{ServiceID: "s", Constraints: []string{"a"}, Preferences: []string{"b"}},
		{ServiceID: "s", Constraints: []string{"a"}, HostPorts: []string{"b"}},
		{ServiceID: "s1:", Constraints: []string{"a"}},
		{ServiceID: "s", Constraints: []string{"1:a"}},
		{ServiceID: "s\x00", HostPorts: []string{"\x01"}},
		{ServiceID: "s", ReserveNanoCPUs: 1, ReserveMemory: 12},
		{ServiceID: "s", ReserveNanoCPUs: 11, ReserveMemory: 2},
	}
	seen := map[string]int{}
	for i := range specs {
		k := specKey(&specs[i])
		if j, dup := seen[k]; dup {
			t.Errorf("specKey(%+v) = specKey(%+v) = %q; want different keys", specs[i], specs[j], k)
		}
		seen[k] = i
	}
}
