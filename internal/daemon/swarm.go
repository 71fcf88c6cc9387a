package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// DefaultTaskHistory is how many finished tasks a slot keeps, as Docker.
const DefaultTaskHistory = 5

// swarmServer changes this node's membership; it is served only on the
// local socket.
type swarmServer struct {
	shoalv1.UnimplementedSwarmServiceServer
	d *Daemon
}

func (d *Daemon) raftAdvertise(adv string) string {
	host, _, _ := net.SplitHostPort(adv)
	return net.JoinHostPort(host, portOf(d.cfg.RaftAddr, "4243"))
}

func (s *swarmServer) Init(ctx context.Context, req *shoalv1.InitRequest) (*shoalv1.InitResponse, error) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st != nil {
		return nil, errInSwarm
	}
	adv, err := chooseAdvertise(req.GetAdvertiseAddr(), d.cfg.AdvertiseAddr, d.cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	expiry := ca.DefaultNodeCertExpiry
	if e := req.GetCertExpiry(); e != nil {
		if e.AsDuration() < ca.MinNodeCertExpiry {
			return nil, fmt.Errorf("cert-expiry: must be at least %s, got %s: %w", ca.MinNodeCertExpiry, e.AsDuration(), errdefs.ErrInvalid)
		}
		expiry = e.AsDuration()
	}
	history := int64(DefaultTaskHistory)
	if req.GetTaskHistoryLimit() < 0 {
		return nil, fmt.Errorf("task-history-limit: must be >= 0, got %d: %w", req.GetTaskHistoryLimit(), errdefs.ErrInvalid)
	} else if req.GetTaskHistoryLimit() > 0 {
		history = req.GetTaskHistoryLimit()
	}
	if _, err := allocator.ParsePools(req.GetDefaultAddrPools(), int(req.GetSubnetSize())); err != nil {
		return nil, fmt.Errorf("default-addr-pool: %v: %w", err, errdefs.ErrInvalid)
	}
	// Leftovers of an earlier membership must not leak into a new cluster.
	if err := d.wipeState(); err != nil && !os.IsNotExist(err) {
		d.log.Debug("wipe before init", zap.Error(err))
	}
	now := time.Now()
	root, rootKey, err := ca.NewRootCA(now)
	if err != nil {
		return nil, err
	}
	clusterID, nodeID := store.NewID(), store.NewID()
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		return nil, err
	}
	certPEM, err := root.Sign(csrPEM, nodeID, clusterID, shoalv1.NodeRole_NODE_ROLE_MANAGER, expiry, now)
	if err != nil {
		return nil, err
	}
	id, err := tlsutil.NewIdentity(root.CertPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if err := d.certs().Save(root.CertPEM, certPEM, keyPEM); err != nil {
		return nil, err
	}
	st := &state{ClusterID: clusterID, NodeID: nodeID, Addr: adv, RaftAddr: d.raftAdvertise(adv), Managers: []string{adv}}
	d.st, d.id = st, id
	fail := func(err error) (*shoalv1.InitResponse, error) {
		d.stopManager()
		d.st, d.id = nil, nil
		_ = d.wipeState()
		return nil, err
	}
	if err := d.startManager(true, false); err != nil {
		return fail(err)
	}
	ts := timestamppb.New(now)
	cluster := &shoalv1.Cluster{
		Id:   clusterID,
		Meta: &shoalv1.Meta{CreatedAt: ts},
		Spec: &shoalv1.ClusterSpec{Name: "default", TaskHistoryLimit: history, NodeCertExpiry: durationpb.New(expiry),
			DefaultAddrPools: req.GetDefaultAddrPools(), SubnetSize: req.GetSubnetSize()},
		RootCa:     &shoalv1.RootCA{CertPem: root.CertPEM, KeyPem: rootKey, Digest: root.Digest},
		GossipKeys: [][]byte{manager.NewGossipKey()},
		JoinTokens: &shoalv1.JoinTokens{
			Worker:  ca.NewToken(root.Digest).String(),
			Manager: ca.NewToken(root.Digest).String(),
		},
	}
	self := &shoalv1.Node{
		Id:            nodeID,
		Meta:          &shoalv1.Meta{CreatedAt: ts},
		Spec:          &shoalv1.NodeSpec{DesiredRole: shoalv1.NodeRole_NODE_ROLE_MANAGER, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
		Description:   d.describe(),
		Status:        &shoalv1.NodeStatus{State: shoalv1.NodeState_NODE_STATE_READY, Addr: hostOfAddr(adv)},
		Role:          shoalv1.NodeRole_NODE_ROLE_MANAGER,
		ManagerStatus: &shoalv1.ManagerStatus{Addr: adv, RaftAddr: st.RaftAddr},
	}
	bctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := d.mgr.m.Bootstrap(bctx, cluster, self); err != nil {
		return fail(fmt.Errorf("bootstrap the cluster: %w", err))
	}
	if err := d.saveState(st); err != nil {
		return fail(err)
	}
	d.startAgent()
	d.log.Info("swarm initialized", zap.String("cluster", clusterID), zap.String("node", nodeID), zap.String("addr", adv))
	return &shoalv1.InitResponse{NodeId: nodeID, ClusterId: clusterID, WorkerToken: cluster.JoinTokens.Worker, ManagerToken: cluster.JoinTokens.Manager, Addr: adv}, nil
}

// fetchRootCA asks a manager for its root certificate and accepts it only
// if its digest is the one pinned in the join token.
func fetchRootCA(ctx context.Context, addr string, tok ca.Token) ([]byte, error) {
	insecure := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}) //nolint:gosec // the answer is checked against the token's digest
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := shoalv1.NewCAServiceClient(conn).GetRootCACertificate(ctx, &shoalv1.GetRootCACertificateRequest{})
	if err != nil {
		return nil, fmt.Errorf("reach manager %s: %w", addr, errgrpc.FromGRPC(err))
	}
	cert, err := tlsutil.ParseCertPEM(resp.GetCertPem())
	if err != nil {
		return nil, fmt.Errorf("manager %s sent a bad CA certificate: %w", addr, err)
	}
	if ca.Digest(cert.Raw) != tok.Digest {
		return nil, fmt.Errorf("the manager at %s has a CA whose digest does not match the join token: refusing to join (wrong token or wrong address): %w", addr, errdefs.ErrPermissionDenied)
	}
	return resp.GetCertPem(), nil
}

