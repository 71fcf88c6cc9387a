package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ended is slot 1's task a of s that ended in state at failedAt on n1,
// still desired running (the worker's report has just come in), after
// its slot's earlier restarts (history) and its own in-place ones (own).
func ended(s *shoalv1.Service, state shoalv1.TaskState, failedAt time.Time, history, own []time.Time) *shoalv1.Task {
	a := task("a", s, 1, "n1", stRunning, state, failedAt.Add(-time.Hour), failedAt)
	a.RestartHistory = shoalv1.Timestamps(history)
	a.Status.RestartTimes = shoalv1.Timestamps(own)
	a.Status.Restarts = int32(len(own))
	if state == stFailed {
		a.Status.Err = "task: non-zero exit (1)"
		a.Status.ExitCode = 1
	}
	return a
}

func restartPolicy(max int64, window time.Duration) *shoalv1.RestartPolicy {
	return &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ANY, Delay: durationpb.New(time.Second),
		MaxAttempts: max, Window: durationpb.New(window)}
}

func times(ts ...time.Time) []time.Time { return ts }

// TestSlotRestartBudget: --restart-max-attempts N bounds the restarts of
// a slot (the worker's in-place restarts and the manager's replacements
// together) within the window before the failure; once they are used, the
// last task stays failed, shut down, with no replacement, and says why.
func TestSlotRestartBudget(t *testing.T) {
	f := t0 // when the slot's task ended
	for _, tc := range []struct {
		name     string
		policy   *shoalv1.RestartPolicy
		outdated bool // the task runs an older spec than the service's
		state    shoalv1.TaskState
		nodeDown bool
		history  []time.Time // the slot's restarts before the task
		own      []time.Time // the task's in-place restarts
		now      time.Time
		// want
		replaced    bool
		newHistory  []time.Time // the replacement's restart_history
		err         string      // the ended task's error, when it stays ended
		wantUpdated bool
	}{
		{name: "local restarts used them all: no replacement", policy: restartPolicy(2, 0), state: stFailed,
			own: times(f.Add(-2*time.Second), f.Add(-time.Second)), now: f.Add(time.Minute),
			err: "max restart attempts (2) reached: task: non-zero exit (1)", wantUpdated: true},
		{name: "one local restart left one attempt: replaced, the replacement counts", policy: restartPolicy(2, 0), state: stFailed,
			own: times(f.Add(-time.Second)), now: f.Add(2 * time.Second),
			replaced: true, newHistory: times(f.Add(-time.Second), f.Add(2*time.Second)), wantUpdated: true},
		{name: "earlier replacement and a local restart: used", policy: restartPolicy(2, 0), state: stFailed,
			history: times(f.Add(-time.Hour)), own: times(f.Add(-time.Second)), now: f.Add(time.Minute),
			err: "max restart attempts (2) reached: task: non-zero exit (1)", wantUpdated: true},
		{name: "window 0 counts restarts of any age", policy: restartPolicy(2, 0), state: stFailed,
			history: times(f.Add(-72*time.Hour), f.Add(-48*time.Hour)), now: f.Add(time.Minute),
			err: "max restart attempts (2) reached: task: non-zero exit (1)", wantUpdated: true},
		{name: "restarts before the window do not count, nor travel on", policy: restartPolicy(2, time.Minute), state: stFailed,
			history: times(f.Add(-5 * time.Minute)), own: times(f.Add(-10 * time.Second)), now: f.Add(2 * time.Second),
			replaced: true, newHistory: times(f.Add(-10*time.Second), f.Add(2*time.Second)), wantUpdated: true},
		{name: "both within the window: used", policy: restartPolicy(2, time.Minute), state: stFailed,
			history: times(f.Add(-30 * time.Second)), own: times(f.Add(-10 * time.Second)), now: f.Add(2 * time.Second),
			err: "max restart attempts (2 within 1m0s) reached: task: non-zero exit (1)", wantUpdated: true},
		{name: "judged as of the failure: the window moving on later does not revive it", policy: restartPolicy(2, time.Minute), state: stFailed,
			history: times(f.Add(-30 * time.Second)), own: times(f.Add(-10 * time.Second)), now: f.Add(time.Hour),
			err: "max restart attempts (2 within 1m0s) reached: task: non-zero exit (1)", wantUpdated: true},
		{name: "a start the runtime refused spends one attempt per replacement", policy: restartPolicy(1, 0), state: stRejected,
			now: f.Add(2 * time.Second), replaced: true, newHistory: times(f.Add(2 * time.Second)), wantUpdated: true},
		{name: "the replacement refused too: used", policy: restartPolicy(1, 0), state: stRejected,
			history: times(f.Add(-time.Minute)), now: f.Add(2 * time.Second),
			err: "max restart attempts (1) reached", wantUpdated: true},
		{name: "a clean exit restarted under condition any counts too", policy: restartPolicy(2, 0), state: stComplete,
			own: times(f.Add(-2*time.Second), f.Add(-time.Second)), now: f.Add(time.Minute),
			err: "max restart attempts (2) reached", wantUpdated: true},
		{name: "a changed spec starts the count again", policy: restartPolicy(2, 0), outdated: true, state: stFailed,
			own: times(f.Add(-2*time.Second), f.Add(-time.Second)), now: f.Add(time.Minute),
			replaced: true, newHistory: times(f.Add(time.Minute)), wantUpdated: true},
		{name: "no max attempts: replaced forever, no history kept", policy: restartPolicy(0, 0), state: stFailed,
			own: times(f.Add(-2*time.Second), f.Add(-time.Second)), now: f.Add(time.Minute),
			replaced: true, wantUpdated: true},
		{name: "moving off a lost node costs no attempt and keeps the history", policy: restartPolicy(3, 0), state: stRunning, nodeDown: true,
			history: times(f.Add(-time.Hour)), own: times(f.Add(-time.Minute)), now: f,
			replaced: true, newHistory: times(f.Add(-time.Hour), f.Add(-time.Minute)), wantUpdated: true},
		{name: "a running task with its attempts used runs on", policy: restartPolicy(2, 0), state: stRunning,
			own: times(f.Add(-2*time.Second), f.Add(-time.Second)), now: f.Add(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := svc("web", 1)
			s.Spec.Task.Restart = tc.policy
			if tc.outdated {
				s.Spec.Task.Container.Image = "img:0"
			}
			a := ended(s, tc.state, f, tc.history, tc.own)
			if tc.outdated {
				s.Spec.Task.Container.Image = "img:1"
			}
			n1 := ready("n1")
			if tc.nodeDown {
				n1 = node("n1", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
			}
			in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{n1, ready("n2")}, Tasks: []*shoalv1.Task{a}}
			p := Reconcile(in, tc.now, ids())
			if len(p.Update) == 1 != tc.wantUpdated {
				t.Fatalf("Reconcile at %v: updates %v; want updated %v", tc.now.Sub(f), idsOf(p.Update), tc.wantUpdated)
			}
			// The pass after the task's shut down (or the first, when the
			// task needed no change) decides on the replacement.
			if len(p.Update) == 1 {
				u := p.Update[0].Task
				if u.GetDesiredState() != stShutdown || u.GetStatus().GetState() != a.GetStatus().GetState() {
					t.Fatalf("Reconcile: task a is desired %v, %v; want shut down, still %v", u.GetDesiredState(), u.GetStatus().GetState(), a.GetStatus().GetState())
				}
				if tc.err != "" && u.GetStatus().GetErr() != tc.err {
					t.Fatalf("Reconcile: task a's error %q; want %q", u.GetStatus().GetErr(), tc.err)
				}
				if len(p.Create) == 0 {
					in.Tasks = []*shoalv1.Task{u}
					p = Reconcile(in, tc.now, ids())
				}
			}
			if got := len(p.Create) == 1; got != tc.replaced {
				t.Fatalf("Reconcile at %v: replaced %v; want %v (plan %+v)", tc.now.Sub(f), got, tc.replaced, p)
			}
			if !tc.replaced {
				if !p.Wake.IsZero() {
					t.Fatalf("Reconcile: a wake-up at %v for a slot that stays ended", p.Wake)
				}
				return
			}
			got := shoalv1.Times(p.Create[0].Task.GetRestartHistory())
			if fmt.Sprint(got) != fmt.Sprint(tc.newHistory) {
				t.Fatalf("replacement's restart history %v; want %v", got, tc.newHistory)
			}
		})
	}
}

