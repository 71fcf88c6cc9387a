package controlapi

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// up_to_date keeps the tasks made from their service's current spec: what
// `service update` shows the progress of.
func TestListTasksUpToDate(t *testing.T) {
	s, r := newTestServer(t)
	web := mustCreate(t, s, minimalSpec("web"))
	db := mustCreate(t, s, minimalSpec("db"))
	task := func(id string, svc *shoalv1.Service, image string) *shoalv1.Task {
		spec := proto.Clone(svc.GetSpec().GetTask()).(*shoalv1.TaskSpec)
		spec.Container.Image = image
		return &shoalv1.Task{Id: id, ServiceId: svc.GetId(), ServiceName: svc.GetSpec().GetName(), Slot: 1, Spec: spec,
			Endpoint: proto.Clone(svc.GetSpec().GetEndpoint()).(*shoalv1.EndpointSpec), DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING}
	}
	// web was updated to nginx:1.25 from 1.24; db runs its current spec.
	seed(t, r, task("web-old", web, "nginx:1.24"), task("web-new", web, "nginx:1.25"), task("db-cur", db, "nginx:1.25"))

	for _, c := range []struct {
		req  *shoalv1.ListTasksRequest
		want []string
	}{
		{&shoalv1.ListTasksRequest{ServiceId: "web"}, []string{"web-new", "web-old"}},
		{&shoalv1.ListTasksRequest{ServiceId: "web", UpToDate: true}, []string{"web-new"}},
		{&shoalv1.ListTasksRequest{ServiceId: "db", UpToDate: true}, []string{"db-cur"}},
		{&shoalv1.ListTasksRequest{UpToDate: true}, []string{"db-cur", "web-new"}},
		{&shoalv1.ListTasksRequest{}, []string{"db-cur", "web-new", "web-old"}},
	} {
		resp, err := s.ListTasks(context.Background(), c.req)
		if err != nil {
			t.Fatalf("ListTasks(%v) = %v", c.req, err)
		}
		var got []string
		for _, tk := range resp.GetTasks() {
			got = append(got, tk.GetId())
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("ListTasks(%v) = %v; want %v", c.req, got, c.want)
		}
	}
}

// Tasks come a slot at a time, newest first, wherever they ran: service
// ps shows the slot's current task on top and its history under it. A
// global service's slot is its node.
func TestListTasksOrder(t *testing.T) {
	s, r := newTestServer(t)
	web := mustCreate(t, s, minimalSpec("web"))
	at := func(sec int64) *shoalv1.Meta {
		return &shoalv1.Meta{CreatedAt: &timestamppb.Timestamp{Seconds: sec}}
	}
	task := func(id string, slot uint64, node string, created int64) *shoalv1.Task {
		return &shoalv1.Task{Id: id, ServiceId: web.GetId(), ServiceName: "web", Slot: slot, NodeId: node, Meta: at(created),
			Spec: web.GetSpec().GetTask(), DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING}
	}
	// Slot 1 moved from node b to node a, then to c; slot 2 stayed on z.
	seed(t, r, task("1-first", 1, "b", 10), task("1-second", 1, "a", 20), task("1-third", 1, "c", 30), task("2-only", 2, "z", 5),
		task("g-a-old", 0, "a", 1), task("g-a-new", 0, "a", 2), task("g-b", 0, "b", 1))
	resp, err := s.ListTasks(context.Background(), &shoalv1.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range resp.GetTasks() {
		got = append(got, tk.GetId())
	}
	want := []string{"g-a-new", "g-a-old", "g-b", "1-third", "1-second", "1-first", "2-only"}
	if !slices.Equal(got, want) {
		t.Errorf("ListTasks order %v; want %v", got, want)
	}
}
