// Package orchestrator is the leader's brain for services: a pure
// reconciliation (Reconcile: a snapshot of services, tasks and nodes and
// the time in; tasks to create, update and delete out, with reasons), the
// placement of pending tasks through the pure scheduler (Schedule), and
// the loop that applies both in Raft batches and re-runs them as the store
// changes (Orchestrator). Only the loop touches the store.
package orchestrator

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/scheduler"
)

// Defaults of the manager-level replacement of failed tasks. The worker
// restarts a task locally first (fast); the manager replaces a task that
// failed for good after a delay that doubles with each recent failure of
// the same slot, so a broken image does not crash-loop hot across nodes.
const (
	DefaultReplaceDelay = time.Second
	MaxReplaceDelay     = 30 * time.Second
	DefaultWindow       = 10 * time.Minute
	DefaultHistory      = 5
)

// Input is the snapshot Reconcile decides on.
type Input struct {
	Services     []*shoalv1.Service
	Tasks        []*shoalv1.Task
	Nodes        []*shoalv1.Node
	HistoryLimit int
}

// Change is one task write with the reason for it.
type Change struct {
	Task   *shoalv1.Task
	Reason string
}

// Plan is what Reconcile decided.
type Plan struct {
	Create []Change
	Update []Change
	Delete []Change
	// Services are service writes (a rolling update's status, the spec
	// swap of an automatic rollback), each guarded by the version read.
	Services []ServiceChange
	// Wake is when a delayed replacement falls due (zero: none).
	Wake time.Time
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	return len(p.Create)+len(p.Update)+len(p.Delete)+len(p.Services) == 0
}

func (p *Plan) wakeAt(t time.Time) {
	if p.Wake.IsZero() || t.Before(p.Wake) {
		p.Wake = t
	}
}

type st = shoalv1.TaskState

const (
	stNew      = shoalv1.TaskState_TASK_STATE_NEW
	stPending  = shoalv1.TaskState_TASK_STATE_PENDING
	stAssigned = shoalv1.TaskState_TASK_STATE_ASSIGNED
	stRunning  = shoalv1.TaskState_TASK_STATE_RUNNING
	stComplete = shoalv1.TaskState_TASK_STATE_COMPLETE
	stShutdown = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	stFailed   = shoalv1.TaskState_TASK_STATE_FAILED
	stRejected = shoalv1.TaskState_TASK_STATE_REJECTED
	stRemove   = shoalv1.TaskState_TASK_STATE_REMOVE
	stOrphaned = shoalv1.TaskState_TASK_STATE_ORPHANED
)

// Terminal reports whether a task's observed state is final.
func Terminal(s st) bool {
	switch s {
	case stComplete, stShutdown, stFailed, stRejected, stOrphaned:
		return true
	}
	return false
}

// started reports whether a worker may have started the task.
func started(s st) bool { return s > stAssigned }

// restartable says whether a task that ended in s while meant to run gets
// a replacement under condition c.
func restartable(s st, c shoalv1.RestartCondition) bool {
	switch s {
	case stComplete:
		return c == shoalv1.RestartCondition_RESTART_CONDITION_ANY || c == shoalv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED
	case stFailed, stShutdown, stRejected, stOrphaned:
		return c != shoalv1.RestartCondition_RESTART_CONDITION_NONE
	}
	return false
}

func created(t *shoalv1.Task) time.Time { return t.GetMeta().GetCreatedAt().AsTime() }

func statusTime(t *shoalv1.Task) time.Time {
	if ts := t.GetStatus().GetTimestamp(); ts != nil {
		return ts.AsTime()
	}
	return created(t)
}

// newer orders tasks newest first.
func newer(a, b *shoalv1.Task) bool {
	if ca, cb := created(a), created(b); !ca.Equal(cb) {
		return ca.After(cb)
	}
	return a.GetId() > b.GetId()
}

// nodeView is what reconciliation needs to know of a node.
type nodeView struct {
	node    *shoalv1.Node
	usable  bool   // ready and not drained: its tasks may keep running
	newOK   bool   // also active: it may take new tasks
	problem string // why its tasks must move
}

