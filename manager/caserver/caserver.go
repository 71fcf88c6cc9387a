// Package caserver issues node certificates: the CA certificate to
// anyone, a first certificate to a node with a valid join token (and its
// node object in the store), renewals to nodes of the cluster, with the
// role the store says they are meant to have. It reads the cluster through
// Config.Cluster and writes through Proposer; the manager wires it.
package caserver

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/logging"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Store is what the CA server reads of the store.
type Store interface {
	View(fn func(store.ReadTx))
}

// Proposer writes a batch through Raft.
type Proposer interface {
	Propose(ctx context.Context, b *shoalv1.StoreBatch) (uint64, error)
}

// Config is what a Server is wired to.
type Config struct {
	CAPEM []byte // the cluster's CA certificate
	Store Store
	Raft  Proposer
	Clock clock.Clock
	Log   *zap.Logger
	// Cluster returns the cluster object, or why there is none yet.
	Cluster func() (*shoalv1.Cluster, error)
	// Joined is told of a node that joined at at, so it counts as heard
	// from (the dispatcher's heartbeats).
	Joined func(id string, at time.Time)
	// Managers lists the advertised gRPC addresses of the managers.
	Managers func() []string
}

// Server serves shoalv1.CAService.
type Server struct {
	shoalv1.UnimplementedCAServiceServer
	cfg Config
}

// New makes a CA server.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

func (s *Server) GetRootCACertificate(ctx context.Context, _ *shoalv1.GetRootCACertificateRequest) (*shoalv1.GetRootCACertificateResponse, error) {
	return &shoalv1.GetRootCACertificateResponse{CertPem: s.cfg.CAPEM}, nil
}

func (s *Server) root() (*shoalv1.Cluster, *ca.RootCA, error) {
	c, err := s.cfg.Cluster()
	if err != nil {
		return nil, nil, err
	}
	root, err := ca.ParseRootCA(c.GetRootCa().GetCertPem(), c.GetRootCa().GetKeyPem())
	if err != nil {
		return nil, nil, err
	}
	return c, root, nil
}

// roleForToken checks a join token against the cluster's current tokens.
func roleForToken(c *shoalv1.Cluster, token string) (shoalv1.NodeRole, error) {
	t, err := ca.ParseToken(token)
	if err != nil {
		return 0, err
	}
	if t.Digest != c.GetRootCa().GetDigest() {
		return 0, fmt.Errorf("the join token is for a different cluster: its CA digest does not match this cluster's CA: %w", errdefs.ErrPermissionDenied)
	}
	for _, cand := range []struct {
		tok  string
		role shoalv1.NodeRole
	}{{c.GetJoinTokens().GetWorker(), shoalv1.NodeRole_NODE_ROLE_WORKER}, {c.GetJoinTokens().GetManager(), shoalv1.NodeRole_NODE_ROLE_MANAGER}} {
		if want, err := ca.ParseToken(cand.tok); err == nil && want.Equal(t) {
			return cand.role, nil
		}
	}
	return 0, fmt.Errorf("the join token is not valid: it matches neither the current worker nor manager token (was it rotated?); get a fresh one with `shoal swarm join-token worker|manager`: %w", errdefs.ErrPermissionDenied)
}

func (s *Server) IssueNodeCertificate(ctx context.Context, req *shoalv1.IssueNodeCertificateRequest) (*shoalv1.IssueNodeCertificateResponse, error) {
	c, root, err := s.root()
	if err != nil {
		return nil, err
	}
	role, err := roleForToken(c, req.GetToken())
	if err != nil {
		return nil, err
	}
	if role == shoalv1.NodeRole_NODE_ROLE_MANAGER && (req.GetAddr() == "" || req.GetRaftAddr() == "") {
		return nil, fmt.Errorf("a joining manager must advertise its API and Raft addresses (--advertise-addr): %w", errdefs.ErrInvalid)
	}
	now := s.cfg.Clock.Now()
	id := store.NewID()
	certPEM, err := root.Sign(req.GetCsrPem(), id, c.GetId(), role, c.GetSpec().GetNodeCertExpiry().AsDuration(), now)
	if err != nil {
		return nil, err
	}
	caller, _ := auth.From(ctx)
	node := &shoalv1.Node{
		Id:          id,
		Meta:        &shoalv1.Meta{CreatedAt: timestamppb.New(now)},
		Spec:        &shoalv1.NodeSpec{DesiredRole: role, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
		Description: req.GetDescription(),
		Status:      &shoalv1.NodeStatus{State: shoalv1.NodeState_NODE_STATE_READY, Addr: caller.Host()},
		Role:        role,
	}
	if role == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		node.ManagerStatus = &shoalv1.ManagerStatus{Addr: req.GetAddr(), RaftAddr: req.GetRaftAddr()}
	}
	if _, err := s.cfg.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(node),
	}}}); err != nil {
		return nil, err
	}
	s.cfg.Joined(id, now)
	s.cfg.Log.Info("node joined", logging.Node(id), logging.Role(role))
	return &shoalv1.IssueNodeCertificateResponse{NodeId: id, ClusterId: c.GetId(), CertPem: certPEM, Role: role, Managers: s.cfg.Managers()}, nil
}

func (s *Server) RenewNodeCertificate(ctx context.Context, req *shoalv1.RenewNodeCertificateRequest) (*shoalv1.RenewNodeCertificateResponse, error) {
	caller, _ := auth.From(ctx)
	c, root, err := s.root()
	if err != nil {
		return nil, err
	}
	var node *shoalv1.Node
	s.cfg.Store.View(func(r store.ReadTx) { node = store.Get[*shoalv1.Node](r, store.TableNode, caller.NodeID) })
	if node == nil {
		return nil, fmt.Errorf("node %s was removed from the cluster; run `shoal swarm leave` and join again: %w", caller.NodeID, errdefs.ErrPermissionDenied)
	}
	role := node.GetSpec().GetDesiredRole()
	certPEM, err := root.Sign(req.GetCsrPem(), node.GetId(), c.GetId(), role, c.GetSpec().GetNodeCertExpiry().AsDuration(), s.cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	next := proto.Clone(node).(*shoalv1.Node)
	next.Role = role
	if role == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		if next.ManagerStatus == nil {
			next.ManagerStatus = &shoalv1.ManagerStatus{}
		}
		if req.GetAddr() != "" {
			next.ManagerStatus.Addr = req.GetAddr()
		}
		if req.GetRaftAddr() != "" {
			next.ManagerStatus.RaftAddr = req.GetRaftAddr()
		}
	}
	if !proto.Equal(next, node) {
		next.Meta.UpdatedAt = timestamppb.New(s.cfg.Clock.Now())
		if _, err := s.cfg.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(next), ExpectedVersion: node.GetMeta().GetVersion(),
		}}}); err != nil {
			return nil, err
		}
	}
	return &shoalv1.RenewNodeCertificateResponse{CertPem: certPEM, Role: role}, nil
}
