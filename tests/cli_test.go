package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/tests/harness"
)

// The service and node commands through the real CLI, as an operator
// would type them.
func TestServiceAndNodeCLI(t *testing.T) {
	c := harness.StartCluster(t, 1, 1)
	m := c.Managers[0]
	id := strings.TrimSpace(m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "3",
		"-p", "8080:80", "--env", "A=1", "--label", "team=blue", "--constraint", "node.role==worker",
		"--reserve-memory", "64m", "--limit-memory", "128m", "--limit-cpu", "0.5",
		"--restart-condition", "on-failure", "--restart-delay", "2s", "--restart-max-attempts", "3",
		"127.0.0.1:1/nginx:1.25", "nginx", "-g", "daemon off;"))
	if len(id) != 25 {
		t.Fatalf("create printed %q; want the service ID", id)
	}
	ls := m.MustCLI("service", "ls")
	for _, want := range []string{"NAME", "REPLICAS", "web", "replicated", "0/3", "nginx:1.25", "*:8080->80/tcp"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("service ls lacks %q:\n%s", want, ls)
		}
	}
	// 0/3 is the truth: the image cannot be pulled, nothing runs.
	if n, by := c.ServiceContainers("web"); n != 0 {
		t.Fatalf("web runs containers of an image nobody serves: %v", by)
	}
	var inspected []struct {
		ID   string `json:"id"`
		Spec struct {
			Name string `json:"name"`
			Task struct {
				Container struct {
					Args []string `json:"args"`
					Env  []string `json:"env"`
				} `json:"container"`
				Resources struct {
					Limits struct {
						NanoCPUs int64 `json:"nano_cpus"`
						Memory   int64 `json:"memory_bytes"`
					} `json:"limits"`
				} `json:"resources"`
				Restart struct {
					Condition   string `json:"condition"`
					Delay       string `json:"delay"`
					MaxAttempts int64  `json:"max_attempts"`
				} `json:"restart"`
				Placement struct {
					Constraints []string `json:"constraints"`
				} `json:"placement"`
			} `json:"task"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(m.MustCLI("service", "inspect", "web")), &inspected); err != nil {
		t.Fatal(err)
	}
	s := inspected[0].Spec
	if inspected[0].ID != id || s.Name != "web" || strings.Join(s.Task.Container.Args, " ") != "nginx -g daemon off;" ||
		s.Task.Resources.Limits.NanoCPUs != 500000000 || s.Task.Resources.Limits.Memory != 134217728 ||
		s.Task.Restart.Condition != "RESTART_CONDITION_ON_FAILURE" || s.Task.Restart.Delay != "2s" || s.Task.Restart.MaxAttempts != 3 ||
		len(s.Task.Placement.Constraints) != 1 {
		t.Fatalf("inspect: %+v", inspected[0])
	}

	m.MustCLI("service", "update", "-d", "--image", "127.0.0.1:1/nginx:1.26", "--env-add", "B=2", "--env-rm", "A", "web")
	m.MustCLI("service", "scale", "-d", "web=5")
	ls = m.MustCLI("service", "ls")
	if !strings.Contains(ls, "0/5") || !strings.Contains(ls, "nginx:1.26") {
		t.Fatalf("after update and scale:\n%s", ls)
	}
	if out := m.MustCLI("service", "inspect", "web"); !strings.Contains(out, `"B=2"`) || strings.Contains(out, `"A=1"`) {
		t.Fatalf("env after update:\n%s", out)
	}

	// Bad input: a clear error naming the field, and nothing changes.
	_, err := m.CLI("service", "create", "--name", "bad", "--replicas", "-1", "127.0.0.1:1/nginx")
	if err == nil || !strings.Contains(err.Error(), "service.replicas: must be >= 0, got -1") {
		t.Fatalf("create --replicas -1: %v", err)
	}
	if strings.Contains(err.Error(), "goroutine") || strings.Contains(err.Error(), "rpc error") {
		t.Fatalf("error leaks internals: %v", err)
	}
	_, err = m.CLI("service", "create", "--name", "web", "127.0.0.1:1/nginx")
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("duplicate name: %v", err)
	}
	_, err = m.CLI("service", "create", "--name", "web2", "-p", "8080:81", "127.0.0.1:1/nginx")
	if err == nil || !strings.Contains(err.Error(), "already published") {
		t.Fatalf("port conflict: %v", err)
	}
	if ids := strings.Fields(m.MustCLI("service", "ls", "-q")); len(ids) != 1 {
		t.Fatalf("refused creates changed the store: %v", ids)
	}

	// Node labels and availability.
	wid := nodeID(t, c.Workers[0])
	m.MustCLI("node", "update", "--label-add", "zone=eu", "--availability", "drain", wid)
	out := m.MustCLI("node", "inspect", wid)
	if !strings.Contains(out, `"zone": "eu"`) || !strings.Contains(out, "NODE_AVAILABILITY_DRAIN") {
		t.Fatalf("node inspect after update:\n%s", out)
	}
	if ls := m.MustCLI("node", "ls"); !strings.Contains(ls, "Drain") {
		t.Fatalf("node ls after drain:\n%s", ls)
	}
	m.MustCLI("node", "update", "--label-rm", "zone", "--availability", "active", wid)
	if out := m.MustCLI("node", "inspect", wid); strings.Contains(out, "zone") {
		t.Fatalf("label not removed:\n%s", out)
	}
	_, err = m.CLI("node", "update", "--availability", "sleepy", wid)
	if err == nil || !strings.Contains(err.Error(), "active, pause or drain") {
		t.Fatalf("bad availability: %v", err)
	}

	m.MustCLI("service", "rm", "web")
	if ids := strings.Fields(m.MustCLI("service", "ls", "-q")); len(ids) != 0 {
		t.Fatalf("after rm: %v", ids)
	}
	_, err = m.CLI("service", "rm", "web")
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("rm of a missing service: %v", err)
	}
}
