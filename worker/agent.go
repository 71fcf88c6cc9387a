// Package worker is the node agent's task side: it takes the set of tasks
// the leader assigns to this node, runs each through an Executor (the
// container runtime, or a fake in tests) as a forward-only state machine —
// accepted, preparing, starting, running, then complete, failed, shutdown
// or rejected — restarts it locally per its restart policy, and reports
// every change. It keeps running its tasks while no manager is reachable
// and, given a full assignment set again, stops whatever the leader
// replaced meanwhile. It also plugs standalone containers into attachable
// overlay networks (Attachments) and describes the node (Describe). Its
// session with the managers — heartbeats, the assignment stream, status
// reports, failover — is worker/session.
package worker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker/health"
)

// Exit is how a container ended.
type Exit struct {
	Code      int
	OOMKilled bool
	Err       string
}

// Executor runs tasks' containers on this node.
type Executor interface {
	// Pull makes the task's image available locally, telling progress
	// (a line like "pulling image: 1 of 3 layers, 12.3 of 45.1 MB") as it
	// goes.
	Pull(ctx context.Context, t *shoalv1.Task, progress func(string)) error
	// Start creates and starts a container for the task.
	Start(ctx context.Context, t *shoalv1.Task) (id string, err error)
	// Wait blocks until the container exits.
	Wait(ctx context.Context, id string) (Exit, error)
	// Stop stops it within grace, then kills it.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes it.
	Remove(ctx context.Context, id string) error
	// Containers lists this node's task containers: task ID to container
	// ID and whether it runs.
	Containers() map[string]Existing
	// Adopt takes over a container that survived a daemon restart
	// (re-announcing its network endpoints) before the worker waits on
	// it.
	Adopt(ctx context.Context, t *shoalv1.Task, id string) error
	// HealthCheck is the health check of the task's container id (the
	// task's own, else its image's HEALTHCHECK); ok is false when none
	// applies. A task with one is announced to the load balancers only
	// through Ready.
	HealthCheck(t *shoalv1.Task, id string) (c health.Config, ok bool)
	// Probe runs one probe of check c on container id, within ctx.
	Probe(ctx context.Context, id string, c health.Config) (exitCode int, output string, err error)
	// Ready puts the task's network endpoints in the VIPs, DNS and the
	// routing mesh (it turned healthy) or takes them out (unhealthy).
	Ready(t *shoalv1.Task, ready bool)
	// Prune removes what the node keeps for tasks it no longer has (the
	// devices of networks none of assigned is on), after a full
	// assignment: the leftovers of tasks that went while the daemon was
	// down.
	Prune(assigned []*shoalv1.Task)
	// PrepareFiles puts the task's secrets and configs where its
	// containers will find them; a *MissingFileError when one is not
	// here yet (the runner waits for it), another error when the task's
	// references are wrong (it is rejected).
	PrepareFiles(t *shoalv1.Task) error
	// ReleaseFiles removes them: the task ended or went.
	ReleaseFiles(taskID string)
}

// Existing is a container found on the node.
type Existing struct {
	ID      string
	Running bool
}

// Reporter receives task status changes.
type Reporter func(taskID string, st *shoalv1.TaskStatus)

// Agent runs this node's tasks.
type Agent struct {
	exec   Executor
	report Reporter
	log    *zap.Logger
	clock  clock.Clock // restart back-off, pull report spacing, timestamps

	ctx   context.Context
	files *Files

	mu      sync.Mutex
	runners map[string]*runner
	// ended holds the tasks whose runner ended by itself (complete,
	// failed, rejected): a task runs once, and an assignment sent before
	// the manager had the final report must not start it again.
	ended map[string]bool
	// fullSeen: a full assignment set was applied, so what runs here is
	// the leader's to say, not the containers' records (Resume).
	fullSeen bool
	wg       sync.WaitGroup

	// OnHealth, if set before the first task, is told when a task
	// container turns healthy or unhealthy (its ID and the state's name,
	// docker's): the node's health_status events.
	OnHealth func(containerID, state string)
}

// NewAgent makes an agent whose timers run on clk; its task runners live
// until ctx ends (Wait waits for them).
func NewAgent(ctx context.Context, clk clock.Clock, exec Executor, report Reporter, log *zap.Logger) *Agent {
	return &Agent{exec: exec, report: report, log: log.Named("worker"), clock: clk, ctx: ctx, files: NewFiles(), runners: map[string]*runner{}, ended: map[string]bool{}}
}

