package dispatcher

import shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"

// Gossip peers handed out with heartbeat answers, so nodes join the
// gossip the data plane converges through.

// maxGossipPeers is how many gossip addresses a heartbeat answer carries.
const maxGossipPeers = 5

// GossipPeers picks up to max gossip addresses of ready nodes other than
// self for a node to join the gossip through, managers first (they are
// the most likely to stay), in ID order so answers are stable.
func GossipPeers(nodes []*shoalv1.Node, self string, max int) []string {
	var mgrs, workers []string
	for _, n := range nodes {
		a := n.GetStatus().GetGossipAddr()
		if n.GetId() == self || a == "" || n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
			continue
		}
		if n.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER {
			mgrs = append(mgrs, a)
		} else {
			workers = append(workers, a)
		}
	}
	out := append(mgrs, workers...)
	if len(out) > max {
		out = out[:max]
	}
	return out
}
