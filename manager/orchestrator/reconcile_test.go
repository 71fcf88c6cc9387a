package orchestrator

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("t%03d", n) }
}

func svc(id string, replicas int64) *shoalv1.Service {
	return &shoalv1.Service{Id: id, Meta: &shoalv1.Meta{Version: 1}, Spec: &shoalv1.ServiceSpec{
		Name: id, Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "img:1"}},
		Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: replicas}},
	}}
}

func global(id string, constraints ...string) *shoalv1.Service {
	s := svc(id, 0)
	s.Spec.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
	s.Spec.Task.Placement = &shoalv1.Placement{Constraints: constraints}
	return s
}

func node(id string, state shoalv1.NodeState, avail shoalv1.NodeAvailability, labels map[string]string) *shoalv1.Node {
	return &shoalv1.Node{Id: id, Spec: &shoalv1.NodeSpec{Availability: avail, Labels: labels},
		Status: &shoalv1.NodeStatus{State: state}, Description: &shoalv1.NodeDescription{Hostname: id}}
}

func ready(id string) *shoalv1.Node {
	return node(id, shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
}

// task makes a stored task of s in slot on node, created at created,
// with observed state st at time at.
func task(id string, s *shoalv1.Service, slot uint64, nodeID string, desired, state shoalv1.TaskState, created, at time.Time) *shoalv1.Task {
	return &shoalv1.Task{
		Id: id, Meta: &shoalv1.Meta{Version: 5, CreatedAt: timestamppb.New(created)}, ServiceId: s.GetId(), ServiceName: s.GetSpec().GetName(),
		Slot: slot, NodeId: nodeID, Spec: proto.Clone(s.GetSpec().GetTask()).(*shoalv1.TaskSpec),
		Endpoint: proto.Clone(s.GetSpec().GetEndpoint()).(*shoalv1.EndpointSpec), DesiredState: desired,
		Status: &shoalv1.TaskStatus{State: state, Timestamp: timestamppb.New(at)},
	}
}

func running(id string, s *shoalv1.Service, slot uint64, nodeID string) *shoalv1.Task {
	return task(id, s, slot, nodeID, stRunning, stRunning, t0.Add(-time.Hour), t0.Add(-time.Hour))
}

func slotsOf(cs []Change) []uint64 {
	var out []uint64
	for _, c := range cs {
		out = append(out, c.Task.GetSlot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func idsOf(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Task.GetId())
	}
	sort.Strings(out)
	return out
}

func TestScaleUpFromZero(t *testing.T) {
	s := svc("web", 3)
	p := Reconcile(Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1")}}, t0, ids())
	if got := slotsOf(p.Create); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("Reconcile(3 replicas, no tasks) created slots %v; want [1 2 3]", got)
	}
	for _, c := range p.Create {
		if c.Task.GetDesiredState() != stRunning || c.Task.GetStatus().GetState() != stNew || c.Task.GetServiceName() != "web" {
			t.Fatalf("new task %v", c.Task)
		}
	}
	if len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("unexpected changes %+v", p)
	}
}

func TestSteadyStateIsANoOp(t *testing.T) {
	s := svc("web", 2)
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2")},
		Tasks: []*shoalv1.Task{running("a", s, 1, "n1"), running("b", s, 2, "n2")}}
	if p := Reconcile(in, t0, ids()); !p.Empty() {
		t.Fatalf("Reconcile(steady) = %+v; want nothing", p)
	}
}

func TestScaleDownPrefersMostLoadedNodes(t *testing.T) {
	s := svc("web", 2)
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2")},
		Tasks: []*shoalv1.Task{running("a", s, 1, "n1"), running("b", s, 2, "n1"), running("c", s, 3, "n1"), running("d", s, 4, "n2")}}
	p := Reconcile(in, t0, ids())
	if len(p.Create) != 0 || len(p.Update) != 2 {
		t.Fatalf("scale 4->2: %d creates, %d updates; want 0, 2", len(p.Create), len(p.Update))
	}
	for _, c := range p.Update {
		if c.Task.GetNodeId() != "n1" || c.Task.GetDesiredState() != stRemove {
			t.Fatalf("scale down retired %s on %s (desired %v); want tasks on the loaded n1 marked REMOVE", c.Task.GetId(), c.Task.GetNodeId(), c.Task.GetDesiredState())
		}
	}
	// Tasks that never started are deleted outright.
	in.Tasks = []*shoalv1.Task{running("a", s, 1, "n1"), running("b", s, 2, "n2"),
		task("c", s, 3, "", stRunning, stPending, t0, t0)}
	p = Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Delete)) != "[c]" {
		t.Fatalf("scale down of a pending task: deleted %v; want [c]", idsOf(p.Delete))
	}
}

