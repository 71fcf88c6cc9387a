package orchestrator

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// rollSim is a store as Reconcile's plans and the workers' reports would make
// it evolve, step by step, with a fixed clock the test moves.
type rollSim struct {
	t     *testing.T
	in    Input
	now   time.Time
	newID func() string
	last  Plan
	// maxInFlight is the most slots seen in flight at once.
	maxInFlight int
}

func newRollSim(t *testing.T, s *shoalv1.Service, nodes ...*shoalv1.Node) *rollSim {
	t.Helper()
	sm := &rollSim{t: t, now: t0, newID: ids(), in: Input{Services: []*shoalv1.Service{s}, Nodes: nodes}}
	// Bring the service up and settled on its first spec.
	for i := 0; i < 5; i++ {
		sm.pass()
		sm.runAll()
	}
	sm.now = sm.now.Add(time.Hour)
	sm.pass()
	sm.maxInFlight = 0
	return sm
}

func (s *rollSim) svc() *shoalv1.Service { return s.in.Services[0] }

// pass runs one reconciliation and applies its plan, placing new tasks on
// the first ready node as the scheduler would (assigned).
func (s *rollSim) pass() Plan {
	s.t.Helper()
	p := Reconcile(s.in, s.now, s.newID)
	s.last = p
	for _, c := range p.Services {
		n := proto.Clone(c.Service).(*shoalv1.Service)
		n.Meta.Version++
		for i, x := range s.in.Services {
			if x.GetId() == n.GetId() {
				s.in.Services[i] = n
			}
		}
	}
	for _, c := range p.Update {
		s.in.Tasks = replaced(s.in.Tasks, proto.Clone(c.Task).(*shoalv1.Task))
	}
	for _, c := range p.Delete {
		for i, x := range s.in.Tasks {
			if x.GetId() == c.Task.GetId() {
				s.in.Tasks = append(s.in.Tasks[:i], s.in.Tasks[i+1:]...)
				break
			}
		}
	}
	for _, c := range p.Create {
		n := proto.Clone(c.Task).(*shoalv1.Task)
		if n.NodeId == "" {
			n.NodeId = s.placeOn(n)
		}
		n.Status.State = stAssigned
		s.in.Tasks = append(s.in.Tasks, n)
	}
	s.check()
	return p
}

func (s *rollSim) placeOn(t *shoalv1.Task) string {
	for _, n := range s.in.Nodes {
		if n.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_READY && n.GetSpec().GetAvailability() == shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE {
			return n.GetId()
		}
	}
	return ""
}

func (s *rollSim) set(t *shoalv1.Task, state shoalv1.TaskState) {
	t.Status.State, t.Status.Timestamp = state, timestamppb.New(s.now)
	t.Meta.Version++
}

// runAll is the workers: assigned tasks start, tasks told to stop exit.
func (s *rollSim) runAll() {
	for _, t := range s.in.Tasks {
		s.work(t)
	}
}

func (s *rollSim) work(t *shoalv1.Task) {
	switch st := t.GetStatus().GetState(); {
	case t.GetDesiredState() == stRunning && st == stAssigned:
		s.set(t, stRunning)
	case t.GetDesiredState() > stRunning && !Terminal(st):
		s.set(t, stShutdown)
	}
}

// startOnly starts assigned tasks but leaves stopping ones running (a
// workload that ignores SIGTERM, for its grace period).
func (s *rollSim) startOnly() {
	for _, t := range s.in.Tasks {
		if t.GetDesiredState() == stRunning && t.GetStatus().GetState() == stAssigned {
			s.set(t, stRunning)
		}
	}
}

func (s *rollSim) stopOnly() {
	for _, t := range s.in.Tasks {
		if t.GetDesiredState() > stRunning && !Terminal(t.GetStatus().GetState()) {
			s.set(t, stShutdown)
		}
	}
}

// alive are the tasks whose workload may be running: started, not ended.
func (s *rollSim) alive() []*shoalv1.Task {
	var out []*shoalv1.Task
	for _, t := range s.in.Tasks {
		if st := t.GetStatus().GetState(); st >= stAssigned && !Terminal(st) {
			out = append(out, t)
		}
	}
	return out
}