func (s *swarmServer) Join(ctx context.Context, req *shoalv1.JoinRequest) (*shoalv1.JoinResponse, error) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st != nil {
		return nil, errInSwarm
	}
	tok, err := ca.ParseToken(req.GetToken())
	if err != nil {
		return nil, err
	}
	if req.GetRemoteAddr() == "" {
		return nil, fmt.Errorf("the address of a manager is required (shoal swarm join --token T HOST:PORT): %w", errdefs.ErrInvalid)
	}
	remote := withPort(req.GetRemoteAddr(), "4242")
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	caPEM, err := fetchRootCA(ctx, remote, tok)
	if err != nil {
		return nil, err
	}
	pool, err := tlsutil.PoolOf(caPEM)
	if err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		return nil, err
	}
	adv, advErr := chooseAdvertise(req.GetAdvertiseAddr(), d.cfg.AdvertiseAddr, d.cfg.ListenAddr)
	raftAdv := ""
	if advErr == nil {
		raftAdv = d.raftAdvertise(adv)
	}
	conn, err := grpc.NewClient(remote, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: tlsutil.ManagerServerName,
	})))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := shoalv1.NewCAServiceClient(conn).IssueNodeCertificate(ctx, &shoalv1.IssueNodeCertificateRequest{
		Token: req.GetToken(), CsrPem: csrPEM, Description: d.describe(), Addr: adv, RaftAddr: raftAdv,
	})
	if err != nil {
		err = errgrpc.FromGRPC(err)
		if errdefs.Is(err, errdefs.ErrInvalid) && advErr != nil {
			return nil, fmt.Errorf("%v (%v)", err, advErr)
		}
		return nil, err
	}
	id, err := tlsutil.NewIdentity(caPEM, resp.GetCertPem(), keyPEM)
	if err != nil {
		return nil, err
	}
	if err := d.certs().Save(caPEM, resp.GetCertPem(), keyPEM); err != nil {
		return nil, err
	}
	managers := resp.GetManagers()
	if !slices.Contains(managers, remote) {
		managers = append(managers, remote)
	}
	st := &state{ClusterID: resp.GetClusterId(), NodeID: resp.GetNodeId(), Addr: adv, RaftAddr: raftAdv, Managers: managers}
	d.st, d.id = st, id
	if err := d.saveState(st); err != nil {
		return nil, err
	}
	manager := resp.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER
	if manager {
		if err := d.startManager(false, false); err != nil {
			return nil, err
		}
		if err := d.joinRaft(ctx); err != nil {
			return nil, fmt.Errorf("joined as node %s but could not join the managers' raft group yet (it is retried in the background): %w", st.NodeID, err)
		}
	}
	d.startAgent()
	d.log.Info("joined swarm", zap.String("cluster", st.ClusterID), zap.String("node", st.NodeID), zap.Bool("manager", manager))
	return &shoalv1.JoinResponse{NodeId: st.NodeID, Manager: manager}, nil
}