func TestNodeDownReplacesItsTasks(t *testing.T) {
	s := svc("web", 2)
	down := node("n2", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1"), down},
		Tasks: []*shoalv1.Task{running("a", s, 1, "n1"), running("b", s, 2, "n2")}}
	p := Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Update)) != "[b]" || p.Update[0].Task.GetDesiredState() != stShutdown {
		t.Fatalf("node down: updates %v; want b shut down", idsOf(p.Update))
	}
	if fmt.Sprint(slotsOf(p.Create)) != "[2]" {
		t.Fatalf("node down: replacement slots %v; want [2] at once", slotsOf(p.Create))
	}
	// The old task is still shown as running (its node cannot say
	// otherwise). Once the node is back, nothing new is made: the worker
	// stops the old task, and the slot keeps its one replacement.
	old := p.Update[0].Task
	repl := p.Create[0].Task
	repl.NodeId, repl.Status.State = "n1", stRunning
	in = Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2")},
		Tasks: []*shoalv1.Task{running("a", s, 1, "n1"), old, repl}}
	if p := Reconcile(in, t0.Add(time.Minute), ids()); !p.Empty() {
		t.Fatalf("node back: %+v; want no change (one running task per slot)", p)
	}
}

func TestDrainMovesTasks(t *testing.T) {
	s := svc("web", 1)
	drained := node("n1", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, nil)
	paused := node("n2", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil)
	in := Input{Services: []*shoalv1.Service{s, svc("api", 1)}, Nodes: []*shoalv1.Node{drained, paused},
		Tasks: []*shoalv1.Task{running("a", s, 1, "n1")}}
	in.Tasks = append(in.Tasks, running("b", in.Services[1], 1, "n2"))
	p := Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Update)) != "[a]" || len(p.Create) != 1 || p.Create[0].Task.GetServiceId() != "web" {
		t.Fatalf("drain: updates %v creates %d; want a shut down and replaced, b (on a paused node) kept", idsOf(p.Update), len(p.Create))
	}
}

func TestFailedTaskReplacedAfterBackoff(t *testing.T) {
	s := svc("web", 1)
	s.Spec.Task.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ANY, Delay: durationpb.New(time.Second)}
	failedAt := t0
	failed := task("a", s, 1, "n1", stRunning, stFailed, t0.Add(-time.Minute), failedAt)
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2")}, Tasks: []*shoalv1.Task{failed}}
	p := Reconcile(in, t0.Add(100*time.Millisecond), ids())
	if len(p.Create) != 0 || fmt.Sprint(idsOf(p.Update)) != "[a]" || !p.Wake.Equal(failedAt.Add(time.Second)) {
		t.Fatalf("just failed: creates %d updates %v wake %v; want the task shut down and a wake-up at +1s", len(p.Create), idsOf(p.Update), p.Wake)
	}
	// Next pass (task now desired shutdown), before and after the delay.
	shut := p.Update[0].Task
	in.Tasks = []*shoalv1.Task{shut}
	if p := Reconcile(in, t0.Add(500*time.Millisecond), ids()); len(p.Create) != 0 || p.Wake.IsZero() {
		t.Fatalf("before the delay: %+v", p)
	}
	p = Reconcile(in, t0.Add(time.Second), ids())
	if fmt.Sprint(slotsOf(p.Create)) != "[1]" {
		t.Fatalf("after the delay: created %v; want slot 1", slotsOf(p.Create))
	}
	// Three recent failures of the slot: the delay has doubled twice.
	in.Tasks = []*shoalv1.Task{
		task("x", s, 1, "n1", stShutdown, stFailed, t0.Add(-3*time.Minute), t0.Add(-2*time.Minute)),
		task("y", s, 1, "n2", stShutdown, stFailed, t0.Add(-2*time.Minute), t0.Add(-time.Minute)),
		task("z", s, 1, "n1", stShutdown, stFailed, t0.Add(-time.Minute), t0),
	}
	if p := Reconcile(in, t0, ids()); !p.Wake.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("after 3 failures the wake is %v; want +4s", p.Wake.Sub(t0))
	}
}

