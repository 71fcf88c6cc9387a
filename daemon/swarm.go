package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/bootstrap"
	"github.com/shoal-run/shoal/manager/ca"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtimeapi"
	"github.com/shoal-run/shoal/worker"
)

// swarmServer changes this node's membership; it is served only on the
// local socket.
type swarmServer struct {
	shoalv1.UnimplementedSwarmServiceServer
	d *Daemon
}

func (d *Daemon) raftAdvertise(adv string) string {
	host, _, _ := net.SplitHostPort(adv)
	return net.JoinHostPort(host, portOf(d.cfg.RaftAddr, defaults.RaftPort))
}

func (s *swarmServer) Init(ctx context.Context, req *shoalv1.InitRequest) (*shoalv1.InitResponse, error) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.locked {
		return nil, keys.ErrLocked
	}
	if d.st != nil {
		return nil, errInSwarm
	}
	unlockKey := ""
	if req.GetAutolock() {
		k, err := keys.NewUnlockKey()
		if err != nil {
			return nil, err
		}
		unlockKey = k
	}
	adv, err := chooseAdvertise(req.GetAdvertiseAddr(), d.cfg.AdvertiseAddr, d.cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	b, err := bootstrap.New(bootstrap.Config{Request: req, Addr: adv, RaftAddr: d.raftAdvertise(adv), Host: hostOfAddr(adv),
		Description: d.describe(), Now: time.Now(), UnlockKey: unlockKey})
	if err != nil {
		return nil, err
	}
	// Leftovers of an earlier membership must not leak into a new cluster.
	if err := d.wipeState(); err != nil && !os.IsNotExist(err) {
		d.log.Debug("wipe before init", zap.Error(err))
	}
	cluster, self := b.Cluster, b.Node
	clusterID, nodeID := cluster.GetId(), self.GetId()
	id, err := tlsutil.NewIdentity(cluster.GetRootCa().GetCertPem(), b.CertPEM, b.KeyPEM)
	if err != nil {
		return nil, err
	}
	mat, err := keys.New()
	if err == nil && unlockKey != "" {
		// Sealed from the start: the disk never holds this manager's keys
		// unprotected.
		mat, err = mat.Rewrap(unlockKey)
	}
	if err != nil {
		return nil, err
	}
	if err := d.certs().Save(cluster.GetRootCa().GetCertPem(), b.CertPEM, b.KeyPEM, mat); err != nil {
		return nil, err
	}
	st := &state{ClusterID: clusterID, NodeID: nodeID, Addr: adv, RaftAddr: self.GetManagerStatus().GetRaftAddr(), Managers: []string{adv}}
	d.st, d.id = st, id
	d.setKeys(mat)
	fail := func(err error) (*shoalv1.InitResponse, error) {
		d.stopManager()
		d.st, d.id = nil, nil
		d.setKeys(nil)
		_ = d.wipeState()
		return nil, err
	}
	if err := d.startManager(true, false); err != nil {
		return fail(err)
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
	return &shoalv1.InitResponse{NodeId: nodeID, ClusterId: clusterID, WorkerToken: cluster.JoinTokens.Worker, ManagerToken: cluster.JoinTokens.Manager, Addr: adv,
		UnlockKey: unlockKey}, nil
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
	if d.locked {
		return nil, keys.ErrLocked
	}
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
	remote := withPort(req.GetRemoteAddr(), defaults.APIPort)
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
	// A manager gets its key material with its first certificate set.
	var mat *keys.Material
	if resp.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		if mat, err = keys.New(); err != nil {
			return nil, err
		}
	}
	if err := d.certs().Save(caPEM, resp.GetCertPem(), keyPEM, mat); err != nil {
		return nil, err
	}
	managers := resp.GetManagers()
	if !slices.Contains(managers, remote) {
		managers = append(managers, remote)
	}
	st := &state{ClusterID: resp.GetClusterId(), NodeID: resp.GetNodeId(), Addr: adv, RaftAddr: raftAdv, Managers: managers}
	d.st, d.id = st, id
	d.setKeys(mat)
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
		return nil, fmt.Errorf("%v: %w", worker.ErrNotInSwarm, errdefs.ErrFailedPrecond)
	}
	if d.locked {
		if !req.GetForce() {
			return nil, fmt.Errorf("this node is a locked manager: unlock it first (`shoal swarm unlock`) and demote it, or leave with --force, "+
				"which removes it from the swarm without telling the other managers: %w", errdefs.ErrFailedPrecond)
		}
		d.st, d.locked = nil, false
		d.setKeys(nil)
		if err := d.wipeState(); err != nil {
			d.log.Debug("wipe state", zap.Error(err))
		}
		d.agent.Leave()
		d.log.Info("left swarm while locked")
		return &shoalv1.LeaveResponse{}, nil
	}
	if d.id.Role() == tlsutil.RoleManager {
		if !req.GetForce() {
			d.startAgent()
			return nil, fmt.Errorf("this node is a manager: leaving would remove a member of the managers' raft group and may cost the cluster its quorum. "+
				"Demote it first (`shoal node demote %s` on another manager) or use --force: %w", d.st.NodeID, errdefs.ErrFailedPrecond)
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.callManagers(lctx, false, func(cctx context.Context, c *grpc.ClientConn) error {
			_, err := shoalv1.NewRaftServiceClient(c).LeaveRaft(cctx, &shoalv1.LeaveRaftRequest{})
			return err
		}); err != nil {
			d.log.Warn("leaving raft before leaving the swarm", zap.Error(err))
		}
		cancel()
	}
	d.stopManager()
	d.gsp.Stop(true)
	d.session.CloseConns()
	d.st, d.id = nil, nil
	d.setKeys(nil)
	if err := d.wipeState(); err != nil {
		d.log.Debug("wipe state", zap.Error(err))
	}
	// A node outside any cluster runs no tasks.
	d.agent.Leave()
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
	if d.locked {
		return &shoalv1.InfoResponse{State: "locked", NodeId: d.st.NodeID, ClusterId: d.st.ClusterID,
			Manager: true, Addr: d.st.Addr, Managers: d.st.Managers}, nil
	}
	return &shoalv1.InfoResponse{State: "active", NodeId: d.st.NodeID, ClusterId: d.st.ClusterID,
		Manager: d.mgr != nil, Addr: d.st.Addr, Managers: d.st.Managers}, nil
}

// describe is the node description reported at join and in every
// heartbeat.
func (d *Daemon) describe() *shoalv1.NodeDescription {
	desc := worker.Describe(d.cfg.Hostname, d.cfg.EngineLabels, Version)
	if d.vols != nil {
		for _, v := range d.vols.List() {
			desc.Volumes = append(desc.Volumes, runtimeapi.VolumeToProto(v))
		}
	}
	return desc
}

// Version is set at build time.
var Version = "dev"

func hostOfAddr(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
