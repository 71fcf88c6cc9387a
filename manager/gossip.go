package manager

import (
	"context"
	"crypto/rand"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The key nodes gossip with. The gossip itself runs in every node's
// daemon; the dispatcher hands the key and peers out with heartbeat
// answers, and reads which nodes gossip saw fail (GossipView).

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
