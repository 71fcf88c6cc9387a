package manager

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ensureIngress gives a cluster without an ingress network (one created
// before networks existed) its ingress network, so the routing mesh works
// after an upgrade as after a fresh swarm init. It is a no-op while an
// ingress network exists; one the operator removed comes back at the next
// election (recreate it with other settings with network create --ingress).
func (m *Manager) ensureIngress(ctx context.Context) error {
	c, err := m.cluster()
	if err != nil {
		return nil
	}
	has := false
	m.store.View(func(r store.ReadTx) {
		for _, n := range store.List[*shoalv1.Network](r, store.TableNetwork) {
			if n.GetSpec().GetIngress() || n.GetSpec().GetName() == allocator.IngressName {
				has = true
			}
		}
	})
	if has {
		return nil
	}
	nw, err := allocator.IngressNetwork(c, store.NewID(), timestamppb.New(m.cfg.Clock.Now()))
	if err != nil {
		return err
	}
	_, err = m.raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{
		{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(nw)},
	}})
	return err
}
