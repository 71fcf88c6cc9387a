package worker

import (
	"strings"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestApplyTaskOptions(t *testing.T) {
	task := &shoalv1.Task{
		Id: "t1", ServiceId: "s1", ServiceName: "web", Slot: 2, NodeId: "n1", ServiceLabels: map[string]string{"tier": "front"},
		Spec: &shoalv1.TaskSpec{
			Container: &shoalv1.ContainerSpec{
				Image: "img", Hostname: "{{.Service.Name}}-{{.Task.Slot}}",
				Env:    []string{"NODE={{.Node.Hostname}}", "TASK={{.Task.Name}}", "TIER={{.Service.Labels.tier}}", "PLAIN=x"},
				Mounts: []*shoalv1.Mount{{Type: shoalv1.MountType_MOUNT_TYPE_VOLUME, Source: "data-{{.Task.Slot}}", Target: "/data/{{.Node.ID}}"}},
			},
			LogDriver: &shoalv1.Driver{Name: "json-file", Options: map[string]string{"max-size": "64k", "max-file": "2"}},
		},
	}
	s := Spec(task)
	if err := applyTaskOptions(task, "host2", &s); err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "web-2" {
		t.Errorf("hostname %q", s.Hostname)
	}
	if got := strings.Join(s.Env, " "); got != "NODE=host2 TASK=web.2.t1 TIER=front PLAIN=x" {
		t.Errorf("env %q", got)
	}
	if s.Mounts[0].Source != "data-2" || s.Mounts[0].Target != "/data/n1" {
		t.Errorf("mount %+v", s.Mounts[0])
	}
	if task.Spec.Container.Mounts[0].Source != "data-{{.Task.Slot}}" {
		t.Errorf("the task's own spec changed: %v", task.Spec.Container.Mounts[0])
	}
	if s.LogMaxSize != 64<<10 || s.LogMaxFiles != 2 {
		t.Errorf("log options %d %d", s.LogMaxSize, s.LogMaxFiles)
	}

	global := &shoalv1.Task{Id: "t2", ServiceName: "agent", NodeId: "n9", Spec: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Hostname: "{{.Task.Slot}}"}}}
	s = Spec(global)
	if err := applyTaskOptions(global, "h", &s); err != nil || s.Hostname != "n9" {
		t.Errorf("a global task's slot is its node: %q, %v", s.Hostname, err)
	}

	bad := &shoalv1.Task{Spec: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Env: []string{"A={{.Nope}}"}}}}
	s = Spec(bad)
	if err := applyTaskOptions(bad, "h", &s); err == nil || !strings.Contains(err.Error(), "env A") {
		t.Errorf("a bad template: %v", err)
	}
}

// The task record a container's label keeps on the node's disk has no
// registry credentials.
func TestTaskRecordWithoutRegistryAuth(t *testing.T) {
	task := &shoalv1.Task{Id: "t1", ServiceName: "web", Slot: 1, Spec: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{
		Image: "img", PullOptions: &shoalv1.PullOptions{RegistryAuth: "c2VjcmV0LW1hcmtlcg=="}}}}
	s := Spec(task)
	if rec := s.Labels[LabelTaskRecord]; rec == "" || strings.Contains(rec, "c2VjcmV0LW1hcmtlcg") || strings.Contains(rec, "pull") {
		t.Fatalf("task record %q", rec)
	}
	if task.GetSpec().GetContainer().GetPullOptions() == nil {
		t.Fatal("the task itself lost its credentials")
	}
}
