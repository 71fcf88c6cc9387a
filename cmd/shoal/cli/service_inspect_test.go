package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func deployService(now time.Time) *shoalv1.Service {
	return &shoalv1.Service{
		Id: "svc0123456789abcdefghijk",
		Spec: &shoalv1.ServiceSpec{
			Name:   "web",
			Labels: map[string]string{"team": "edge", "flag": ""},
			Mode:   &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 3}},
			Task: &shoalv1.TaskSpec{
				Container: &shoalv1.ContainerSpec{Image: "whoami:1", Args: []string{"serve", "-p", "80"}, Env: []string{"A=1"},
					Healthcheck: &shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: durationpb.New(2 * time.Second),
						Timeout: durationpb.New(time.Second), Retries: 3}},
				Resources: &shoalv1.ResourceRequirements{Reservations: &shoalv1.Resources{NanoCpus: 5e8, MemoryBytes: 256 << 20}},
				Placement: &shoalv1.Placement{Constraints: []string{"node.role==worker"}},
			},
			Update: &shoalv1.UpdateConfig{Parallelism: 2, Delay: durationpb.New(10 * time.Second), Monitor: durationpb.New(5 * time.Second),
				FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, MaxFailureRatio: 0.25, Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST},
			Rollback: &shoalv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(5 * time.Second),
				FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, Order: shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST},
			Networks: []*shoalv1.NetworkAttachment{{Target: "net1"}},
		},
		UpdateStatus: &shoalv1.UpdateStatus{State: shoalv1.UpdateState_UPDATE_STATE_COMPLETED, Message: "update completed",
			StartedAt: timestamppb.New(now.Add(-time.Minute)), CompletedAt: timestamppb.New(now.Add(-3 * time.Second))},
		Endpoint: &shoalv1.ServiceEndpoint{Ports: []*shoalv1.PortConfig{{TargetPort: 80, PublishedPort: 8080}}},
	}
}

// --pretty is docker's view, block for block.
func TestPrettyService(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	prettyService(&b, deployService(now), map[string]string{"net1": "front"}, now)
	want := `
ID:		svc0123456789abcdefghijk
Name:		web
Labels:
 flag
 team=edge
Service Mode:	Replicated
 Replicas:	3
UpdateStatus:
 State:		completed
 Started:	1 minute ago
 Completed:	3 seconds ago
 Message:	update completed
Placement:
 Constraints:	[node.role==worker]
UpdateConfig:
 Parallelism:	2
 Delay:		10s
 On failure:	rollback
 Monitoring Period: 5s
 Max failure ratio: 0.25
 Update order:      start-first
RollbackConfig:
 Parallelism:	1
 On failure:	pause
 Monitoring Period: 5s
 Max failure ratio: 0
 Rollback order:    stop-first
ContainerSpec:
 Image:		whoami:1
 Args:		serve -p 80 
 Env:		A=1 
Resources:
 Reservations:
  CPU:		0.5
  Memory:	256MiB
Networks: front 
Endpoint Mode:	vip
Ports:
 PublishedPort = 8080
  Protocol = tcp
  TargetPort = 80
  PublishMode = ingress
 Healthcheck:
  Interval = 2s
  Retries = 3
  StartPeriod =	0s
  StartInterval =	0s
  Timeout =	1s
  Tests:
	 Test = CMD-SHELL
	 Test = true
`
	if b.String() != want {
		t.Errorf("pretty =\n%s\nwant\n%s", b.String(), want)
	}

	// A rollback under way: no Completed line (docker shows it for a
	// completed update only); a probe from outside; no configs, no blocks.
	s := deployService(now)
	s.UpdateStatus = &shoalv1.UpdateStatus{State: shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, Message: "manually requested rollback",
		StartedAt: timestamppb.New(now.Add(-2 * time.Second))}
	s.Spec.Update, s.Spec.Rollback = nil, nil
	s.Spec.Task.Container.Healthcheck = &shoalv1.HealthConfig{Http: "http://:8080/health"}
	b.Reset()
	prettyService(&b, s, nil, now)
	got := b.String()
	for _, want := range []string{"UpdateStatus:\n State:\t\trollback_started\n Started:\t2 seconds ago\n Message:\tmanually requested rollback\nPlacement:",
		"Networks: net1 \n", "  HTTP = http://:8080/health\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("pretty lacks %q:\n%s", want, got)
		}
	}
	for _, no := range []string{"Completed:", "UpdateConfig:", "RollbackConfig:", "Tests:"} {
		if strings.Contains(got, no) {
			t.Errorf("pretty shows %q:\n%s", no, got)
		}
	}
}

// --pretty and --format do not go together, as in docker.
func TestPrettyWithFormat(t *testing.T) {
	_, _, err := run(t, "-H", "unix://"+noDaemon, "service", "inspect", "--pretty", "--format", "{{.ID}}", "web")
	if err == nil || Message(err) != "Error: --format is incompatible with human friendly format" {
		t.Errorf("inspect --pretty --format = %v; want docker's error", err)
	}
}