// Files is the agent's store of the secrets and configs its tasks use,
// for the executor to read.
func (a *Agent) Files() *Files { return a.files }

// UpdateFiles applies an assignment message's secrets and configs; the
// session calls it before Update with the same message's tasks, so a
// task finds what it needs.
func (a *Agent) UpdateFiles(full bool, secrets []*shoalv1.Secret, configs []*shoalv1.Config, removedSecrets, removedConfigs []string) {
	a.files.Update(full, secrets, configs, removedSecrets, removedConfigs)
}

// Leave is what a node that leaves its swarm does with its tasks: every
// one is stopped and its container removed (and its files with it), and
// the secrets and configs held in memory are forgotten at once: a node
// outside any cluster runs no tasks and holds no secret.
func (a *Agent) Leave() {
	a.Update(true, nil, nil)
	a.files.Update(true, nil, nil, nil, nil)
}

// Wait waits for the runners after the agent's context ended.
func (a *Agent) Wait() { a.wg.Wait() }

// Update applies an assignment message: the full set, or changes.
func (a *Agent) Update(full bool, tasks []*shoalv1.Task, removed []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range tasks {
		seen[t.GetId()] = true
		a.applyLocked(t)
	}
	for _, id := range removed {
		delete(a.ended, id)
		if r := a.runners[id]; r != nil {
			r.shutdown()
		} else if c, ok := a.exec.Containers()[id]; ok {
			a.discard(id, c.ID) // an ended task's record goes with the task
		}
	}
	if !full {
		return
	}
	a.fullSeen = true
	for id := range a.ended {
		if !seen[id] {
			delete(a.ended, id)
		}
	}
	var keep []*shoalv1.Task
	for _, t := range tasks {
		if shoalv1.Runnable(t.GetDesiredState()) {
			keep = append(keep, t)
		}
	}
	a.exec.Prune(keep)
	// Whatever runs here that the leader no longer assigns (replaced
	// while this node was away) is stopped.
	for id, r := range a.runners {
		if !seen[id] {
			r.shutdown()
		}
	}
	for taskID, c := range a.exec.Containers() {
		if !seen[taskID] && a.runners[taskID] == nil {
			a.discard(taskID, c.ID)
		}
	}
}

// discard stops and removes a container of a task no longer assigned
// here, off the caller's lock.
func (a *Agent) discard(taskID, containerID string) {
	a.log.Info("removing a container of a task no longer assigned here", zap.String("task", taskID))
	go func() {
		ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
		defer cancel()
		_ = a.exec.Stop(ctx, containerID, 10*time.Second)
		_ = a.exec.Remove(ctx, containerID)
		a.exec.ReleaseFiles(taskID)
	}()
}

func (a *Agent) applyLocked(t *shoalv1.Task) {
	r := a.runners[t.GetId()]
	// A job's task is desired COMPLETE: it runs as a service's does, until
	// it exits 0 (policyOf).
	if !shoalv1.Runnable(t.GetDesiredState()) {
		if r != nil {
			r.shutdown()
			return
		}
		// Not ours to run; but a container may still run from before a
		// daemon restart. One that exited stays as the task's record
		// (its logs and exit code, docker's `ps -a`) until the task is
		// removed.
		if c, ok := a.exec.Containers()[t.GetId()]; ok && c.Running {
			r = a.newRunner(t, false)
			r.containerID = c.ID
			r.shutdown()
			return
		}
		// A task that ended by itself keeps its own end (complete,
		// failed); one that never ended here is shut down.
		if t.GetStatus().GetState() < shoalv1.TaskState_TASK_STATE_COMPLETE {
			a.report(t.GetId(), a.status(shoalv1.TaskState_TASK_STATE_SHUTDOWN, "shut down", "", 0, 0))
		}
		return
	}
	if r != nil {
		r.setTask(t)
		return
	}
	if st := t.GetStatus().GetState(); st > shoalv1.TaskState_TASK_STATE_RUNNING || a.ended[t.GetId()] {
		return // finished; the orchestrator decides what next
	}
	containerID := ""
	if c, ok := a.exec.Containers()[t.GetId()]; ok && c.Running {
		containerID = c.ID // re-adopt after a daemon restart
	}
	a.startLocked(t, containerID)
}