func key(t *shoalv1.Task) string {
	return fmt.Sprintf("%d/%s", t.GetSlot(), map[bool]string{true: t.GetNodeId()}[t.GetSlot() == 0])
}

// check holds after every pass: no slot has two tasks of the same
// spec active; under stop-first no slot has an old and a new task alive.
func (s *rollSim) check() {
	s.t.Helper()
	svc := s.svc()
	cfg := configFor(svc)
	active := map[string][]*shoalv1.Task{}
	for _, t := range s.in.Tasks {
		if t.GetDesiredState() == stRunning {
			active[key(t)] = append(active[key(t)], t)
		}
	}
	for k, ts := range active {
		cur := 0
		for _, t := range ts {
			if specCurrent(svc, t) {
				cur++
			}
		}
		if cur > 1 || len(ts)-cur > 1 {
			s.t.Fatalf("at +%v slot %s has active tasks %v", s.now.Sub(t0), k, taskStates(ts))
		}
	}
	if !cfg.startFirst {
		for _, t := range s.in.Tasks {
			if s.aliveBoth(key(t)) {
				s.t.Fatalf("stop-first: at +%v slot %s has an old and a new task alive: %v", s.now.Sub(t0), key(t), taskStates(s.alive()))
			}
		}
	}
	if n := s.inFlight(); n > s.maxInFlight {
		s.maxInFlight = n
	}
}

func (s *rollSim) aliveBoth(k string) bool {
	var old, cur bool
	up := map[string]bool{}
	for _, n := range s.in.Nodes {
		up[n.GetId()] = n.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_READY
	}
	for _, t := range s.alive() {
		if key(t) == k && up[t.GetNodeId()] {
			if specCurrent(s.svc(), t) {
				cur = true
			} else {
				old = true
			}
		}
	}
	return old && cur
}

// inFlight counts the slots between their old task being stopped (or a
// new task made) and the new task having settled.
func (s *rollSim) inFlight() int {
	svc := s.svc()
	cfg := configFor(svc)
	bySlot := map[string][]*shoalv1.Task{}
	for _, t := range s.in.Tasks {
		bySlot[key(t)] = append(bySlot[key(t)], t)
	}
	n := 0
	started := s.svc().GetUpdateStatus().GetStartedAt().AsTime()
	for _, ts := range bySlot {
		sort.Slice(ts, func(i, j int) bool { return newer(ts[i], ts[j]) })
		newest := ts[0]
		failed := false
		for _, t := range ts {
			failed = failed || (specCurrent(svc, t) && !created(t).Before(started) && failedTask(t))
		}
		if failed && cfg.action == actContinue {
			continue // with continue, a failed slot does not hold the update
		}
		switch {
		case !specCurrent(svc, newest):
			if newest.GetDesiredState() == stShutdown && !Terminal(newest.GetStatus().GetState()) {
				n++ // stopping for its replacement
			}
		case newest.GetDesiredState() == stRunning:
			at, ok := readyAt(newest)
			if (!ok || s.now.Before(at.Add(cfg.monitor))) && !created(newest).Before(s.svc().GetUpdateStatus().GetStartedAt().AsTime()) {
				n++
			}
		}
	}
	return n
}

func (s *rollSim) settled(t *shoalv1.Task) bool {
	at, ok := readyAt(t)
	return ok && !s.now.Before(at.Add(configFor(s.svc()).monitor))
}

func taskStates(ts []*shoalv1.Task) string {
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%s(%s %v/%v)", t.GetId(), t.GetSpec().GetContainer().GetImage(), t.GetDesiredState(), t.GetStatus().GetState()))
	}
	return strings.Join(out, " ")
}

