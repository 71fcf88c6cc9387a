package events

import (
	"maps"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func ev(kind shoalv1.StoreActionKind, o store.Object) *shoalv1.StoreEvent {
	return &shoalv1.StoreEvent{Kind: kind, Object: store.Wrap(o)}
}

const (
	create = shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE
	update = shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE
	remove = shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE
)

func task(state shoalv1.TaskState) *shoalv1.Task {
	return &shoalv1.Task{Id: "t1", ServiceId: "s1", ServiceName: "web", Slot: 2, NodeId: "n1", DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING,
		Status: &shoalv1.TaskStatus{State: state, Message: state.String()}}
}

func node(state shoalv1.NodeState, heartbeat int64) *shoalv1.Node {
	return &shoalv1.Node{Id: "n1", Description: &shoalv1.NodeDescription{Hostname: "host1"}, Status: &shoalv1.NodeStatus{State: state, Message: time.Unix(heartbeat, 0).String()}}
}

// Store changes become docker's events; updates that change nothing an
// operator follows are none.
func TestStoreEvents(t *testing.T) {
	r := New(store.New(), nil, clock.NewFake(t0))
	for _, tc := range []struct {
		name string
		in   *shoalv1.StoreEvent
		want *shoalv1.Event // nil: no event
	}{
		{"service create", ev(create, &shoalv1.Service{Id: "s1", Spec: &shoalv1.ServiceSpec{Name: "web"}}), &shoalv1.Event{Type: "service", Action: "create", ActorId: "s1", Attributes: map[string]string{"name": "web"}}},
		{"task create", ev(create, task(shoalv1.TaskState_TASK_STATE_NEW)), &shoalv1.Event{Type: "task", Action: "create", ActorId: "t1",
			Attributes: map[string]string{"name": "web.2", "service.id": "s1", "service.name": "web", "node.id": "n1"}}},
		{"task running", ev(update, task(shoalv1.TaskState_TASK_STATE_RUNNING)), &shoalv1.Event{Type: "task", Action: "update", ActorId: "t1",
			Attributes: map[string]string{"name": "web.2", "service.id": "s1", "service.name": "web", "node.id": "n1", "state.old": "new", "state.new": "running"}}},
		{"task status message only", ev(update, func() *shoalv1.Task {
			x := task(shoalv1.TaskState_TASK_STATE_RUNNING)
			x.Status.Message = "other"
			return x
		}()), nil},
		{"node create", ev(create, node(shoalv1.NodeState_NODE_STATE_READY, 1)), &shoalv1.Event{Type: "node", Action: "create", ActorId: "n1", Attributes: map[string]string{"name": "host1"}}},
		{"heartbeat write", ev(update, node(shoalv1.NodeState_NODE_STATE_READY, 2)), nil},
		{"node down", ev(update, node(shoalv1.NodeState_NODE_STATE_DOWN, 3)), &shoalv1.Event{Type: "node", Action: "update", ActorId: "n1",
			Attributes: map[string]string{"name": "host1", "state.old": "ready", "state.new": "down"}}},
		{"secret remove", ev(remove, &shoalv1.Secret{Id: "x1", Spec: &shoalv1.SecretSpec{Name: "db"}}), &shoalv1.Event{Type: "secret", Action: "remove", ActorId: "x1", Attributes: map[string]string{"name": "db"}}},
		{"cluster update", ev(update, &shoalv1.Cluster{Id: "c1"}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.feed.Kept())
			r.storeEvent(tc.in)
			if tc.want == nil {
				if kept := r.feed.Kept(); len(kept) != before {
					t.Fatalf("recorded %v; want no event", kept[len(kept)-1])
				}
				return
			}
			kept := r.feed.Kept()
			if len(kept) != before+1 {
				t.Fatalf("no event recorded")
			}
			got := kept[len(kept)-1]
			if got.GetType() != tc.want.GetType() || got.GetAction() != tc.want.GetAction() || got.GetActorId() != tc.want.GetActorId() || !maps.Equal(got.GetAttributes(), tc.want.GetAttributes()) || !got.GetTime().AsTime().Equal(t0) {
				t.Fatalf("got %v; want %v", got, tc.want)
			}
		})
	}
}

// A leadership change is a node update of the old and the new leader.
func TestLeaderEvents(t *testing.T) {
	r := New(store.New(), nil, clock.NewFake(t0))
	r.leaderIs("m1")
	r.leaderIs("m1")
	r.leaderIs("m2")
	var got []string
	for _, e := range r.feed.Kept() {
		got = append(got, e.GetActorId()+":"+e.GetAttributes()["leader.old"]+">"+e.GetAttributes()["leader.new"])
	}
	want := []string{"m1:false>true", "m1:true>false", "m2:false>true"}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v; want %v", got, want)
		}
	}
}