func TestRestartConditions(t *testing.T) {
	for _, tc := range []struct {
		cond     shoalv1.RestartCondition
		state    shoalv1.TaskState
		replaced bool
	}{
		{shoalv1.RestartCondition_RESTART_CONDITION_NONE, stFailed, false},
		{shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, stComplete, false},
		{shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, stFailed, true},
		{shoalv1.RestartCondition_RESTART_CONDITION_ANY, stComplete, true},
		{shoalv1.RestartCondition_RESTART_CONDITION_NONE, stRejected, false},
	} {
		s := svc("job", 1)
		s.Spec.Task.Restart = &shoalv1.RestartPolicy{Condition: tc.cond, Delay: durationpb.New(0)}
		in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1")},
			Tasks: []*shoalv1.Task{task("a", s, 1, "n1", stRunning, tc.state, t0, t0)}}
		p := Reconcile(in, t0.Add(time.Second), ids())
		if got := len(p.Create) == 1; got != tc.replaced {
			t.Errorf("Reconcile(%v ended %v): replaced %v; want %v", tc.cond, tc.state, got, tc.replaced)
		}
		// And the pass after keeps to that decision.
		if len(p.Update) == 1 {
			in.Tasks = []*shoalv1.Task{p.Update[0].Task}
			for _, c := range p.Create {
				c.Task.Status.State = stRunning
				in.Tasks = append(in.Tasks, c.Task)
			}
			if p2 := Reconcile(in, t0.Add(time.Minute), ids()); len(p2.Create) != 0 {
				t.Errorf("Reconcile(%v ended %v) again: created %d more", tc.cond, tc.state, len(p2.Create))
			}
		}
	}
}

func TestGlobalFollowsNodes(t *testing.T) {
	g := global("agent", "node.labels.role!=edge")
	edge := node("n3", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, map[string]string{"role": "edge"})
	paused := node("n4", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil)
	in := Input{Services: []*shoalv1.Service{g}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2"), edge, paused},
		Tasks: []*shoalv1.Task{running("a", g, 0, "n1")}}
	p := Reconcile(in, t0, ids())
	var nodes []string
	for _, c := range p.Create {
		nodes = append(nodes, c.Task.GetNodeId())
	}
	if fmt.Sprint(nodes) != "[n2]" {
		t.Fatalf("global: new tasks on %v; want [n2] (n1 has one, n3 fails the constraint, n4 is paused)", nodes)
	}
	// n1 drained, n2 gains the edge label: both tasks go, none elsewhere.
	n1 := node("n1", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, nil)
	n2 := node("n2", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, map[string]string{"role": "edge"})
	in = Input{Services: []*shoalv1.Service{g}, Nodes: []*shoalv1.Node{n1, n2},
		Tasks: []*shoalv1.Task{running("a", g, 0, "n1"), running("b", g, 0, "n2")}}
	p = Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Update)) != "[a b]" || len(p.Create) != 0 {
		t.Fatalf("global after drain and relabel: updates %v creates %d", idsOf(p.Update), len(p.Create))
	}
	// A node that went down and came back gets a new task.
	old := task("c", g, 0, "n1", stShutdown, stRunning, t0.Add(-time.Hour), t0.Add(-time.Hour))
	in = Input{Services: []*shoalv1.Service{g}, Nodes: []*shoalv1.Node{ready("n1")}, Tasks: []*shoalv1.Task{old}}
	if p := Reconcile(in, t0, ids()); len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n1" {
		t.Fatalf("global node back: %+v", p)
	}
}

func TestServiceRemoved(t *testing.T) {
	s := svc("web", 2)
	in := Input{Nodes: []*shoalv1.Node{ready("n1")}, Tasks: []*shoalv1.Task{
		running("a", s, 1, "n1"), task("b", s, 2, "", stRunning, stPending, t0, t0),
		task("c", s, 1, "n1", stShutdown, stFailed, t0.Add(-time.Hour), t0.Add(-time.Hour))}}
	p := Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Delete)) != "[b c]" || fmt.Sprint(idsOf(p.Update)) != "[a]" || p.Update[0].Task.GetDesiredState() != stRemove {
		t.Fatalf("service removed: deleted %v updated %v; want b,c deleted and a marked REMOVE", idsOf(p.Delete), idsOf(p.Update))
	}
}

