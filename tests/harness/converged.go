package harness

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Tasks lists a service's tasks through the first running manager that
// answers.
func (c *Cluster) Tasks(svc string) ([]*shoalv1.Task, error) {
	var last error = errors.New("no manager runs")
	for _, m := range c.Managers {
		if !m.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		s, err := m.Control().GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: svc})
		if err != nil {
			cancel()
			last = err
			continue
		}
		resp, err := m.Control().ListTasks(ctx, &shoalv1.ListTasksRequest{ServiceId: s.GetService().GetId()})
		cancel()
		if err != nil {
			last = err
			continue
		}
		return resp.GetTasks(), nil
	}
	return nil, last
}

// Converged checks a service end to end: exactly want containers of it
// really run across the cluster's hosts (alive in /proc, see
// RunningContainers), one for each task the cluster wants running and
// reports running, each on the node the task is assigned to; and each
// slot (each node, for a global service) has one such task.
func (c *Cluster) Converged(svc string, want int) error {
	return c.ConvergedOn(svc, want, c.Nodes())
}

// ConvergedOn is Converged counting only the containers on nodes: while a
// node is frozen, cut off or its daemon dead, its stale containers still
// run, and the replicas are restored when want run on the others.
func (c *Cluster) ConvergedOn(svc string, want int, nodes []*Node) error {
	tasks, err := c.Tasks(svc)
	if err != nil {
		return err
	}
	var runs []NodeContainers
	for _, n := range nodes {
		runs = append(runs, NodeContainers{Name: n.Name, ID: n.ID(), Containers: Of(svc, n.RunningContainers())})
	}
	return CheckConverged(svc, want, tasks, runs)
}

// NodeContainers is what runs on one node: its name, its node ID and the
// containers alive there.
type NodeContainers struct {
	Name, ID   string
	Containers []Container
}

// CheckConverged is the decision of ConvergedOn: tasks are the service's
// tasks as the cluster reports them, runs the containers of svc really
// running on each node counted.
func CheckConverged(svc string, want int, tasks []*shoalv1.Task, runs []NodeContainers) error {
	desired := map[string]*shoalv1.Task{}
	slots := map[string]int{}
	for _, t := range tasks {
		if t.GetDesiredState() != shoalv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		desired[t.GetId()] = t
		slot := fmt.Sprintf("slot %d", t.GetSlot())
		if t.GetSlot() == 0 { // a global service's task: one per node
			slot = "node " + t.GetNodeId()
		}
		slots[slot]++
		if t.GetStatus().GetState() != shoalv1.TaskState_TASK_STATE_RUNNING {
			return fmt.Errorf("task %s (%s) is %s: %s", t.GetId(), slot, t.GetStatus().GetState(), t.GetStatus().GetMessage())
		}
	}
	if len(desired) != want {
		return fmt.Errorf("%d tasks of %s desired running; want %d", len(desired), svc, want)
	}
	for s, n := range slots {
		if n != 1 {
			return fmt.Errorf("%s of %s has %d tasks desired running", s, svc, n)
		}
	}
	on := map[string]string{} // task → the node running its container
	var where []string
	for _, n := range runs {
		for _, ct := range n.Containers {
			t := desired[ct.Task]
			switch {
			case t == nil:
				return fmt.Errorf("%s runs a container (pid %d) of task %s, which is not desired running", n.Name, ct.Pid, ct.Task)
			case t.GetNodeId() != n.ID:
				return fmt.Errorf("%s (node %s) runs a container (pid %d) of task %s, which is assigned to node %s", n.Name, n.ID, ct.Pid, ct.Task, t.GetNodeId())
			case on[ct.Task] != "":
				return fmt.Errorf("task %s runs twice: on %s and on %s (pid %d)", ct.Task, on[ct.Task], n.Name, ct.Pid)
			}
			on[ct.Task] = n.Name
			where = append(where, n.Name)
		}
	}
	if len(on) != want {
		sort.Strings(where)
		return fmt.Errorf("%d containers of %s run (on %s); want %d", len(on), svc, strings.Join(where, ", "), want)
	}
	return nil
}
