package faults

import (
	"fmt"
	"sync"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// RollingRestartResult is what scenario 7 measured.
type RollingRestartResult struct {
	Restarted   []string
	Downtime    []time.Duration // per daemon: stop → back ready
	Samples     int             // times the replicas were counted
	MinRunning  int             // fewest containers of the service seen running
	MinReported int             // fewest tasks the cluster reported running
}

// RollingRestart is scenario 7: every worker daemon is restarted in turn
// (SIGTERM, start again, wait until ready). No container may be restarted
// (the same task in the same PID afterwards) and, sampled throughout, the
// service never runs or reports fewer than replicas.
func RollingRestart(e *Env, svc string, replicas int) RollingRestartResult {
	e.T.Helper()
	e.Create(e.Spec(svc, int64(replicas)))
	before := e.pids(svc)
	r := RollingRestartResult{MinRunning: 1 << 30, MinReported: 1 << 30}
	var mu sync.Mutex
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			running, _ := e.C.ServiceContainers(svc)
			reported := -1
			if tasks, err := e.Tasks(svc); err == nil {
				reported = 0
				for _, t := range tasks {
					if t.GetDesiredState() == shoalv1.TaskState_TASK_STATE_RUNNING && t.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_RUNNING {
						reported++
					}
				}
			}
			mu.Lock()
			r.Samples++
			r.MinRunning = min(r.MinRunning, running)
			if reported >= 0 {
				r.MinReported = min(r.MinReported, reported)
			}
			mu.Unlock()
		}
	}()
	for _, w := range e.C.Workers {
		e.H.Fault("restart daemon", w.Name)
		t0 := time.Now()
		following := w.LogCount(FollowingLog)
		w.Stop()
		w.Start()
		// Back when it follows the leader's assignments again.
		e.Eventually(30*time.Second, func() error {
			if w.LogCount(FollowingLog) <= following {
				return fmt.Errorf("%s does not follow the assignments again", w.Name)
			}
			return nil
		})
		e.AllReady(30 * time.Second)
		back := time.Since(t0)
		// Watch past the heartbeat TTL (3 × 500 ms): a node the leader
		// had wrongly marked down would lose its tasks in that window.
		mu.Lock()
		from := r.Samples
		mu.Unlock()
		e.Eventually(30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if r.Samples < from+40 {
				return fmt.Errorf("%d samples since the restart; want 40", r.Samples-from)
			}
			return nil
		})
		r.Downtime = append(r.Downtime, back)
		r.Restarted = append(r.Restarted, w.Name)
		e.H.Fault("ready again", fmt.Sprintf("%s after %s", w.Name, back.Round(time.Millisecond)))
	}
	e.Eventually(20*time.Second, func() error { return e.Converged(svc, replicas) })
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if after := e.pids(svc); fmt.Sprint(after) != fmt.Sprint(before) {
		e.T.Fatalf("restarting the daemons restarted containers: task → pid %v before, %v after", before, after)
	}
	if r.MinRunning < replicas || r.MinReported < replicas {
		e.T.Fatalf("the service dropped below %d replicas during the restarts: %d containers running, %d tasks reported running at the lowest (%d samples)", replicas, r.MinRunning, r.MinReported, r.Samples)
	}
	return r
}

// FollowingLog is what a daemon logs when it receives the leader's
// assignments on a new stream.
const FollowingLog = "following the leader's assignments"

// pids maps each running container of svc, by host and task, to its PID.
func (e *Env) pids(svc string) map[string]int {
	out := map[string]int{}
	for _, n := range e.C.Nodes() {
		for _, c := range n.RunningContainers() {
			if c.Service == svc {
				out[n.Name+"/"+c.Task] = c.Pid
			}
		}
	}
	return out
}
