package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// Services become placed tasks through the real CLI: create, scale, drain,
// an unplaceable service that says why, and rm. Every step is checked
// against the containers really running on the nodes.
func TestServiceScheduling(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "5", img.Ref)
	harness.Eventually(t, 10*time.Second, func() error {
		if err := c.Converged("web", 5); err != nil {
			return err
		}
		_, by := c.ServiceContainers("web")
		if len(by) != 3 {
			return fmt.Errorf("5 replicas run on %v; want all 3 nodes", by)
		}
		for _, n := range by {
			if n < 1 || n > 2 {
				return fmt.Errorf("uneven spread %v", by)
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

	// Scaled down, the tasks' containers stop.
	m.MustCLI("service", "scale", "-d", "web=2")
	harness.Eventually(t, 10*time.Second, func() error { return c.Converged("web", 2) })
	m.MustCLI("service", "scale", "-d", "web=6")

	// Drain a worker: its containers stop and run on the other nodes.
	w := c.Workers[0]
	harness.Eventually(t, 10*time.Second, func() error {
		if err := c.Converged("web", 6); err != nil {
			return err
		}
		if _, by := c.ServiceContainers("web"); by[w.Name] == 0 {
			return fmt.Errorf("no replica runs on %s yet: %v", w.Name, by)
		}
		return nil
	})
	m.MustCLI("node", "update", "--availability", "drain", nodeID(t, w))
	harness.Eventually(t, 10*time.Second, func() error {
		if _, by := c.ServiceContainers("web"); by[w.Name] != 0 {
			return fmt.Errorf("the drained %s still runs replicas: %v", w.Name, by)
		}
		return c.Converged("web", 6)
	})

	// A constraint no node meets: pending, with the scheduler's reason,
	// and nothing runs.
	m.MustCLI("service", "create", "-d", "--name", "nowhere", "--constraint", "node.labels.zone==mars", img.Ref)
	harness.Eventually(t, 10*time.Second, func() error {
		out := m.MustCLI("service", "ps", "--no-trunc", "nowhere")
		if !strings.Contains(out, "Pending") || !strings.Contains(out, "no suitable node") || !strings.Contains(out, "node.labels.zone==mars") {
			return fmt.Errorf("unplaceable service:\n%s", out)
		}
		return nil
	})
	if n, by := c.ServiceContainers("nowhere"); n != 0 {
		t.Fatalf("an unplaceable service runs containers: %v", by)
	}
	// Labelling a node lets it through: its one replica runs there.
	labelled := c.Workers[1]
	m.MustCLI("node", "update", "--label-add", "zone=mars", nodeID(t, labelled))
	harness.Eventually(t, 10*time.Second, func() error {
		if err := c.Converged("nowhere", 1); err != nil {
			return err
		}
		if _, by := c.ServiceContainers("nowhere"); by[labelled.Name] != 1 {
			return fmt.Errorf("after labelling %s: nowhere runs on %v", labelled.Name, by)
		}
		return nil
	})

	// rm: the services go, and so do their containers.
	m.MustCLI("service", "rm", "web", "nowhere")
	harness.Eventually(t, 10*time.Second, func() error {
		if out := m.MustCLI("service", "ls", "-q"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("services left: %s", out)
		}
		for _, svc := range []string{"web", "nowhere"} {
			if n, by := c.ServiceContainers(svc); n != 0 {
				return fmt.Errorf("%d containers of the removed %s still run: %v", n, svc, by)
			}
		}
		return nil
	})
}

// A node whose daemon dies has its tasks replaced elsewhere (its
// containers live on, unsupervised); when it comes back, it stops them,
// and each slot has one task, running in one container.
func TestNodeLossReplacesTasks(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "6", img.Ref)
	lost := c.Workers[0]
	harness.Eventually(t, 10*time.Second, func() error {
		if err := c.Converged("web", 6); err != nil {
			return err
		}
		if _, by := c.ServiceContainers("web"); by[lost.Name] == 0 {
			return fmt.Errorf("no replica runs on %s yet: %v", lost.Name, by)
		}
		return nil
	})
	lost.Kill()
	harness.Eventually(t, 15*time.Second, func() error { return c.ConvergedOn("web", 6, c.Except(lost)) })
	lost.Start()
	harness.Eventually(t, 10*time.Second, func() error {
		out := m.MustCLI("node", "ls")
		if strings.Count(out, "Ready") != 3 {
			return fmt.Errorf("node not back:\n%s", out)
		}
		return nil
	})
	harness.Eventually(t, 15*time.Second, func() error {
		if err := c.Converged("web", 6); err != nil {
			return fmt.Errorf("after %s came back: %v", lost.Name, err)
		}
		return nil
	})
}
