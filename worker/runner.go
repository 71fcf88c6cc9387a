package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker/health"
)

// runner drives one task.
type runner struct {
	a      *Agent
	ctx    context.Context
	cancel context.CancelFunc

	mu          sync.Mutex
	task        *shoalv1.Task
	containerID string
	restarts    Restarts
	stopOnce    sync.Once
	stopped     chan struct{}
	stopping    bool
	// health is the check's status, sent with every report from the
	// start of a container with a check on; nil without one.
	health *shoalv1.TaskHealth
}

func (r *runner) shuttingDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

func (r *runner) setTask(t *shoalv1.Task) {
	r.mu.Lock()
	r.task = t
	r.mu.Unlock()
}

func (r *runner) id() string { return r.task.GetId() }

// recordNow is the task with its restarts so far, for its container to
// keep (LabelTaskRecord): a daemon restarting under it resumes the count.
func (r *runner) recordNow() *shoalv1.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := proto.Clone(r.task).(*shoalv1.Task)
	if t.Status == nil {
		t.Status = &shoalv1.TaskStatus{}
	}
	t.Status.State = shoalv1.TaskState_TASK_STATE_RUNNING
	t.Status.Restarts = int32(r.restarts.Count())
	t.Status.RestartTimes = shoalv1.Timestamps(r.restarts.Times())
	return t
}

// report sends a status. Once the task is shutting down only stop's
// final report goes out: the run loop may still be between steps (a pull
// that completed as it was cancelled) and its report would replace the
// final one and leave the task "starting" for good.
func (r *runner) report(s shoalv1.TaskState, msg, errText string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping && s != shoalv1.TaskState_TASK_STATE_SHUTDOWN {
		return
	}
	st := r.a.status(s, msg, errText, int32(code), int32(r.restarts.Count()))
	st.RestartTimes = shoalv1.Timestamps(r.restarts.Times())
	st.Health = r.health
	r.a.report(r.task.GetId(), st)
}

// shutdown stops the task and deletes its container.
func (r *runner) shutdown() {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopping = true
		r.mu.Unlock()
		r.cancel()
		r.a.wg.Add(1)
		go func() { defer r.a.wg.Done(); r.stop() }()
	})
}

func (r *runner) grace() time.Duration {
	g := r.task.GetSpec().GetContainer().GetStopGracePeriod().AsDuration()
	if g <= 0 {
		g = 10 * time.Second
	}
	return g
}

// stop runs after shutdown: it stops the container and reports the end.
func (r *runner) stop() {
	defer close(r.stopped)
	r.mu.Lock()
	id := r.containerID
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.grace()+30*time.Second)
	defer cancel()
	if id != "" {
		if err := r.a.exec.Stop(ctx, id, r.grace()); err != nil {
			r.a.log.Debug("stop task container", zap.String("task", r.id()), zap.Error(err))
		}
		_ = r.a.exec.Remove(ctx, id)
	}
	r.a.exec.ReleaseFiles(r.id())
	r.report(shoalv1.TaskState_TASK_STATE_SHUTDOWN, "shut down", "", 0)
}

// awaitFiles makes the task's secrets and configs ready for a start,
// waiting (reported in state, "waiting for secret NAME from a manager")
// for any not here yet; false when the task was rejected for bad
// references or shut down meanwhile.
func (r *runner) awaitFiles(state shoalv1.TaskState) bool {
	waiting := ""
	for {
		changed := r.a.files.Changed()
		r.mu.Lock()
		t := r.task
		r.mu.Unlock()
		err := r.a.exec.PrepareFiles(t)
		var missing *MissingFileError
		switch {
		case err == nil:
			return true
		case errors.As(err, &missing):
			if msg := missing.Error(); msg != waiting {
				waiting = msg
				r.report(state, msg, "", 0)
			}
			select {
			case <-r.ctx.Done():
				return false
			case <-changed:
			}
		default:
			if r.ctx.Err() == nil {
				r.report(shoalv1.TaskState_TASK_STATE_REJECTED, "preparing failed", err.Error(), 0)
			}
			return false
		}
	}
}

