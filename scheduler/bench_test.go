package scheduler

import (
	"fmt"
	"math/rand"
	"testing"
)

// benchCluster builds nodes spread over zones of racks, a few of them
// managers, not ready or drained, with some tasks and reservations, and
// services×perService tasks: some services have constraints, some spread
// preferences (one or two levels), some a host port, some a limit per
// node, some Binpack.
func benchCluster(nodeCount, zones, racksPerZone, serviceCount, perService int) ([]Node, []Task) {
	rnd := rand.New(rand.NewSource(1))
	nodes := make([]Node, nodeCount)
	for i := range nodes {
		z := i % zones
		n := Node{
			ID:           fmt.Sprintf("node-%05d", i),
			Hostname:     fmt.Sprintf("host-%05d", i),
			Role:         "worker",
			Ready:        rnd.Intn(50) != 0,
			Availability: Active,
			Labels:       map[string]string{"zone": fmt.Sprintf("z%d", z), "rack": fmt.Sprintf("z%d-r%d", z, (i/zones)%racksPerZone)},
			EngineLabels: map[string]string{"disk": []string{"ssd", "hdd"}[i%2]},
			OS:           "linux",
			Arch:         "amd64",
			NanoCPUs:     16e9,
			MemoryBytes:  64 << 30,
		}
		if i < 5 {
			n.Role = "manager"
		}
		if rnd.Intn(100) == 0 {
			n.Availability = Drain
		}
		n.ReservedNanoCPUs = rnd.Int63n(4e9)
		n.ReservedMemory = rnd.Int63n(16 << 30)
		n.ServiceTasks = map[string]int{}
		for range rnd.Intn(5) {
			n.ServiceTasks[fmt.Sprintf("svc-%03d", rnd.Intn(serviceCount))]++
			n.Tasks++
		}
		if rnd.Intn(20) == 0 {
			n.RecentFailures = map[string]int{fmt.Sprintf("svc-%03d", rnd.Intn(serviceCount)): 1}
		}
		nodes[i] = n
	}
	tasks := make([]Task, 0, serviceCount*perService)
	for s := range serviceCount {
		tmpl := Task{
			ServiceID:       fmt.Sprintf("svc-%03d", s),
			ReserveNanoCPUs: int64(1+s%5) * 1e8,
			ReserveMemory:   int64(1+s%4) * 128 << 20,
		}
		switch {
		case s%10 == 0:
			tmpl.Constraints = []string{"node.labels.zone==z1"}
		case s%4 == 0:
			tmpl.Constraints = []string{"node.role==worker", "engine.labels.disk==ssd"}
		case s%5 == 0:
			tmpl.Constraints = []string{"node.labels.zone!=z4"}
		}
		switch {
		case s%3 == 0:
			tmpl.Preferences = []string{"node.labels.zone", "node.labels.rack"}
		case s%7 == 0:
			tmpl.Preferences = []string{"node.labels.zone"}
		}
		if s%11 == 5 {
			tmpl.MaxReplicasPerNode = 2
		}
		if s%13 == 0 {
			tmpl.Strategy = Binpack
		}
		if s == 17 {
			tmpl.HostPorts = []string{"8080/tcp"}
		}
		for i := range perService {
			t := tmpl
			t.ID = fmt.Sprintf("%s.%d", tmpl.ServiceID, i)
			tasks = append(tasks, t)
		}
	}
	return nodes, tasks
}

func benchPlace(b *testing.B, nodes []Node, tasks []Task) {
	b.ReportAllocs()
	var placed int
	iters := 0
	for b.Loop() {
		r := Place(nodes, tasks, int64(iters))
		placed += len(r.Placements)
		iters++
		if len(r.Unplaced) != 0 {
			for id, why := range r.Unplaced {
				b.Fatalf("Place(%d nodes, %d tasks) left %d unplaced, e.g. %s: %s", len(nodes), len(tasks), len(r.Unplaced), id, why)
			}
		}
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkPlace100kOn10k: 100,000 tasks of 100 services onto 10,000
// nodes in 5 zones of 20 racks.
func BenchmarkPlace100kOn10k(b *testing.B) {
	nodes, tasks := benchCluster(10000, 5, 20, 100, 1000)
	benchPlace(b, nodes, tasks)
}

// BenchmarkPlace1kOn100: 1,000 tasks of 10 services onto 100 nodes in 5
// zones of 4 racks.
func BenchmarkPlace1kOn100(b *testing.B) {
	nodes, tasks := benchCluster(100, 5, 4, 10, 100)
	benchPlace(b, nodes, tasks)
}

// BenchmarkPlacePinned10k: 10,000 tasks of one service, each pinned to
// its own node (Task.Node: a global service), onto 10,000 nodes.
func BenchmarkPlacePinned10k(b *testing.B) {
	benchPinned(b, func(t *Task, node string) { t.Node = node })
}

// BenchmarkPlacePinnedByConstraint10k: the same, each pinned with a
// node.id constraint instead.
func BenchmarkPlacePinnedByConstraint10k(b *testing.B) {
	benchPinned(b, func(t *Task, node string) { t.Constraints = []string{"node.id==" + node} })
}

func benchPinned(b *testing.B, pin func(t *Task, node string)) {
	nodes, _ := benchCluster(10000, 5, 20, 1, 0)
	tasks := make([]Task, 0, len(nodes))
	for _, n := range nodes {
		if n.Ready && n.Availability == Active {
			t := Task{ID: "global." + n.ID, ServiceID: "global", ReserveMemory: 64 << 20}
			pin(&t, n.ID)
			tasks = append(tasks, t)
		}
	}
	benchPlace(b, nodes, tasks)
}