// update changes the service's spec as the control API does.
func (s *rollSim) update(edit func(*shoalv1.ServiceSpec)) {
	cur := s.svc()
	next := proto.Clone(cur).(*shoalv1.Service)
	next.PreviousSpec = cur.GetSpec()
	edit(next.Spec)
	next.Meta.Version++
	next.UpdateStatus = &shoalv1.UpdateStatus{State: usUpdating, StartedAt: timestamppb.New(s.now), Message: msgUpdating}
	s.in.Services[0] = next
	s.maxInFlight = 0
}

// counts are the active tasks of the new and the old spec.
func (s *rollSim) counts() (cur, old int) {
	for _, t := range s.in.Tasks {
		if t.GetDesiredState() != stRunning {
			continue
		}
		if specCurrent(s.svc(), t) {
			cur++
		} else {
			old++
		}
	}
	return cur, old
}

func (s *rollSim) state() updateState { return s.svc().GetUpdateStatus().GetState() }

func withUpdate(s *shoalv1.Service, c *shoalv1.UpdateConfig) *shoalv1.Service {
	s.Spec.Update = c
	return s
}

func image(img string) func(*shoalv1.ServiceSpec) {
	return func(s *shoalv1.ServiceSpec) { s.Task.Container.Image = img }
}

// Stop-first, one at a time: the old task exits before its replacement
// is made, the next slot goes only once the new task has run for the
// monitor period, and the update completes.
func TestUpdateStopFirst(t *testing.T) {
	s := newRollSim(t, svc("web", 3), ready("n1"))
	s.update(image("img:2"))
	for slot := 1; slot <= 3; slot++ {
		p := s.pass()
		if len(p.Update) != 1 || p.Update[0].Task.GetDesiredState() != stShutdown || len(p.Create) != 0 {
			t.Fatalf("slot %d: stopped %v, created %d; want one old task stopped and nothing made yet", slot, idsOf(p.Update), len(p.Create))
		}
		// The old task takes its time to exit: no replacement meanwhile.
		s.now = s.now.Add(10 * time.Second)
		if p := s.pass(); len(p.Create) != 0 {
			t.Fatalf("slot %d: a replacement while the old task still runs: %v", slot, p.Create)
		}
		s.stopOnly()
		p = s.pass()
		if len(p.Create) != 1 || p.Create[0].Task.GetSpec().GetContainer().GetImage() != "img:2" {
			t.Fatalf("slot %d: once the old task exited, created %v; want its replacement with img:2", slot, p.Create)
		}
		s.startOnly()
		p = s.pass()
		if len(p.Update)+len(p.Create) != 0 || !p.Wake.Equal(s.now.Add(DefaultUpdateMonitor)) {
			t.Fatalf("slot %d: new task running: %v/%v, wake %v; want nothing before the monitor period ends at +5s", slot, p.Update, p.Create, p.Wake.Sub(s.now))
		}
		s.now = s.now.Add(DefaultUpdateMonitor)
	}
	s.pass()
	if s.state() != usCompleted || s.svc().GetUpdateStatus().GetMessage() != "update completed" || s.svc().GetUpdateStatus().GetCompletedAt() == nil {
		t.Fatalf("after 3 slots: status %v; want completed", s.svc().GetUpdateStatus())
	}
	if cur, old := s.counts(); cur != 3 || old != 0 || s.maxInFlight != 1 {
		t.Fatalf("after the update: %d new, %d old active, at most %d in flight; want 3, 0, 1", cur, old, s.maxInFlight)
	}
}