// The deploy settings reach inspect templates under docker's names.
func TestDeployTemplateKeys(t *testing.T) {
	now := time.Now()
	svc := deployService(now)
	svc.Spec.Task.Container.Healthcheck.Http = "http://:80/"
	for format, want := range map[string]string{
		"{{.Spec.UpdateConfig.Parallelism}} {{.Spec.UpdateConfig.MaxFailureRatio}} {{.Spec.UpdateConfig.Order}}":                           "2 0.25 UPDATE_ORDER_START_FIRST",
		"{{.Spec.RollbackConfig.FailureAction}} {{.Spec.RollbackConfig.Monitor}}":                                                          "UPDATE_FAILURE_ACTION_PAUSE 5s",
		"{{.UpdateStatus.State}} {{.UpdateStatus.Message}}":                                                                                "UPDATE_STATE_COMPLETED update completed",
		"{{.Spec.Task.Container.Healthcheck.Test}} {{.Spec.Task.Container.Healthcheck.HTTP}} {{.Spec.Task.Container.Healthcheck.TCPPort}}": "[CMD-SHELL true] http://:80/ 0",
	} {
		tmpl, err := parseTemplate(format)
		if err != nil {
			t.Fatal(err)
		}
		dot, err := templateValue(svc)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := tmpl.execute(&buf, dot); err != nil || buf.String() != want+"\n" {
			t.Errorf("%s = %q, %v; want %q", format, buf.String(), err, want)
		}
	}
	task := &shoalv1.Task{Status: &shoalv1.TaskStatus{Health: &shoalv1.TaskHealth{State: shoalv1.HealthState_HEALTH_STATE_UNHEALTHY, FailingStreak: 3, Output: "boom"}}}
	tmpl, _ := parseTemplate("{{.Status.Health.State}} {{.Status.Health.FailingStreak}} {{.Status.Health.Output}}")
	dot, _ := templateValue(task)
	var buf bytes.Buffer
	if err := tmpl.execute(&buf, dot); err != nil || buf.String() != "HEALTH_STATE_UNHEALTHY 3 boom\n" {
		t.Errorf("task health template = %q, %v", buf.String(), err)
	}
}

// service ps: health after the state, the last probe's output with
// --no-trunc for an unhealthy task.
func TestTaskHealthColumns(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	task := func(state shoalv1.TaskState, h shoalv1.HealthState, restarts int32, errText, output string) *shoalv1.Task {
		t := &shoalv1.Task{Status: &shoalv1.TaskStatus{State: state, Restarts: restarts, Err: errText, Timestamp: timestamppb.New(now.Add(-3 * time.Second))}}
		if h != 0 {
			t.Status.Health = &shoalv1.TaskHealth{State: h, Output: output}
		}
		return t
	}
	const (
		running  = shoalv1.TaskState_TASK_STATE_RUNNING
		failed   = shoalv1.TaskState_TASK_STATE_FAILED
		starting = shoalv1.HealthState_HEALTH_STATE_STARTING
		healthy  = shoalv1.HealthState_HEALTH_STATE_HEALTHY
		sick     = shoalv1.HealthState_HEALTH_STATE_UNHEALTHY
	)
	long := strings.Repeat("x", 80)
	for _, tc := range []struct {
		task         *shoalv1.Task
		state        string
		err, errFull string
	}{
		{task(running, 0, 0, "", ""), "Running 3 seconds ago", "", ""},
		{task(running, starting, 0, "", ""), "Running 3 seconds ago (starting)", "", ""},
		{task(running, healthy, 0, "", ""), "Running 3 seconds ago (healthy)", "", ""},
		{task(running, sick, 2, "", "curl: (7) Failed to connect\n"), "Running 3 seconds ago (unhealthy, 2 restarts)", "", `"health check: curl: (7) Failed to connect"`},
		{task(running, sick, 0, "", long), "Running 3 seconds ago (unhealthy)", "", `"health check: ` + long + `"`},
		// Failed: the worker's error says why; the health is history.
		{task(failed, sick, 0, "container is unhealthy: boom", "boom"), "Failed 3 seconds ago", `"container is unhealthy: boom"`, `"container is unhealthy: boom"`},
	} {
		if got := currentState(tc.task, now); got != tc.state {
			t.Errorf("currentState = %q; want %q", got, tc.state)
		}
		if got := taskError(tc.task, false); got != tc.err {
			t.Errorf("%q: ERROR = %q; want %q", tc.state, got, tc.err)
		}
		if got := taskError(tc.task, true); got != tc.errFull {
			t.Errorf("%q: ERROR --no-trunc = %q; want %q", tc.state, got, tc.errFull)
		}
	}
}