// pullReportEvery spaces the progress reports of an image pull.
const pullReportEvery = 500 * time.Millisecond

// run takes the task from accepted to its end.
func (r *runner) run() {
	log := r.a.log.With(zap.String("task", r.id()))
	r.mu.Lock()
	adopted := r.containerID
	r.mu.Unlock()
	if adopted == "" {
		r.report(shoalv1.TaskState_TASK_STATE_ACCEPTED, "accepted", "", 0)
		r.report(shoalv1.TaskState_TASK_STATE_PREPARING, "preparing", "", 0)
		var last time.Time
		progress := func(msg string) {
			// Progress reaches the manager at most every pullReportEvery.
			if now := r.a.clock.Now(); now.Sub(last) >= pullReportEvery {
				last = now
				r.report(shoalv1.TaskState_TASK_STATE_PREPARING, msg, "", 0)
			}
		}
		if err := r.a.exec.Pull(r.ctx, r.task, progress); err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.report(shoalv1.TaskState_TASK_STATE_REJECTED, "preparing failed", err.Error(), 0)
			return
		}
		if !r.awaitFiles(shoalv1.TaskState_TASK_STATE_PREPARING) {
			return
		}
	}
	if adopted != "" {
		if err := r.a.exec.Adopt(r.ctx, r.task, adopted); err != nil {
			log.Warn("re-adopting the task's container", zap.Error(err))
		}
	}
	first := true
	for {
		id := adopted
		started := r.a.clock.Now()
		if id == "" {
			if first {
				r.report(shoalv1.TaskState_TASK_STATE_STARTING, "starting", "", 0)
			} else if !r.awaitFiles(shoalv1.TaskState_TASK_STATE_RUNNING) {
				// A restart in place: the files are still on the task's
				// tmpfs, or come from a manager.
				return
			}
			var err error
			id, err = r.a.exec.Start(r.ctx, r.recordNow())
			if err != nil {
				if r.ctx.Err() != nil {
					return
				}
				r.report(shoalv1.TaskState_TASK_STATE_REJECTED, "starting failed", err.Error(), 0)
				return
			}
			r.mu.Lock()
			r.containerID = id
			stopping := r.stopping
			r.mu.Unlock()
			if stopping {
				// Shut down while starting: stop() saw no container yet,
				// so this one is ours to remove.
				ctx, cancel := context.WithTimeout(context.Background(), r.grace()+30*time.Second)
				_ = r.a.exec.Stop(ctx, id, r.grace())
				_ = r.a.exec.Remove(ctx, id)
				cancel()
				return
			}
		}
		reAdopted := adopted != ""
		adopted = ""
		first = false
		watch := r.watchHealth(id, reAdopted)
		r.report(shoalv1.TaskState_TASK_STATE_RUNNING, "running", "", 0)
		exit, err := r.a.exec.Wait(r.ctx, id)
		unhealthy, probeOutput := watch.stop()
		if r.ctx.Err() != nil {
			return // shut down: stop() reports
		}
		if err != nil {
			log.Warn("lost track of the task's container", zap.Error(err))
			r.report(shoalv1.TaskState_TASK_STATE_FAILED, "failed", err.Error(), 0)
			return
		}
		code, errText := exit.Code, exitError(exit)
		if unhealthy {
			// Stopped for failing its check: a failure whatever the
			// workload's exit code on SIGTERM, as in Swarm.
			errText = unhealthyError(probeOutput)
			code = max(code, 1)
		}
		again, delay := r.restarts.Decide(code, started, r.a.clock.Now())
		if !again {
			state, msg := shoalv1.TaskState_TASK_STATE_COMPLETE, "finished"
			if code != 0 || exit.OOMKilled {
				state, msg = shoalv1.TaskState_TASK_STATE_FAILED, "failed: the restart policy gave up"
			}
			r.report(state, msg, errText, exit.Code)
			return
		}
		taskRestarts.Inc()
		log.Info("restarting task", zap.Int("exit_code", exit.Code), zap.Bool("unhealthy", unhealthy), zap.Duration("delay", delay), zap.Int("restarts", r.restarts.Count()))
		_ = r.a.exec.Remove(context.Background(), id)
		r.mu.Lock()
		r.containerID = ""
		r.mu.Unlock()
		if delay > 0 {
			t := r.a.clock.NewTimer(delay)
			select {
			case <-r.ctx.Done():
				t.Stop()
				return
			case <-t.Chan():
			}
		}
	}
}