// Start-first: the new task is made at once, the old one keeps running
// until the new one is healthy, then stops.
func TestUpdateStartFirst(t *testing.T) {
	s := newRollSim(t, withUpdate(svc("web", 2), &shoalv1.UpdateConfig{Parallelism: 1, Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST, Monitor: durationpb.New(time.Second)}), ready("n1"))
	s.update(image("img:2"))
	for slot := 1; slot <= 2; slot++ {
		p := s.pass()
		if len(p.Create) != 1 || len(p.Update) != 0 {
			t.Fatalf("slot %d: created %d stopped %v; want the new task made and the old one kept", slot, len(p.Create), idsOf(p.Update))
		}
		fresh := s.in.Tasks[len(s.in.Tasks)-1]
		s.startOnly()
		fresh.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_STARTING, Since: timestamppb.New(s.now)}
		s.now = s.now.Add(time.Second)
		if p := s.pass(); len(p.Update) != 0 {
			t.Fatalf("slot %d: new task starting (health starting): stopped %v; want the old task kept", slot, idsOf(p.Update))
		}
		if cur, old := s.counts(); cur+old != 3 {
			t.Fatalf("slot %d: %d active tasks during start-first; want 3", slot, cur+old)
		}
		fresh.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_HEALTHY, Since: timestamppb.New(s.now)}
		p = s.pass()
		if len(p.Update) != 1 || specCurrent(s.svc(), p.Update[0].Task) || p.Update[0].Task.GetSlot() != fresh.GetSlot() {
			t.Fatalf("slot %d: new task healthy: stopped %v; want the slot's old task stopped", slot, idsOf(p.Update))
		}
		s.runAll()
		s.now = s.now.Add(time.Second)
	}
	s.pass()
	if s.state() != usCompleted {
		t.Fatalf("status %v; want completed", s.svc().GetUpdateStatus())
	}
}

// If the new task of a start-first pair fails before it is ready, the old
// one keeps serving; its retries (never healthy) do not stop it either.
func TestUpdateStartFirstFailureKeepsOld(t *testing.T) {
	s := newRollSim(t, withUpdate(svc("web", 2), &shoalv1.UpdateConfig{Parallelism: 1, Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST}), ready("n1"))
	s.update(image("bad"))
	start := func() {
		for _, tk := range s.in.Tasks {
			if tk.GetDesiredState() == stRunning && tk.GetStatus().GetState() == stAssigned {
				s.set(tk, stRunning)
				tk.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_STARTING}
			}
		}
	}
	s.pass()
	fresh := s.in.Tasks[len(s.in.Tasks)-1]
	start()
	s.pass()
	s.set(fresh, stFailed)
	s.pass()
	if s.state() != usPaused || s.svc().GetUpdateStatus().GetMessage() != "update paused due to failure or early termination of task "+fresh.GetId() {
		t.Fatalf("status %v; want paused naming %s", s.svc().GetUpdateStatus(), fresh.GetId())
	}
	for i := 0; i < 5; i++ {
		s.now = s.now.Add(time.Minute)
		s.pass()
		start()
	}
	if cur, old := s.counts(); old != 2 || cur != 1 {
		t.Fatalf("after the new task failed: %d old, %d new active; want both old tasks still serving beside the retried new one", old, cur)
	}
}

// Parallelism 2 of 6 never has more than 2 slots in flight, and a delay
// spaces the batches (Wake set for it).
func TestUpdateParallelismAndDelay(t *testing.T) {
	s := newRollSim(t, withUpdate(svc("web", 6), &shoalv1.UpdateConfig{Parallelism: 2, Delay: durationpb.New(3 * time.Second), Monitor: durationpb.New(time.Second)}), ready("n1"))
	s.update(image("img:2"))
	p := s.pass()
	if len(p.Update) != 2 {
		t.Fatalf("first batch stopped %v; want 2", idsOf(p.Update))
	}
	s.runAll()
	s.pass()
	s.runAll()
	s.pass()
	s.now = s.now.Add(time.Second) // both settled: the delay runs from now
	if p := s.pass(); len(p.Update) != 0 || !p.Wake.Equal(s.now.Add(3*time.Second)) {
		t.Fatalf("batch settled: stopped %v wake %v; want nothing until the delay ends at +3s", idsOf(p.Update), p.Wake.Sub(s.now))
	}
	s.now = s.now.Add(3 * time.Second)
	if p := s.pass(); len(p.Update) != 2 {
		t.Fatalf("after the delay: stopped %v; want the next 2", idsOf(p.Update))
	}
	for i := 0; i < 40 && s.state() == usUpdating; i++ {
		s.runAll()
		s.pass()
		s.now = s.now.Add(time.Second)
	}
	if s.state() != usCompleted || s.maxInFlight != 2 {
		t.Fatalf("status %v, at most %d in flight; want completed with 2", s.state(), s.maxInFlight)
	}
	// Parallelism 0 is all at once.
	s = newRollSim(t, withUpdate(svc("web", 6), &shoalv1.UpdateConfig{Parallelism: 0}), ready("n1"))
	s.update(image("img:2"))
	if p := s.pass(); len(p.Update) != 6 {
		t.Fatalf("parallelism 0: stopped %d; want 6", len(p.Update))
	}
}