func viewNodes(nodes []*shoalv1.Node) map[string]nodeView {
	out := make(map[string]nodeView, len(nodes))
	for _, n := range nodes {
		v := nodeView{node: n}
		ready := n.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_READY
		switch a := n.GetSpec().GetAvailability(); {
		case !ready:
			v.problem = "node is down"
		case a == shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
			v.problem = "node is drained"
		default:
			v.usable = true
			v.newOK = a != shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE
		}
		out[n.GetId()] = v
	}
	return out
}

type reconciler struct {
	in      Input
	now     time.Time
	newID   func() string
	nodes   map[string]nodeView
	plan    Plan
	touched map[string]bool // task IDs already changed in this plan
	ts      *timestamppb.Timestamp
}

// Reconcile decides what to change so that every service has the tasks
// its spec asks for. newID makes task IDs.
func Reconcile(in Input, now time.Time, newID func() string) Plan {
	r := &reconciler{in: in, now: now, newID: newID, nodes: viewNodes(in.Nodes), touched: map[string]bool{}, ts: timestamppb.New(now)}
	byService := map[string][]*shoalv1.Task{}
	for _, t := range in.Tasks {
		byService[t.GetServiceId()] = append(byService[t.GetServiceId()], t)
	}
	// Services and the services of tasks, in ID order, without a map or
	// a sort of every service: the store lists them in ID order already.
	services := in.Services
	if !slices.IsSortedFunc(services, func(a, b *shoalv1.Service) int { return strings.Compare(a.GetId(), b.GetId()) }) {
		services = slices.Clone(services)
		slices.SortFunc(services, func(a, b *shoalv1.Service) int { return strings.Compare(a.GetId(), b.GetId()) })
	}
	have := make(map[string]bool, len(byService))
	for _, svc := range services {
		if _, ok := byService[svc.GetId()]; ok {
			have[svc.GetId()] = true
		}
	}
	var gone []string // services of tasks whose service was removed
	for id := range byService {
		if !have[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for i, j := 0, 0; i < len(services) || j < len(gone); {
		if j < len(gone) && (i == len(services) || gone[j] < services[i].GetId()) {
			r.removeAll(byService[gone[j]], "service removed")
			j++
			continue
		}
		svc := services[i]
		i++
		switch tasks := byService[svc.GetId()]; {
		case svc.GetSpec().GetGlobal() != nil:
			r.global(svc, tasks)
		case svc.GetSpec().GetReplicatedJob() != nil:
			r.replicatedJob(svc, tasks) // jobs.go
		case svc.GetSpec().GetGlobalJob() != nil:
			r.globalJob(svc, tasks)
		default:
			r.replicated(svc, tasks)
		}
	}
	r.trimHistory()
	return r.plan
}

// update changes a task's desired state and returns the changed copy,
// nil when the plan already changes the task.
func (r *reconciler) update(t *shoalv1.Task, desired st, reason string) *shoalv1.Task {
	if r.touched[t.GetId()] {
		return nil
	}
	r.touched[t.GetId()] = true
	n := proto.Clone(t).(*shoalv1.Task)
	n.DesiredState = desired
	if n.Status == nil {
		n.Status = &shoalv1.TaskStatus{}
	}
	if !started(n.GetStatus().GetState()) && !Terminal(n.GetStatus().GetState()) {
		// Never reached a worker: it ends here.
		n.Status.State = stShutdown
		n.Status.Timestamp = r.ts
	}
	n.Status.Message = reason
	r.plan.Update = append(r.plan.Update, Change{Task: n, Reason: reason})
	return n
}

func (r *reconciler) remove(t *shoalv1.Task, reason string) {
	if r.touched[t.GetId()] {
		return
	}
	r.touched[t.GetId()] = true
	r.plan.Delete = append(r.plan.Delete, Change{Task: t, Reason: reason})
}

// retire takes a task that must stop for good (scale down, service
// removed): deleted at once if it never started or already ended,
// otherwise marked for removal so its worker stops it first.
func (r *reconciler) retire(t *shoalv1.Task, reason string) {
	s := t.GetStatus().GetState()
	if !started(s) || Terminal(s) {
		r.remove(t, reason)
		return
	}
	if t.GetDesiredState() != stRemove {
		r.update(t, stRemove, reason)
	}
}

func (r *reconciler) removeAll(tasks []*shoalv1.Task, reason string) {
	for _, t := range tasks {
		r.retire(t, reason)
	}
}

func (r *reconciler) newTask(svc *shoalv1.Service, slot uint64, node, reason string) *shoalv1.Task {
	t := &shoalv1.Task{
		Id:          r.newID(),
		Meta:        &shoalv1.Meta{CreatedAt: r.ts, UpdatedAt: r.ts},
		ServiceId:   svc.GetId(),
		ServiceName: svc.GetSpec().GetName(),
		// Copied for the task's templates, as swarmkit's annotations.
		ServiceLabels: maps.Clone(svc.GetSpec().GetLabels()),
		Slot:          slot,
		NodeId:        node,
		Spec:          proto.Clone(svc.GetSpec().GetTask()).(*shoalv1.TaskSpec),
		Endpoint:      proto.Clone(svc.GetSpec().GetEndpoint()).(*shoalv1.EndpointSpec),
		DesiredState:  stRunning,
		Status:        &shoalv1.TaskStatus{State: stNew, Timestamp: r.ts, Message: reason},
	}
	r.plan.Create = append(r.plan.Create, Change{Task: t, Reason: reason})
	return t
}

// replaceDelay is the manager-level delay before replacing a task of a
// slot whose history holds failures.
func (r *reconciler) replaceDelay(svc *shoalv1.Service, history []*shoalv1.Task) time.Duration {
	rp := svc.GetSpec().GetTask().GetRestart()
	base := rp.GetDelay().AsDuration()
	if rp.GetDelay() == nil {
		base = DefaultReplaceDelay
	}
	window := rp.GetWindow().AsDuration()
	if window <= 0 {
		window = DefaultWindow
	}
	failures := 0
	for _, t := range history {
		if s := t.GetStatus().GetState(); (s == stFailed || s == stRejected) && r.now.Sub(statusTime(t)) <= window {
			failures++
		}
	}
	d := base
	for i := 1; i < failures && d < MaxReplaceDelay; i++ {
		d *= 2
	}
	if d > MaxReplaceDelay {
		d = MaxReplaceDelay
	}
	return d
}

// pick sorts a slot's tasks newest first and returns its primary task
// (the one the slot is judged by: the newest, or an older task that runs
// the service's current spec again after a rollback) and, during a
// start-first replacement, the old task kept running until the new one is
// ready. Other active tasks of the slot (a leader change mid-way could
// leave them) are shut down.
func (r *reconciler) pick(svc *shoalv1.Service, tasks []*shoalv1.Task) (primary, held *shoalv1.Task) {
	sort.Slice(tasks, func(i, j int) bool { return newer(tasks[i], tasks[j]) })
	primary = tasks[0]
	var cur, old *shoalv1.Task // the newest active task of the current spec, of an older one
	for _, t := range tasks {
		if t.GetDesiredState() != stRunning {
			continue
		}
		if specCurrent(svc, t) {
			if cur == nil {
				cur = t
			}
		} else if old == nil {
			old = t
		}
	}
	if cur != nil && !specCurrent(svc, primary) {
		primary = cur // rolled back: the older task is what the slot wants
	}
	if old != nil && old != primary && specCurrent(svc, primary) && newer(primary, old) {
		// A start-first pair: the old task serves until the new one is
		// ready, unless it is gone itself.
		v, ok := r.nodes[old.GetNodeId()]
		switch {
		case Terminal(old.GetStatus().GetState()):
			r.update(old, stShutdown, "task ended: "+old.GetStatus().GetState().String())
		case old.GetNodeId() != "" && (!ok || !v.usable):
			r.update(old, stShutdown, cmp.Or(v.problem, "node was removed"))
		case primary.GetDesiredState() == stRunning && isReady(primary):
			r.update(old, stShutdown, "service updated: its replacement is ready")
		default:
			held = old
		}
	}
	for _, t := range tasks {
		if t != primary && t != held && t.GetDesiredState() == stRunning {
			why := "superseded by a newer task of the same slot"
			if newer(t, primary) {
				why = "superseded by a task of the service's current spec"
			}
			r.update(t, stShutdown, why)
		}
	}
	return primary, held
}

// offLostNode shuts a task whose node is down, drained or gone and makes
// its replacement, and reports whether it did. Moving a task off a lost
// node is the manager's doing, not a restart: the replacement inherits
// the slot's restart history and adds nothing to it.
func (r *reconciler) offLostNode(svc *shoalv1.Service, latest *shoalv1.Task, makeNew func(reason string, history []time.Time)) bool {
	node := latest.GetNodeId()
	if node == "" {
		return false
	}
	v, ok := r.nodes[node]
	if ok && v.usable {
		return false
	}
	why := v.problem
	if !ok {
		why = "node was removed"
	}
	r.update(latest, stShutdown, why)
	makeNew("replaces a task on a lost node: "+why, slotRestarts(svc, latest, r.now))
	return true
}

// stoppedByManager reports whether a task was stopped because the
// manager wanted it stopped (its node drained, lost or no longer
// eligible), not because it ended by itself: desired shut down, and
// either its worker stopped it on that order or never reported an end.
func stoppedByManager(t *shoalv1.Task) bool {
	s := t.GetStatus().GetState()
	return t.GetDesiredState() == stShutdown && (s == stShutdown || !Terminal(s))
}

// slotState is the outcome of looking at one slot's newest task.
type slotState int

const (
	slotRunning  slotState = iota // an active task, fine
	slotReplaced                  // its task is going; a replacement is made now
	slotWaiting                   // a replacement falls due later
	slotDone                      // ended and not to be restarted
	slotGone                      // removed
)

// slot judges one slot (a replica number, or a node for global services)
// by its primary task latest (see pick), with its tasks newest first, and
// makes the changes it needs. makeNew
// creates a replacement that inherits the slot's restart history.
func (r *reconciler) slot(svc *shoalv1.Service, latest *shoalv1.Task, tasks []*shoalv1.Task, makeNew func(reason string, history []time.Time)) (slotState, *shoalv1.Task) {
	cond := svc.GetSpec().GetTask().GetRestart().GetCondition()
	if latest.GetDesiredState() == stRemove {
		return slotGone, nil
	}
	if latest.GetDesiredState() == stRunning {
		if r.offLostNode(svc, latest, makeNew) {
			return slotReplaced, nil
		}
		s := latest.GetStatus().GetState()
		if !Terminal(s) {
			return slotRunning, latest
		}
		if why := attemptsUsed(svc, latest); why != "" && restartable(s, cond) {
			r.giveUp(latest, why)
			return slotDone, nil
		}
		r.update(latest, stShutdown, "task ended: "+s.String())
		if !restartable(s, cond) {
			return slotDone, nil
		}
		// Fall through to the delayed replacement below; the task's
		// own status time is when it failed.
	} else if !restartable(latest.GetStatus().GetState(), cond) || !Terminal(latest.GetStatus().GetState()) || attemptsUsed(svc, latest) != "" {
		// Shut down by us (update, node loss: a replacement is newer)
		// or ended for good (by its restart policy's condition or
		// attempts).
		return slotDone, nil
	}
	due := statusTime(latest).Add(r.replaceDelay(svc, tasks))
	if r.now.Before(due) {
		r.plan.wakeAt(due)
		return slotWaiting, nil
	}
	// The replacement is a restart of the slot: it counts, now.
	history := slotRestarts(svc, latest, r.now)
	if svc.GetSpec().GetTask().GetRestart().GetMaxAttempts() > 0 {
		history = append(history, r.now)
	}
	makeNew("replaces a failed task", history)
	return slotReplaced, nil
}

// How the restarts of a slot add up against --restart-max-attempts N.
// Swarm counts each new task of a slot as one restart, within the window
// before the failure (window 0: since the spec last changed), and makes
// none once N are used: the slot runs at most N+1 times in a window. Our
// worker restarts a task in place first (the first at once, which is
// why a killed container runs again in about 0.1 s), and the manager
// replaces a task that failed for good. Both count, one each: the
// worker's in-place restarts (the task reports their times) and the
// manager's replacements. The slot's history so far travels with each
// replacement (Task.restart_history), and the worker counts it with its
// own restarts, so the total stays within N wherever the restarts
// happen, and the workload runs at most N+1 times in a window, as in
// Swarm. A crash loop therefore spends its attempts locally, fast, and
// the manager does not replace the task its worker gave up on; a task
// that fails in a way an in-place restart cannot help (the runtime
// refused to start it) spends one attempt per replacement. Moving a task
// off a lost or drained node is the manager's doing and costs nothing.
// The history is in the store, so a new leader decides the same.

// slotRestarts are the restarts of a slot, up to and including those of
// its task latest, that count against max attempts as of at: within the
// restart window before at (all when the window is 0). None without max
// attempts, or when latest runs an older spec than the service's: as in
// Swarm, a changed spec starts the count again.
func slotRestarts(svc *shoalv1.Service, latest *shoalv1.Task, at time.Time) []time.Time {
	rp := svc.GetSpec().GetTask().GetRestart()
	if rp.GetMaxAttempts() <= 0 || !specCurrent(svc, latest) {
		return nil
	}
	w := rp.GetWindow().AsDuration()
	var out []time.Time
	for _, ts := range [][]time.Time{shoalv1.Times(latest.GetRestartHistory()), shoalv1.Times(latest.GetStatus().GetRestartTimes())} {
		for _, t := range ts {
			if w <= 0 || at.Sub(t) < w {
				out = append(out, t)
			}
		}
	}
	return out
}

// attemptsUsed says why a slot whose task latest ended is not restarted
// again (its restarts, as of when the task ended, used the policy's max
// attempts), "" when it may be.
func attemptsUsed(svc *shoalv1.Service, latest *shoalv1.Task) string {
	rp := svc.GetSpec().GetTask().GetRestart()
	n := rp.GetMaxAttempts()
	if n <= 0 || int64(len(slotRestarts(svc, latest, statusTime(latest)))) < n {
		return ""
	}
	if w := rp.GetWindow().AsDuration(); w > 0 {
		return fmt.Sprintf("max restart attempts (%d within %s) reached", n, w)
	}
	return fmt.Sprintf("max restart attempts (%d) reached", n)
}

// giveUp leaves a slot whose restarts are used up with its last task, shut
// down as it ended (failed, or complete), and says why in its error: no
// replacement follows.
func (r *reconciler) giveUp(latest *shoalv1.Task, why string) {
	n := r.update(latest, stShutdown, why+"; the slot is not restarted again")
	if n == nil {
		return
	}
	if e := n.GetStatus().GetErr(); e != "" {
		why += ": " + e
	}
	n.Status.Err = why
}

func specCurrent(svc *shoalv1.Service, t *shoalv1.Task) bool {
	return proto.Equal(svc.GetSpec().GetTask(), t.GetSpec()) && proto.Equal(svc.GetSpec().GetEndpoint(), t.GetEndpoint()) &&
		networksCurrent(svc, t)
}

// networksCurrent reports whether a task is attached to the service's
// networks with its current aliases and VIPs (ingress, which comes with
// publishing, is compared through the endpoint). A task made before its
// addresses were allocated counts as current: the allocator gives it
// interfaces before it leaves the manager.
func networksCurrent(svc *shoalv1.Service, t *shoalv1.Task) bool {
	if len(t.GetNetworks()) == 0 {
		return len(svc.GetSpec().GetNetworks()) == 0
	}
	vips := map[string]string{}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		vips[v.GetNetworkId()] = v.GetAddr()
	}
	var mine []string
	for _, n := range t.GetNetworks() {
		if n.GetVip() != vips[n.GetNetworkId()] {
			return false
		}
		if !n.GetIngress() {
			mine = append(mine, n.GetNetworkId()+"|"+strings.Join(n.GetAliases(), ","))
		}
	}
	var want []string
	for _, a := range svc.GetSpec().GetNetworks() {
		aliases := append([]string{}, a.GetAliases()...)
		sort.Strings(aliases)
		want = append(want, a.GetTarget()+"|"+strings.Join(aliases, ","))
	}
	sort.Strings(mine)
	sort.Strings(want)
	return strings.Join(mine, ";") == strings.Join(want, ";")
}

// unplaced reports whether the scheduler could not place a task (it says
// why in the task's error).
func unplaced(t *shoalv1.Task) bool {
	return t.GetStatus().GetState() == stPending && t.GetStatus().GetErr() != ""
}

func (r *reconciler) replicated(svc *shoalv1.Service, tasks []*shoalv1.Task) {
	if svc.GetSpec().GetReplicated().GetReplicas() == 0 && len(tasks) == 0 {
		return // nothing to run, nothing to stop
	}
	svc, u := r.rollout(svc, tasks)
	if u.hold {
		return // rolled back: the next pass works on the stored spec
	}
	want := int(svc.GetSpec().GetReplicated().GetReplicas())
	bySlot := map[uint64][]*shoalv1.Task{}
	for _, t := range tasks {
		bySlot[t.GetSlot()] = append(bySlot[t.GetSlot()], t)
	}
	slots := make([]uint64, 0, len(bySlot))
	for s := range bySlot {
		slots = append(slots, s)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	var (
		occupied []uint64
		running  []*shoalv1.Task
		waiting  []uint64
	)
	used := map[uint64]bool{}
	for _, s := range slots {
		slot := s
		ts := bySlot[s]
		primary, _ := r.pick(svc, ts)
		if primary.GetDesiredState() == stRemove {
			continue
		}
		used[s] = true
		if u.stopping(svc, primary) {
			// A stop-first replacement: the new task once the old one
			// has exited.
			occupied = append(occupied, s)
			u.inFlight++
			if u.exited(r, primary) {
				r.newTask(svc, slot, "", "service updated")
			}
			continue
		}
		state, t := r.slot(svc, primary, ts, func(reason string, history []time.Time) {
			r.newTask(svc, slot, "", reason).RestartHistory = shoalv1.Timestamps(history)
		})
		u.observe(svc, state, t, ts, true)
		switch state {
		case slotRunning:
			running = append(running, t)
			occupied = append(occupied, s)
		case slotReplaced, slotDone:
			occupied = append(occupied, s)
		case slotWaiting:
			waiting = append(waiting, s)
			occupied = append(occupied, s)
		}
	}
	if surplus := len(occupied) - want; surplus > 0 {
		r.scaleDown(svc, bySlot, waiting, running, surplus)
		u.finish(r, svc, nil)
		return
	}
	for next := uint64(1); len(occupied) < want; next++ {
		if used[next] {
			continue
		}
		used[next] = true
		occupied = append(occupied, next)
		r.newTask(svc, next, "", "service wants "+fmt.Sprint(want)+" replicas")
		u.added()
	}
	u.finish(r, svc, func(t *shoalv1.Task) { r.newTask(svc, t.GetSlot(), "", "service updated") })
}

// scaleDown retires surplus slots: those waiting for a replacement first,
// then tasks on the most loaded nodes.
func (r *reconciler) scaleDown(svc *shoalv1.Service, bySlot map[uint64][]*shoalv1.Task, waiting []uint64, running []*shoalv1.Task, surplus int) {
	retireSlot := func(s uint64) {
		for _, t := range bySlot[s] {
			if t.GetDesiredState() == stRunning || !r.touched[t.GetId()] {
				r.retire(t, "service scaled down")
			}
		}
	}
	for _, s := range waiting {
		if surplus == 0 {
			return
		}
		retireSlot(s)
		surplus--
	}
	load := map[string]int{}
	for _, t := range running {
		load[t.GetNodeId()]++
	}
	sort.Slice(running, func(i, j int) bool {
		a, b := running[i], running[j]
		if la, lb := load[a.GetNodeId()], load[b.GetNodeId()]; la != lb {
			return la > lb
		}
		if (a.GetStatus().GetState() == stRunning) != (b.GetStatus().GetState() == stRunning) {
			return a.GetStatus().GetState() != stRunning // not-yet-running first
		}
		return a.GetSlot() > b.GetSlot()
	})
	for _, t := range running {
		if surplus == 0 {
			return
		}
		load[t.GetNodeId()]--
		retireSlot(t.GetSlot())
		surplus--
	}
}

func (r *reconciler) global(svc *shoalv1.Service, tasks []*shoalv1.Task) {
	svc, u := r.rollout(svc, tasks)
	if u.hold {
		return // rolled back: the next pass works on the stored spec
	}
	byNode := map[string][]*shoalv1.Task{}
	for _, t := range tasks {
		byNode[t.GetNodeId()] = append(byNode[t.GetNodeId()], t)
	}
	nodeIDs := make([]string, 0, len(r.nodes))
	for id := range r.nodes {
		nodeIDs = append(nodeIDs, id)
	}
	for id := range byNode {
		if _, ok := r.nodes[id]; !ok {
			nodeIDs = append(nodeIDs, id)
		}
	}
	sort.Strings(nodeIDs)
	for _, id := range nodeIDs {
		v, known := r.nodes[id]
		eligible := known && v.newOK && matches(svc, v.node)
		ts := byNode[id]
		if !known {
			for _, t := range ts {
				if t.GetDesiredState() == stRunning || Terminal(t.GetStatus().GetState()) {
					r.remove(t, "node was removed")
				}
			}
			continue
		}
		if len(ts) == 0 {
			if eligible {
				r.newTask(svc, 0, id, "global service: one task per node")
				u.added()
			}
			continue
		}
		nodeID := id
		if !matches(svc, v.node) {
			for _, t := range ts {
				if t.GetDesiredState() == stRunning {
					r.update(t, stShutdown, "node no longer satisfies the service's constraints")
				}
			}
			continue
		}
		latest, _ := r.pick(svc, ts)
		if u.stopping(svc, latest) {
			// A stop-first replacement on this node, once the old task
			// has exited (a node that is down holds it up, but not the
			// update: its task returns with it).
			if v.newOK {
				u.inFlight++
				if u.exited(r, latest) {
					r.newTask(svc, 0, id, "service updated")
				}
			}
			continue
		}
		// A task the manager stopped (its node was drained, lost or
		// ineligible) is followed by a new one once the node can take
		// it again; a task that ended by itself follows the restart
		// policy below.
		if stoppedByManager(latest) {
			if eligible {
				r.newTask(svc, 0, id, "node is available again").RestartHistory = shoalv1.Timestamps(slotRestarts(svc, latest, r.now))
				u.added()
			}
			continue
		}
		state, t := r.slot(svc, latest, ts, func(reason string, history []time.Time) {
			// A global task never moves to another node: it returns
			// when its node does.
			if v.newOK {
				r.newTask(svc, 0, nodeID, reason).RestartHistory = shoalv1.Timestamps(history)
			}
		})
		// A paused node keeps its task as it is: an update would stop
		// it for a replacement the node may not take. It is rolled once
		// the node is active again.
		u.observe(svc, state, t, ts, v.newOK)
	}
	u.finish(r, svc, func(t *shoalv1.Task) { r.newTask(svc, 0, t.GetNodeId(), "service updated") })
}

// trimHistory deletes finished tasks beyond the history limit of each
// slot, and finished tasks of slots that are gone.
func (r *reconciler) trimHistory() {
	limit := r.in.HistoryLimit
	if limit <= 0 {
		limit = DefaultHistory
	}
	type key struct {
		svc, node string
		slot      uint64
	}
	groups := map[key][]*shoalv1.Task{}
	for _, t := range r.in.Tasks {
		// A retired task is deleted once its worker has stopped it.
		if t.GetDesiredState() == stRemove && Terminal(t.GetStatus().GetState()) {
			r.remove(t, "retired task stopped")
			continue
		}
		k := key{svc: t.GetServiceId(), slot: t.GetSlot()}
		if t.GetSlot() == 0 {
			k.node = t.GetNodeId()
		}
		groups[k] = append(groups[k], t)
	}
	for _, ts := range groups {
		var done []*shoalv1.Task
		for _, t := range ts {
			if t.GetDesiredState() != stRunning && Terminal(t.GetStatus().GetState()) && !r.touched[t.GetId()] {
				done = append(done, t)
			}
		}
		if len(done) <= limit {
			continue
		}
		sort.Slice(done, func(i, j int) bool { return newer(done[i], done[j]) })
		for _, t := range done[limit:] {
			r.remove(t, "task history limit")
		}
	}
}

// matches reports whether node satisfies the service's constraints, by
// the scheduler's own reading of them.
func matches(svc *shoalv1.Service, n *shoalv1.Node) bool {
	sn := schedulerNodes([]*shoalv1.Node{n}, nil, time.Time{})[0]
	for _, c := range svc.GetSpec().GetTask().GetPlacement().GetConstraints() {
		pc, err := scheduler.ParseConstraint(c)
		if err != nil || !pc.Matches(&sn) {
			return false
		}
	}
	return true
}
