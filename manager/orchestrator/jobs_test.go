package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// rjob is a replicated job of total completions, maxc at a time, in its
// run it.
func rjob(id string, total, maxc int64, it uint64) *shoalv1.Service {
	s := svc(id, 0)
	s.Spec.Mode = &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: total, MaxConcurrent: maxc}}
	s.Spec.Task.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ANY, Delay: durationpb.New(time.Second)}
	s.JobStatus = &shoalv1.JobStatus{Iteration: it}
	return s
}

func gjob(id string, it uint64, constraints ...string) *shoalv1.Service {
	s := rjob(id, 0, 0, it)
	s.Spec.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}
	s.Spec.Task.Placement = &shoalv1.Placement{Constraints: constraints}
	return s
}

// jtask is a task of job s's run it, desired complete, in state.
func jtask(id string, s *shoalv1.Service, it uint64, slot uint64, nodeID string, state shoalv1.TaskState, at time.Time) *shoalv1.Task {
	t := task(id, s, slot, nodeID, stComplete, state, at.Add(-time.Minute), at)
	t.JobIteration = it
	if state == stFailed {
		t.Status.Err = "task: non-zero exit (1)"
		t.Status.ExitCode = 1
	}
	return t
}

// jobTasks makes n tasks of s's run it, in slots from first, in state.
func jobTasks(prefix string, s *shoalv1.Service, it uint64, first uint64, n int, state shoalv1.TaskState) []*shoalv1.Task {
	var out []*shoalv1.Task
	for i := 0; i < n; i++ {
		out = append(out, jtask(fmt.Sprintf("%s%d", prefix, i), s, it, first+uint64(i), "n1", state, t0.Add(-time.Hour)))
	}
	return out
}

func cat(ts ...[]*shoalv1.Task) []*shoalv1.Task {
	var out []*shoalv1.Task
	for _, t := range ts {
		out = append(out, t...)
	}
	return out
}