func failOnStart(s *rollSim, img string) {
	for _, t := range s.in.Tasks {
		if t.GetSpec().GetContainer().GetImage() == img && t.GetStatus().GetState() == stRunning && t.GetDesiredState() == stRunning {
			s.set(t, stFailed)
		}
	}
}

// A failing new task: pause stops the update where it is, continue goes
// on, rollback returns the service to its previous spec and completes.
func TestUpdateFailureActions(t *testing.T) {
	for _, tc := range []struct {
		action shoalv1.UpdateFailureAction
		want   updateState
		msg    string
	}{
		{actPause, usPaused, "update paused due to failure or early termination of task "},
		{actContinue, usCompleted, "update completed"},
		{actRollback, usRollbackCompleted, "rollback completed"},
	} {
		t.Run(tc.action.String(), func(t *testing.T) {
			s := newRollSim(t, withUpdate(svc("web", 3), &shoalv1.UpdateConfig{Parallelism: 1, FailureAction: tc.action, Monitor: durationpb.New(time.Second)}), ready("n1"))
			s.update(image("bad"))
			var sawRollback bool
			for i := 0; i < 60; i++ {
				s.runAll()
				failOnStart(s, "bad")
				s.pass()
				sawRollback = sawRollback || s.state() == usRollbackStarted
				s.now = s.now.Add(time.Second)
			}
			for i := 0; i < 5; i++ { // the image fixed: what is left runs
				s.runAll()
				s.pass()
				s.now = s.now.Add(time.Minute)
			}
			st := s.svc().GetUpdateStatus()
			if st.GetState() != tc.want || !strings.HasPrefix(st.GetMessage(), tc.msg) {
				t.Fatalf("status %v; want %v %q", st, tc.want, tc.msg)
			}
			cur, old := s.counts()
			switch tc.want {
			case usPaused:
				// One slot tried the bad image (and retries it); two keep the old.
				if old != 2 {
					t.Fatalf("paused: %d old active; want 2", old)
				}
			case usCompleted:
				if cur != 3 || s.svc().GetSpec().GetTask().GetContainer().GetImage() != "bad" {
					t.Fatalf("continue: %d new active; want 3 of the new spec", cur)
				}
			case usRollbackCompleted:
				if !sawRollback || s.svc().GetSpec().GetTask().GetContainer().GetImage() != "img:1" ||
					s.svc().GetPreviousSpec().GetTask().GetContainer().GetImage() != "bad" || cur != 3 {
					t.Fatalf("rollback: spec %s (previous %s), %d active of it; want img:1 back on 3 slots",
						s.svc().GetSpec().GetTask().GetContainer().GetImage(), s.svc().GetPreviousSpec().GetTask().GetContainer().GetImage(), cur)
				}
			}
		})
	}
}