func exitError(e Exit) string {
	switch {
	case e.OOMKilled:
		return fmt.Sprintf("task: killed for running out of memory (exit %d)", e.Code)
	case e.Err != "":
		return e.Err
	case e.Code != 0:
		return fmt.Sprintf("task: non-zero exit (%d)", e.Code)
	}
	return ""
}

// healthWatch is the health check of one container run.
type healthWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	failed bool   // it turned unhealthy, and the container was stopped
	output string // the last probe's output then
}

// stop ends the probing and says whether the container was stopped for
// turning unhealthy. A nil watch (no check) says no.
func (w *healthWatch) stop() (unhealthy bool, output string) {
	if w == nil {
		return false, ""
	}
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed, w.output
}

// watchHealth starts the health check of the task's container id, if it
// has one: reported starting now; once healthy, its endpoints join the
// load balancers; once unhealthy, they leave, that is reported, and the
// container is stopped (its end is then a failure: the run loop restarts
// it per the restart policy, or the manager replaces it). reAdopted
// (taken over after a daemon restart) probes at once. Without a check it
// returns nil.
func (r *runner) watchHealth(id string, reAdopted bool) *healthWatch {
	r.mu.Lock()
	t := r.task
	r.mu.Unlock()
	cfg, ok := r.a.exec.HealthCheck(t, id)
	if !ok {
		r.mu.Lock()
		r.health = nil
		r.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(r.ctx)
	w := &healthWatch{cancel: cancel, done: make(chan struct{})}
	started := r.a.clock.Now()
	r.mu.Lock()
	r.health = taskHealth(health.Status{State: health.Starting, Since: started})
	r.mu.Unlock()
	changed := func(s health.Status) {
		switch s.State {
		case health.Healthy:
			r.mu.Lock()
			if !r.stopping && ctx.Err() == nil {
				// Under mu: a shutdown under way has taken it out
				// already, and must not see it put back.
				r.a.exec.Ready(t, true)
			}
			r.mu.Unlock()
		case health.Unhealthy:
			r.a.exec.Ready(t, false)
		default:
			return // starting: the run loop's report carries it
		}
		if r.a.OnHealth != nil {
			r.a.OnHealth(id, s.State.String())
		}
		r.mu.Lock()
		r.health = taskHealth(s)
		r.mu.Unlock()
		r.report(shoalv1.TaskState_TASK_STATE_RUNNING, "running", "", 0)
		if s.State != health.Unhealthy {
			return
		}
		r.a.log.Info("task container is unhealthy: stopping it", zap.String("task", t.GetId()), zap.String("output", s.Output))
		w.mu.Lock()
		w.failed, w.output = true, s.Output
		w.mu.Unlock()
		cancel()
		sctx, scancel := context.WithTimeout(r.ctx, r.grace()+30*time.Second)
		defer scancel()
		if err := r.a.exec.Stop(sctx, id, r.grace()); err != nil && r.ctx.Err() == nil {
			r.a.log.Warn("stop an unhealthy task container", zap.String("task", t.GetId()), zap.Error(err))
		}
	}
	loop := health.Loop{Clock: r.a.clock, Config: cfg, Started: started, AtOnce: reAdopted, Changed: changed,
		Probe: func(ctx context.Context) (int, string, error) {
			code, out, err := r.a.exec.Probe(ctx, id, cfg)
			countProbe(code, err)
			return code, out, err
		}}
	go func() {
		defer close(w.done)
		loop.Run(ctx)
	}()
	return w
}
