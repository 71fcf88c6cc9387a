package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// globalRuns checks a global service against what really runs: the
// cluster's convergence check over the nodes of all (one container alive
// for each task desired and reported running, each on the node its task
// is assigned to, one task per node), with those containers exactly one
// on each node of on and none on the others, each container's
// environment holding env. It returns the containers by node name.
func globalRuns(c *harness.Cluster, svc string, all, on []*harness.Node, env string) (map[string]harness.Container, error) {
	if err := c.ConvergedOn(svc, len(on), all); err != nil {
		return nil, fmt.Errorf("%w (want one per node of %s)", err, names(on))
	}
	out := map[string]harness.Container{}
	for _, n := range all {
		mine := harness.Of(svc, n.RunningContainers())
		want := 0
		if slices.Contains(on, n) {
			want = 1
		}
		switch {
		case len(mine) != want:
			return nil, fmt.Errorf("%s runs %d containers of %s; want %d", n.Name, len(mine), svc, want)
		case want == 0:
			continue
		case !slices.Contains(mine[0].Env, env):
			return nil, fmt.Errorf("the container of %s on %s (pid %d) has environment %q; want %s", svc, n.Name, mine[0].Pid, mine[0].Env, env)
		}
		out[n.Name] = mine[0]
	}
	return out, nil
}

func names(nodes []*harness.Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// waitGlobal waits until globalRuns holds.
func waitGlobal(t *testing.T, timeout time.Duration, c *harness.Cluster, svc string, all, on []*harness.Node, env string) map[string]harness.Container {
	t.Helper()
	var got map[string]harness.Container
	harness.Eventually(t, timeout, func() error {
		var err error
		got, err = globalRuns(c, svc, all, on, env)
		return err
	})
	return got
}

// A global service runs one real container on every eligible node and
// follows the cluster: a node that joins gets one, a drained node's
// container stops (and returns when it is active again), so does that of
// a node whose label no longer meets the constraint, an update rolls
// every node's container to the new spec, and a lost node's task is not
// moved elsewhere but comes back with the node. A node that cannot take
// the task says why in service ps.
func TestGlobalService(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m, w1, w2 := c.Managers[0], c.Workers[0], c.Workers[1]
	all := []*harness.Node{m, w1, w2}
	m.MustCLI("service", "create", "-d", "--name", "agent", "--mode", "global", "--constraint", "node.labels.agent!=off", "--env", "V=1", img.Ref)
	waitGlobal(t, 60*time.Second, c, "agent", all, all, "V=1")

	// Like docker: REPLICAS running/desired, global tasks named after
	// their node's full ID.
	ls := m.MustCLI("service", "ls")
	if line := lineWith(ls, "agent"); !strings.Contains(line, "global") || !strings.Contains(line, "3/3") {
		t.Fatalf("service ls shows the global service as %q; want global 3/3:\n%s", line, ls)
	}
	ps := m.MustCLI("service", "ps", "agent")
	for _, n := range all {
		if !strings.Contains(ps, "agent."+nodeID(t, n)+" ") {
			t.Fatalf("service ps lacks the task name agent.%s of %s:\n%s", nodeID(t, n), n.Name, ps)
		}
	}

	// A node joins: it gets its container.
	w3 := harness.NewNode(t, "worker3")
	w3.Start()
	tok := strings.TrimSpace(m.MustCLI("swarm", "join-token", "-q", "worker"))
	w3.MustCLI("swarm", "join", "--token", tok, "--advertise-addr", w3.Addr, m.Addr)
	all = append(all, w3)
	waitGlobal(t, 60*time.Second, c, "agent", all, all, "V=1")

	// Drained: the container really stops there, and nowhere else
	// takes it; active again: it comes back.
	m.MustCLI("node", "update", "--availability", "drain", nodeID(t, w1))
	waitGlobal(t, 30*time.Second, c, "agent", all, []*harness.Node{m, w2, w3}, "V=1")
	m.MustCLI("node", "update", "--availability", "active", nodeID(t, w1))
	waitGlobal(t, 30*time.Second, c, "agent", all, all, "V=1")

	// A label that fails the constraint stops the node's container;
	// removing it brings the container back.
	m.MustCLI("node", "update", "--label-add", "agent=off", nodeID(t, w2))
	waitGlobal(t, 30*time.Second, c, "agent", all, []*harness.Node{m, w1, w3}, "V=1")
	m.MustCLI("node", "update", "--label-rm", "agent", nodeID(t, w2))
	before := waitGlobal(t, 30*time.Second, c, "agent", all, all, "V=1")

	// An update rolls every node's container to the new spec: new
	// tasks, new processes, the new environment in /proc/PID/environ.
	m.MustCLI("service", "update", "-d", "--env-add", "V=2", "agent")
	after := waitGlobal(t, 90*time.Second, c, "agent", all, all, "V=2")
	for name, old := range before {
		if n := after[name]; n.Task == old.Task || n.Pid == old.Pid {
			t.Fatalf("%s still runs task %s (pid %d) after the update; want a new task and process", name, old.Task, old.Pid)
		}
	}

	// The machine of a node dies: its task is shut down, not moved;
	// the others keep running. Back up, the node runs the service again.
	w3.KillHost()
	waitGlobal(t, 60*time.Second, c, "agent", all, []*harness.Node{m, w1, w2}, "V=2")
	w3.Start()
	waitGlobal(t, 60*time.Second, c, "agent", all, all, "V=2")

	// A task no node can take waits on each node with that node's reason.
	m.MustCLI("service", "create", "-d", "--name", "big", "--mode", "global", "--reserve-memory", "1000t", img.Ref)
	harness.Eventually(t, 30*time.Second, func() error {
		out := m.MustCLI("service", "ps", "--no-trunc", "big")
		for _, n := range all {
			want := "node " + nodeID(t, n) + " lacks 1000 TiB of memory"
			if line := lineWith(out, "big."+nodeID(t, n)); !strings.Contains(line, "Pending") || !strings.Contains(line, want) {
				return fmt.Errorf("service ps of a global service too big for %s: %q; want Pending, %q:\n%s", n.Name, line, want, out)
			}
		}
		return nil
	})
	for _, n := range all {
		if cs := harness.Of("big", n.RunningContainers()); len(cs) > 0 {
			t.Fatalf("%s runs a container (pid %d) of the unplaceable service", n.Name, cs[0].Pid)
		}
	}
}

// lineWith returns the first line of out that contains s.
func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