// The message of an automatic rollback names the task, in docker's words.
func TestUpdateAutoRollbackStatus(t *testing.T) {
	s := newRollSim(t, withUpdate(svc("web", 2), &shoalv1.UpdateConfig{Parallelism: 1, FailureAction: actRollback}), ready("n1"))
	s.update(image("bad"))
	s.pass()
	s.runAll()
	s.pass()
	fresh := s.in.Tasks[len(s.in.Tasks)-1]
	s.runAll()
	fresh.Status.Restarts = 1 // restarted in place: a failure
	p := s.pass()
	if len(p.Services) != 1 || !p.Services[0].Respec || len(p.Create)+len(p.Update) != 0 {
		t.Fatalf("failed task: plan %+v; want only the service rolled back", p)
	}
	st := s.svc().GetUpdateStatus()
	if st.GetState() != usRollbackStarted || st.GetMessage() != "update rolled back due to failure or early termination of task "+fresh.GetId() {
		t.Fatalf("status %v; want rollback_started naming %s", st, fresh.GetId())
	}
	// The rollback uses the rollback config; a failure in it pauses.
	s.svc().Spec.Rollback = &shoalv1.UpdateConfig{Parallelism: 1, Order: shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST}
	s.pass()
	s.runAll()
	s.pass()
	s.runAll()
	back := s.in.Tasks[len(s.in.Tasks)-1]
	back.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_UNHEALTHY}
	s.pass()
	if st := s.svc().GetUpdateStatus(); st.GetState() != usRollbackPaused || st.GetMessage() != "rollback paused due to failure or early termination of task "+back.GetId() {
		t.Fatalf("rollback's task unhealthy: %v; want rollback_paused naming %s", st, back.GetId())
	}
}

// A paused update makes no new replacements; resumed (status updating
// again, as the control API sets it), it goes on.
func TestUpdateResumeFromPause(t *testing.T) {
	s := newRollSim(t, withUpdate(svc("web", 3), &shoalv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Second)}), ready("n1"))
	s.update(image("img:2"))
	s.pass()
	s.svc().UpdateStatus.State = usPaused
	for i := 0; i < 10; i++ {
		s.runAll()
		s.pass()
		s.now = s.now.Add(time.Second)
	}
	if cur, old := s.counts(); cur != 1 || old != 2 || s.state() != usPaused {
		t.Fatalf("paused: %d new, %d old, %v; want the slot under way finished, no other (1, 2, paused)", cur, old, s.state())
	}
	s.svc().UpdateStatus = &shoalv1.UpdateStatus{State: usUpdating, StartedAt: timestamppb.New(s.now), Message: "update resumed"}
	for i := 0; i < 20 && s.state() == usUpdating; i++ {
		s.runAll()
		s.pass()
		s.now = s.now.Add(time.Second)
	}
	if cur, _ := s.counts(); cur != 3 || s.state() != usCompleted {
		t.Fatalf("resumed: %d new, %v; want 3, completed", cur, s.state())
	}
}

// --force (a raised force_update) replaces every task with the same spec.
func TestUpdateForce(t *testing.T) {
	s := newRollSim(t, svc("web", 2), ready("n1"))
	before := map[string]bool{}
	for _, t := range s.in.Tasks {
		before[t.GetId()] = true
	}
	s.update(func(sp *shoalv1.ServiceSpec) { sp.Task.ForceUpdate++ })
	for i := 0; i < 30 && s.state() != usCompleted; i++ {
		s.runAll()
		s.pass()
		s.now = s.now.Add(time.Second)
	}
	for _, tk := range s.in.Tasks {
		if tk.GetDesiredState() == stRunning && before[tk.GetId()] {
			t.Fatalf("task %s still active after --force", tk.GetId())
		}
	}
	if cur, _ := s.counts(); cur != 2 || s.state() != usCompleted {
		t.Fatalf("force: %d new active, %v; want 2, completed", cur, s.state())
	}
}

// A new leader reconciling the same store state mid-update decides the
// same and makes no duplicate: every pass of the update run twice.
func TestUpdateNewLeaderNoDuplicate(t *testing.T) {
	for _, order := range []shoalv1.UpdateOrder{shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST, shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST} {
		s := newRollSim(t, withUpdate(svc("web", 3), &shoalv1.UpdateConfig{Parallelism: 2, Order: order}), ready("n1"))
		s.update(image("img:2"))
		for i := 0; i < 40 && s.state() != usCompleted; i++ {
			first := Reconcile(s.in, s.now, ids())
			second := Reconcile(s.in, s.now, ids())
			if len(first.Create) != len(second.Create) || fmt.Sprint(idsOf(first.Update)) != fmt.Sprint(idsOf(second.Update)) || len(first.Services) != len(second.Services) {
				t.Fatalf("%v step %d: two leaders decide differently: %+v / %+v", order, i, first, second)
			}
			s.pass()
			// The old leader's plan applied, then the new leader's pass on
			// the result must not make another task for the same slots.
			if p := Reconcile(s.in, s.now, ids()); len(p.Create) > 0 {
				t.Fatalf("%v step %d: after applying, the next pass creates %v again", order, i, slotsOf(p.Create))
			}
			s.runAll()
			s.pass()
			s.now = s.now.Add(2 * time.Second)
		}
		if cur, old := s.counts(); cur != 3 || old != 0 || s.state() != usCompleted {
			t.Fatalf("%v: %d new %d old active, %v; want 3, 0, completed", order, cur, old, s.state())
		}
	}
}

