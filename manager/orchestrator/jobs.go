package orchestrator

import (
	"fmt"
	"sort"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Jobs, as Swarm's: a replicated job runs total_completions tasks to
// completion, at most max_concurrent at a time; a global job runs one task
// to completion on every eligible node. Job tasks are desired COMPLETE, not
// RUNNING: their worker runs them until they exit, and one that exits 0 is
// done for good whatever the restart condition (ANY counts as ON_FAILURE,
// as in Swarm: restarting a finished job makes no sense). A task that fails
// is retried per the restart policy, in place by its worker first and then
// as a new task of the same slot, and max_attempts bounds both, as for
// services (reconcile.go). Every spec change starts a new run of the job
// (the control API raises Service.job_status.iteration); tasks carry the
// run they belong to (Task.job_iteration), and those of earlier runs are
// history: stopped if still running, never restarted, trimmed like any.

// IsJob reports whether a service is a job (replicated or global).
func IsJob(spec *shoalv1.ServiceSpec) bool {
	return spec.GetReplicatedJob() != nil || spec.GetGlobalJob() != nil
}

// JobIteration is the run of the job a service's new tasks belong to.
func JobIteration(svc *shoalv1.Service) uint64 { return svc.GetJobStatus().GetIteration() }

// JobConcurrency is how many tasks of a replicated job may be active at
// once: max_concurrent, or total_completions when it is 0.
func JobConcurrency(j *shoalv1.ReplicatedJob) int64 {
	if c := j.GetMaxConcurrent(); c > 0 {
		return c
	}
	return j.GetTotalCompletions()
}

// jobCondition is the restart condition of a job's tasks: ANY (docker's
// default) is ON_FAILURE, since a task that completed is never rerun.
func jobCondition(svc *shoalv1.Service) shoalv1.RestartCondition {
	c := svc.GetSpec().GetTask().GetRestart().GetCondition()
	if c == shoalv1.RestartCondition_RESTART_CONDITION_NONE {
		return c
	}
	return shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
}

// jobRun splits a job's tasks into those of its current run, and stops
// the tasks of earlier runs that are still meant to run: they are
// history now. A finished one keeps its state (a completed task of an
// earlier run stays complete).
func (r *reconciler) jobRun(svc *shoalv1.Service, tasks []*shoalv1.Task) []*shoalv1.Task {
	it := JobIteration(svc)
	var current []*shoalv1.Task
	for _, t := range tasks {
		if t.GetJobIteration() == it {
			current = append(current, t)
			continue
		}
		if shoalv1.Runnable(t.GetDesiredState()) && t.GetStatus().GetState() != stComplete {
			r.update(t, stShutdown, fmt.Sprintf("superseded by run %d of the job", it))
		}
	}
	return current
}

func (r *reconciler) newJobTask(svc *shoalv1.Service, slot uint64, node, reason string, history []time.Time) *shoalv1.Task {
	t := r.newTask(svc, slot, node, reason)
	t.DesiredState = stComplete
	t.JobIteration = JobIteration(svc)
	t.RestartHistory = shoalv1.Timestamps(history)
	return t
}

// jobSlotState is where one slot of a job's run stands.
type jobSlotState int

const (
	jobActive    jobSlotState = iota // a task is on its way, running, or due for a restart
	jobCompleted                     // its task completed
	jobGaveUp                        // its task failed and is not restarted again
	jobStopped                       // stopped by the manager (its node left); it may run again
)

// jobNewest sorts a slot's tasks newest first and returns the newest; an
// older task still meant to run (a leader change mid-way could leave one)
// is shut down.
func (r *reconciler) jobNewest(tasks []*shoalv1.Task) *shoalv1.Task {
	sort.Slice(tasks, func(i, j int) bool { return newer(tasks[i], tasks[j]) })
	for _, t := range tasks[1:] {
		if shoalv1.Runnable(t.GetDesiredState()) && t.GetStatus().GetState() != stComplete {
			r.update(t, stShutdown, "superseded by a newer task of the same slot")
		}
	}
	return tasks[0]
}

// jobSlot judges one slot of a job's current run (a completion number, or
// a node for a global job) from its tasks and makes the changes it needs.
// makeNew creates the slot's next task with the slot's restart history and
// says whether it did: it may decline (a global job's task waits while its
// node is paused), and the failed task then waits as it is.
func (r *reconciler) jobSlot(svc *shoalv1.Service, tasks []*shoalv1.Task, makeNew func(reason string, history []time.Time) bool) jobSlotState {
	latest := r.jobNewest(tasks)
	s := latest.GetStatus().GetState()
	switch {
	case s == stComplete:
		return jobCompleted
	case latest.GetDesiredState() == stRemove:
		return jobGaveUp
	case !shoalv1.Runnable(latest.GetDesiredState()):
		if stoppedByManager(latest) {
			return jobStopped
		}
		return jobGaveUp
	}
	if !Terminal(s) && r.offLostNode(svc, latest, func(reason string, history []time.Time) { makeNew(reason, history) }) {
		return jobActive
	}
	if !Terminal(s) {
		return jobActive
	}
	// It failed (or its worker could not start it).
	if jobCondition(svc) == shoalv1.RestartCondition_RESTART_CONDITION_NONE {
		r.update(latest, stShutdown, "task ended: "+s.String()+"; restart condition none: the slot is not restarted")
		return jobGaveUp
	}
	if why := attemptsUsed(svc, latest); why != "" {
		r.giveUp(latest, why)
		return jobGaveUp
	}
	due := statusTime(latest).Add(r.replaceDelay(svc, tasks))
	if r.now.Before(due) {
		r.plan.wakeAt(due)
		return jobActive
	}
	history := slotRestarts(svc, latest, r.now)
	if svc.GetSpec().GetTask().GetRestart().GetMaxAttempts() > 0 {
		history = append(history, r.now)
	}
	if makeNew("replaces a failed task", history) {
		r.update(latest, stShutdown, "task ended: "+s.String())
	}
	return jobActive
}

// replicatedJob keeps at most JobConcurrency tasks of the current run
// active and makes new ones, each in a slot of its own (1 to
// total_completions), until every slot completed or gave up.
func (r *reconciler) replicatedJob(svc *shoalv1.Service, tasks []*shoalv1.Task) {
	j := svc.GetSpec().GetReplicatedJob()
	total := uint64(max(j.GetTotalCompletions(), 0))
	concurrency := int(JobConcurrency(j))
	current := r.jobRun(svc, tasks)
	bySlot := map[uint64][]*shoalv1.Task{}
	for _, t := range current {
		bySlot[t.GetSlot()] = append(bySlot[t.GetSlot()], t)
	}
	slots := make([]uint64, 0, len(bySlot))
	for s := range bySlot {
		slots = append(slots, s)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	active, used := 0, map[uint64]bool{}
	for _, s := range slots {
		if s == 0 || s > total {
			// Not a slot of this run (the spec cannot shrink within a
			// run; defensive).
			r.removeAll(bySlot[s], "job has no such completion")
			continue
		}
		slot := s
		used[s] = true
		state := r.jobSlot(svc, bySlot[s], func(reason string, history []time.Time) bool {
			r.newJobTask(svc, slot, "", reason, history)
			return true
		})
		switch state {
		case jobStopped:
			// The manager stopped its task (its node was lost) and no
			// replacement followed: one goes now, anywhere.
			r.newJobTask(svc, slot, "", "replaces a task the manager stopped", slotRestarts(svc, bySlot[s][0], r.now))
			active++
		case jobActive:
			active++
		}
	}
	for next := uint64(1); next <= total && active < concurrency; next++ {
		if used[next] {
			continue
		}
		used[next] = true
		active++
		r.newJobTask(svc, next, "", fmt.Sprintf("job wants %d completions, %d at a time", total, concurrency), nil)
	}
}

// globalJob runs one task of the current run to completion on every node
// that can take it, nodes that join during the run included.
func (r *reconciler) globalJob(svc *shoalv1.Service, tasks []*shoalv1.Task) {
	// The tasks of a removed node, of any run, go with it: no worker
	// will report on them again.
	var here []*shoalv1.Task
	for _, t := range tasks {
		if _, ok := r.nodes[t.GetNodeId()]; !ok {
			r.remove(t, "node was removed")
			continue
		}
		here = append(here, t)
	}
	byNode := map[string][]*shoalv1.Task{}
	for _, t := range r.jobRun(svc, here) {
		byNode[t.GetNodeId()] = append(byNode[t.GetNodeId()], t)
	}
	nodeIDs := make([]string, 0, len(r.nodes))
	for id := range r.nodes {
		nodeIDs = append(nodeIDs, id)
	}
	sort.Strings(nodeIDs)
	for _, id := range nodeIDs {
		v := r.nodes[id]
		ts := byNode[id]
		eligible := v.newOK && matches(svc, v.node)
		if len(ts) == 0 {
			if eligible {
				r.newJobTask(svc, 0, id, "global job: one task per node", nil)
			}
			continue
		}
		if !matches(svc, v.node) {
			for _, t := range ts {
				if shoalv1.Runnable(t.GetDesiredState()) && t.GetStatus().GetState() != stComplete {
					r.update(t, stShutdown, "node no longer satisfies the service's constraints")
				}
			}
			continue
		}
		nodeID := id
		state := r.jobSlot(svc, ts, func(reason string, history []time.Time) bool {
			// A global job's task never moves to another node: it runs
			// again when its node takes new tasks.
			if v.newOK {
				r.newJobTask(svc, 0, nodeID, reason, history)
			}
			return v.newOK
		})
		if state == jobStopped && eligible {
			r.newJobTask(svc, 0, id, "node is available again", slotRestarts(svc, ts[0], r.now))
		}
	}
}
