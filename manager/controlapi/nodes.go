package controlapi

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/quorum"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func (s *Server) members() []quorum.Member {
	return quorum.Members(s.Raft)
}

// decorate fills in the leader's live view of a manager.
func (s *Server) decorate(n *shoalv1.Node, members map[string]bool, leader string) *shoalv1.Node {
	if !members[n.GetId()] {
		return n
	}
	n = clone(n)
	if n.ManagerStatus == nil {
		n.ManagerStatus = &shoalv1.ManagerStatus{}
	}
	n.ManagerStatus.Leader = n.GetId() == leader
	n.ManagerStatus.Reachability = shoalv1.Reachability_REACHABILITY_UNREACHABLE
	if s.Raft.Reachable(n.GetId()) {
		n.ManagerStatus.Reachability = shoalv1.Reachability_REACHABILITY_REACHABLE
	}
	return n
}

func (s *Server) memberSet() map[string]bool {
	set := map[string]bool{}
	for _, id := range s.Raft.MemberIDs() {
		set[id] = true
	}
	return set
}

// ListNodes returns every node, managers decorated with their reachability.
func (s *Server) ListNodes(ctx context.Context, req *shoalv1.ListNodesRequest) (*shoalv1.ListNodesResponse, error) {
	f, err := parseFilters(req.GetFilters(), nodeFilters...)
	if err != nil {
		return nil, err
	}
	var nodes []*shoalv1.Node
	s.Store.View(func(r store.ReadTx) { nodes = keep(store.List[*shoalv1.Node](r, store.TableNode), f.node) })
	set, leader := s.memberSet(), s.Raft.Leader()
	for i, n := range nodes {
		nodes[i] = s.decorate(n, set, leader)
	}
	sort.Slice(nodes, func(i, j int) bool {
		return nodes[i].GetDescription().GetHostname()+nodes[i].GetId() < nodes[j].GetDescription().GetHostname()+nodes[j].GetId()
	})
	return &shoalv1.ListNodesResponse{Nodes: nodes}, nil
}

// selfRef is docker's "self": the node making the call (the local
// daemon for the CLI on its socket, the manager itself over tcp://).
func selfRef(ctx context.Context, ref string) string {
	if ref != "self" {
		return ref
	}
	if c, ok := auth.From(ctx); ok && c.NodeID != "" {
		return c.NodeID
	}
	return ref
}

func (s *Server) findNode(ref string) (*shoalv1.Node, error) {
	var n *shoalv1.Node
	var err error
	s.Store.View(func(r store.ReadTx) { n, err = store.Find[*shoalv1.Node](r, store.TableNode, ref, "node") })
	return n, err
}

// GetNode returns one node by ID, hostname or ID prefix.
func (s *Server) GetNode(ctx context.Context, req *shoalv1.GetNodeRequest) (*shoalv1.GetNodeResponse, error) {
	n, err := s.findNode(selfRef(ctx, req.GetNodeId()))
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetNodeResponse{Node: s.decorate(n, s.memberSet(), s.Raft.Leader())}, nil
}

// UpdateNode changes availability, labels or role. A demotion leaves Raft
// before it is acknowledged, and is refused when it would cost the quorum.
func (s *Server) UpdateNode(ctx context.Context, req *shoalv1.UpdateNodeRequest) (*shoalv1.UpdateNodeResponse, error) {
	if err := ValidateNodeSpec(req.GetSpec()); err != nil {
		return nil, err
	}
	if req.GetVersion() == 0 {
		return nil, fmt.Errorf("node.version: is required: read the node (inspect) and send the version you read: %w", errdefs.ErrInvalid)
	}
	cur, err := s.findNode(selfRef(ctx, req.GetNodeId()))
	if err != nil {
		return nil, err
	}
	demote := cur.GetSpec().GetDesiredRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER && req.GetSpec().GetDesiredRole() == shoalv1.NodeRole_NODE_ROLE_WORKER
	isMember := s.memberSet()[cur.GetId()]
	if demote && isMember && !req.GetForce() {
		if err := quorum.CheckRemoval(s.members(), cur.GetId()); err != nil {
			return nil, err
		}
	}
	if demote && isMember && len(s.Raft.MemberIDs()) == 1 {
		return nil, fmt.Errorf("node %s is the last manager; promote another node first: %w", cur.GetId(), errdefs.ErrFailedPrecond)
	}
	next := clone(cur)
	next.Spec = clone(req.GetSpec())
	next.Meta.UpdatedAt = timestamppb.New(s.Clock.Now())
	idx, err := s.propose(ctx, update(next, req.GetVersion()))
	if err != nil {
		return nil, err
	}
	next.Meta.Version = idx
	if demote && isMember {
		// The role manager retries this if we fail here; doing it now
		// makes the demotion visible to the caller at once.
		if err := s.Raft.RemoveServer(ctx, cur.GetId()); err != nil {
			return nil, fmt.Errorf("node %s is marked for demotion but leaving raft failed (it will be retried): %w", cur.GetId(), err)
		}
	}
	return &shoalv1.UpdateNodeResponse{Node: next}, nil
}

// RemoveNode deletes a node that is down, or any node with force.
func (s *Server) RemoveNode(ctx context.Context, req *shoalv1.RemoveNodeRequest) (*shoalv1.RemoveNodeResponse, error) {
	cur, err := s.findNode(req.GetNodeId())
	if err != nil {
		return nil, err
	}
	if cur.GetId() == s.Raft.Leader() {
		return nil, fmt.Errorf("node %s is the leader answering this call; demote it or remove it from another manager: %w", cur.GetId(), errdefs.ErrFailedPrecond)
	}
	isMember := s.memberSet()[cur.GetId()]
	if isMember && !req.GetForce() {
		return nil, fmt.Errorf("node %s is a manager; demote it first with `shoal node demote %s`, or use --force: %w", cur.GetId(), cur.GetId(), errdefs.ErrFailedPrecond)
	}
	if !isMember && !req.GetForce() && cur.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_READY {
		return nil, fmt.Errorf("node %s is ready; stop it or run `shoal swarm leave` on it first, or use --force: %w", cur.GetId(), errdefs.ErrFailedPrecond)
	}
	if isMember {
		if err := s.Raft.RemoveServer(ctx, cur.GetId()); err != nil {
			return nil, fmt.Errorf("remove manager %s from raft: %w", cur.GetId(), err)
		}
	}
	if _, err := s.propose(ctx, remove(cur, 0)); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveNodeResponse{}, nil
}