// Scaling during an update: new slots get the new spec, the update still
// completes with exactly the replicas asked for.
func TestUpdateWhileScaling(t *testing.T) {
	s := newRollSim(t, withUpdate(svc("web", 3), &shoalv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Second)}), ready("n1"))
	s.update(image("img:2"))
	s.pass()
	s.svc().Spec.GetReplicated().Replicas = 5
	for i := 0; i < 40 && s.state() != usCompleted; i++ {
		s.runAll()
		s.pass()
		s.now = s.now.Add(time.Second)
	}
	if cur, old := s.counts(); cur != 5 || old != 0 {
		t.Fatalf("scaled to 5 during the update: %d new %d old; want 5, 0", cur, old)
	}
	s.svc().Spec.GetReplicated().Replicas = 2
	s.pass()
	s.runAll()
	s.pass()
	if cur, old := s.counts(); cur != 2 || old != 0 {
		t.Fatalf("scaled to 2: %d new %d old; want 2, 0", cur, old)
	}
}

// Random worker outcomes never put more than parallelism slots in flight
// (without node losses, which replace tasks beside the update), never
// leave a slot with an old and a new task both alive under stop-first
// (see check), and always end completed, paused or rolled back with
// exactly the replicas asked for.
func TestUpdateProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(14))
	for run := 0; run < 100; run++ {
		replicas := 1 + rng.Intn(6)
		par := uint64(rng.Intn(4))
		cfg := &shoalv1.UpdateConfig{
			Parallelism:     par,
			Monitor:         durationpb.New(time.Duration(rng.Intn(3)) * time.Second),
			Delay:           durationpb.New(time.Duration(rng.Intn(2)) * time.Second),
			FailureAction:   []shoalv1.UpdateFailureAction{actPause, actContinue, actRollback}[rng.Intn(3)],
			MaxFailureRatio: []float32{0, 0.2, 0.5}[rng.Intn(3)],
			Order:           shoalv1.UpdateOrder(1 + rng.Intn(2)),
		}
		nodesDown := rng.Intn(4) == 0
		nodes := []*shoalv1.Node{ready("n1"), ready("n2"), ready("n3")}
		sv := withUpdate(svc("web", int64(replicas)), cfg)
		sv.Spec.Rollback = proto.Clone(cfg).(*shoalv1.UpdateConfig)
		sv.Spec.Rollback.FailureAction = actPause
		s := newRollSim(t, sv, nodes...)
		badness := rng.Float64() * 0.5
		s.update(image("img:2"))
		for step := 0; step < 200; step++ {
			for _, tk := range s.in.Tasks {
				st := tk.GetStatus().GetState()
				switch r := rng.Float64(); {
				case tk.GetDesiredState() == stRunning && st == stAssigned && r < 0.6:
					s.set(tk, stRunning)
					if tk.GetSpec().GetContainer().GetImage() == "img:2" && rng.Float64() < 0.3 {
						tk.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_STARTING}
					}
				case tk.GetDesiredState() == stRunning && st == stRunning && tk.GetStatus().GetHealth().GetState() == shoalv1.HealthState_HEALTH_STATE_STARTING && r < 0.5:
					tk.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_HEALTHY, Since: timestamppb.New(s.now)}
					tk.Meta.Version++
				case tk.GetDesiredState() == stRunning && st == stRunning && tk.GetSpec().GetContainer().GetImage() == "img:2" && r < badness*0.1 && !s.settled(tk):
					// Failures before a task settled (after it, the task
					// is no longer the update's).
					s.set(tk, stFailed)
				case tk.GetDesiredState() > stRunning && !Terminal(st) && r < 0.5:
					s.set(tk, stShutdown)
				}
			}
			if nodesDown && rng.Intn(20) == 0 {
				i := rng.Intn(3)
				st := shoalv1.NodeState_NODE_STATE_READY
				if s.in.Nodes[i].GetStatus().GetState() == st {
					st = shoalv1.NodeState_NODE_STATE_DOWN
				}
				s.in.Nodes[i] = node(s.in.Nodes[i].GetId(), st, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)
			}
			s.pass()
			s.now = s.now.Add(500 * time.Millisecond)
			if st := s.state(); st != usUpdating && st != usRollbackStarted && step > 20 {
				break
			}
		}
		// Let the workers and nodes settle.
		for i := range s.in.Nodes {
			s.in.Nodes[i] = ready(s.in.Nodes[i].GetId())
		}
		badness = 0
		for i := 0; i < 60; i++ {
			s.runAll()
			s.pass()
			s.now = s.now.Add(time.Second)
		}
		desc := fmt.Sprintf("run %d (replicas %d, %v, nodes down %v)", run, replicas, cfg, nodesDown)
		limit := int(par)
		if par == 0 {
			limit = replicas
		}
		if !nodesDown && s.maxInFlight > limit {
			t.Fatalf("%s: %d slots in flight at once; want at most %d", desc, s.maxInFlight, limit)
		}
		switch s.state() {
		case usCompleted, usPaused, usRollbackCompleted, usRollbackPaused:
		default:
			t.Fatalf("%s: ended %v; want completed, paused or rolled back", desc, s.svc().GetUpdateStatus())
		}
		active := map[uint64]int{}
		for _, tk := range s.in.Tasks {
			if tk.GetDesiredState() == stRunning {
				active[tk.GetSlot()]++
			}
		}
		if len(active) != replicas {
			t.Fatalf("%s: active slots %v; want %d", desc, active, replicas)
		}
		for slot, n := range active {
			if n != 1 {
				t.Fatalf("%s: slot %d has %d active tasks", desc, slot, n)
			}
		}
	}
}

