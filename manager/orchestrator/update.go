package orchestrator

import (
	"cmp"
	"math"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The rolling update is a small state machine per service, kept in the
// service's update status and derived again from the store on every
// pass, so a new leader continues an update where the old one left it,
// with no duplicate and no lost slot:
//
//   - A slot (a replica, or a node of a global service) whose active task
//     runs an older spec is outdated. A batch replaces outdated slots, at
//     most parallelism of them in flight at once, and not before the
//     last one settled plus delay.
//   - A new task is ready once it runs and, with a health check, is
//     healthy; it has settled (counts as updated) once it has been ready
//     for the monitor period. Its slot is in flight until then.
//   - Stop-first shuts the old task and makes its replacement only once
//     the old one has exited (or its node is gone). Start-first makes the
//     new task at once and shuts the old one only once the new one is
//     ready; until then the old one keeps serving (see pick).
//   - A new task of this update that failed, restarted or turned
//     unhealthy counts against max_failure_ratio; beyond it, the failure
//     action pauses the update, lets it continue, or rolls the service
//     back to its previous spec.
//   - No outdated slot and nothing in flight: the update has completed.

// Docker's defaults of an update (or rollback) config.
const (
	DefaultUpdateParallelism = 1
	DefaultUpdateMonitor     = 5 * time.Second
)

// Update status messages, docker's wording.
const (
	msgUpdating          = "update in progress"
	msgUpdateCompleted   = "update completed"
	msgRollbackCompleted = "rollback completed"
)

// ServiceChange is one service write with the reason for it.
type ServiceChange struct {
	Service *shoalv1.Service
	Reason  string
	// Respec says the write swaps the spec (an automatic rollback): the
	// loop gives the service the endpoint of its new spec first.
	Respec bool
}

type (
	updateState  = shoalv1.UpdateState
	updateAction = shoalv1.UpdateFailureAction
)

const (
	usUpdating          = shoalv1.UpdateState_UPDATE_STATE_UPDATING
	usPaused            = shoalv1.UpdateState_UPDATE_STATE_PAUSED
	usCompleted         = shoalv1.UpdateState_UPDATE_STATE_COMPLETED
	usRollbackStarted   = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED
	usRollbackPaused    = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED
	usRollbackCompleted = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED

	actPause    = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	actContinue = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE
	actRollback = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
)

// updateConfig is an UpdateConfig with docker's defaults filled in.
type updateConfig struct {
	parallelism    int // at least 1 (0 in the spec: all at once)
	delay, monitor time.Duration
	action         updateAction
	ratio          float32
	startFirst     bool
}

// effectiveConfig is c with docker's defaults for what it leaves out;
// nil is all defaults.
func effectiveConfig(c *shoalv1.UpdateConfig) updateConfig {
	out := updateConfig{parallelism: DefaultUpdateParallelism, monitor: DefaultUpdateMonitor, action: actPause}
	if c == nil {
		return out
	}
	out.parallelism = int(min(c.GetParallelism(), math.MaxInt32))
	if out.parallelism == 0 {
		out.parallelism = math.MaxInt32
	}
	out.delay = c.GetDelay().AsDuration()
	if c.GetMonitor() != nil {
		out.monitor = c.GetMonitor().AsDuration()
	}
	if a := c.GetFailureAction(); a != shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED {
		out.action = a
	}
	out.ratio = c.GetMaxFailureRatio()
	out.startFirst = c.GetOrder() == shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST
	return out
}

func rollingBack(s updateState) bool { return s == usRollbackStarted || s == usRollbackPaused }

// configFor is the config in force for a service: its rollback config
// while it rolls back, its update config otherwise.
func configFor(svc *shoalv1.Service) updateConfig {
	if rollingBack(svc.GetUpdateStatus().GetState()) {
		return effectiveConfig(svc.GetSpec().GetRollback())
	}
	return effectiveConfig(svc.GetSpec().GetUpdate())
}

// readyAt says since when a task has been ready: running, and healthy
// if it has a health check.
func readyAt(t *shoalv1.Task) (time.Time, bool) {
	if t.GetStatus().GetState() != stRunning || t.GetDesiredState() != stRunning {
		return time.Time{}, false
	}
	h := t.GetStatus().GetHealth()
	switch h.GetState() {
	case shoalv1.HealthState_HEALTH_STATE_UNSPECIFIED:
		return statusTime(t), true
	case shoalv1.HealthState_HEALTH_STATE_HEALTHY:
		if h.GetSince() != nil {
			return h.GetSince().AsTime(), true
		}
		return statusTime(t), true
	}
	return time.Time{}, false
}

func isReady(t *shoalv1.Task) bool { _, ok := readyAt(t); return ok }

// failedTask reports whether a task shows a failure: it ended failed or
// rejected, or it runs but restarted in place or turned unhealthy. The
// store does not say whether a task that ended had settled before it
// failed (its status time is then the failure's), so a failure of one of
// the update's new tasks counts whenever it happens while the update is
// in progress: a settled task that fails later is rare within an update,
// and counting it errs on the side of stopping a bad rollout.
func failedTask(t *shoalv1.Task) bool {
	if t.GetDesiredState() == stRemove {
		return false
	}
	switch s := t.GetStatus().GetState(); {
	case s == stFailed || s == stRejected:
		return true
	case Terminal(s):
		return false
	}
	return t.GetStatus().GetRestarts() > 0 || t.GetStatus().GetHealth().GetState() == shoalv1.HealthState_HEALTH_STATE_UNHEALTHY
}

// rollout is one pass's view of a service's rolling update.
type rollout struct {
	now     time.Time
	state   updateState
	started time.Time
	cfg     updateConfig
	// failed are the new tasks of this update that failed.
	failed     map[string]bool
	inFlight   int
	outdated   []*shoalv1.Task // active tasks of an older spec, to replace
	lastSettle time.Time       // when the latest new task settled
	wake       []time.Time     // when new tasks settle
	next       *shoalv1.Service
	reason     string
	// hold: the pass only writes the service (it swapped the spec; the
	// next pass works on the spec as stored, with its endpoint).
	hold bool
}

func (u *rollout) active() bool { return u.state == usUpdating || u.state == usRollbackStarted }

// setStatus records a new update status in the service write.
func (u *rollout) setStatus(svc *shoalv1.Service, state updateState, msg string, restart bool) {
	if u.next == nil {
		u.next = proto.Clone(svc).(*shoalv1.Service)
	}
	st := u.next.GetUpdateStatus()
	if st == nil || restart {
		st = &shoalv1.UpdateStatus{StartedAt: timestamppb.New(u.now)}
		u.started = u.now
	}
	st.State, st.Message = state, msg
	if state == usCompleted || state == usRollbackCompleted {
		st.CompletedAt = timestamppb.New(u.now)
	} else {
		st.CompletedAt = nil
	}
	u.next.UpdateStatus = st
	u.state = state
	u.reason = msg
}

// rollout reads where a service's update stands and applies the failure
// action if the new tasks failed beyond the ratio. It returns the
// service as this pass sees it: rolled back, if it just was.
func (r *reconciler) rollout(svc *shoalv1.Service, tasks []*shoalv1.Task) (*shoalv1.Service, *rollout) {
	st := svc.GetUpdateStatus()
	u := &rollout{now: r.now, state: st.GetState(), cfg: configFor(svc), failed: map[string]bool{}}
	if st.GetStartedAt() != nil {
		u.started = st.GetStartedAt().AsTime()
	}
	if !u.active() {
		return svc, u
	}
	var failures []*shoalv1.Task
	for _, t := range tasks {
		if specCurrent(svc, t) && !created(t).Before(u.started) && failedTask(t) {
			u.failed[t.GetId()] = true
			failures = append(failures, t)
		}
	}
	total := r.slotCount(svc, tasks)
	if len(failures) == 0 || float32(len(failures))/float32(total) <= u.cfg.ratio || u.cfg.action == actContinue {
		return svc, u
	}
	// The task whose failure went beyond the ratio.
	sort.Slice(failures, func(i, j int) bool {
		a, b := failures[i], failures[j]
		return cmp.Or(statusTime(a).Compare(statusTime(b)), strings.Compare(a.GetId(), b.GetId())) < 0
	})
	culprit := failures[len(failures)-1]
	for k := range failures {
		if float32(k+1)/float32(total) > u.cfg.ratio {
			culprit = failures[k]
			break
		}
	}
	switch {
	case u.state == usRollbackStarted:
		u.setStatus(svc, usRollbackPaused, "rollback paused due to failure or early termination of task "+culprit.GetId(), false)
	case u.cfg.action == actRollback && svc.GetPreviousSpec() != nil:
		u.setStatus(svc, usRollbackStarted, "update rolled back due to failure or early termination of task "+culprit.GetId(), true)
		u.next.Spec, u.next.PreviousSpec = proto.Clone(svc.GetPreviousSpec()).(*shoalv1.ServiceSpec), proto.Clone(svc.GetSpec()).(*shoalv1.ServiceSpec)
		u.hold = true
		r.plan.Services = append(r.plan.Services, ServiceChange{Service: u.next, Reason: u.reason, Respec: true})
		return u.next, u
	default:
		msg := "update paused due to failure or early termination of task " + culprit.GetId()
		if u.cfg.action == actRollback {
			msg += " (there is no previous spec to roll back to)"
		}
		u.setStatus(svc, usPaused, msg, false)
	}
	return svc, u
}

// slotCount is how many slots a service has, for the failure ratio.
func (r *reconciler) slotCount(svc *shoalv1.Service, tasks []*shoalv1.Task) int {
	if svc.GetSpec().GetGlobal() == nil {
		return max(1, int(svc.GetSpec().GetReplicated().GetReplicas()))
	}
	nodes := map[string]bool{}
	for _, t := range tasks {
		if t.GetDesiredState() <= stRunning {
			nodes[t.GetNodeId()] = true
		}
	}
	return max(1, len(nodes))
}

// stopping reports whether a slot's newest task is an old one the update
// stopped (stop-first) whose replacement is not made yet.
func (u *rollout) stopping(svc *shoalv1.Service, t *shoalv1.Task) bool {
	return !specCurrent(svc, t) && stoppedByManager(t)
}

// exited reports whether a stopped task has let go of its slot: it ended,
// or its node is down or gone (it cannot report, and its replacement
// runs elsewhere).
func (u *rollout) exited(r *reconciler, t *shoalv1.Task) bool {
	if Terminal(t.GetStatus().GetState()) || t.GetNodeId() == "" {
		return true
	}
	v, ok := r.nodes[t.GetNodeId()]
	return !ok || v.node.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY
}

// added counts a slot that gets its first task (a scale up, a new node):
// it has the new spec, and is watched like a replaced one.
func (u *rollout) added() { u.inFlight++ }

// observe takes in one slot after its own judgement (see slot): its
// outdated task is a candidate for the next batch (if mayRoll), its new
// task in flight until it settles.
func (u *rollout) observe(svc *shoalv1.Service, state slotState, t *shoalv1.Task, tasks []*shoalv1.Task, mayRoll bool) {
	if !mayRoll {
		return
	}
	failedSlot := false
	if u.cfg.action == actContinue {
		for _, x := range tasks {
			failedSlot = failedSlot || u.failed[x.GetId()]
		}
	}
	switch state {
	case slotReplaced, slotWaiting:
		// Its task is being replaced: no batch goes beside it.
		if !failedSlot {
			u.inFlight++
		}
	case slotRunning:
		if !specCurrent(svc, t) {
			u.outdated = append(u.outdated, t)
			return
		}
		if at, ok := readyAt(t); ok {
			settle := at.Add(u.cfg.monitor)
			if !u.now.Before(settle) {
				if !created(t).Before(u.started) && settle.After(u.lastSettle) {
					u.lastSettle = settle
				}
				return
			}
			if !failedSlot {
				u.inFlight++
				u.wake = append(u.wake, settle)
			}
			return
		}
		if unplaced(t) {
			// A new task the scheduler cannot place holds the update up
			// only if it replaced a task that ran without error
			// (stopping more would take down more), not one that had
			// failed or waited unplaced too.
			var prev *shoalv1.Task
			for i, x := range tasks {
				if x == t && i+1 < len(tasks) {
					prev = tasks[i+1]
				}
			}
			if prev == nil || prev.GetStatus().GetErr() != "" {
				return
			}
		}
		if !failedSlot {
			u.inFlight++
		}
	}
}

// finish starts the next batch if the update may go on (makeNew makes
// the replacement of an old task; nil: no batch this pass), completes
// the update when nothing is left, and records the service write.
func (u *rollout) finish(r *reconciler, svc *shoalv1.Service, makeNew func(old *shoalv1.Task)) {
	defer func() {
		if u.next != nil && !u.hold {
			r.plan.Services = append(r.plan.Services, ServiceChange{Service: u.next, Reason: u.reason})
		}
	}()
	if len(u.outdated) > 0 && u.state != usPaused && !rollingBack(u.state) && u.state != usUpdating {
		// Tasks of an older spec with no update under way (a spec
		// stored before updates had a status): one starts now.
		u.setStatus(svc, usUpdating, msgUpdating, true)
	}
	if !u.active() {
		return
	}
	for _, w := range u.wake {
		r.plan.wakeAt(w)
	}
	if makeNew == nil {
		return
	}
	sort.Slice(u.outdated, func(i, j int) bool {
		a, b := u.outdated[i], u.outdated[j]
		return cmp.Or(cmp.Compare(a.GetSlot(), b.GetSlot()), strings.Compare(a.GetNodeId(), b.GetNodeId())) < 0
	})
	var rest []*shoalv1.Task
	for _, t := range u.outdated {
		if needsPlacement(t) {
			// Still waiting for the scheduler: nothing runs to keep,
			// and the new spec may fit where the old did not.
			if r.update(t, stShutdown, "service updated") != nil {
				makeNew(t)
				if t.GetStatus().GetErr() == "" {
					u.inFlight++ // not one the scheduler could not place (see observe)
				}
			}
			continue
		}
		rest = append(rest, t)
	}
	if room := u.cfg.parallelism - u.inFlight; room > 0 && len(rest) > 0 {
		if due := u.lastSettle.Add(u.cfg.delay); u.cfg.delay > 0 && !u.lastSettle.IsZero() && u.now.Before(due) {
			r.plan.wakeAt(due)
			return
		}
		for _, t := range rest[:min(room, len(rest))] {
			if u.cfg.startFirst {
				makeNew(t)
				continue
			}
			// Stop-first: the replacement once the old task exited
			// (at once if it never started).
			if n := r.update(t, stShutdown, "service updated"); n != nil && Terminal(n.GetStatus().GetState()) {
				makeNew(t)
			}
		}
		return
	}
	if len(rest) == 0 && u.inFlight == 0 {
		if u.state == usRollbackStarted {
			u.setStatus(svc, usRollbackCompleted, msgRollbackCompleted, false)
		} else {
			u.setStatus(svc, usCompleted, msgUpdateCompleted, false)
		}
	}
}
