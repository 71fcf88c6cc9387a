package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Task names and the REPLICAS column follow docker: web.3 for a
// replicated task, agent.<full node ID> for a global one; running/desired
// for both modes.
func TestTaskNamesAndReplicas(t *testing.T) {
	for _, tc := range []struct {
		task *shoalv1.Task
		want string
	}{
		{&shoalv1.Task{ServiceName: "web", Slot: 3, NodeId: "0zpyrovmo7mdhzcelomqi0unf"}, "web.3"},
		{&shoalv1.Task{ServiceName: "agent", NodeId: "0zpyrovmo7mdhzcelomqi0unf"}, "agent.0zpyrovmo7mdhzcelomqi0unf"},
	} {
		if got := taskName(tc.task); got != tc.want {
			t.Errorf("taskName(%v) = %q; want %q", tc.task, got, tc.want)
		}
	}
	global := &shoalv1.Service{Id: "g", Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}}}
	repl := &shoalv1.Service{Id: "r", Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 5}}}}
	counts := map[string][2]int{"g": {2, 3}, "r": {4, 5}}
	for _, tc := range []struct {
		svc            *shoalv1.Service
		mode, replicas string
	}{
		{global, "global", "2/3"},
		{repl, "replicated", "4/5"},
	} {
		if mode, reps := replicasColumn(tc.svc, counts, nil); mode != tc.mode || reps != tc.replicas {
			t.Errorf("replicasColumn(%s) = %q, %q; want %q, %q", tc.svc.GetId(), mode, reps, tc.mode, tc.replicas)
		}
	}
}

// CURRENT STATE is docker's, with the task's in-place restarts after it.
func TestCurrentStateShowsRestarts(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		state    shoalv1.TaskState
		restarts int32
		want     string
	}{
		{shoalv1.TaskState_TASK_STATE_RUNNING, 0, "Running 3 seconds ago"},
		{shoalv1.TaskState_TASK_STATE_RUNNING, 1, "Running 3 seconds ago (1 restart)"},
		{shoalv1.TaskState_TASK_STATE_FAILED, 2, "Failed 3 seconds ago (2 restarts)"},
	} {
		task := &shoalv1.Task{Status: &shoalv1.TaskStatus{State: tc.state, Restarts: tc.restarts, Timestamp: timestamppb.New(now.Add(-3 * time.Second))}}
		if got := currentState(task, now); got != tc.want {
			t.Errorf("currentState(%v, %d restarts) = %q; want %q", tc.state, tc.restarts, got, tc.want)
		}
	}
}
