package manager

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/logging"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/quorum"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// raftAPI lets a node holding a manager certificate join or leave Raft.
type raftAPI struct {
	shoalv1.UnimplementedRaftServiceServer
	m *Manager
}

func (a *raftAPI) JoinRaft(ctx context.Context, req *shoalv1.JoinRaftRequest) (*shoalv1.JoinRaftResponse, error) {
	caller, _ := auth.From(ctx)
	var node *shoalv1.Node
	a.m.store.View(func(r store.ReadTx) { node = store.Get[*shoalv1.Node](r, store.TableNode, caller.NodeID) })
	if node.GetSpec().GetDesiredRole() != shoalv1.NodeRole_NODE_ROLE_MANAGER {
		return nil, fmt.Errorf("node %s is not meant to be a manager: %w", caller.NodeID, errdefs.ErrPermissionDenied)
	}
	if req.GetRaftAddr() == "" {
		return nil, fmt.Errorf("raft_addr: is required: %w", errdefs.ErrInvalid)
	}
	if err := a.m.raft.AddVoter(ctx, caller.NodeID, req.GetRaftAddr()); err != nil {
		return nil, err
	}
	a.m.log.Info("manager joined raft", logging.Node(caller.NodeID), zap.String("raft_addr", req.GetRaftAddr()))
	return &shoalv1.JoinRaftResponse{}, nil
}

func (a *raftAPI) LeaveRaft(ctx context.Context, _ *shoalv1.LeaveRaftRequest) (*shoalv1.LeaveRaftResponse, error) {
	caller, _ := auth.From(ctx)
	if err := quorum.CheckRemoval(a.m.members(), caller.NodeID); err != nil {
		return nil, err
	}
	if err := a.m.raft.RemoveServer(ctx, caller.NodeID); err != nil {
		return nil, err
	}
	return &shoalv1.LeaveRaftResponse{}, nil
}

func (m *Manager) members() []quorum.Member { return quorum.Members(m.raft) }

// StaleMembers is the pure decision of the role loop: Raft members whose
// node is gone or is meant to be a worker.
func StaleMembers(members []string, nodes map[string]*shoalv1.Node) []string {
	var out []string
	for _, id := range members {
		n := nodes[id]
		if n == nil || n.GetSpec().GetDesiredRole() != shoalv1.NodeRole_NODE_ROLE_MANAGER {
			out = append(out, id)
		}
	}
	return out
}

// runRoles finishes demotions: a member whose node is now a worker (or
// gone) leaves Raft once that keeps a quorum.
func (m *Manager) runRoles(ctx context.Context) {
	t := m.cfg.Clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		nodes := map[string]*shoalv1.Node{}
		m.store.View(func(r store.ReadTx) {
			for _, n := range store.List[*shoalv1.Node](r, store.TableNode) {
				nodes[n.GetId()] = n
			}
		})
		for _, id := range StaleMembers(m.raft.MemberIDs(), nodes) {
			if id == m.cfg.NodeID {
				continue // the leader leaves through the demote call itself
			}
			if err := quorum.CheckRemoval(m.members(), id); err != nil {
				m.log.Debug("demotion waits for quorum", logging.Node(id), zap.Error(err))
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := m.raft.RemoveServer(rctx, id); err != nil {
				m.log.Warn("remove demoted manager from raft", logging.Node(id), zap.Error(err))
			}
			cancel()
		}
	}
}
