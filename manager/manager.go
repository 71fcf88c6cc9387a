// Package manager wires the control plane of one manager node: a Raft
// member replicating the store, the gRPC services other nodes and the CLI
// call, and the loops that run only on the leader. The behaviour lives in
// rooms of its own: store and raftnode (the replicated state), controlapi
// (validate and propose), dispatcher (node sessions and node status),
// caserver (certificates), membership (Raft voters and demotions, with
// quorum's rules), orchestrator and allocator (leader loops), forward
// (leader-only calls on a follower) and auth (who may call what). This
// package constructs them, starts the leader's loops on election and
// stops them when leadership is lost.
package manager

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/caserver"
	"github.com/shoal-run/shoal/manager/controlapi"
	"github.com/shoal-run/shoal/manager/dispatcher"
	"github.com/shoal-run/shoal/manager/events"
	"github.com/shoal-run/shoal/manager/forward"
	"github.com/shoal-run/shoal/manager/logbroker"
	"github.com/shoal-run/shoal/manager/membership"
	"github.com/shoal-run/shoal/manager/orchestrator"
	"github.com/shoal-run/shoal/manager/raftnode"
	"github.com/shoal-run/shoal/manager/rewrap"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Config configures a manager.
type Config struct {
	NodeID        string
	ClusterID     string
	Addr          string // advertised gRPC address
	RaftBind      string
	RaftAdvertise string
	Dir           string // Raft state
	Identity      *tlsutil.Identity
	// DEK is the manager's data encryption key: its Raft log and
	// snapshots are sealed with it (internal/keys). Required.
	DEK    []byte
	Log    *zap.Logger
	Timing raftnode.Timing

	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	Bootstrap       bool
	ForceNewCluster bool

	// HeartbeatPeriod is how often nodes report; a node is down after
	// three missed periods.
	HeartbeatPeriod time.Duration
	// Gossip tells which nodes the node's gossip saw fail; nil when the
	// node does not gossip.
	Gossip GossipView
	// Clock times the manager's loops (heartbeat expiry, node-down
	// detection, orchestration); nil is the wall clock.
	Clock clock.Clock
	// Keys is this manager's key material, kept wrapped with the key
	// the cluster object asks for (manager/rewrap); nil runs no such
	// loop.
	Keys rewrap.Material
	// NewUnlockKey makes the unlock keys the control API hands out.
	NewUnlockKey func() (string, error)
	// ResolveDigest resolves image references to digests for clients
	// (ResolveImage): the node's image store, with its registries' rules.
	ResolveDigest func(ctx context.Context, ref, registryAuth string) (string, error)
}

// GossipView is what the manager needs of the node's gossip membership:
// which nodes it saw fail, for the dispatcher's node status loop.
type GossipView = dispatcher.GossipView

// Manager is one running manager.
type Manager struct {
	cfg     Config
	log     *zap.Logger
	store   *store.Store
	raft    *raftnode.Node
	fwd     *forward.Forwarder
	control *controlapi.Server
	// book holds network allocations in flight, shared by the control
	// API and the orchestrator.
	book    *allocator.Book
	disp    *dispatcher.Dispatcher
	logs    *logbroker.Broker
	events  *events.Recorder
	members *membership.Membership
	ready   atomic.Bool // leader with every committed entry applied
}

// New starts the Raft member. Serving starts with Register; leader loops
// with Run.
func New(cfg Config) (*Manager, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.HeartbeatPeriod == 0 {
		cfg.HeartbeatPeriod = defaults.HeartbeatPeriod
	}
	st := store.New()
	r, err := raftnode.Start(raftnode.Config{
		NodeID: cfg.NodeID, BindAddr: cfg.RaftBind, AdvertiseAddr: cfg.RaftAdvertise, Dir: cfg.Dir,
		Identity: cfg.Identity, DEK: cfg.DEK, FSM: &store.FSM{Store: st, Log: cfg.Log.Named("store")}, Log: cfg.Log,
		Timing: cfg.Timing, SnapshotThreshold: cfg.SnapshotThreshold, SnapshotInterval: cfg.SnapshotInterval,
		TrailingLogs: cfg.TrailingLogs, Bootstrap: cfg.Bootstrap, ForceNewCluster: cfg.ForceNewCluster,
	})
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Log.Named("manager"), store: st, raft: r}
	m.fwd = forward.New(forward.Config{NodeID: cfg.NodeID, Identity: cfg.Identity, Store: st, Raft: r, Ready: m.IsReadyLeader})
	m.book = &allocator.Book{}
	m.members = membership.New(membership.Config{NodeID: cfg.NodeID, Store: st, Raft: r, Clock: cfg.Clock, Log: m.log.Named("membership")})
	m.logs = logbroker.New(st, m.log.Named("logs"), store.NewID)
	m.events = events.New(st, r, cfg.Clock)
	m.disp = dispatcher.New(dispatcher.Config{
		Store: st, Raft: r, Clock: cfg.Clock, Log: m.log.Named("dispatcher"), HeartbeatPeriod: cfg.HeartbeatPeriod,
		Gossip: cfg.Gossip, Book: m.book, Managers: m.managerAddrs, Leading: m.IsReadyLeader, Logs: m.logs,
	})
	m.control = &controlapi.Server{Store: st, Raft: r, Clock: cfg.Clock, NewToken: func(d string) string { return ca.NewToken(d).String() },
		NewUnlockKey: cfg.NewUnlockKey, Book: m.book, ResolveDigest: cfg.ResolveDigest,
		Logs: m.logs, Leading: m.IsReadyLeader, EventLog: m.events}
	m.control.ForwardLogs = m.forwardLogs
	return m, nil
}

