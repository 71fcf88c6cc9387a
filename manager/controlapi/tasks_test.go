package controlapi

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

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
