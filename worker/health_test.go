package worker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/clock"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker/health"
)

// probe answers the task's next probe with code: it moves the clock one
// interval at a time until the health loop asks.
func probe(t *testing.T, clk *clock.Fake, f *fakeExec, interval time.Duration, code int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := clk.BlockUntilContext(ctx, 1)
		cancel()
		if err == nil {
			clk.Advance(interval)
		}
		select {
		case f.probes <- code:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the task was never probed")
}

// healthOf waits for a report of the task with the health state.
func (r *reports) waitHealth(t *testing.T, id string, want shoalv1.HealthState, restarts int32) *shoalv1.TaskStatus {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		for _, st := range r.all[id] {
			if st.GetHealth().GetState() == want && st.GetRestarts() == restarts {
				r.mu.Unlock()
				return st
			}
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("task %s never reported health %v (restarts %d); last %v", id, want, restarts, r.last(id))
		}
	}
}

// A task with a check is announced only once healthy, reported on every
// change of its health, and, once unhealthy, taken out, reported so,
// stopped and restarted per its policy, starting again.
func TestUnhealthyTaskStoppedAndRestarted(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	f.check = &health.Config{HTTP: "http://:80/health", Interval: time.Second, Retries: 2}
	tk := task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)
	a.Update(true, []*shoalv1.Task{tk}, nil)
	first := <-f.started
	st := r.waitHealth(t, "t1", shoalv1.HealthState_HEALTH_STATE_STARTING, 0)
	if st.GetState() != shoalv1.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("starting health reported with state %v; want running", st.GetState())
	}
	if got := f.readyCalls("t1"); len(got) != 0 {
		t.Fatalf("announced before its first probe: %v", got)
	}
	if h := a.ContainerHealth(first); h != "starting" {
		t.Errorf("ContainerHealth(%s) = %q; want starting", first, h)
	}
	probe(t, clk, f, time.Second, 1) // a failure while starting (no start period: counts)
	probe(t, clk, f, time.Second, 0)
	r.waitHealth(t, "t1", shoalv1.HealthState_HEALTH_STATE_HEALTHY, 0)
	if got := f.readyCalls("t1"); !slices.Equal(got, []bool{true}) {
		t.Fatalf("Ready calls %v once healthy; want [true]", got)
	}
	if h := a.ContainerHealth(first); h != "healthy" {
		t.Errorf("ContainerHealth(%s) = %q; want healthy", first, h)
	}
	if h := a.ContainerHealth("nobody"); h != "" {
		t.Errorf("ContainerHealth of no task's container = %q; want none", h)
	}
	probe(t, clk, f, time.Second, 1)
	probe(t, clk, f, time.Second, 0) // resets the streak
	probe(t, clk, f, time.Second, 1)
	if got := f.readyCalls("t1"); !slices.Equal(got, []bool{true}) {
		t.Fatalf("Ready calls %v after failures fewer than retries in a row; want [true]", got)
	}
	probe(t, clk, f, time.Second, 1)
	st = r.waitHealth(t, "t1", shoalv1.HealthState_HEALTH_STATE_UNHEALTHY, 0)
	if st.GetState() != shoalv1.TaskState_TASK_STATE_RUNNING || st.GetHealth().GetFailingStreak() != 2 ||
		!strings.Contains(st.GetHealth().GetOutput(), "exit 1") {
		t.Fatalf("unhealthy report %v; want running, streak 2, the probe's output", st)
	}
	// Restarted in place (restarts 1), starting again and out of the
	// load balancers until healthy.
	afterBackoff(t, clk, time.Millisecond)
	second := <-f.started
	r.waitHealth(t, "t1", shoalv1.HealthState_HEALTH_STATE_STARTING, 1)
	f.mu.Lock()
	stopped := slices.Clone(f.stopped)
	f.mu.Unlock()
	if !slices.Contains(stopped, first) || slices.Contains(stopped, second) {
		t.Fatalf("stopped %v; want the unhealthy %s only", stopped, first)
	}
	if got := f.readyCalls("t1"); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("Ready calls %v; want [true false]: in once healthy, out once unhealthy", got)
	}
}

// With no restarts left the unhealthy task fails with the probe's output
// in its error.
func TestUnhealthyTaskFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	f.check = &health.Config{Test: []string{"CMD", "check"}, Interval: time.Second, Retries: 1}
	tk := task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_NONE)
	a.Update(true, []*shoalv1.Task{tk}, nil)
	<-f.started
	probe(t, clk, f, time.Second, 7)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_FAILED, 0)
	st := r.last("t1")
	if st.GetErr() != "container is unhealthy: probe of c1: exit 7" || st.GetHealth().GetState() != shoalv1.HealthState_HEALTH_STATE_UNHEALTHY {
		t.Fatalf("final report %v; want failed with the unhealthy error and health", st)
	}
}

// A task without a check reports no health and is never announced by the
// runner (the executor announces it at its start).
func TestNoCheckNoHealth(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, _, stop := newAgentClock(t)
	defer stop()
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	if st := r.last("t1"); st.GetHealth() != nil {
		t.Errorf("health %v reported for a task with no check", st.GetHealth())
	}
	if got := f.readyCalls("t1"); len(got) != 0 {
		t.Errorf("Ready calls %v", got)
	}
}

func TestUnhealthyError(t *testing.T) {
	cases := map[string]string{
		"":                      "container is unhealthy",
		"  curl: (7) refused\n": "container is unhealthy: curl: (7) refused",
		"a\nb\tc":               "container is unhealthy: a b c",
	}
	for in, want := range cases {
		if got := unhealthyError(in); got != want {
			t.Errorf("unhealthyError(%q) = %q; want %q", in, got, want)
		}
	}
	if got := unhealthyError(strings.Repeat("x", 1000)); len(got) > 260 {
		t.Errorf("a long output is kept whole in the error (%d bytes)", len(got))
	}
}

// A container taken over after a daemon restart is probed again at once,
// from starting, and announced once healthy.
func TestReAdoptedProbedAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, _, stop := newAgentClock(t)
	defer stop()
	f.check = &health.Config{HTTP: "http://:80/health", Interval: time.Hour}
	f.mu.Lock()
	f.exits["c9"] = make(chan Exit, 1)
	f.running["c9"] = "t1"
	f.mu.Unlock()
	tk := task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)
	tk.Status.State = shoalv1.TaskState_TASK_STATE_RUNNING
	a.Update(true, []*shoalv1.Task{tk}, nil)
	r.waitHealth(t, "t1", shoalv1.HealthState_HEALTH_STATE_STARTING, 0)
	select {
	case f.probes <- 0: // no clock moved: at once
	case <-time.After(10 * time.Second):
		t.Fatal("the re-adopted container was not probed at once")
	}
	r.waitHealth(t, "t1", shoalv1.HealthState_HEALTH_STATE_HEALTHY, 0)
	if got := f.readyCalls("t1"); !slices.Equal(got, []bool{true}) {
		t.Fatalf("Ready calls %v; want [true] once healthy", got)
	}
	select {
	case id := <-f.started:
		t.Fatalf("started a new container %s instead of taking c9 over", id)
	default:
	}
}