// Store is the manager's replica of the store.
func (m *Manager) Store() *store.Store { return m.store }

// Raft is the manager's Raft member.
func (m *Manager) Raft() *raftnode.Node { return m.raft }

// KeepaliveEnforcement is the keepalive policy a manager's gRPC server
// needs so that other managers' forwarders may ping it as often as they
// do.
var KeepaliveEnforcement = forward.KeepaliveEnforcement

// Register adds the manager's services to s. Use Interceptor on s.
func (m *Manager) Register(s *grpc.Server) {
	shoalv1.RegisterControlServiceServer(s, m.control)
	shoalv1.RegisterCAServiceServer(s, caserver.New(caserver.Config{
		CAPEM: m.cfg.Identity.CAPEM, Store: m.store, Raft: m.raft, Clock: m.cfg.Clock, Log: m.log.Named("ca"),
		Cluster: m.cluster, Joined: m.disp.Seen, Managers: m.managerAddrs,
	}))
	shoalv1.RegisterDispatcherServiceServer(s, m.disp)
	shoalv1.RegisterRaftServiceServer(s, m.members)
}

// Interceptor authenticates every call, sends it to the leader when it
// is leader-only (forward.Forwarder.Call: answered here on the ready leader, else
// forwarded), and converts errors to gRPC statuses, the one place that
// happens.
func (m *Manager) Interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c, err := auth.Authenticate(ctx, info.FullMethod, m.cfg.ClusterID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	ctx = auth.With(ctx, c)
	if _, ok := ctx.Deadline(); !ok {
		// Forwarded calls too: none may wait forever on a leader that
		// went silent.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if !auth.LeaderOnly(info.FullMethod) {
		resp, err := handler(ctx, req)
		return resp, errgrpc.ToGRPC(err)
	}
	resp, err := m.fwd.Call(ctx, c, info.FullMethod, req, handler)
	return resp, errgrpc.ToGRPC(err)
}

// LeaderHintKey is the trailer in which a follower that refuses a stream
// names the leader (the wire's shoalv1.LeaderHintKey).
const LeaderHintKey = shoalv1.LeaderHintKey

// followerStreams are the streams a follower serves too: SubscribeLogs,
// which it forwards to the leader whose broker the nodes publish to, and
// Events, which every manager answers from its own replica.
var followerStreams = map[string]bool{
	"/shoal.v1.ControlService/SubscribeLogs": true,
	"/shoal.v1.ControlService/Events":        true,
}

// StreamInterceptor authenticates streaming calls. Streams other than
// followerStreams are served by the leader only: a follower answers
// Unavailable and redirects the caller to the leader it knows
// (LeaderHintKey). Chain it after
// errgrpc.StreamServerInterceptor, which turns its errors into statuses.
func (m *Manager) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, err := auth.Authenticate(ss.Context(), info.FullMethod, m.cfg.ClusterID)
	if err != nil {
		return err
	}
	if !m.ready.Load() && !followerStreams[info.FullMethod] {
		addr, err := m.fwd.LeaderAddr()
		if err != nil {
			return err
		}
		ss.SetTrailer(metadata.Pairs(LeaderHintKey, addr))
		return fmt.Errorf("this manager is not the leader; the leader is %s: %w", addr, errdefs.ErrUnavailable)
	}
	return handler(srv, &callerStream{ServerStream: ss, ctx: auth.With(ss.Context(), c)})
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

// IsReadyLeader reports whether this manager leads and has applied every
// committed entry.
func (m *Manager) IsReadyLeader() bool { return m.ready.Load() }