// Resume takes over the task containers that run here after a daemon
// restart, before (or without) a manager's assignments: each is watched
// and restarted in place per its task's restart policy. The first full
// assignment set then stops whatever the leader no longer assigns here.
func (a *Agent) Resume(records []Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fullSeen {
		return // the leader answered first: its set decided
	}
	for _, rec := range records {
		t := rec.Task
		if a.runners[t.GetId()] != nil || !shoalv1.Runnable(t.GetDesiredState()) {
			continue
		}
		a.log.Info("resuming a task container that survived the daemon's restart", zap.String("task", t.GetId()))
		a.startLocked(t, rec.ContainerID)
	}
}

// startLocked runs a runner for t, taking over containerID if not "".
func (a *Agent) startLocked(t *shoalv1.Task, containerID string) {
	r := a.newRunner(t, true)
	r.containerID = containerID
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.run()
		if r.shuttingDown() {
			<-r.stopped // keep it known until its container is gone
		}
		if !r.shuttingDown() && a.ctx.Err() == nil {
			// It ended by itself (complete, failed, rejected): its
			// container exited for good. (Shut down, stop released them;
			// the daemon stopping leaves them to the running container.)
			a.exec.ReleaseFiles(t.GetId())
		}
		a.mu.Lock()
		if a.runners[t.GetId()] == r {
			delete(a.runners, t.GetId())
			if !r.shuttingDown() && a.ctx.Err() == nil {
				a.ended[t.GetId()] = true
			}
		}
		a.mu.Unlock()
	}()
}

// ContainerHealth is the health check state ("starting", "healthy",
// "unhealthy") of the task container id; "" when it is no running task's
// or has no check.
func (a *Agent) ContainerHealth(id string) string {
	a.mu.Lock()
	runners := make([]*runner, 0, len(a.runners))
	for _, r := range a.runners {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		r.mu.Lock()
		cid, h := r.containerID, r.health
		r.mu.Unlock()
		if cid != id || h == nil {
			continue
		}
		switch h.GetState() {
		case shoalv1.HealthState_HEALTH_STATE_STARTING:
			return health.Starting.String()
		case shoalv1.HealthState_HEALTH_STATE_HEALTHY:
			return health.Healthy.String()
		case shoalv1.HealthState_HEALTH_STATE_UNHEALTHY:
			return health.Unhealthy.String()
		}
	}
	return ""
}

func (a *Agent) newRunner(t *shoalv1.Task, register bool) *runner {
	ctx, cancel := context.WithCancel(a.ctx)
	r := &runner{a: a, task: proto.Clone(t).(*shoalv1.Task), ctx: ctx, cancel: cancel, stopped: make(chan struct{})}
	r.restarts.Policy = policyOf(t)
	r.restarts.Resume(shoalv1.Times(t.GetRestartHistory()), shoalv1.Times(t.GetStatus().GetRestartTimes()), int(t.GetStatus().GetRestarts()))
	if register {
		a.runners[t.GetId()] = r
	}
	return r
}

func (a *Agent) status(s shoalv1.TaskState, msg, err string, code int32, restarts int32) *shoalv1.TaskStatus {
	return &shoalv1.TaskStatus{State: s, Timestamp: timestamppb.New(a.clock.Now()), Message: msg, Err: err, ExitCode: code, Restarts: restarts}
}

func policyOf(t *shoalv1.Task) Policy {
	rp := t.GetSpec().GetRestart()
	p := Policy{Delay: rp.GetDelay().AsDuration(), MaxAttempts: int(rp.GetMaxAttempts()), Window: rp.GetWindow().AsDuration()}
	switch rp.GetCondition() {
	case shoalv1.RestartCondition_RESTART_CONDITION_NONE:
		p.Condition = Never
	case shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE:
		p.Condition = OnFailure
	default:
		// A job's task (desired COMPLETE) that exits 0 is done: ANY is
		// ON_FAILURE for it, as in Swarm.
		if t.GetDesiredState() == shoalv1.TaskState_TASK_STATE_COMPLETE {
			p.Condition = OnFailure
		}
	}
	return p
}
