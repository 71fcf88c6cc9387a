package orchestrator

import (
	"fmt"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// BenchmarkNodeLoss measures the leader's reaction to losing a node that
// ran 1,000 tasks: the reconciliation that shuts them down and makes
// replacements, and the placement of the replacements, on a 100-node
// cluster with 10,000 tasks in all.
func BenchmarkNodeLoss(b *testing.B) {
	var nodes []*shoalv1.Node
	for i := 0; i < 100; i++ {
		n := ready(fmt.Sprintf("n%03d", i))
		n.Description.Resources = &shoalv1.Resources{NanoCpus: 64e9, MemoryBytes: 256 << 30}
		nodes = append(nodes, n)
	}
	nodes[0].Status.State = shoalv1.NodeState_NODE_STATE_DOWN
	var services []*shoalv1.Service
	var tasks []*shoalv1.Task
	for s := 0; s < 10; s++ {
		sv := svc(fmt.Sprintf("svc%d", s), 1000)
		services = append(services, sv)
		for slot := 1; slot <= 1000; slot++ {
			// Node n000 runs 100 tasks of each service: 1,000 in all.
			node := "n000"
			if slot > 100 {
				node = fmt.Sprintf("n%03d", 1+(slot-101)%99)
			}
			tasks = append(tasks, running(fmt.Sprintf("s%d-%d", s, slot), sv, uint64(slot), node))
		}
	}
	in := Input{Services: services, Tasks: tasks, Nodes: nodes}
	b.ResetTimer()
	var created int
	for i := 0; i < b.N; i++ {
		plan := Reconcile(in, t0, ids())
		fresh := make([]*shoalv1.Task, len(plan.Create))
		for j, c := range plan.Create {
			fresh[j] = c.Task
		}
		Schedule(nodes, tasks, fresh, t0, 1)
		created = len(fresh)
		for _, t := range fresh {
			if t.GetNodeId() == "" {
				b.Fatalf("a replacement was not placed: %v", t.GetStatus().GetErr())
			}
		}
	}
	b.ReportMetric(float64(created), "replacements")
}
