// Package membership keeps Raft's voters in step with the nodes meant to
// be managers: a node holding a manager certificate joins Raft or leaves
// it (RaftService), and, on the leader, a member whose node was demoted or
// removed leaves once that keeps a quorum (manager/quorum decides). It
// sees the store through Store and Raft through Raft; the manager wires
// it.
package membership

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/logging"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/quorum"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Store is what membership reads of the store.
type Store interface {
	View(fn func(store.ReadTx))
}

// Raft is what membership needs of the Raft member.
type Raft interface {
	quorum.Voters
	AddVoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
}

// Config is what Membership is wired to.
type Config struct {
	NodeID string // this manager
	Store  Store
	Raft   Raft
	Clock  clock.Clock
	Log    *zap.Logger
}

// Membership serves shoalv1.RaftService and runs the role loop.
type Membership struct {
	shoalv1.UnimplementedRaftServiceServer
	cfg Config
}

// New makes the membership room.
func New(cfg Config) *Membership { return &Membership{cfg: cfg} }

func (a *Membership) JoinRaft(ctx context.Context, req *shoalv1.JoinRaftRequest) (*shoalv1.JoinRaftResponse, error) {
	caller, _ := auth.From(ctx)
	var node *shoalv1.Node
	a.cfg.Store.View(func(r store.ReadTx) { node = store.Get[*shoalv1.Node](r, store.TableNode, caller.NodeID) })
	if node.GetSpec().GetDesiredRole() != shoalv1.NodeRole_NODE_ROLE_MANAGER {
		return nil, fmt.Errorf("node %s is not meant to be a manager: %w", caller.NodeID, errdefs.ErrPermissionDenied)
	}
	if req.GetRaftAddr() == "" {
		return nil, fmt.Errorf("raft_addr: is required: %w", errdefs.ErrInvalid)
	}
	if err := a.cfg.Raft.AddVoter(ctx, caller.NodeID, req.GetRaftAddr()); err != nil {
		return nil, err
	}
	a.cfg.Log.Info("manager joined raft", logging.Node(caller.NodeID), zap.String("raft_addr", req.GetRaftAddr()))
	return &shoalv1.JoinRaftResponse{}, nil
}

func (a *Membership) LeaveRaft(ctx context.Context, _ *shoalv1.LeaveRaftRequest) (*shoalv1.LeaveRaftResponse, error) {
	caller, _ := auth.From(ctx)
	if err := quorum.CheckRemoval(a.members(), caller.NodeID); err != nil {
		return nil, err
	}
	if err := a.cfg.Raft.RemoveServer(ctx, caller.NodeID); err != nil {
		return nil, err
	}
	return &shoalv1.LeaveRaftResponse{}, nil
}

func (a *Membership) members() []quorum.Member { return quorum.Members(a.cfg.Raft) }

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

// RunRoles finishes demotions, on the leader, until ctx ends: a member
// whose node is now a worker (or gone) leaves Raft once that keeps a
// quorum.
func (a *Membership) RunRoles(ctx context.Context) {
	t := a.cfg.Clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		nodes := map[string]*shoalv1.Node{}
		a.cfg.Store.View(func(r store.ReadTx) {
			for _, n := range store.List[*shoalv1.Node](r, store.TableNode) {
				nodes[n.GetId()] = n
			}
		})
		for _, id := range StaleMembers(a.cfg.Raft.MemberIDs(), nodes) {
			if id == a.cfg.NodeID {
				continue // the leader leaves through the demote call itself
			}
			if err := quorum.CheckRemoval(a.members(), id); err != nil {
				a.cfg.Log.Debug("demotion waits for quorum", logging.Node(id), zap.Error(err))
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := a.cfg.Raft.RemoveServer(rctx, id); err != nil {
				a.cfg.Log.Warn("remove demoted manager from raft", logging.Node(id), zap.Error(err))
			}
			cancel()
		}
	}
}
