package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

type psTask struct {
	ID           string `json:"id"`
	ServiceName  string `json:"service_name"`
	Slot         string `json:"slot"`
	NodeID       string `json:"node_id"`
	DesiredState string `json:"desired_state"`
	Status       struct {
		State string `json:"state"`
		Err   string `json:"err"`
	} `json:"status"`
}

func servicePs(t *testing.T, n *harness.Node, svc string) []psTask {
	t.Helper()
	var out []psTask
	if err := json.Unmarshal([]byte(n.MustCLI("service", "ps", "--format", "json", svc)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func activeTasks(ts []psTask) map[string]int {
	out := map[string]int{}
	for _, t := range ts {
		if t.DesiredState == "TASK_STATE_RUNNING" {
			out[t.NodeID]++
		}
	}
	return out
}

// Services become placed tasks through the real CLI: create, scale, drain,
// an unplaceable service that says why, and rm.
func TestServiceScheduling(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "5", img.Ref)
	harness.Eventually(t, 10*time.Second, func() error {
		ts := servicePs(t, m, "web")
		by := activeTasks(ts)
		total := 0
		for _, n := range by {
			total += n
		}
		if total != 5 || len(by) != 3 {
			return fmt.Errorf("5 replicas on 3 nodes: %v", by)
		}
		for _, n := range by {
			if n < 1 || n > 2 {
				return fmt.Errorf("uneven spread %v", by)
			}
		}
		for _, tk := range ts {
			if tk.Status.State != "TASK_STATE_RUNNING" {
				return fmt.Errorf("task %s is %s", tk.ID, tk.Status.State)
			}
		}
		return nil
	})
	ps := m.MustCLI("service", "ps", "web")
	for _, want := range []string{"ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "web.1", "web.5", "Running"} {
		if !strings.Contains(ps, want) {
			t.Fatalf("service ps lacks %q:\n%s", want, ps)
		}
	}
	if ls := m.MustCLI("service", "ls"); !strings.Contains(ls, "5/5") {
		t.Fatalf("service ls with every task running:\n%s", ls)
	}

	m.MustCLI("service", "scale", "-d", "web=2")
	harness.Eventually(t, 10*time.Second, func() error {
		total := 0
		for _, n := range activeTasks(servicePs(t, m, "web")) {
			total += n
		}
		if total != 2 {
			return fmt.Errorf("after scale to 2: %d active", total)
		}
		return nil
	})
	m.MustCLI("service", "scale", "-d", "web=6")

	// Drain a worker: its tasks move to the other nodes.
	w := nodeID(t, c.Workers[0])
	harness.Eventually(t, 10*time.Second, func() error {
		if activeTasks(servicePs(t, m, "web"))[w] == 0 {
			return fmt.Errorf("worker has no tasks yet")
		}
		return nil
	})
	m.MustCLI("node", "update", "--availability", "drain", w)
	harness.Eventually(t, 10*time.Second, func() error {
		by := activeTasks(servicePs(t, m, "web"))
		if by[w] != 0 || by[""] != 0 {
			return fmt.Errorf("after drain: %v", by)
		}
		total := 0
		for _, n := range by {
			total += n
		}
		if total != 6 {
			return fmt.Errorf("after drain %d active, want 6", total)
		}
		return nil
	})

	// A constraint no node meets: pending, with the scheduler's reason.
	m.MustCLI("service", "create", "-d", "--name", "nowhere", "--constraint", "node.labels.zone==mars", img.Ref)
	harness.Eventually(t, 10*time.Second, func() error {
		out := m.MustCLI("service", "ps", "--no-trunc", "nowhere")
		if !strings.Contains(out, "Pending") || !strings.Contains(out, "no suitable node") || !strings.Contains(out, "node.labels.zone==mars") {
			return fmt.Errorf("unplaceable service:\n%s", out)
		}
		return nil
	})
	// Labelling a node lets it through.
	m.MustCLI("node", "update", "--label-add", "zone=mars", nodeID(t, c.Workers[1]))
	harness.Eventually(t, 10*time.Second, func() error {
		ts := servicePs(t, m, "nowhere")
		if len(ts) == 0 || ts[0].NodeID != nodeID(t, c.Workers[1]) || ts[0].Status.State == "TASK_STATE_PENDING" || ts[0].Status.State == "TASK_STATE_NEW" {
			return fmt.Errorf("after labelling: %+v", ts)
		}
		return nil
	})

	m.MustCLI("service", "rm", "web", "nowhere")
	harness.Eventually(t, 10*time.Second, func() error {
		if out := m.MustCLI("service", "ls", "-q"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("services left: %s", out)
		}
		return nil
	})
}

// A global service follows nodes: one task per eligible node.
func TestGlobalService(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "agent", "--mode", "global", "--constraint", "node.role==worker", img.Ref)
	want := map[string]bool{nodeID(t, c.Workers[0]): true, nodeID(t, c.Workers[1]): true}
	harness.Eventually(t, 10*time.Second, func() error {
		by := activeTasks(servicePs(t, m, "agent"))
		if len(by) != 2 || !want[firstKey(by)] {
			return fmt.Errorf("global tasks %v; want one per worker", by)
		}
		for n, k := range by {
			if !want[n] || k != 1 {
				return fmt.Errorf("global tasks %v", by)
			}
		}
		return nil
	})
	// A third worker joins: it gets its task.
	w3 := harness.NewNode(t, "worker3")
	w3.Start()
	tok := strings.TrimSpace(m.MustCLI("swarm", "join-token", "-q", "worker"))
	w3.MustCLI("swarm", "join", "--token", tok, "--advertise-addr", w3.Addr, m.Addr)
	harness.Eventually(t, 10*time.Second, func() error {
		if by := activeTasks(servicePs(t, m, "agent")); by[nodeID(t, w3)] != 1 {
			return fmt.Errorf("new worker has no task: %v", by)
		}
		return nil
	})
}

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}

// A node that dies has its tasks replaced elsewhere; when it comes back,
// its old tasks stay shut down and each slot has one active task.
func TestNodeLossReplacesTasks(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "6", img.Ref)
	lost := nodeID(t, c.Workers[0])
	harness.Eventually(t, 10*time.Second, func() error {
		if activeTasks(servicePs(t, m, "web"))[lost] == 0 {
			return fmt.Errorf("no task on the worker yet")
		}
		return nil
	})
	c.Workers[0].Kill()
	check := func() error {
		ts := servicePs(t, m, "web")
		by := activeTasks(ts)
		if by[lost] != 0 {
			return fmt.Errorf("lost node still has active tasks: %v", by)
		}
		slots := map[string]int{}
		for _, tk := range ts {
			if tk.DesiredState == "TASK_STATE_RUNNING" {
				slots[tk.Slot]++
			}
		}
		if len(slots) != 6 {
			return fmt.Errorf("active slots %v; want 6", slots)
		}
		for s, n := range slots {
			if n != 1 {
				return fmt.Errorf("slot %s has %d active tasks", s, n)
			}
		}
		return nil
	}
	harness.Eventually(t, 15*time.Second, check)
	c.Workers[0].Start()
	harness.Eventually(t, 10*time.Second, func() error {
		out := m.MustCLI("node", "ls")
		if strings.Count(out, "Ready") != 3 {
			return fmt.Errorf("node not back:\n%s", out)
		}
		return nil
	})
	if err := check(); err != nil {
		t.Fatalf("after the node came back: %v", err)
	}
}
