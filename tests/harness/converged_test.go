package harness

import (
	"strings"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestCheckConverged(t *testing.T) {
	const (
		running  = shoalv1.TaskState_TASK_STATE_RUNNING
		starting = shoalv1.TaskState_TASK_STATE_STARTING
		shutdown = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	)
	task := func(id string, slot uint64, node string, desired, state shoalv1.TaskState) *shoalv1.Task {
		return &shoalv1.Task{Id: id, Slot: slot, NodeId: node, DesiredState: desired, Status: &shoalv1.TaskStatus{State: state}}
	}
	on := func(name, id string, tasks ...string) NodeContainers {
		n := NodeContainers{Name: name, ID: id}
		for i, tk := range tasks {
			n.Containers = append(n.Containers, Container{Task: tk, Pid: 100 + i})
		}
		return n
	}
	three := []*shoalv1.Task{
		task("a", 1, "n1", running, running),
		task("b", 2, "n2", running, running),
		task("c", 3, "n2", running, running),
		task("old", 3, "n1", shutdown, shutdown),
	}
	for _, tc := range []struct {
		name  string
		want  int
		tasks []*shoalv1.Task
		runs  []NodeContainers
		err   string // "" for converged
	}{
		{"converged", 3, three, []NodeContainers{on("w1", "n1", "a"), on("w2", "n2", "b", "c")}, ""},
		{"global, one per node", 2, []*shoalv1.Task{task("g1", 0, "n1", running, running), task("g2", 0, "n2", running, running)},
			[]NodeContainers{on("w1", "n1", "g1"), on("w2", "n2", "g2")}, ""},
		{"reported running, nothing runs", 2, []*shoalv1.Task{task("g1", 0, "n1", running, running), task("g2", 0, "n2", running, running)},
			[]NodeContainers{on("w1", "n1"), on("w2", "n2")}, "0 containers of web run (on ); want 2"},
		{"one container missing", 3, three, []NodeContainers{on("w1", "n1", "a"), on("w2", "n2", "b")}, "2 containers of web run (on w1, w2); want 3"},
		{"a stale container", 3, three, []NodeContainers{on("w1", "n1", "a", "old"), on("w2", "n2", "b", "c")}, "w1 runs a container (pid 101) of task old, which is not desired running"},
		{"on the wrong node", 3, three, []NodeContainers{on("w1", "n1", "a", "b"), on("w2", "n2", "c")}, "w1 (node n1) runs a container (pid 101) of task b, which is assigned to node n2"},
		{"a task twice", 3, three, []NodeContainers{on("w1", "n1", "a"), on("w2", "n2", "b", "c", "c")}, "task c runs twice: on w2 and on w2 (pid 102)"},
		{"a task twice, another not at all", 3, three, []NodeContainers{on("w1", "n1", "a"), on("w2", "n2", "c", "c")}, "task c runs twice: on w2 and on w2 (pid 101)"},
		{"not reported running", 1, []*shoalv1.Task{task("a", 1, "n1", running, starting)}, []NodeContainers{on("w1", "n1", "a")}, "task a (slot 1) is TASK_STATE_STARTING"},
		{"more tasks than replicas", 2, three, []NodeContainers{on("w1", "n1", "a"), on("w2", "n2", "b", "c")}, "3 tasks of web desired running; want 2"},
		{"a slot twice", 2, []*shoalv1.Task{task("a", 1, "n1", running, running), task("b", 1, "n2", running, running)},
			[]NodeContainers{on("w1", "n1", "a"), on("w2", "n2", "b")}, "slot 1 of web has 2 tasks desired running"},
		{"a node twice in a global service", 2, []*shoalv1.Task{task("g1", 0, "n1", running, running), task("g2", 0, "n1", running, running)},
			[]NodeContainers{on("w1", "n1", "g1", "g2")}, "node n1 of web has 2 tasks desired running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckConverged("web", tc.want, tc.tasks, tc.runs)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("CheckConverged = %v; want converged", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("CheckConverged = %v; want an error containing %q", err, tc.err)
			}
		})
	}
}
