package tests

import (
	"testing"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/deploy"
)

// Issue 14's proof under load. A whoami service of 6 replicas with an
// HTTP health check (every 1 s) on 3 workers, behind its VIP on overlay
// network app and the routing mesh: one load client in a container on
// app asks the VIP, another on a host outside the cluster asks the mesh
// on manager1, which runs no replica; each sends a request every 20 ms
// on a new connection and counts every error, reset and non-2xx. A
// start-first rolling update: 0 failed requests, every replica replaced
// (new containers in /proc, new task IDs, each answering), and every old
// container gone only after its slot's replacement answered requests
// (so was healthy). Then stop-first, parallelism 2: 0 failed requests,
// never two containers of a slot alive, never fewer than 4.
func TestDeployRollingUpdateUnderLoad(t *testing.T) {
	needRoot(t)
	e := deploy.Start(t, 1, 3)
	e.CreateService(e.Spec("web", 6, e.V1, time.Second, nil))

	r := e.RollUnderLoad("web", "1", e.V2, "2", 6, shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST, 1)
	if r.Err != nil {
		t.Errorf("start-first, parallelism 1:\n%s", deploy.Indent(r.Err))
	}
	t.Logf("start-first: %s, %d requests through the VIP and the mesh, %d failed, %d /proc samples", r.Took.Round(time.Millisecond), r.Requests(), r.Failed(), r.Samples)
	if t.Failed() {
		t.FailNow()
	}

	r = e.RollUnderLoad("web", "2", e.V3, "3", 6, shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST, 2)
	if r.Err != nil {
		t.Errorf("stop-first, parallelism 2:\n%s", deploy.Indent(r.Err))
	}
	t.Logf("stop-first, parallelism 2: %s, %d requests, %d failed, %d /proc samples", r.Took.Round(time.Millisecond), r.Requests(), r.Failed(), r.Samples)
}

// An update to an image whose health check never passes, under the same
// load: with failure action pause it pauses after the first task (the
// update status says PAUSED), no other slot is tried for 5 s, the old
// tasks keep answering and no request fails; `service rollback` then
// returns it to the old image. With failure action rollback the service
// returns to its old spec by itself (ROLLBACK_COMPLETED, every container
// on the old image) and no request fails.
func TestDeployBadImagePausesOrRollsBack(t *testing.T) {
	needRoot(t)
	e := deploy.Start(t, 1, 3)
	e.CreateService(e.Spec("web", 6, e.V1, time.Second, nil))

	r := e.BadImage("web", "1", 6, shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST, shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, 5*time.Second)
	if r.Err != nil {
		t.Fatalf("failure action pause:\n%s", deploy.Indent(r.Err))
	}
	r = e.RollbackUnderLoad("web", "1", 6)
	if r.Err != nil {
		t.Fatalf("service rollback of the paused update:\n%s", deploy.Indent(r.Err))
	}
	t.Logf("service rollback: all 6 on the old image %s after the call, %d requests, %d failed", r.Took.Round(time.Millisecond), r.Requests(), r.Failed())

	r = e.BadImage("web", "1", 6, shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST, shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, 0)
	if r.Err != nil {
		t.Fatalf("failure action rollback:\n%s", deploy.Indent(r.Err))
	}
	t.Logf("automatic rollback: completed %s after the update, %d requests, %d failed", r.Took.Round(time.Millisecond), r.Requests(), r.Failed())
}

// The leader killed mid-update (SIGKILL, after two of six slots run the
// new image): the next leader finishes the update from the store, with
// exactly the desired tasks: 6 containers alive across the hosts, each on
// its task's node and on the new image, none of the old; at no sample two
// containers of a slot or more than 6; and nothing changes when the
// killed manager comes back.
func TestDeployLeaderKilledMidUpdate(t *testing.T) {
	needRoot(t)
	e := deploy.Start(t, 3, 2)
	e.CreateService(e.Spec("web", 6, e.V1, time.Second, nil))
	r := e.LeaderKillMidUpdate("web", "1", e.V2, "2", 6)
	if r.Err != nil {
		t.Fatalf("killed %s with %d slots updated:\n%s", r.Killed, r.Done, deploy.Indent(r.Err))
	}
	t.Logf("killed the leader %s with %d of 6 slots updated; the update completed %s after it began (%d /proc samples)", r.Killed, r.Done, r.Took.Round(time.Millisecond), r.Samples)
}