func TestHistoryTrimming(t *testing.T) {
	s := svc("web", 1)
	tasks := []*shoalv1.Task{running("live", s, 1, "n1")}
	for i := 0; i < 8; i++ {
		at := t0.Add(time.Duration(i-10) * time.Minute)
		tasks = append(tasks, task(fmt.Sprintf("old%d", i), s, 1, "n1", stShutdown, stFailed, at, at))
	}
	p := Reconcile(Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1")}, Tasks: tasks, HistoryLimit: 5}, t0, ids())
	if fmt.Sprint(idsOf(p.Delete)) != "[old0 old1 old2]" {
		t.Fatalf("history trim deleted %v; want the 3 oldest", idsOf(p.Delete))
	}
}

// A leader that dies half-way through applying a plan leaves a store in
// which the next leader's reconciliation finishes the job without
// duplicating anything.
func TestLeaderChangeMidReconciliation(t *testing.T) {
	s := svc("web", 4)
	down := node("n2", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1"), down},
		Tasks: []*shoalv1.Task{running("a", s, 1, "n1"), running("b", s, 2, "n2")}}
	first := Reconcile(in, t0, ids())
	// The old leader committed only its updates and one of its creates.
	applied := map[string]*shoalv1.Task{}
	for _, tk := range in.Tasks {
		applied[tk.GetId()] = tk
	}
	for _, c := range first.Update {
		applied[c.Task.GetId()] = c.Task
	}
	applied[first.Create[0].Task.GetId()] = first.Create[0].Task
	var tasks []*shoalv1.Task
	for _, tk := range applied {
		tasks = append(tasks, tk)
	}
	in.Tasks = tasks
	second := Reconcile(in, t0, func() string { return "new-" + fmt.Sprint(len(tasks)) + fmt.Sprint(time.Now().UnixNano()) })
	for _, c := range second.Create {
		applied[c.Task.GetId()] = c.Task
	}
	active := map[uint64]int{}
	for _, tk := range applied {
		if tk.GetDesiredState() == stRunning {
			active[tk.GetSlot()]++
		}
	}
	if len(active) != 4 {
		t.Fatalf("after the new leader's pass, active slots %v; want 4", active)
	}
	for slot, n := range active {
		if n != 1 {
			t.Fatalf("slot %d has %d active tasks", slot, n)
		}
	}
}

func TestRetiredTasksDeletedOnceStopped(t *testing.T) {
	s := svc("web", 1)
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1")}, Tasks: []*shoalv1.Task{
		running("a", s, 1, "n1"),
		task("b", s, 2, "n1", stRemove, stShutdown, t0, t0),
		task("c", s, 3, "n1", stRemove, stRunning, t0, t0),
	}}
	p := Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Delete)) != "[b]" || len(p.Update) != 0 {
		t.Fatalf("deleted %v updated %v; want b deleted (stopped) and c left to its worker", idsOf(p.Delete), idsOf(p.Update))
	}
}

// A node whose global task the manager stopped gets a new one when it can
// take it again; a task that ended by itself follows the restart policy.
func TestGlobalTaskReturns(t *testing.T) {
	g := global("agent")
	none := global("agent")
	none.Spec.Task.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_NONE}
	drainedN1 := node("n1", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, nil)
	pausedN1 := node("n1", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil)
	downN1 := node("n1", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
	old := t0.Add(-time.Hour)
	for _, tc := range []struct {
		name    string
		svc     *shoalv1.Service
		n1      *shoalv1.Node
		desired shoalv1.TaskState
		state   shoalv1.TaskState
		want    string // "new", "none" or "wait" (a delayed replacement)
	}{
		{"stopped on drain, node active again", g, ready("n1"), stShutdown, stShutdown, "new"},
		{"stopped on drain, restart none, node active again", none, ready("n1"), stShutdown, stShutdown, "new"},
		{"lost with its node, node back", g, ready("n1"), stShutdown, stRunning, "new"},
		{"never placed, node back", g, ready("n1"), stShutdown, stPending, "new"},
		{"stopped, node still drained", g, drainedN1, stShutdown, stShutdown, "none"},
		{"stopped, node paused", g, pausedN1, stShutdown, stShutdown, "none"},
		{"stopped, node still down", g, downN1, stShutdown, stRunning, "none"},
		{"completed, restart none", none, ready("n1"), stShutdown, stComplete, "none"},
		{"failed, restart none", none, ready("n1"), stShutdown, stFailed, "none"},
		{"failed, restart any", g, ready("n1"), stShutdown, stFailed, "new"},
		{"just failed, restart any", g, ready("n1"), stRunning, stFailed, "wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Services: []*shoalv1.Service{tc.svc}, Nodes: []*shoalv1.Node{tc.n1},
				Tasks: []*shoalv1.Task{task("a", tc.svc, 0, "n1", tc.desired, tc.state, old, old)}}
			now := t0
			if tc.want == "wait" {
				now = old.Add(100 * time.Millisecond)
			}
			p := Reconcile(in, now, ids())
			got := "none"
			switch {
			case len(p.Create) == 1 && p.Create[0].Task.GetNodeId() == "n1" && p.Create[0].Task.GetSlot() == 0:
				got = "new"
			case len(p.Create) > 0:
				got = fmt.Sprintf("%d new tasks", len(p.Create))
			case !p.Wake.IsZero():
				got = "wait"
			}
			if got != tc.want {
				t.Fatalf("Reconcile(global task %v/%v on n1 %v/%v) = %s (%+v); want %s", tc.desired, tc.state,
					tc.n1.GetStatus().GetState(), tc.n1.GetSpec().GetAvailability(), got, p, tc.want)
			}
		})
	}
}

