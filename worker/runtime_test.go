package worker

import (
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
)

func TestPullProgress(t *testing.T) {
	var p PullProgress
	for _, tc := range []struct {
		ev     image.Progress
		want   string
		wantOK bool
	}{
		{image.Progress{Status: image.StatusResolving}, "", false},
		{image.Progress{Layer: "a", Status: image.StatusDownloading, Current: 1e6, Total: 4e6}, "pulling image: 0 of 1 layers, 1.0 of 4.0 MB", true},
		{image.Progress{Layer: "b", Status: image.StatusExists, Total: 2e6}, "pulling image: 1 of 2 layers, 3.0 of 6.0 MB", true},
		{image.Progress{Layer: "a", Status: image.StatusDownloading, Current: 3e6, Total: 4e6}, "pulling image: 1 of 2 layers, 5.0 of 6.0 MB", true},
		// The store's last events carry no byte counts (as it sends them).
		{image.Progress{Layer: "a", Status: image.StatusVerifying}, "pulling image: 1 of 2 layers, 5.0 of 6.0 MB", true},
		{image.Progress{Layer: "a", Status: image.StatusDone}, "pulling image: 2 of 2 layers, 6.0 of 6.0 MB", true},
	} {
		got, ok := p.Add(tc.ev)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Add(%+v) = %q, %v; want %q, %v", tc.ev, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A service's labels reach the container, but cannot take the names the
// node keeps its own facts under (which task, which service, the task
// record a restart without a manager resumes from).
func TestSpecLabelsKeepTheNodesOwn(t *testing.T) {
	task := &shoalv1.Task{Id: "t1", ServiceId: "s1", ServiceName: "web", Slot: 1, Spec: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{
		Image: "img", Labels: map[string]string{"app": "web", LabelTask: "forged", LabelService: "forged", LabelServiceName: "forged", LabelTaskRecord: "forged"},
	}}}
	l := Spec(task).Labels
	if l["app"] != "web" {
		t.Errorf("the service's label app = %q; want web", l["app"])
	}
	if l[LabelTask] != "t1" || l[LabelService] != "s1" || l[LabelServiceName] != "web" {
		t.Errorf("task labels %q %q %q; want t1 s1 web", l[LabelTask], l[LabelService], l[LabelServiceName])
	}
	if recs := Records([]container.State{{ID: "c1", Labels: l, Status: container.Running}}); len(recs) != 1 || recs[0].Task.GetId() != "t1" {
		t.Errorf("the task record does not read back as task t1: %+v", recs)
	}
}
