package cli

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// updStatus is an update status started at the test's clock.
func updStatus(state shoalv1.UpdateState, msg string) *shoalv1.UpdateStatus {
	return &shoalv1.UpdateStatus{State: state, Message: msg, StartedAt: timestamppb.New(progressT0)}
}

// deployLook is one look of an update or rollback: the service's update
// status, its tasks (health per task id) and what it must show.
type deployLook struct {
	ms        int
	status    *shoalv1.UpdateStatus
	tasks     []tk
	health    map[string]shoalv1.HealthState
	want      []string
	converged bool
	err       string
}

func TestConvergenceDeploys(t *testing.T) {
	const (
		updating   = shoalv1.UpdateState_UPDATE_STATE_UPDATING
		completed  = shoalv1.UpdateState_UPDATE_STATE_COMPLETED
		paused     = shoalv1.UpdateState_UPDATE_STATE_PAUSED
		rbStarted  = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED
		rbPaused   = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED
		rbDone     = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED
		hStarting  = shoalv1.HealthState_HEALTH_STATE_STARTING
		hHealthy   = shoalv1.HealthState_HEALTH_STATE_HEALTHY
		hUnhealthy = shoalv1.HealthState_HEALTH_STATE_UNHEALTHY
	)
	two := []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsRunning}}
	monitors := func(update, rollback time.Duration) *shoalv1.Service {
		s := replicatedSvc(2)
		s.Spec.Update = &shoalv1.UpdateConfig{Monitor: durationpb.New(update)}
		s.Spec.Rollback = &shoalv1.UpdateConfig{Monitor: durationpb.New(rollback)}
		return s
	}
	done := updStatus(completed, "update completed")
	for _, c := range []struct {
		name  string
		svc   *shoalv1.Service
		prior *shoalv1.UpdateStatus
		looks []deployLook
	}{
		{"the verify window, once the manager has rolled every task, is the update config's monitor", monitors(2*time.Second, 9*time.Second), nil, []deployLook{
			{ms: 0, status: updStatus(updating, "update in progress"), tasks: two, want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)"}},
			{ms: 5000, status: updStatus(updating, "update in progress"), tasks: two, want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)"}},
			{ms: 6000, status: done, tasks: two, want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)",
				"verify: Waiting 2 seconds to verify that tasks are stable..."}},
			{ms: 8000, status: done, tasks: two, want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)",
				"verify: Service converged"}, converged: true},
		}},
		{"global stop-first update: every node running is not converged while the update is in progress", globalSvc(), nil, []deployLook{
			{ms: 0, status: updStatus(updating, ""), tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}, {id: "b2", node: "bbb", state: tsRunning}},
				want: []string{"overall progress: 2 out of 2 tasks", "aaa: running (9)", "bbb: running (9)"}},
			{ms: 5400, status: updStatus(updating, ""), tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}, {id: "b2", node: "bbb", state: tsRunning}},
				want: []string{"overall progress: 2 out of 2 tasks", "aaa: running (9)", "bbb: running (9)"}},
		}},
		{"a paused update ends the wait with docker's error", replicatedSvc(2), nil, []deployLook{
			{ms: 0, status: updStatus(updating, "update in progress"), tasks: []tk{{id: "a", slot: 1, state: tsStarting}},
				want: []string{"overall progress: 0 out of 2 tasks", "1/2: starting (8)", "2/2: "}},
			{ms: 200, status: updStatus(paused, "update paused due to failure or early termination of task a"),
				err: "service update paused: update paused due to failure or early termination of task a"},
		}},
		{"a rollback: announced, counted as one, verified for the rollback config's monitor, then its message", monitors(time.Second, 3*time.Second), nil, []deployLook{
			{ms: 0, status: updStatus(rbStarted, "update rolled back due to failure or early termination of task x"), tasks: []tk{{id: "a", slot: 1, state: tsRunning}},
				want: []string{"rollback: update rolled back due to failure or early termination of task x",
					"overall progress: rolling back update: 1 out of 2 tasks", "1/2: running (9)", "2/2: "}},
			{ms: 500, status: updStatus(rbStarted, "update rolled back due to failure or early termination of task x"), tasks: two,
				want: []string{"rollback: update rolled back due to failure or early termination of task x",
					"overall progress: rolling back update: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)"}},
			{ms: 1000, status: updStatus(rbDone, "rollback completed"), tasks: two,
				want: []string{"rollback: update rolled back due to failure or early termination of task x",
					"overall progress: rolling back update: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)",
					"verify: Waiting 3 seconds to verify that tasks are stable..."}},
			{ms: 3500, status: updStatus(rbDone, "rollback completed"), tasks: two,
				want: []string{"rollback: update rolled back due to failure or early termination of task x",
					"overall progress: rolling back update: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)",
					"verify: Waiting 1 second to verify that tasks are stable..."}},
			{ms: 4000, status: updStatus(rbDone, "rollback completed"), tasks: two,
				want: []string{"rollback: update rolled back due to failure or early termination of task x",
					"overall progress: rolling back update: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)",
					"verify: Service converged", "rollback: rollback completed"}, converged: true},
		}},
		{"a rollback's slots: the tasks it stopped before it started are history; a task meant to run stands for its slot", replicatedSvc(2), nil, []deployLook{
			{ms: 0, status: updStatus(rbStarted, "manually requested rollback"), tasks: []tk{
				{id: "old1", slot: 1, state: tsShutdown, desired: tsShutdown, made: -60}, {id: "old2", slot: 2, state: tsShutdown, desired: tsShutdown, made: -60}},
				want: []string{"rollback: manually requested rollback", "overall progress: rolling back update: 0 out of 2 tasks", "1/2: ", "2/2: "}},
			{ms: 1000, status: updStatus(rbStarted, "manually requested rollback"), tasks: []tk{
				{id: "old1", slot: 1, state: tsShutdown, desired: tsShutdown, made: -60}, {id: "new1", slot: 1, state: tsStarting, made: 1},
				// Newer but being shut down: the one meant to run stands for the slot.
				{id: "new2", slot: 2, state: tsRunning, made: 0}, {id: "x2", slot: 2, state: tsRunning, desired: tsShutdown, made: 1}},
				want: []string{"rollback: manually requested rollback", "overall progress: rolling back update: 1 out of 2 tasks", "1/2: starting (8)", "2/2: running (9)"}},
		}},
		{"a paused rollback ends the wait", replicatedSvc(2), nil, []deployLook{
			{ms: 0, status: updStatus(rbPaused, "rollback paused due to failure or early termination of task b"),
				err: "service rollback paused: rollback paused due to failure or early termination of task b"},
		}},
		{"an update the manager completed before every task ran ends the wait", replicatedSvc(2), nil, []deployLook{
			{ms: 0, status: done, tasks: []tk{{id: "a", slot: 1, state: tsRunning}}, converged: true},
		}},
		{"the status the command started from is not news: a scale after an update", replicatedSvc(2), done, []deployLook{
			{ms: 0, status: done, tasks: []tk{{id: "a", slot: 1, state: tsRunning}},
				want: []string{"overall progress: 1 out of 2 tasks", "1/2: running (9)", "2/2: "}},
			{ms: 100, status: done, tasks: two,
				want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
		}},
		{"a prior pause is not this update's", replicatedSvc(1), updStatus(paused, "old"), []deployLook{
			{ms: 0, status: updStatus(paused, "old"), tasks: []tk{{id: "a", slot: 1, state: tsRunning}},
				want: []string{"overall progress: 1 out of 1 tasks", "1/1: running (9)", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
		}},
		{"a task with a check counts once healthy; turning unhealthy is a failure", replicatedSvc(2), nil, []deployLook{
			{ms: 0, tasks: two, health: map[string]shoalv1.HealthState{"a": hStarting, "b": hHealthy},
				want: []string{"overall progress: 1 out of 2 tasks", "1/2: running (health: starting) (8)", "2/2: running (9)"}},
			{ms: 1000, tasks: two, health: map[string]shoalv1.HealthState{"a": hHealthy, "b": hHealthy},
				want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 2000, tasks: two, health: map[string]shoalv1.HealthState{"a": hHealthy, "b": hUnhealthy},
				want: []string{"overall progress: 1 out of 2 tasks", "1/2: running (9)", "2/2: running (unhealthy) (8)", "verify: Detected task failure"}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conv := newConvergence(c.prior)
			for i, l := range c.looks {
				var tasks []*shoalv1.Task
				for _, k := range l.tasks {
					task := k.task()
					if h, ok := l.health[k.id]; ok {
						task.Status.Health = &shoalv1.TaskHealth{State: h}
					}
					tasks = append(tasks, task)
				}
				svc := c.svc
				svc.UpdateStatus = l.status
				f := conv.step(serviceLook{service: svc, tasks: tasks, now: progressT0.Add(time.Duration(l.ms) * time.Millisecond)})
				var got []string
				for _, line := range f.lines {
					got = append(got, showLine(line))
				}
				gotErr := ""
				if f.err != nil {
					gotErr = f.err.Error()
				}
				if !slices.Equal(got, l.want) || f.converged != l.converged || gotErr != l.err {
					t.Errorf("look %d (at %d ms) = %q, converged %v, err %q;\nwant %q, converged %v, err %q", i, l.ms, got, f.converged, gotErr, l.want, l.converged, l.err)
				}
			}
		})
	}
}
