package tests

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/auth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

func nodeByAddr(t *testing.T, c shoalv1.ControlServiceClient, id string) *shoalv1.Node {
	t.Helper()
	resp, err := c.GetNode(ctxT(t, 5*time.Second), &shoalv1.GetNodeRequest{NodeId: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetNode()
}

// nodeID is n's ID in its cluster, failing the test when it has none.
func nodeID(t *testing.T, n *harness.Node) string {
	t.Helper()
	id := n.ID()
	if id == "" {
		t.Fatalf("%s has no node ID: not in a cluster", n.Name)
	}
	return id
}

func certRole(t *testing.T, n *harness.Node) shoalv1.NodeRole {
	id, err := tlsutil.Files{Dir: n.CertDir()}.Load()
	if err != nil {
		return shoalv1.NodeRole_NODE_ROLE_UNSPECIFIED
	}
	return auth.RoleToProto(id.Role())
}

// Promote a worker, see it join Raft and serve the API; demote it back;
// a demotion that would cost the quorum is refused.
func TestPromoteDemote(t *testing.T) {
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	w1, w2 := c.Workers[0], c.Workers[1]
	id1, id2 := nodeID(t, w1), nodeID(t, w2)

	out := m.MustCLI("node", "promote", id1, id2)
	if !strings.Contains(out, "promoted to a manager") {
		t.Fatalf("promote output: %s", out)
	}
	client := m.Control()
	harness.Eventually(t, 20*time.Second, func() error {
		for _, id := range []string{id1, id2} {
			n := nodeByAddr(t, client, id)
			if n.GetManagerStatus().GetReachability() != shoalv1.Reachability_REACHABILITY_REACHABLE {
				return fmt.Errorf("%s manager status %v", id, n.GetManagerStatus())
			}
		}
		return nil
	})
	// The promoted node now answers control calls itself.
	harness.Eventually(t, 10*time.Second, func() error {
		_, err := w1.CLI("service", "ls")
		return err
	})
	if r := certRole(t, w1); r != shoalv1.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("promoted node's certificate role = %v", r)
	}

	// Stop one of the three managers: demoting another would leave one
	// of two reachable, below quorum.
	w2.Kill()
	harness.Eventually(t, 10*time.Second, func() error {
		n := nodeByAddr(t, client, id2)
		if n.GetManagerStatus().GetReachability() != shoalv1.Reachability_REACHABILITY_UNREACHABLE {
			return fmt.Errorf("killed manager still %v", n.GetManagerStatus().GetReachability())
		}
		return nil
	})
	_, err := m.CLI("node", "demote", id1)
	if err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("demote below quorum: %v", err)
	}
	if n := nodeByAddr(t, client, id1); n.GetSpec().GetDesiredRole() != shoalv1.NodeRole_NODE_ROLE_MANAGER {
		t.Fatal("a refused demotion changed the node")
	}
	w2.Start()
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := m.CLI("node", "demote", id1)
		return err
	})
	harness.Eventually(t, 20*time.Second, func() error {
		n := nodeByAddr(t, client, id1)
		if n.GetManagerStatus().GetReachability() != shoalv1.Reachability_REACHABILITY_UNSPECIFIED {
			return fmt.Errorf("demoted node still a raft member: %v", n.GetManagerStatus())
		}
		if r := certRole(t, w1); r != shoalv1.NodeRole_NODE_ROLE_WORKER {
			return fmt.Errorf("demoted node's certificate role = %v", r)
		}
		return nil
	})
	harness.Eventually(t, 10*time.Second, func() error {
		_, err := w1.CLI("service", "ls")
		if err == nil || !strings.Contains(err.Error(), "not a swarm manager") {
			return fmt.Errorf("demoted node still serves the control API: %v", err)
		}
		return nil
	})
	// Writes still work with the two remaining managers.
	m.MustCLI("service", "create", "-d", "--name", "after-demote", "--replicas", "0", unreachableImage)
}