// A global service rolls start-first node by node: each node runs its old
// task until the new one beside it is healthy.
func TestUpdateGlobalStartFirst(t *testing.T) {
	g := global("agent")
	g.Spec.Update = &shoalv1.UpdateConfig{Parallelism: 1, Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST, Monitor: durationpb.New(time.Second)}
	s := newRollSim(t, g, ready("n1"), ready("n2"))
	s.update(image("img:2"))
	for i := 0; i < 2; i++ {
		p := s.pass()
		if len(p.Create) != 1 || len(p.Update) != 0 {
			t.Fatalf("node %d: created %v stopped %v; want a new task beside the old one", i, p.Create, idsOf(p.Update))
		}
		fresh := s.in.Tasks[len(s.in.Tasks)-1]
		s.startOnly()
		fresh.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_STARTING}
		if p := s.pass(); len(p.Update) != 0 {
			t.Fatalf("node %d: new task not healthy yet, stopped %v", i, idsOf(p.Update))
		}
		fresh.Status.Health = &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_HEALTHY, Since: timestamppb.New(s.now)}
		p = s.pass()
		if len(p.Update) != 1 || p.Update[0].Task.GetNodeId() != fresh.GetNodeId() || specCurrent(s.svc(), p.Update[0].Task) {
			t.Fatalf("node %d: new task healthy: stopped %v; want the old task on %s", i, idsOf(p.Update), fresh.GetNodeId())
		}
		s.runAll()
		s.now = s.now.Add(time.Second)
	}
	s.pass()
	if cur, old := s.counts(); cur != 2 || old != 0 || s.state() != usCompleted {
		t.Fatalf("global start-first: %d new %d old, %v; want 2, 0, completed", cur, old, s.state())
	}
}