func (s *swarmServer) Leave(ctx context.Context, req *shoalv1.LeaveRequest) (*shoalv1.LeaveResponse, error) {
	d := s.d
	d.stopAgent()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return nil, fmt.Errorf("%v: %w", errNotInSwarm, errdefs.ErrFailedPrecond)
	}
	if d.id.Role() == tlsutil.RoleManager {
		if !req.GetForce() {
			d.startAgent()
			return nil, fmt.Errorf("this node is a manager: leaving would remove a member of the managers' raft group and may cost the cluster its quorum. "+
				"Demote it first (`shoal node demote %s` on another manager) or use --force: %w", d.st.NodeID, errdefs.ErrFailedPrecond)
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.callManagers(lctx, false, func(c *grpc.ClientConn) error {
			_, err := shoalv1.NewRaftServiceClient(c).LeaveRaft(lctx, &shoalv1.LeaveRaftRequest{})
			return err
		}); err != nil {
			d.log.Warn("leaving raft before leaving the swarm", zap.Error(err))
		}
		cancel()
	}
	d.stopManager()
	d.gsp.stop(true)
	d.closeAgentConns()
	d.st, d.id = nil, nil
	if err := d.wipeState(); err != nil {
		d.log.Debug("wipe state", zap.Error(err))
	}
	// A node outside any cluster runs no tasks.
	d.work.agent.Update(true, nil, nil)
	d.log.Info("left swarm")
	return &shoalv1.LeaveResponse{}, nil
}

func (s *swarmServer) Info(ctx context.Context, _ *shoalv1.InfoRequest) (*shoalv1.InfoResponse, error) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return &shoalv1.InfoResponse{State: "inactive"}, nil
	}
	return &shoalv1.InfoResponse{State: "active", NodeId: d.st.NodeID, ClusterId: d.st.ClusterID,
		Manager: d.mgr != nil, Addr: d.st.Addr, Managers: d.st.Managers}, nil
}

// describe reports this node's hostname, platform and capacity.
// describe is the node description reported at join and in every
// heartbeat; the leader stores it when it changes.
func (d *Daemon) describe() *shoalv1.NodeDescription {
	host := d.cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	return &shoalv1.NodeDescription{
		Hostname:     host,
		Platform:     &shoalv1.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources:    &shoalv1.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: memTotal()},
		EngineLabels: d.cfg.EngineLabels,
		Version:      Version,
	}
}

// Version is set at build time.
var Version = "dev"

func memTotal() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err != nil {
		return 0
	}
	return kb * 1024
}

func hostOfAddr(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