// A global service rolls node by node (stop-first: each node's new task
// once its old one has exited, on that node), the next node only once
// the last new task has settled.
func TestGlobalRollingUpdate(t *testing.T) {
	g := global("agent")
	tasks := []*shoalv1.Task{running("a", g, 0, "n1"), running("b", g, 0, "n2"), running("c", g, 0, "n3")}
	g2 := proto.Clone(g).(*shoalv1.Service)
	g2.Spec.Task.Container.Env = []string{"V=2"}
	in := Input{Services: []*shoalv1.Service{g2}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2"), ready("n3")}, Tasks: tasks}
	now := t0
	for i, want := range []string{"n1", "n2", "n3"} {
		p := Reconcile(in, now, ids())
		if len(p.Update) != 1 || len(p.Create) != 0 || p.Update[0].Task.GetNodeId() != want || p.Update[0].Task.GetDesiredState() != stShutdown {
			t.Fatalf("step %d: updates %v creates %v; want %s's task stopped, nothing made yet", i, p.Update, p.Create, want)
		}
		in.Services = []*shoalv1.Service{withStatus(p, g2)}
		old := p.Update[0].Task
		in.Tasks = replaced(in.Tasks, old)
		if p := Reconcile(in, now, ids()); len(p.Create) != 0 {
			t.Fatalf("step %d: a new task while the old one still runs: %v", i, p.Create)
		}
		old.Status.State = stShutdown
		p = Reconcile(in, now, ids())
		if len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != want || fmt.Sprint(p.Create[0].Task.GetSpec().GetContainer().GetEnv()) != "[V=2]" {
			t.Fatalf("step %d: old task exited: created %v; want the new spec on %s", i, p.Create, want)
		}
		// While the new task starts, nothing else moves.
		fresh := p.Create[0].Task
		fresh.Status.State = stAssigned
		in.Tasks = append(in.Tasks, fresh)
		if p := Reconcile(in, now, ids()); len(p.Create)+len(p.Update) != 0 {
			t.Fatalf("step %d, new task assigned: %+v; want nothing", i, p)
		}
		fresh.Status.State, fresh.Status.Timestamp = stRunning, timestamppb.New(now)
		now = now.Add(DefaultUpdateMonitor)
	}
	p := Reconcile(in, now, ids())
	if len(p.Create)+len(p.Update) != 0 || len(p.Services) != 1 || p.Services[0].Service.GetUpdateStatus().GetState() != usCompleted {
		t.Fatalf("after the update: %+v; want nothing but the update completed", p)
	}
}

// withStatus is svc as the plan's service write leaves it.
func withStatus(p Plan, svc *shoalv1.Service) *shoalv1.Service {
	for _, c := range p.Services {
		if c.Service.GetId() == svc.GetId() {
			return c.Service
		}
	}
	return svc
}

// replaced returns tasks with the task of n's ID replaced by n.
func replaced(tasks []*shoalv1.Task, n *shoalv1.Task) []*shoalv1.Task {
	out := make([]*shoalv1.Task, len(tasks))
	for i, t := range tasks {
		out[i] = t
		if t.GetId() == n.GetId() {
			out[i] = n
		}
	}
	return out
}

// A node that cannot take the service (its task waits, unplaced) does not
// hold up an update of the others, and its task gets the new spec at
// once; a new task that cannot start after its node's running task was
// stopped does hold it up.
func TestRollingUpdateAroundUnplaceable(t *testing.T) {
	g := global("agent")
	waiting := task("w", g, 0, "n3", stRunning, stPending, t0.Add(-time.Hour), t0.Add(-time.Hour))
	waiting.Status.Err = "node n3 lacks 6 GiB of memory"
	g2 := proto.Clone(g).(*shoalv1.Service)
	g2.Spec.Task.Container.Env = []string{"V=2"}
	nodes := []*shoalv1.Node{ready("n1"), ready("n2"), ready("n3")}
	in := Input{Services: []*shoalv1.Service{g2}, Nodes: nodes, Tasks: []*shoalv1.Task{running("a", g, 0, "n1"), running("b", g, 0, "n2"), waiting}}
	p := Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Update)) != "[a w]" || len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n3" {
		t.Fatalf("update with n3 waiting: stopped %v, created %v; want a (rolled, stop-first) and w (replaced at once) stopped, n3's new task", idsOf(p.Update), p.Create)
	}
	in.Services = []*shoalv1.Service{withStatus(p, g2)}
	onN3 := p.Create[0].Task
	stoppedA := p.Update[0].Task
	if stoppedA.GetId() != "a" {
		stoppedA = p.Update[1].Task
	}
	stoppedA.Status.State = stShutdown
	in.Tasks = []*shoalv1.Task{stoppedA, in.Tasks[1], waiting, onN3}
	p = Reconcile(in, t0, ids())
	if len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n1" {
		t.Fatalf("a exited: created %v; want n1's new task", p.Create)
	}
	onN1 := p.Create[0].Task
	// n3's new task cannot be placed either; n1's runs: n2 goes next.
	onN3.Status.State, onN3.Status.Err = stPending, "node n3 lacks 6 GiB of memory"
	onN1.Status.State = stRunning
	w := proto.Clone(waiting).(*shoalv1.Task)
	w.DesiredState, w.Status.State = stShutdown, stShutdown
	in.Tasks = []*shoalv1.Task{stoppedA, w, in.Tasks[1], onN1, onN3}
	p = Reconcile(in, t0.Add(DefaultUpdateMonitor), ids())
	if fmt.Sprint(idsOf(p.Update)) != "[b]" || len(p.Create) != 0 {
		t.Fatalf("n3 still waiting: stopped %v, created %v; want b rolled on n2", idsOf(p.Update), p.Create)
	}
	// But a new task that replaced a running one and cannot be placed
	// holds the update: stopping more would take down every node.
	onN1.Status.State, onN1.Status.Err = stPending, "node n1 lacks 6 GiB of memory"
	if p := Reconcile(in, t0.Add(DefaultUpdateMonitor), ids()); len(p.Create)+len(p.Update) != 0 {
		t.Fatalf("n1's replacement unplaceable: %+v; want the update held", p)
	}
}

