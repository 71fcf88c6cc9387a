package scheduler

import (
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

var (
	services         = []string{"s0", "s1", "s2", "s3"}
	genConstraints   = []string{"node.labels.zone==a", "node.labels.zone!=b", "node.role==worker", "node.platform.arch==amd64", "node.labels.rack!=1", "node.id==n1", "node.hostname==HOST2", "node.hostname!=host3"}
	genPorts         = []string{"80/tcp", "443/tcp", "53/udp"}
	genPreferences   = []string{"node.labels.zone", "node.labels.rack"}
	cpuUnit, memUnit = int64(0.5e9), int64(512 << 20)
)

func drawNodes(t *rapid.T) []Node {
	var nodes []Node
	for i := range rapid.IntRange(0, 8).Draw(t, "nodes") {
		label := func(name string) string { return fmt.Sprintf("n%d.%s", i, name) }
		n := Node{
			ID:           fmt.Sprintf("n%d", i),
			Hostname:     fmt.Sprintf("host%d", i),
			Role:         rapid.SampledFrom([]string{"manager", "worker", "worker"}).Draw(t, label("role")),
			Ready:        rapid.IntRange(0, 4).Draw(t, label("ready")) > 0,
			Availability: rapid.SampledFrom([]Availability{Active, Active, Active, Pause, Drain}).Draw(t, label("availability")),
			OS:           "linux",
			Arch:         rapid.SampledFrom([]string{"amd64", "x86_64", "arm64"}).Draw(t, label("arch")),
			NanoCPUs:     cpuUnit * rapid.Int64Range(0, 6).Draw(t, label("cpus")),
			MemoryBytes:  memUnit * rapid.Int64Range(0, 6).Draw(t, label("memory")),
			Labels:       map[string]string{},
			ServiceTasks: map[string]int{},
			HostPorts:    map[string]bool{},
		}
		for _, k := range []string{"zone", "rack"} {
			if v := rapid.SampledFrom([]string{"", "a", "b", "1", "2"}).Draw(t, label(k)); v != "" {
				n.Labels[k] = v
			}
		}
		// Reservations may exceed the capacity (an oversubscribed node).
		n.ReservedNanoCPUs = cpuUnit * rapid.Int64Range(0, n.NanoCPUs/cpuUnit+1).Draw(t, label("reserved cpus"))
		n.ReservedMemory = memUnit * rapid.Int64Range(0, n.MemoryBytes/memUnit+1).Draw(t, label("reserved memory"))
		for _, s := range services {
			if c := rapid.IntRange(0, 2).Draw(t, label(s+" tasks")); c > 0 {
				n.ServiceTasks[s] = c
				n.Tasks += c
			}
			if f := rapid.IntRange(0, 4).Draw(t, label(s+" failures")); f > 2 {
				if n.RecentFailures == nil {
					n.RecentFailures = map[string]int{}
				}
				n.RecentFailures[s] = f - 2
			}
		}
		n.Tasks += rapid.IntRange(0, 3).Draw(t, label("other tasks"))
		for _, p := range genPorts {
			if rapid.IntRange(0, 3).Draw(t, label(p)) == 0 {
				n.HostPorts[p] = true
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func subset(t *rapid.T, from []string, label string) []string {
	var out []string
	for _, s := range from {
		if rapid.IntRange(0, 2).Draw(t, label+" "+s) == 0 {
			out = append(out, s)
		}
	}
	return out
}

// drawTasks draws up to four services, each with one or two specs that
// share MaxReplicasPerNode (a service-wide setting).
func drawTasks(t *rapid.T) []Task {
	var tasks []Task
	for _, s := range services[:rapid.IntRange(1, len(services)).Draw(t, "services")] {
		maxPer := rapid.Int64Range(0, 3).Draw(t, s+" max")
		for v := range rapid.IntRange(1, 2).Draw(t, s+" specs") {
			label := fmt.Sprintf("%s/%d", s, v)
			tmpl := Task{
				ServiceID:          s,
				Constraints:        subset(t, genConstraints, label+" constraint"),
				Preferences:        genPreferences[:rapid.IntRange(0, 2).Draw(t, label+" preferences")],
				ReserveNanoCPUs:    cpuUnit * rapid.Int64Range(0, 3).Draw(t, label+" cpus"),
				ReserveMemory:      memUnit * rapid.Int64Range(0, 3).Draw(t, label+" memory"),
				HostPorts:          subset(t, genPorts, label+" port"),
				MaxReplicasPerNode: maxPer,
				Strategy:           rapid.SampledFrom([]Strategy{Spread, Binpack}).Draw(t, label+" strategy"),
				// Some specs are pinned (a global service's), also to
				// a node that is not in the cluster.
				Node: rapid.SampledFrom([]string{"", "", "", "n0", "n1", "n2", "n9"}).Draw(t, label+" node"),
			}
			for i := range rapid.IntRange(0, 8).Draw(t, label+" tasks") {
				task := tmpl
				task.ID = fmt.Sprintf("%s.%d.%d", s, v, i)
				tasks = append(tasks, task)
			}
		}
	}
	return tasks
}

// final is a node with the batch's placements added, computed from the
// Result alone.
type final struct {
	cpu, mem int64 // reserved
	addCPU   int64 // reserved by the batch
	addMem   int64
	ports    map[string]int // host ports in use, with a count
	svc      map[string]int // tasks per service
	addSvc   map[string]int // tasks per service placed by the batch
	n        Node
}

func finalState(nodes []Node, tasks []Task, r Result) map[string]*final {
	fs := map[string]*final{}
	for _, n := range nodes {
		f := &final{n: n, cpu: n.ReservedNanoCPUs, mem: n.ReservedMemory, ports: map[string]int{}, svc: maps.Clone(n.ServiceTasks), addSvc: map[string]int{}}
		for p, used := range n.HostPorts {
			if used {
				f.ports[p]++
			}
		}
		fs[n.ID] = f
	}
	for _, task := range tasks {
		id, ok := r.Placements[task.ID]
		if !ok {
			continue
		}
		f := fs[id]
		f.cpu += task.ReserveNanoCPUs
		f.mem += task.ReserveMemory
		f.addCPU += task.ReserveNanoCPUs
		f.addMem += task.ReserveMemory
		for _, p := range task.HostPorts {
			f.ports[p]++
		}
		f.svc[task.ServiceID]++
		f.addSvc[task.ServiceID]++
	}
	return fs
}

// oracleMatches evaluates a constraint of genConstraints on its own,
// without ParseConstraint.
func oracleMatches(n Node, c string) bool {
	op := "=="
	if strings.Contains(c, "!=") {
		op = "!="
	}
	key, val, _ := strings.Cut(c, op)
	var got string
	switch {
	case key == "node.role":
		got = n.Role
	case key == "node.id":
		got = n.ID
	case key == "node.hostname":
		got = n.Hostname
	case key == "node.platform.arch":
		got = n.Arch
		if got == "x86_64" {
			got = "amd64"
		}
	case strings.HasPrefix(key, "node.labels."):
		got = n.Labels[strings.TrimPrefix(key, "node.labels.")]
	default:
		panic("oracle does not know " + c)
	}
	return strings.EqualFold(got, val) == (op == "==")
}

// oracleFits says whether task could go to the node given the final
// state.
func oracleFits(f *final, task Task) bool {
	n := f.n
	if task.Node != "" && n.ID != task.Node || !n.Ready || n.Availability != Active {
		return false
	}
	for _, c := range task.Constraints {
		if !oracleMatches(n, c) {
			return false
		}
	}
	if task.ReserveNanoCPUs > 0 && f.cpu+task.ReserveNanoCPUs > n.NanoCPUs {
		return false
	}
	if task.ReserveMemory > 0 && f.mem+task.ReserveMemory > n.MemoryBytes {
		return false
	}
	for _, p := range task.HostPorts {
		if f.ports[p] > 0 {
			return false
		}
	}
	return task.MaxReplicasPerNode == 0 || int64(f.svc[task.ServiceID]) < task.MaxReplicasPerNode
}

var reasonCount = regexp.MustCompile(`(?:^|; )(\d+) nodes? `)

func TestPlaceProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := drawNodes(t)
		tasks := drawTasks(t)
		seed := rapid.Int64().Draw(t, "seed")
		r := Place(nodes, tasks, seed)

		// Every task is placed or has a reason, never both.
		if len(r.Placements)+len(r.Unplaced) != len(tasks) {
			t.Fatalf("Place(%v, %v) = %v; want each of the %d tasks in exactly one map", nodes, tasks, r, len(tasks))
		}
		byNode := map[string]bool{}
		for _, n := range nodes {
			byNode[n.ID] = true
		}
		fs := finalState(nodes, tasks, r)
		for _, task := range tasks {
			id, placed := r.Placements[task.ID]
			reason, unplaced := r.Unplaced[task.ID]
			if placed == unplaced {
				t.Fatalf("Place(%v, %v) = %v; want task %s in exactly one map", nodes, tasks, r, task.ID)
			}
			if placed {
				f := fs[id]
				if f == nil {
					t.Fatalf("Place(%v, %v) = %v; task %s on unknown node %s", nodes, tasks, r, task.ID, id)
				}
				if task.Node != "" && id != task.Node {
					t.Fatalf("Place(%v, %v) = %v; task %s pinned to %s placed on %s", nodes, tasks, r, task.ID, task.Node, id)
				}
				if !f.n.Ready || f.n.Availability != Active {
					t.Fatalf("Place(%v, %v) = %v; task %s on node %s that is not ready and active", nodes, tasks, r, task.ID, id)
				}
				for _, c := range task.Constraints {
					if !oracleMatches(f.n, c) {
						t.Fatalf("Place(%v, %v) = %v; task %s on node %s violates %s", nodes, tasks, r, task.ID, id, c)
					}
				}
				continue
			}
			// Unplaced: no node could take it, even now.
			for _, f := range fs {
				if oracleFits(f, task) {
					t.Fatalf("Place(%v, %v) = %v; task %s unplaced (%s) but node %s fits it", nodes, tasks, r, task.ID, reason, f.n.ID)
				}
			}
			if task.Node != "" {
				// Explained by its node alone.
				if want := "node " + task.Node + " "; !strings.HasPrefix(reason, want) || strings.Contains(reason, ";") {
					t.Fatalf("Place(%v, %v) = %v; want the reason of pinned task %s to start with %q and give one reason", nodes, tasks, r, task.ID, want)
				}
				if !byNode[task.Node] && reason != "node "+task.Node+" is not in the cluster" {
					t.Fatalf("Place(%v, %v) = %v; pinned task %s: reason %q, want its node not in the cluster", nodes, tasks, r, task.ID, reason)
				}
				continue
			}
			if len(nodes) == 0 {
				if reason != "no nodes in the cluster" {
					t.Fatalf("Place(no nodes, %v) = %v; want reason %q", tasks, r, "no nodes in the cluster")
				}
				continue
			}
			if !strings.HasPrefix(reason, "no suitable node (") {
				t.Fatalf("Place(%v, %v) = %v; want reason of %s to start with %q", nodes, tasks, r, task.ID, "no suitable node (")
			}
			sum := 0
			for _, m := range reasonCount.FindAllStringSubmatch(strings.TrimPrefix(reason, "no suitable node ("), -1) {
				c, _ := strconv.Atoi(m[1])
				sum += c
			}
			if sum != len(nodes) {
				t.Fatalf("Place(%v, %v) = %v; reason %q counts %d nodes, want %d", nodes, tasks, r, reason, sum, len(nodes))
			}
		}
		maxPer := map[string]int64{}
		for _, task := range tasks {
			maxPer[task.ServiceID] = task.MaxReplicasPerNode
		}
		for id, f := range fs {
			// Reservations never oversubscribed by the batch.
			if (f.addCPU > 0 && f.cpu > f.n.NanoCPUs) || (f.addMem > 0 && f.mem > f.n.MemoryBytes) {
				t.Fatalf("Place(%v, %v) = %v; node %s oversubscribed: %d/%d CPU, %d/%d memory", nodes, tasks, r, id, f.cpu, f.n.NanoCPUs, f.mem, f.n.MemoryBytes)
			}
			// Host ports used at most once.
			for p, c := range f.ports {
				if c > 1 {
					t.Fatalf("Place(%v, %v) = %v; host port %s used %d times on node %s", nodes, tasks, r, p, c, id)
				}
			}
			// Replicas per node respected.
			for s, added := range f.addSvc {
				if m := maxPer[s]; added > 0 && m > 0 && int64(f.svc[s]) > m {
					t.Fatalf("Place(%v, %v) = %v; node %s has %d tasks of %s, max %d", nodes, tasks, r, id, f.svc[s], s, m)
				}
			}
		}

		// The ways of computing the Result agree.
		for _, opt := range []options{{svcIndex: 1}, {svcIndex: -1}, {noDriver: true}, {svcIndex: 1, noDriver: true}} {
			if other := place(nodes, tasks, seed, opt); !reflect.DeepEqual(other, r) {
				t.Fatalf("place(%v, %v, %d, %+v) = %v; want %v as Place", nodes, tasks, seed, opt, other, r)
			}
		}

		// Deterministic, and independent of the order of the input.
		if again := Place(nodes, tasks, seed); !reflect.DeepEqual(again, r) {
			t.Fatalf("Place(%v, %v, %d) = %v, then %v", nodes, tasks, seed, r, again)
		}
		perm := rapid.Permutation(tasks).Draw(t, "task order")
		nperm := rapid.Permutation(nodes).Draw(t, "node order")
		if again := Place(nperm, perm, seed); !reflect.DeepEqual(again, r) {
			t.Fatalf("Place(%v, %v, %d) = %v; want %v as for the input in another order", nperm, perm, seed, again, r)
		}
	})
}

// TestSpreadProperty: on equal nodes without reservations, every
// service's tasks, and all tasks, differ by at most one between nodes.
func TestSpreadProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var nodes []Node
		for i := range rapid.IntRange(1, 12).Draw(t, "nodes") {
			nodes = append(nodes, node(fmt.Sprintf("n%d", i)))
		}
		var tasks []Task
		for _, s := range services {
			tasks = append(tasks, replicas(s, rapid.IntRange(0, 30).Draw(t, s), Task{})...)
		}
		r := Place(nodes, tasks, rapid.Int64().Draw(t, "seed"))
		perService := map[string]map[string]int{}
		for _, task := range tasks {
			if perService[task.ServiceID] == nil {
				perService[task.ServiceID] = map[string]int{}
			}
			perService[task.ServiceID][r.Placements[task.ID]]++
		}
		for s, c := range perService {
			if d := spreadOf(c, nodes); d > 1 {
				t.Fatalf("Place(%s, %v) = %v; %s's tasks per node differ by %d", nodeIDs(nodes), tasks, r, s, d)
			}
		}
		if d := spreadOf(perNode(r), nodes); d > 1 {
			t.Fatalf("Place(%s, %v) = %v; tasks per node differ by %d", nodeIDs(nodes), tasks, r, d)
		}
	})
}