func updatesOf(cs []Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Task.GetId()+":"+taskStateName(c.Task.GetDesiredState()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func taskStateName(s shoalv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

// TestReplicatedJobReconcile: the tasks a replicated job's pass makes and
// changes, from what its run has so far.
func TestReplicatedJobReconcile(t *testing.T) {
	s := rjob("job", 10, 3, 4)
	withMax := func(n int64) *shoalv1.Service {
		c := proto.Clone(s).(*shoalv1.Service)
		c.Spec.Task.Restart.MaxAttempts = n
		return c
	}
	none := proto.Clone(s).(*shoalv1.Service)
	none.Spec.Task.Restart.Condition = shoalv1.RestartCondition_RESTART_CONDITION_NONE
	failedAt := t0.Add(-time.Minute)
	failed := func(s *shoalv1.Service, history ...time.Time) *shoalv1.Task {
		f := jtask("f", s, 4, 1, "n1", stFailed, failedAt)
		f.RestartHistory = shoalv1.Timestamps(history)
		return f
	}
	for _, tc := range []struct {
		name    string
		svc     *shoalv1.Service
		tasks   []*shoalv1.Task
		now     time.Time
		created string // slots of the new tasks
		updated string // id:desired of the changed tasks
		wake    time.Time
	}{
		{name: "a new run starts max-concurrent tasks", svc: s, created: "[1 2 3]"},
		{name: "max-concurrent 0 runs every completion at once", svc: rjob("job", 4, 0, 4), created: "[1 2 3 4]"},
		{name: "three running: nothing more", svc: s, tasks: jobTasks("r", s, 4, 1, 3, stRunning)},
		{name: "tasks on their way count as active", svc: s, tasks: cat(jobTasks("r", s, 4, 1, 2, stAssigned), jobTasks("p", s, 4, 3, 1, stPending))},
		{name: "one completed: one more in the next free slot", svc: s,
			tasks: cat(jobTasks("c", s, 4, 1, 1, stComplete), jobTasks("r", s, 4, 2, 2, stRunning)), created: "[4]"},
		{name: "eight completed, two running: nothing more (10 in all)", svc: s,
			tasks: cat(jobTasks("c", s, 4, 1, 8, stComplete), jobTasks("r", s, 4, 9, 2, stRunning))},
		{name: "all completed: done, nothing changes", svc: s, tasks: jobTasks("c", s, 4, 1, 10, stComplete)},
		{name: "completions of an earlier run do not count", svc: s, tasks: jobTasks("c", s, 3, 1, 10, stComplete), created: "[1 2 3]"},
		{name: "running tasks of an earlier run are stopped; their finished ones stay", svc: s,
			tasks:   cat(jobTasks("old", s, 3, 1, 2, stRunning), jobTasks("done", s, 3, 3, 1, stComplete), jobTasks("oldf", s, 3, 4, 1, stFailed)),
			created: "[1 2 3]", updated: "old0:shutdown old1:shutdown oldf0:shutdown"},
		{name: "a failed task is replaced in its slot after the delay", svc: s, tasks: []*shoalv1.Task{failed(s)},
			now: failedAt.Add(2 * time.Second), created: "[1 2 3]", updated: "f:shutdown"},
		{name: "a failed task waits out the delay; it counts as active meanwhile", svc: s, tasks: []*shoalv1.Task{failed(s)},
			now: failedAt.Add(500 * time.Millisecond), created: "[2 3]", wake: failedAt.Add(time.Second)},
		{name: "max attempts used: the slot gives up, another slot takes its place", svc: withMax(2),
			tasks: []*shoalv1.Task{failed(withMax(2), t0.Add(-time.Hour), t0.Add(-30*time.Minute))},
			now:   failedAt.Add(time.Minute), created: "[2 3 4]", updated: "f:shutdown"},
		{name: "restart condition none: a failure is final", svc: none, tasks: []*shoalv1.Task{failed(none)},
			now: failedAt.Add(time.Minute), created: "[2 3 4]", updated: "f:shutdown"},
		{name: "a task on a lost node is replaced in its slot", svc: s,
			tasks: []*shoalv1.Task{jtask("x", s, 4, 1, "gone", stRunning, t0.Add(-time.Hour))}, created: "[1 2 3]", updated: "x:shutdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			p := Reconcile(Input{Services: []*shoalv1.Service{tc.svc}, Tasks: tc.tasks, Nodes: []*shoalv1.Node{ready("n1")}}, now, ids())
			created := ""
			if len(p.Create) > 0 {
				created = fmt.Sprint(slotsOf(p.Create))
			}
			if created != tc.created || updatesOf(p.Update) != tc.updated {
				t.Fatalf("created slots %q, updated %q; want %q, %q", created, updatesOf(p.Update), tc.created, tc.updated)
			}
			if !p.Wake.Equal(tc.wake) {
				t.Fatalf("wake %v; want %v", p.Wake, tc.wake)
			}
			for _, c := range p.Create {
				if c.Task.GetDesiredState() != stComplete || c.Task.GetJobIteration() != 4 || c.Task.GetNodeId() != "" {
					t.Fatalf("new job task desired %v, iteration %d, node %q; want COMPLETE, 4, unplaced", c.Task.GetDesiredState(), c.Task.GetJobIteration(), c.Task.GetNodeId())
				}
			}
			if len(p.Delete) != 0 {
				t.Fatalf("deleted %v", idsOf(p.Delete))
			}
		})
	}
}

// TestJobGiveUpSaysWhy: a slot that used its attempts keeps its failed
// task, shut down, with why in its error; its replacement history is what
// a replacement carried.
func TestJobGiveUpSaysWhy(t *testing.T) {
	s := rjob("job", 1, 1, 0)
	s.Spec.Task.Restart.MaxAttempts = 2
	f := jtask("f", s, 0, 1, "n1", stFailed, t0)
	f.Status.RestartTimes = shoalv1.Timestamps(times(t0.Add(-2*time.Second), t0.Add(-time.Second)))
	p := Reconcile(Input{Services: []*shoalv1.Service{s}, Tasks: []*shoalv1.Task{f}, Nodes: []*shoalv1.Node{ready("n1")}}, t0.Add(time.Minute), ids())
	if len(p.Create) != 0 || len(p.Update) != 1 {
		t.Fatalf("%d creates, %d updates; want 0, 1", len(p.Create), len(p.Update))
	}
	if e := p.Update[0].Task.GetStatus().GetErr(); e != "max restart attempts (2) reached: task: non-zero exit (1)" {
		t.Fatalf("error %q", e)
	}
	// The next pass leaves it so.
	p = Reconcile(Input{Services: []*shoalv1.Service{s}, Tasks: []*shoalv1.Task{p.Update[0].Task}, Nodes: []*shoalv1.Node{ready("n1")}}, t0.Add(time.Hour), ids())
	if !p.Empty() {
		t.Fatalf("a given-up job slot changed again: %+v", p)
	}
}

// sim is a small cluster under Reconcile and Schedule: each step, the
// plan is applied, then every assigned task starts, and every running
// task ends by outcome (a function of its slot and attempt).
type sim struct {
	t       *testing.T
	svc     *shoalv1.Service
	nodes   []*shoalv1.Node
	tasks   map[string]*shoalv1.Task
	now     time.Time
	newID   func() string
	attempt map[uint64]int
}

func newSim(t *testing.T, s *shoalv1.Service, nodes ...*shoalv1.Node) *sim {
	return &sim{t: t, svc: s, nodes: nodes, tasks: map[string]*shoalv1.Task{}, now: t0, newID: ids(), attempt: map[uint64]int{}}
}

func (m *sim) list() []*shoalv1.Task {
	var out []*shoalv1.Task
	for _, t := range m.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// active counts tasks a worker may be running: placed, not ended.
func (m *sim) active() int {
	n := 0
	for _, t := range m.tasks {
		if s := t.GetStatus().GetState(); s >= stAssigned && !Terminal(s) && shoalv1.Runnable(t.GetDesiredState()) {
			n++
		}
	}
	return n
}

// step runs one pass and one round of workers; end says how a running
// task of a slot ends on its attempt (from 1).
func (m *sim) step(end func(slot uint64, attempt int) shoalv1.TaskState) {
	p := Reconcile(Input{Services: []*shoalv1.Service{m.svc}, Tasks: m.list(), Nodes: m.nodes}, m.now, m.newID)
	for _, c := range append(append([]Change{}, p.Update...), p.Create...) {
		m.tasks[c.Task.GetId()] = c.Task
	}
	for _, c := range p.Delete {
		delete(m.tasks, c.Task.GetId())
	}
	var fresh []*shoalv1.Task
	for _, c := range p.Create {
		fresh = append(fresh, c.Task)
	}
	for _, c := range Schedule(m.nodes, m.list(), fresh, m.now, 1) {
		m.tasks[c.Task.GetId()] = c.Task
	}
	m.now = m.now.Add(2 * time.Second)
	for _, t := range m.list() {
		if !shoalv1.Runnable(t.GetDesiredState()) {
			continue
		}
		switch t.GetStatus().GetState() {
		case stAssigned:
			t.Status = &shoalv1.TaskStatus{State: stRunning, Timestamp: timestamppb.New(m.now)}
		case stRunning:
			m.attempt[t.GetSlot()]++
			st := end(t.GetSlot(), m.attempt[t.GetSlot()])
			t.Status = &shoalv1.TaskStatus{State: st, Timestamp: timestamppb.New(m.now)}
			if st == stFailed {
				t.Status.ExitCode, t.Status.Err = 1, "task: non-zero exit (1)"
			}
		}
	}
}

func (m *sim) complete() map[uint64]int {
	out := map[uint64]int{}
	for _, t := range m.tasks {
		if t.GetStatus().GetState() == stComplete && t.GetJobIteration() == JobIteration(m.svc) {
			out[t.GetSlot()]++
		}
	}
	return out
}

// TestReplicatedJobRunsToTheEnd: 10 completions, 3 at a time, with the
// first attempt of every third slot failing: never more than 3 tasks
// placed and unfinished at once, and at the end one completed task in
// each of the 10 slots, with the failed ones as history beside them.
func TestReplicatedJobRunsToTheEnd(t *testing.T) {
	s := rjob("job", 10, 3, 0)
	m := newSim(t, s, ready("n1"), ready("n2"))
	peak := 0
	for i := 0; i < 60; i++ {
		m.step(func(slot uint64, attempt int) shoalv1.TaskState {
			if slot%3 == 0 && attempt == 1 {
				return stFailed
			}
			return stComplete
		})
		if a := m.active(); a > 3 {
			t.Fatalf("step %d: %d job tasks active at once; max-concurrent is 3", i, a)
		} else if a > peak {
			peak = a
		}
	}
	done := m.complete()
	if len(done) != 10 {
		t.Fatalf("completed slots %v; want 1..10 each once", done)
	}
	for slot, n := range done {
		if slot < 1 || slot > 10 || n != 1 {
			t.Fatalf("completed slots %v; want 1..10 each once", done)
		}
	}
	if peak != 3 {
		t.Fatalf("at most %d tasks ran at once; want 3 (max-concurrent)", peak)
	}
	failed := 0
	for _, tk := range m.tasks {
		if tk.GetStatus().GetState() == stFailed {
			failed++
			if tk.GetDesiredState() != stShutdown {
				t.Fatalf("a replaced failed task is desired %v; want SHUTDOWN", tk.GetDesiredState())
			}
		}
	}
	if failed != 3 {
		t.Fatalf("%d failed tasks kept; want 3 (slots 3, 6, 9 failed once)", failed)
	}
	// A new run (the control API raised the iteration) runs all 10 again.
	m.svc = proto.Clone(s).(*shoalv1.Service)
	m.svc.JobStatus.Iteration = 1
	m.attempt = map[uint64]int{}
	for i := 0; i < 60; i++ {
		m.step(func(uint64, int) shoalv1.TaskState { return stComplete })
		if a := m.active(); a > 3 {
			t.Fatalf("run 2, step %d: %d active", i, a)
		}
	}
	if done := m.complete(); len(done) != 10 {
		t.Fatalf("run 2 completed slots %v; want 10", done)
	}
	old := 0
	for _, tk := range m.tasks {
		if tk.GetJobIteration() == 0 && tk.GetStatus().GetState() == stComplete {
			old++
		}
	}
	if old != 10 {
		t.Fatalf("%d completed tasks of run 1 left as history; want 10 (the history limit is per slot)", old)
	}
}

// TestReplicatedJobAttemptsBound: a job whose task always fails, with
// max attempts 2, runs each slot 3 times (here: the manager replaces it,
// no worker restarts in place) and then leaves it failed for good.
func TestReplicatedJobAttemptsBound(t *testing.T) {
	s := rjob("job", 1, 1, 0)
	s.Spec.Task.Restart.MaxAttempts = 2
	m := newSim(t, s, ready("n1"))
	for i := 0; i < 40; i++ {
		m.step(func(uint64, int) shoalv1.TaskState { return stFailed })
	}
	if m.attempt[1] != 3 {
		t.Fatalf("slot 1 ran %d times; want 3 (1 + max attempts 2)", m.attempt[1])
	}
	if m.active() != 0 || len(m.tasks) != 3 {
		t.Fatalf("%d active, %d tasks; want 0 active and the 3 failed tasks", m.active(), len(m.tasks))
	}
	gaveUp := 0
	for _, tk := range m.tasks {
		if strings.HasPrefix(tk.GetStatus().GetErr(), "max restart attempts (2) reached") {
			gaveUp++
		}
	}
	if gaveUp != 1 {
		t.Fatalf("%d tasks say the attempts are used; want the last one", gaveUp)
	}
}

// TestGlobalJob: one task per eligible node, run to completion; a node
// that joins during the run gets one; completed tasks stay; a new run
// runs on every node again.
func TestGlobalJob(t *testing.T) {
	s := gjob("gj", 2, "node.role==worker")
	paused := node("n4", shoalv1.NodeState_NODE_STATE_READY, shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil)
	down := node("n5", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
	nodes := []*shoalv1.Node{ready("n1"), ready("n2"), paused, down}
	in := Input{Services: []*shoalv1.Service{s}, Nodes: nodes}
	p := Reconcile(in, t0, ids())
	var on []string
	for _, c := range p.Create {
		if c.Task.GetDesiredState() != stComplete || c.Task.GetJobIteration() != 2 || c.Task.GetSlot() != 0 {
			t.Fatalf("global job task %v", c.Task)
		}
		on = append(on, c.Task.GetNodeId())
	}
	sort.Strings(on)
	if fmt.Sprint(on) != "[n1 n2]" {
		t.Fatalf("global job tasks on %v; want [n1 n2] (not the paused or down node)", on)
	}
	// n1 completed, n2 still running; n3 joins.
	in.Tasks = []*shoalv1.Task{jtask("a", s, 2, 0, "n1", stComplete, t0), jtask("b", s, 2, 0, "n2", stRunning, t0)}
	in.Nodes = append(nodes, ready("n3"))
	p = Reconcile(in, t0, ids())
	if len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n3" || len(p.Update) != 0 {
		t.Fatalf("after n3 joined: created %v, updated %q; want one task on n3 only", p.Create, updatesOf(p.Update))
	}
	// A failed task is retried on its own node.
	in.Tasks = []*shoalv1.Task{jtask("a", s, 2, 0, "n1", stComplete, t0), jtask("b", s, 2, 0, "n2", stFailed, t0)}
	in.Nodes = nodes
	p = Reconcile(in, t0.Add(time.Minute), ids())
	if len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n2" || updatesOf(p.Update) != "b:shutdown" {
		t.Fatalf("failed on n2: created %v, updated %q; want b replaced on n2", p.Create, updatesOf(p.Update))
	}
	// The node of a task goes down: stopped, and run again once back.
	in.Tasks = []*shoalv1.Task{jtask("a", s, 2, 0, "n1", stComplete, t0), jtask("b", s, 2, 0, "n2", stRunning, t0)}
	lost := []*shoalv1.Node{ready("n1"), node("n2", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)}
	in.Nodes = lost
	p = Reconcile(in, t0, ids())
	if len(p.Create) != 0 || updatesOf(p.Update) != "b:shutdown" {
		t.Fatalf("n2 down: created %v, updated %q; want b shut down, nothing new", p.Create, updatesOf(p.Update))
	}
	in.Tasks = []*shoalv1.Task{in.Tasks[0], p.Update[0].Task}
	in.Nodes = []*shoalv1.Node{ready("n1"), ready("n2")}
	p = Reconcile(in, t0, ids())
	if len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n2" {
		t.Fatalf("n2 back: created %v; want a task on n2", p.Create)
	}
	// All done: nothing changes.
	in.Tasks = []*shoalv1.Task{jtask("a", s, 2, 0, "n1", stComplete, t0), jtask("b", s, 2, 0, "n2", stComplete, t0)}
	if p := Reconcile(in, t0, ids()); !p.Empty() {
		t.Fatalf("completed global job changed: %+v", p)
	}
	// A new run: both nodes again; the completed tasks stay as they are.
	next := proto.Clone(s).(*shoalv1.Service)
	next.JobStatus.Iteration = 3
	in.Services = []*shoalv1.Service{next}
	p = Reconcile(in, t0, ids())
	on = nil
	for _, c := range p.Create {
		on = append(on, c.Task.GetNodeId())
	}
	sort.Strings(on)
	if fmt.Sprint(on) != "[n1 n2]" || len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("run 3: tasks on %v, updated %q; want [n1 n2], completed tasks untouched", on, updatesOf(p.Update))
	}
	// A node that no longer matches: its running task is stopped, no new one.
	in.Services = []*shoalv1.Service{s}
	mgr := ready("n2")
	mgr.Role = shoalv1.NodeRole_NODE_ROLE_MANAGER
	in.Nodes = []*shoalv1.Node{ready("n1"), mgr}
	in.Tasks = []*shoalv1.Task{jtask("a", s, 2, 0, "n1", stComplete, t0), jtask("b", s, 2, 0, "n2", stRunning, t0)}
	p = Reconcile(in, t0, ids())
	if len(p.Create) != 0 || updatesOf(p.Update) != "b:shutdown" {
		t.Fatalf("n2 now a manager: created %v, updated %q; want b shut down", p.Create, updatesOf(p.Update))
	}
}

// TestJobTasksArePlaced: the scheduler places job tasks (desired
// COMPLETE) as it places a service's.
func TestJobTasksArePlaced(t *testing.T) {
	s := rjob("job", 2, 2, 0)
	p := Reconcile(Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1")}}, t0, ids())
	var fresh []*shoalv1.Task
	for _, c := range p.Create {
		fresh = append(fresh, c.Task)
	}
	Schedule([]*shoalv1.Node{ready("n1")}, nil, fresh, t0, 1)
	for _, tk := range fresh {
		if tk.GetNodeId() != "n1" || tk.GetStatus().GetState() != stAssigned {
			t.Fatalf("job task %s: node %q state %v; want assigned to n1", tk.GetId(), tk.GetNodeId(), tk.GetStatus().GetState())
		}
	}
}