// TestSlotStaysEnded: a slot whose attempts are used stays so, pass
// after pass, with nothing to change and no wake-up, until the spec
// changes; then it runs again with a fresh count.
func TestSlotStaysEnded(t *testing.T) {
	s := svc("web", 1)
	s.Spec.Task.Restart = restartPolicy(2, 0)
	a := ended(s, stFailed, t0, nil, times(t0.Add(-2*time.Second), t0.Add(-time.Second)))
	in := Input{Services: []*shoalv1.Service{s}, Nodes: []*shoalv1.Node{ready("n1")}, Tasks: []*shoalv1.Task{a}}
	p := Reconcile(in, t0.Add(time.Second), ids())
	if len(p.Update) != 1 || len(p.Create) != 0 {
		t.Fatalf("the failure: %+v; want task a shut down, no replacement", p)
	}
	in.Tasks = []*shoalv1.Task{p.Update[0].Task}
	for _, now := range []time.Time{t0.Add(2 * time.Second), t0.Add(time.Hour), t0.Add(30 * 24 * time.Hour)} {
		if p := Reconcile(in, now, ids()); !p.Empty() || !p.Wake.IsZero() {
			t.Fatalf("Reconcile at +%v: %+v; want nothing to do", now.Sub(t0), p)
		}
	}
	s.Spec.Task.Container.Image = "img:2"
	p = Reconcile(in, t0.Add(time.Hour), ids())
	if len(p.Create) != 1 || len(p.Create[0].Task.GetRestartHistory()) != 1 {
		t.Fatalf("after a spec change: %+v; want one replacement whose history is itself", p)
	}
}

// TestGlobalSlotRestartBudget: a global service's slot is its node.
func TestGlobalSlotRestartBudget(t *testing.T) {
	g := global("agent")
	g.Spec.Task.Restart = restartPolicy(1, 0)
	a := task("a", g, 0, "n1", stRunning, stFailed, t0.Add(-time.Hour), t0)
	a.Status.RestartTimes = shoalv1.Timestamps(times(t0.Add(-time.Second)))
	b := task("b", g, 0, "n2", stRunning, stFailed, t0.Add(-time.Hour), t0)
	in := Input{Services: []*shoalv1.Service{g}, Nodes: []*shoalv1.Node{ready("n1"), ready("n2")}, Tasks: []*shoalv1.Task{a, b}}
	p := Reconcile(in, t0.Add(time.Minute), ids())
	if len(p.Update) != 2 || len(p.Create) != 1 || p.Create[0].Task.GetNodeId() != "n2" {
		t.Fatalf("Reconcile: updates %v, created %+v; want both shut down and one new task, on n2 (n1's slot used its attempt)", idsOf(p.Update), p.Create)
	}
}
