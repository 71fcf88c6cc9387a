package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

type fakeRaft map[string]string

func (f fakeRaft) Stats() map[string]string { return f }

func (f fakeRaft) DiskSizes() (int64, int64) { return 4096, 512 }

func create(o store.Object) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(o)}
}

func TestCollector(t *testing.T) {
	st := store.New()
	running, shutdown := shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.TaskState_TASK_STATE_SHUTDOWN
	actions := []*shoalv1.StoreAction{
		create(&shoalv1.Service{Id: "s1", Spec: &shoalv1.ServiceSpec{Name: "web"}}),
		create(&shoalv1.Task{Id: "t1", ServiceId: "s1", DesiredState: running, Status: &shoalv1.TaskStatus{State: running}}),
		create(&shoalv1.Task{Id: "t2", ServiceId: "s1", DesiredState: running, Status: &shoalv1.TaskStatus{State: running}}),
		create(&shoalv1.Task{Id: "t3", ServiceId: "s1", DesiredState: shutdown, Status: &shoalv1.TaskStatus{State: shutdown}}),
		create(&shoalv1.Node{Id: "n1", Role: shoalv1.NodeRole_NODE_ROLE_MANAGER, Status: &shoalv1.NodeStatus{State: shoalv1.NodeState_NODE_STATE_READY},
			Spec: &shoalv1.NodeSpec{Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE}}),
	}
	if err := st.Apply(&shoalv1.StoreBatch{Actions: actions}, 7); err != nil {
		t.Fatal(err)
	}
	c := &Collector{Store: st, Raft: fakeRaft{"state": "Leader", "term": "3", "commit_index": "7", "applied_index": "7", "last_log_index": "7", "last_snapshot_index": "0", "num_peers": "2"}}
	want := `
# HELP shoal_manager_raft_state The manager's Raft state: 1 for the one it is in (leader, follower, candidate, shutdown).
# TYPE shoal_manager_raft_state gauge
shoal_manager_raft_state{state="candidate"} 0
shoal_manager_raft_state{state="follower"} 0
shoal_manager_raft_state{state="leader"} 1
shoal_manager_raft_state{state="shutdown"} 0
# HELP shoal_manager_raft_term The Raft term this manager is in.
# TYPE shoal_manager_raft_term gauge
shoal_manager_raft_term 3
# HELP shoal_manager_raft_log_bytes Size of this manager's Raft log file on disk.
# TYPE shoal_manager_raft_log_bytes gauge
shoal_manager_raft_log_bytes 4096
# HELP shoal_manager_raft_snapshot_bytes Size of this manager's latest Raft snapshot on disk (0: none yet).
# TYPE shoal_manager_raft_snapshot_bytes gauge
shoal_manager_raft_snapshot_bytes 512
# HELP shoal_manager_tasks Tasks in the store, by current state and desired state.
# TYPE shoal_manager_tasks gauge
shoal_manager_tasks{desired_state="running",state="running"} 2
shoal_manager_tasks{desired_state="shutdown",state="shutdown"} 1
# HELP shoal_manager_nodes Nodes of the cluster, by state, availability and role.
# TYPE shoal_manager_nodes gauge
shoal_manager_nodes{availability="active",role="manager",state="ready"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "shoal_manager_raft_state", "shoal_manager_raft_term", "shoal_manager_raft_log_bytes", "shoal_manager_raft_snapshot_bytes", "shoal_manager_tasks", "shoal_manager_nodes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "shoal_manager_store_objects"); n != 7 {
		t.Errorf("%d store_objects series; want one per table (7)", n)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