// TestPreferenceProperty: with room everywhere and no tasks yet, a
// service's tasks differ by at most one between the values of its
// spread descriptor, whatever the number of nodes per value.
func TestPreferenceProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var nodes []Node
		zones := map[string]bool{}
		for i := range rapid.IntRange(1, 20).Draw(t, "nodes") {
			z := rapid.SampledFrom([]string{"", "a", "b", "c"}).Draw(t, fmt.Sprintf("zone %d", i))
			zones[z] = true
			n := node(fmt.Sprintf("n%d", i))
			if z != "" {
				n.Labels = map[string]string{"zone": z}
			}
			nodes = append(nodes, n)
		}
		strategy := rapid.SampledFrom([]Strategy{Spread, Binpack}).Draw(t, "strategy")
		tasks := replicas("s", rapid.IntRange(0, 50).Draw(t, "tasks"), Task{Preferences: []string{"node.labels.zone"}, Strategy: strategy})
		r := Place(nodes, tasks, rapid.Int64().Draw(t, "seed"))
		perZone := map[string]int{}
		for z := range zones {
			perZone[z] = 0
		}
		for _, n := range nodes {
			perZone[n.Labels["zone"]] += perNode(r)[n.ID]
		}
		counts := slices.Collect(maps.Values(perZone))
		if slices.Max(counts)-slices.Min(counts) > 1 {
			t.Fatalf("Place(%v, %d tasks) = %v per zone; want them to differ by <= 1", nodes, len(tasks), perZone)
		}
	})
}

// TestFoldKey: foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b).
func TestFoldKey(t *testing.T) {
	alphabet := []string{"k", "K", "\u212a", "s", "S", "\u017f", "\u03c3", "\u03c2", "\u03a3", "\u00e9", "\u00c9", "\xff", "\ufffd", "1", "-"}
	word := rapid.Custom(func(t *rapid.T) string {
		return strings.Join(rapid.SliceOfN(rapid.SampledFrom(alphabet), 0, 3).Draw(t, "runes"), "")
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := word.Draw(t, "a"), word.Draw(t, "b")
		if got, want := foldKey(a) == foldKey(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("foldKey(%q) == foldKey(%q) is %v (%q, %q); want %v as strings.EqualFold", a, b, got, foldKey(a), foldKey(b), want)
		}
	})
}
