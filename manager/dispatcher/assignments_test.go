package dispatcher

import (
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func healthy(st *shoalv1.TaskStatus, h shoalv1.HealthState) *shoalv1.TaskStatus {
	st.Health = &shoalv1.TaskHealth{State: h}
	return st
}

func TestAdvances(t *testing.T) {
	st := func(s shoalv1.TaskState, restarts int32) *shoalv1.TaskStatus {
		return &shoalv1.TaskStatus{State: s, Restarts: restarts}
	}
	for _, tc := range []struct {
		cur, next *shoalv1.TaskStatus
		want      bool
	}{
		{st(shoalv1.TaskState_TASK_STATE_ASSIGNED, 0), st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), true},
		{st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), st(shoalv1.TaskState_TASK_STATE_STARTING, 0), false},
		{st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), st(shoalv1.TaskState_TASK_STATE_RUNNING, 1), true},
		{st(shoalv1.TaskState_TASK_STATE_RUNNING, 1), st(shoalv1.TaskState_TASK_STATE_RUNNING, 1), false},
		{st(shoalv1.TaskState_TASK_STATE_FAILED, 2), st(shoalv1.TaskState_TASK_STATE_REJECTED, 2), false},
		{st(shoalv1.TaskState_TASK_STATE_SHUTDOWN, 0), st(shoalv1.TaskState_TASK_STATE_FAILED, 0), false},
		{st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), nil, false},
		// A running task's health changing is news; the same health is not.
		{st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_STARTING), true},
		{healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_STARTING), healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_HEALTHY), true},
		{healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_HEALTHY), healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_UNHEALTHY), true},
		{healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_HEALTHY), healthy(st(shoalv1.TaskState_TASK_STATE_RUNNING, 0), shoalv1.HealthState_HEALTH_STATE_HEALTHY), false},
	} {
		if got := advances(tc.cur, tc.next); got != tc.want {
			t.Errorf("advances(%v, %v) = %v; want %v", tc.cur, tc.next, got, tc.want)
		}
	}
}

func TestAssigned(t *testing.T) {
	task := func(node string, desired, state shoalv1.TaskState) *shoalv1.Task {
		return &shoalv1.Task{NodeId: node, DesiredState: desired, Status: &shoalv1.TaskStatus{State: state}}
	}
	run, shut := shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.TaskState_TASK_STATE_SHUTDOWN
	for _, tc := range []struct {
		t    *shoalv1.Task
		want bool
	}{
		{task("n1", run, shoalv1.TaskState_TASK_STATE_ASSIGNED), true},
		{task("n1", run, shoalv1.TaskState_TASK_STATE_PENDING), false},
		{task("n2", run, run), false},
		{task("n1", shut, run), true},                                   // must be stopped
		{task("n1", shut, shut), true},                                  // history, until deleted
		{task("n1", shut, shoalv1.TaskState_TASK_STATE_COMPLETE), true}, // its exited container is its record
		{task("n1", shoalv1.TaskState_TASK_STATE_REMOVE, shoalv1.TaskState_TASK_STATE_COMPLETE), false},
		{task("n1", shoalv1.TaskState_TASK_STATE_REMOVE, run), true}, // must be stopped first
		{task("n1", run, shoalv1.TaskState_TASK_STATE_FAILED), true},
	} {
		if got := assigned(tc.t, "n1"); got != tc.want {
			t.Errorf("assigned(%v) = %v; want %v", tc.t, got, tc.want)
		}
	}
}