// WaitReadyLeader waits until this manager is the ready leader.
func (m *Manager) WaitReadyLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !m.ready.Load() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("this manager did not become leader: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Run follows leadership until ctx ends: on election it waits for the
// log to be applied, then runs the leader-only loops until leadership is
// lost.
func (m *Manager) Run(ctx context.Context) {
	cancel := func() {}
	var loops sync.WaitGroup
	stopLoops := func() {
		m.ready.Store(false)
		cancel()
		loops.Wait()
	}
	defer stopLoops()
	if m.cfg.Keys != nil {
		// Every manager, leader or not, wraps its own keys.
		rctx, rcancel := context.WithCancel(ctx)
		rdone := make(chan struct{})
		go func() {
			defer close(rdone)
			rewrap.Run(rctx, rewrap.Config{Store: m.store, Material: m.cfg.Keys, CaughtUp: m.raft.CaughtUp, Clock: m.cfg.Clock, Log: m.log.Named("rewrap")})
		}()
		defer func() { rcancel(); <-rdone }()
	}
	// Every manager records events from what it applies.
	ectx, ecancel := context.WithCancel(ctx)
	edone := make(chan struct{})
	go func() { defer close(edone); m.events.Run(ectx) }()
	defer func() { ecancel(); <-edone }()
	ch := m.raft.LeaderCh()
	check := m.cfg.Clock.NewTicker(time.Second)
	defer check.Stop()
	leading := false
	for {
		var isLeader bool
		select {
		case <-ctx.Done():
			return
		case isLeader = <-ch:
		case <-check.Chan():
			// LeaderCh can drop a notification; re-read the state.
			isLeader = m.raft.IsLeader()
		}
		if isLeader == leading {
			continue
		}
		leading = isLeader
		stopLoops()
		if !isLeader {
			m.log.Info("lost leadership")
			continue
		}
		bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.raft.Barrier(bctx)
		bcancel()
		if err != nil {
			m.log.Warn("leader barrier failed", zap.Error(err))
			leading = false
			continue
		}
		m.log.Info("became leader")
		if err := m.ensureGossipKey(ctx); err != nil {
			m.log.Warn("gossip key", zap.Error(err))
		}
		if err := m.ensureIngress(ctx); err != nil {
			m.log.Warn("ingress network", zap.Error(err))
		}
		lctx, lcancel := context.WithCancel(ctx)
		cancel = lcancel
		m.disp.Lead(m.cfg.Clock.Now())
		m.logs.Lead()
		m.ready.Store(true)
		loops.Add(4)
		go func() { defer loops.Done(); m.logs.Run(lctx) }()
		go func() { defer loops.Done(); m.disp.RunNodeStatus(lctx) }()
		go func() { defer loops.Done(); m.members.RunRoles(lctx) }()
		orch := &orchestrator.Orchestrator{Store: m.store, Raft: m.raft, Clock: m.cfg.Clock, NewID: store.NewID, Log: m.log.Named("orchestrator"), Book: m.book}
		go func() { defer loops.Done(); orch.Run(lctx) }()
	}
}

// Bootstrap writes the first objects of a new cluster: the cluster itself
// and this manager's node. It is a no-op when the cluster exists.
func (m *Manager) Bootstrap(ctx context.Context, cluster *shoalv1.Cluster, self *shoalv1.Node) error {
	if err := m.WaitReadyLeader(ctx); err != nil {
		return err
	}
	exists := false
	m.store.View(func(r store.ReadTx) {
		exists = store.Get[*shoalv1.Cluster](r, store.TableCluster, cluster.GetId()) != nil
	})
	if exists {
		return nil
	}
	ingress, err := allocator.IngressNetwork(cluster, store.NewID(), cluster.GetMeta().GetCreatedAt())
	if err != nil {
		return err
	}
	_, err = m.raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{
		{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(cluster)},
		{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(self)},
		{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(ingress)},
	}})
	return err
}

// Close stops the Raft member.
func (m *Manager) Close() error {
	m.fwd.Close()
	return m.raft.Shutdown()
}

// cluster returns the cluster object.
func (m *Manager) cluster() (*shoalv1.Cluster, error) {
	var cs []*shoalv1.Cluster
	m.store.View(func(r store.ReadTx) { cs = store.List[*shoalv1.Cluster](r, store.TableCluster) })
	if len(cs) == 0 {
		return nil, fmt.Errorf("the cluster is not initialized yet: %w", errdefs.ErrUnavailable)
	}
	return cs[0], nil
}

// RootCA is the cluster's certificate authority, key included, as this
// manager's replica of the store holds it.
func (m *Manager) RootCA() (*ca.RootCA, error) {
	c, err := m.cluster()
	if err != nil {
		return nil, err
	}
	return ca.ParseRootCA(c.GetRootCa().GetCertPem(), c.GetRootCa().GetKeyPem())
}

// managerAddrs lists the advertised gRPC addresses of the managers.
func (m *Manager) managerAddrs() []string {
	members := map[string]bool{}
	for _, id := range m.raft.MemberIDs() {
		members[id] = true
	}
	var out []string
	m.store.View(func(r store.ReadTx) {
		for _, n := range store.List[*shoalv1.Node](r, store.TableNode) {
			if members[n.GetId()] && n.GetManagerStatus().GetAddr() != "" {
				out = append(out, n.GetManagerStatus().GetAddr())
			}
		}
	})
	return out
}
