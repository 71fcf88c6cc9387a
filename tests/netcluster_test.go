package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

// listNodes reads node ls through a manager; nil when it does not answer.
func listNodes(m *harness.Node) []*shoalv1.Node { return faults.ListNodes(m, 3*time.Second) }

// Fault scenario 1: three managers and two workers, each on its own host
// (a network namespace on a test bridge), join with real tokens; every
// node is listed Ready from its host's address with one leader, and node
// ls through the CLI shows the same.
func TestNetClusterJoins(t *testing.T) {
	needRoot(t)
	c, _ := harness.StartNetCluster(t, 3, 2)
	m := c.Managers[0]
	harness.Eventually(t, 20*time.Second, func() error { return faults.AllReadyIn(listNodes(m), 5) })
	addrs := map[string]string{} // address → hostname
	for _, n := range listNodes(m) {
		addrs[n.GetStatus().GetAddr()] = n.GetDescription().GetHostname()
	}
	for _, n := range c.Nodes() {
		if h, ok := addrs[n.Host.IP]; !ok {
			t.Errorf("no node seen from %s's address %s; seen %v", n.Name, n.Host.IP, addrs)
		} else if h != n.Host.Name {
			t.Errorf("the node at %s has hostname %q; its daemon was started with --hostname %s", n.Host.IP, h, n.Host.Name)
		}
	}
	out := c.Managers[1].MustCLI("node", "ls")
	if got := strings.Count(out, "Ready"); got != 5 {
		t.Errorf("node ls on a follower shows %d Ready nodes; want 5:\n%s", got, out)
	}
	if got := strings.Count(out, "Leader"); got != 1 {
		t.Errorf("node ls shows %d leaders; want 1:\n%s", got, out)
	}
	for _, n := range c.Nodes() {
		if !strings.Contains(out, " "+n.Host.Name+" ") {
			t.Errorf("node ls does not show the hostname %s:\n%s", n.Host.Name, out)
		}
	}
}

// Under 100 ms of added delay on every host's link (200 ms round trips
// between any two hosts) and 1% loss of every packet sent, no node is
// marked down during a 30 s soak — not even briefly: the leader logs every
// node state change and none is a down — and a node that really dies is
// still marked down.
func TestNoFalseDownUnderDelayAndLoss(t *testing.T) {
	needRoot(t)
	c, net := harness.StartNetCluster(t, 1, 3)
	m := c.Managers[0]
	harness.Eventually(t, 20*time.Second, func() error { return faults.AllReadyIn(listNodes(m), 4) })
	var heals []func() (int, int)
	for _, h := range net.Hosts() {
		heals = append(heals, h.Impair(100*time.Millisecond, 0.01))
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	samples := 0
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); <-tick.C {
		nodes := listNodes(m)
		if nodes == nil {
			continue
		}
		samples++
		for _, n := range nodes {
			if n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
				t.Fatalf("under delay and loss, node at %s is %s (%s)", n.GetStatus().GetAddr(), n.GetStatus().GetState(), n.GetStatus().GetMessage())
			}
		}
	}
	if samples < 60 {
		t.Fatalf("only %d node ls samples answered in 30 s", samples)
	}
	if downs := strings.Count(m.DaemonLog(), `"state":"NODE_STATE_DOWN"`); downs != 0 {
		t.Fatalf("the leader marked a node down %d times under delay and loss", downs)
	}
	// The impairment was real: every host's packets were delayed and some
	// were lost.
	total := 0
	for i, heal := range heals {
		accepted, dropped := heal()
		t.Logf("%s: %d packets delayed 100 ms, %d dropped", net.Hosts()[i].Name, accepted, dropped)
		if accepted < 100 {
			t.Errorf("%s: netem delayed only %d packets", net.Hosts()[i].Name, accepted)
		}
		total += dropped
	}
	if total == 0 {
		t.Error("netem dropped no packet at 1% loss")
	}
	for _, h := range net.Hosts() {
		h.Impair(100*time.Millisecond, 0.01)
	}

	// A real failure under the same conditions is still detected.
	victim := c.Workers[0]
	victim.KillHost()
	harness.Eventually(t, 15*time.Second, func() error {
		for _, n := range listNodes(m) {
			if n.GetStatus().GetAddr() == victim.Host.IP {
				if n.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_DOWN {
					return nil
				}
				return fmt.Errorf("killed node is %s", n.GetStatus().GetState())
			}
		}
		return fmt.Errorf("killed node not listed")
	})
}