// An update leaves a paused node's global task running as it is (its
// replacement could not be placed there) and rolls it once the node is
// active again.
func TestGlobalUpdateSkipsPausedNodes(t *testing.T) {
	g := global("agent")
	g2 := proto.Clone(g).(*shoalv1.Service)
	g2.Spec.Task.Container.Env = []string{"V=2"}
	paused := node("n1", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil)
	fresh := running("b2", g2, 0, "n2")
	in := Input{Services: []*shoalv1.Service{g2}, Nodes: []*shoalv1.Node{paused, ready("n2")},
		Tasks: []*shoalv1.Task{running("a", g, 0, "n1"), task("b", g, 0, "n2", stShutdown, stShutdown, t0.Add(-2*time.Hour), t0), fresh}}
	if p := Reconcile(in, t0, ids()); !p.Empty() {
		t.Fatalf("update with n1 paused and n2 done: %+v; want n1's task left running", p)
	}
	in.Nodes[0] = ready("n1")
	p := Reconcile(in, t0, ids())
	if fmt.Sprint(idsOf(p.Update)) != "[a]" || len(p.Create) != 0 || p.Update[0].Task.GetDesiredState() != stShutdown {
		t.Fatalf("n1 active again: stopped %v, created %v; want a stopped for its replacement", idsOf(p.Update), p.Create)
	}
	a := p.Update[0].Task
	a.Status.State = stShutdown
	in.Tasks[0] = a
	if p := Reconcile(in, t0, ids()); len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n1" {
		t.Fatalf("a exited: created %v; want its replacement on n1", p.Create)
	}
}
