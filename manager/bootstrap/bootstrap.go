// Package bootstrap makes the first objects of a new cluster at `swarm
// init`: its root CA, the cluster object (settings, gossip key, join
// tokens) and the first manager's node and certificate. It checks the
// user's choices first and makes nothing when one is wrong. The manager
// writes what it returns (manager.Bootstrap, which adds the ingress
// network); the daemon keeps the certificate on disk.
package bootstrap

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Config is what a new cluster is made from.
type Config struct {
	// Request carries the user's choices: certificate expiry, task
	// history limit, default address pools and subnet size.
	Request *shoalv1.InitRequest
	// Addr and RaftAddr are the first manager's advertised gRPC and Raft
	// addresses; Host is Addr's host, the node's address.
	Addr, RaftAddr, Host string
	// Description is the first manager's node description.
	Description *shoalv1.NodeDescription
	Now         time.Time
	// UnlockKey, when set, makes the cluster autolocked with that key
	// (swarm init --autolock).
	UnlockKey string
}

// Cluster is a new cluster, not written anywhere yet.
type Cluster struct {
	Cluster *shoalv1.Cluster
	// Node is the first manager.
	Node *shoalv1.Node
	// CertPEM and KeyPEM are the first manager's certificate, signed by
	// the cluster's root CA, and its key.
	CertPEM, KeyPEM []byte
}

// New checks cfg's choices and makes the cluster's first objects.
func New(cfg Config) (*Cluster, error) {
	req := cfg.Request
	expiry := ca.DefaultNodeCertExpiry
	if e := req.GetCertExpiry(); e != nil {
		if e.AsDuration() < ca.MinNodeCertExpiry {
			return nil, fmt.Errorf("cert-expiry: must be at least %s, got %s: %w", ca.MinNodeCertExpiry, e.AsDuration(), errdefs.ErrInvalid)
		}
		expiry = e.AsDuration()
	}
	history := int64(defaults.TaskHistoryLimit)
	if req.GetTaskHistoryLimit() < 0 {
		return nil, fmt.Errorf("task-history-limit: must be >= 0, got %d: %w", req.GetTaskHistoryLimit(), errdefs.ErrInvalid)
	} else if req.GetTaskHistoryLimit() > 0 {
		history = req.GetTaskHistoryLimit()
	}
	if _, err := allocator.ParsePools(req.GetDefaultAddrPools(), int(req.GetSubnetSize())); err != nil {
		return nil, fmt.Errorf("default-addr-pool: %v: %w", err, errdefs.ErrInvalid)
	}
	root, rootKey, err := ca.NewRootCA(cfg.Now)
	if err != nil {
		return nil, err
	}
	clusterID, nodeID := store.NewID(), store.NewID()
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		return nil, err
	}
	certPEM, err := root.Sign(csrPEM, nodeID, clusterID, shoalv1.NodeRole_NODE_ROLE_MANAGER, expiry, cfg.Now)
	if err != nil {
		return nil, err
	}
	ts := timestamppb.New(cfg.Now)
	cluster := &shoalv1.Cluster{
		Id:   clusterID,
		Meta: &shoalv1.Meta{CreatedAt: ts},
		Spec: &shoalv1.ClusterSpec{Name: "default", TaskHistoryLimit: history, NodeCertExpiry: durationpb.New(expiry),
			DefaultAddrPools: req.GetDefaultAddrPools(), SubnetSize: req.GetSubnetSize()},
		RootCa:     &shoalv1.RootCA{CertPem: root.CertPEM, KeyPem: rootKey, Digest: root.Digest},
		GossipKeys: [][]byte{manager.NewGossipKey()},
		UnlockKey:  cfg.UnlockKey,
		JoinTokens: &shoalv1.JoinTokens{
			Worker:  ca.NewToken(root.Digest).String(),
			Manager: ca.NewToken(root.Digest).String(),
		},
	}
	if cfg.UnlockKey != "" {
		cluster.Spec.Encryption = &shoalv1.EncryptionConfig{AutoLockManagers: true}
	}
	self := &shoalv1.Node{
		Id:            nodeID,
		Meta:          &shoalv1.Meta{CreatedAt: ts},
		Spec:          &shoalv1.NodeSpec{DesiredRole: shoalv1.NodeRole_NODE_ROLE_MANAGER, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
		Description:   cfg.Description,
		Status:        &shoalv1.NodeStatus{State: shoalv1.NodeState_NODE_STATE_READY, Addr: cfg.Host},
		Role:          shoalv1.NodeRole_NODE_ROLE_MANAGER,
		ManagerStatus: &shoalv1.ManagerStatus{Addr: cfg.Addr, RaftAddr: cfg.RaftAddr},
	}
	return &Cluster{Cluster: cluster, Node: self, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}