// Certificates renew themselves before they expire.
func TestCertificateRenewal(t *testing.T) {
	m := harness.NewNode(t, "manager1")
	m.Start()
	m.MustCLI("swarm", "init", "--advertise-addr", m.Addr, "--cert-expiry", "6s")
	w := harness.NewNode(t, "worker1")
	w.Start()
	tok := strings.TrimSpace(m.MustCLI("swarm", "join-token", "-q", "worker"))
	w.MustCLI("swarm", "join", "--token", tok, "--advertise-addr", w.Addr, m.Addr)
	first := map[string]*x509.Certificate{}
	for _, n := range []*harness.Node{m, w} {
		id, err := tlsutil.Files{Dir: n.CertDir()}.Load()
		if err != nil {
			t.Fatal(err)
		}
		first[n.Name] = id.Leaf()
	}
	// Each node gets a new certificate before the old one expires, and
	// keeps working after the old one has expired.
	for _, n := range []*harness.Node{m, w} {
		harness.Eventually(t, 20*time.Second, func() error {
			id, err := tlsutil.Files{Dir: n.CertDir()}.Load()
			if err != nil {
				return err
			}
			if !id.Leaf().NotAfter.After(first[n.Name].NotAfter) {
				return fmt.Errorf("%s has not renewed", n.Name)
			}
			if id.Leaf().Subject.CommonName != first[n.Name].Subject.CommonName {
				return fmt.Errorf("renewal changed the node ID")
			}
			return nil
		})
	}
	// Past the expiry of both first certificates by more than the
	// heartbeat TTL (1.5 s): a node still Ready then has had a heartbeat
	// accepted since its first certificate expired.
	deadline := first[w.Name].NotAfter
	if first[m.Name].NotAfter.After(deadline) {
		deadline = first[m.Name].NotAfter
	}
	deadline = deadline.Add(2 * time.Second)
	harness.Eventually(t, 20*time.Second, func() error {
		if time.Now().Before(deadline) {
			return fmt.Errorf("waiting for the first certificates to expire")
		}
		return nil
	})
	// A connection made before the expiry outlives it; restarting the
	// manager makes the worker connect again, presenting its renewed
	// certificate and checking the manager's.
	following := w.LogCount(faults.FollowingLog)
	m.Stop()
	m.Start()
	harness.Eventually(t, 10*time.Second, func() error {
		out, err := m.CLI("node", "ls")
		if err != nil {
			return err
		}
		if strings.Count(out, "Ready") != 2 {
			return fmt.Errorf("after expiry of the first certificates:\n%s", out)
		}
		if w.LogCount(faults.FollowingLog) <= following {
			return fmt.Errorf("%s does not follow the restarted manager's assignments", w.Name)
		}
		return nil
	})
}

// A worker that leaves shows as down and can then be removed; a ready
// node cannot be removed without --force; a restarted daemon rejoins by
// itself.
func TestLeaveRemoveAndRestart(t *testing.T) {
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	client := m.Control()
	w1, w2 := c.Workers[0], c.Workers[1]
	id1, id2 := nodeID(t, w1), nodeID(t, w2)

	_, err := m.CLI("node", "rm", id2)
	if err == nil || !strings.Contains(err.Error(), "is ready") {
		t.Fatalf("rm of a ready node: %v", err)
	}
	_, err = m.CLI("swarm", "leave")
	if err == nil || !strings.Contains(err.Error(), "manager") {
		t.Fatalf("manager leave without --force: %v", err)
	}

	w1.MustCLI("swarm", "leave")
	if out := w1.MustCLI("version"); out == "" {
		t.Fatal("daemon gone after leave")
	}
	harness.Eventually(t, 10*time.Second, func() error {
		if s := nodeByAddr(t, client, id1).GetStatus().GetState(); s != shoalv1.NodeState_NODE_STATE_DOWN {
			return fmt.Errorf("left node is %v", s)
		}
		return nil
	})
	m.MustCLI("node", "rm", id1)
	if n := nodeCount(t, client); n != 2 {
		t.Fatalf("after rm: %d nodes", n)
	}

	// Restart a worker daemon: it comes back Ready with no command.
	w2.Stop()
	harness.Eventually(t, 10*time.Second, func() error {
		if s := nodeByAddr(t, client, id2).GetStatus().GetState(); s != shoalv1.NodeState_NODE_STATE_DOWN {
			return fmt.Errorf("stopped node is %v", s)
		}
		return nil
	})
	w2.Start()
	harness.Eventually(t, 10*time.Second, func() error {
		if s := nodeByAddr(t, client, id2).GetStatus().GetState(); s != shoalv1.NodeState_NODE_STATE_READY {
			return fmt.Errorf("restarted node is %v", s)
		}
		return nil
	})
	// Force-removing it makes it leave by itself.
	m.MustCLI("node", "rm", "--force", id2)
	harness.Eventually(t, 10*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(w2.Dir, "data", "state.json")); err == nil {
			return fmt.Errorf("removed node still holds cluster state")
		}
		return nil
	})
}
