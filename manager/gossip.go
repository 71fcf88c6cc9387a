package manager

import (
	"context"
	"crypto/rand"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// What the managers hand out so nodes can gossip: the cluster's key and
// peers to join through. The gossip itself runs in every node's daemon;
// the leader only reads which nodes it saw fail (GossipView).

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

// NewGossipKey makes a random gossip key for a cluster.
func NewGossipKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return k
}

// ensureGossipKey gives a cluster created before gossip existed its key.
func (m *Manager) ensureGossipKey(ctx context.Context) error {
	c, err := m.cluster()
	if err != nil || len(c.GetGossipKeys()) > 0 {
		return nil
	}
	next := proto.Clone(c).(*shoalv1.Cluster)
	next.GossipKeys = [][]byte{NewGossipKey()}
	_, err = m.raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(next), ExpectedVersion: c.GetMeta().GetVersion(),
	}}})
	return err
}
