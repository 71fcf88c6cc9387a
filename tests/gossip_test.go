package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// TestGossipConfirmsNodeFailure: with heartbeats every 2 s (a 6 s TTL), a
// worker killed with -9 is marked down with the reason only gossip can
// give, "heartbeat failure, confirmed by gossip": every node's probes
// declared it dead and the leader acted on one missed heartbeat instead
// of three. The other worker stays ready, the victim is ready again once
// restarted, and every node reports its gossip address and engine labels.
func TestGossipConfirmsNodeFailure(t *testing.T) {
	c := harness.StartCluster(t, 1, 2, "--heartbeat-period", "2s", "--label", "zone=lab")
	m := c.Managers[0]
	ctl := m.Control()
	nodes := func() map[string]*shoalv1.Node {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := ctl.ListNodes(ctx, &shoalv1.ListNodesRequest{})
		if err != nil {
			return nil
		}
		out := map[string]*shoalv1.Node{}
		for _, n := range resp.GetNodes() {
			out[n.GetStatus().GetGossipAddr()] = n
		}
		return out
	}
	harness.Eventually(t, 20*time.Second, func() error {
		ns := nodes()
		for _, n := range c.Nodes() {
			got, ok := ns[n.GossipAddr]
			if !ok {
				return fmt.Errorf("no node reports gossip address %s (%s); have %v", n.GossipAddr, n.Name, keys(ns))
			}
			if got.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
				return fmt.Errorf("%s is %s", n.Name, got.GetStatus().GetState())
			}
			if l := got.GetDescription().GetEngineLabels()["zone"]; l != "lab" {
				return fmt.Errorf("%s engine label zone = %q; want lab", n.Name, l)
			}
		}
		return nil
	})

	victim := c.Workers[0]
	victim.KillHost()
	harness.Eventually(t, 15*time.Second, func() error {
		n := nodes()[victim.GossipAddr]
		if n == nil {
			return errors.New("victim missing from node ls")
		}
		if n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_DOWN {
			return fmt.Errorf("victim is %s", n.GetStatus().GetState())
		}
		if msg := n.GetStatus().GetMessage(); msg != "heartbeat failure, confirmed by gossip" {
			return fmt.Errorf("victim down with reason %q; want gossip's confirmation", msg)
		}
		return nil
	})
	if n := nodes()[c.Workers[1].GossipAddr]; n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
		t.Errorf("the surviving worker is %s: %s", n.GetStatus().GetState(), n.GetStatus().GetMessage())
	}

	// The victim comes back: ready again and back in the gossip.
	victim.Start()
	harness.Eventually(t, 20*time.Second, func() error {
		n := nodes()[victim.GossipAddr]
		if n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
			return fmt.Errorf("restarted victim is %s", n.GetStatus().GetState())
		}
		return nil
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
