// Package daemon is the composition root of `shoal daemon`: it depends on
// everything and wires it. It serves the local control socket, keeps the
// node's cluster state on disk, joins and leaves clusters, runs the
// manager when the node's certificate says so, and keeps every node in
// touch with the managers (agent.go). Only cmd imports it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/gossip"
	"github.com/shoal-run/shoal/internal/runtimeapi"
	"github.com/shoal-run/shoal/internal/shimbin"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager"
	"github.com/shoal-run/shoal/manager/raftnode"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
)

// Config configures the daemon; the CLI flags map onto it.
type Config struct {
	DataDir       string
	Socket        string
	ListenAddr    string
	RaftAddr      string // bind address for Raft; port 4243 on the listen host by default
	AdvertiseAddr string
	// GossipAddr is the host:port gossip listens on; port 7946 on the
	// listen host by default.
	GossipAddr string
	// EngineLabels are this node's engine labels (daemon --label).
	EngineLabels map[string]string
	// DNSUpstream are the resolvers (IPs) names outside the cluster are
	// forwarded to; empty means the nameservers of /etc/resolv.conf,
	// ["none"] none.
	DNSUpstream []string
	// Hostname replaces the machine's hostname in the node description
	// (daemon --hostname), for hosts whose own name says nothing.
	Hostname string
	Log      *zap.Logger

	ForceNewCluster   bool
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// RaftHeartbeat is Raft's heartbeat timeout (daemon
	// --raft-heartbeat); 0 is raftnode.DefaultTiming.
	RaftHeartbeat   time.Duration
	HeartbeatPeriod time.Duration

	InsecureRegistries []string
	CgroupParent       string
	// RemoveCgroupParent removes CgroupParent when Run returns: shoal
	// dev's throw-away parent.
	RemoveCgroupParent bool
	ShimBinary         string

	// MaxImageSize bounds what one image pull or load unpacks (daemon
	// --max-image-size); 0 is image.DefaultMaxImageSize, < 0 no limit.
	MaxImageSize int64
}

// DefaultMaxImageSize is what a MaxImageSize of 0 means.
const DefaultMaxImageSize = image.DefaultMaxImageSize

// Daemon is one node process.
type Daemon struct {
	cfg Config
	log *zap.Logger
	ctx context.Context // the daemon's lifetime

	mu  sync.Mutex // serializes membership changes; guards the fields below
	st  *state
	id  *tlsutil.Identity
	mgr *mgrRun
	agt *loop

	work *tasks
	att  *attachments
	sess *loop
	gsp  *gossipNode

	connMu     sync.Mutex
	localConn  *grpc.ClientConn
	localAddr  string
	agentConns map[string]*grpc.ClientConn
}

// mgrRun is a running manager and its gRPC server.
type mgrRun struct {
	m    *manager.Manager
	srv  *grpc.Server
	stop context.CancelFunc
	done chan struct{}
}

// loop is a running goroutine with a way to stop it and wait for it.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startLoop(ctx context.Context, fn func(context.Context)) *loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &loop{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(l.done); fn(ctx) }()
	return l
}

func (l *loop) stop() {
	if l != nil {
		l.cancel()
		<-l.done
	}
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "/var/lib/shoal"
	}
	if c.Socket == "" {
		c.Socket = "/run/shoal/shoal.sock"
	}
	if c.ListenAddr == "" {
		c.ListenAddr = "0.0.0.0:4242"
	}
	if c.RaftAddr == "" {
		host, _, _ := net.SplitHostPort(c.ListenAddr)
		c.RaftAddr = net.JoinHostPort(host, "4243")
	}
	if c.GossipAddr == "" {
		host, _, _ := net.SplitHostPort(c.ListenAddr)
		c.GossipAddr = net.JoinHostPort(host, strconv.Itoa(gossip.DefaultPort))
	}
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = 500 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Run serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.RemoveCgroupParent {
		defer cgroup.RemoveParent(cfg.CgroupParent)
	}
	d := &Daemon{cfg: cfg, log: cfg.Log, ctx: ctx, gsp: newGossipNode(cfg.Log, cfg.GossipAddr)}
	if _, err := dnsUpstream(cfg.DNSUpstream); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ln, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	local := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(d.proxy),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			return resp, errdefs.ToGRPC(err)
		}))
	shoalv1.RegisterSwarmServiceServer(local, &swarmServer{d: d})
	rt, err := openRuntime(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer rt.Images.Close()
	shoalv1.RegisterRuntimeServiceServer(local, rt)
	workCtx, stopWork := context.WithCancel(ctx)
	d.work = newTasks(workCtx, d, rt)
	d.att = newAttachments(d, rt.Containers)
	rt.Net = d.att
	sendDone := make(chan struct{})
	go func() { d.work.sendLoop(workCtx); close(sendDone) }()
	defer func() {
		stopWork()
		<-sendDone
		// The agent's runners end with workCtx; containers keep running.
		d.work.agent.Wait()
		d.work.overlay.close()
	}()

	st, err := d.loadState()
	if err != nil {
		ln.Close()
		return err
	}
	if st != nil {
		if err := d.resume(st); err != nil {
			ln.Close()
			return fmt.Errorf("rejoin cluster %s: %w", st.ClusterID, err)
		}
		d.restoreDataPlane(st, rt.Containers)
	} else if cfg.ForceNewCluster {
		ln.Close()
		return fmt.Errorf("--force-new-cluster: %s holds no cluster state", cfg.DataDir)
	}
	d.log.Info("daemon started", zap.String("socket", cfg.Socket), zap.String("data_dir", cfg.DataDir))
	errc := make(chan error, 1)
	go func() { errc <- local.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	local.Stop()
	d.stopAgent()
	d.mu.Lock()
	d.stopManager()
	d.mu.Unlock()
	d.gsp.stop(false)
	d.closeLocalConn()
	d.closeAgentConns()
	os.Remove(cfg.Socket)
	d.log.Info("daemon stopped")
	return err
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another daemon already serves %s; stop it or pass --socket", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// openRuntime opens the node's image store and container runtime; running
// containers are re-adopted.
func openRuntime(cfg Config) (*runtimeapi.Server, error) {
	if cfg.ShimBinary == "" {
		path, err := shimbin.Install(filepath.Join(cfg.DataDir, "runtime", "bin"))
		if err != nil {
			return nil, err
		}
		cfg.ShimBinary = path // "" means this binary
	}
	images, err := image.Open(image.Options{
		Root: filepath.Join(cfg.DataDir, "runtime", "images"), InsecureRegistries: cfg.InsecureRegistries, MaxImageSize: cfg.MaxImageSize,
	})
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	rt, err := container.Open(container.Options{
		Root: filepath.Join(cfg.DataDir, "runtime", "containers"), CgroupParent: cfg.CgroupParent,
		ShimBinary: cfg.ShimBinary, Images: runtimeapi.ImageSource{Store: images}, Log: cfg.Log,
	})
	if err != nil {
		images.Close()
		return nil, fmt.Errorf("open container runtime: %w", err)
	}
	// Leases of containers that are gone (removed while the daemon was
	// down, or never finished creating) must not pin images forever.
	live := map[string]bool{}
	for _, c := range rt.List() {
		live[c.ID] = true
		if err := images.Lease(c.ID, c.ImageID); err != nil {
			cfg.Log.Warn("container's image is missing from the store", zap.String("container", c.ID), zap.Error(err))
		}
	}
	for owner := range images.Leases() {
		if !live[owner] {
			_ = images.Release(owner)
		}
	}
	return &runtimeapi.Server{Images: images, Containers: rt}, nil
}

// resume brings back a node that was in a cluster when it stopped.
func (d *Daemon) resume(st *state) error {
	id, err := d.certs().Load()
	if err != nil {
		return fmt.Errorf("load certificates: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st, d.id = st, id
	if id.Role() == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		if err := d.startManager(false, d.cfg.ForceNewCluster); err != nil {
			return err
		}
	}
	d.startAgent()
	return nil
}

func (d *Daemon) raftBind() string {
	return d.cfg.RaftAddr
}

// startManager starts Raft, the manager's loops and its gRPC server.
// Callers hold d.mu.
func (d *Daemon) startManager(bootstrap, forceNew bool) error {
	if d.mgr != nil {
		return nil
	}
	m, err := manager.New(manager.Config{
		NodeID: d.st.NodeID, ClusterID: d.st.ClusterID, Addr: d.st.Addr,
		RaftBind: d.raftBind(), RaftAdvertise: d.st.RaftAddr, Dir: d.raftDir(),
		Identity: d.id, Log: d.log, Timing: raftnode.TimingFor(d.cfg.RaftHeartbeat),
		SnapshotThreshold: d.cfg.SnapshotThreshold, SnapshotInterval: d.cfg.SnapshotInterval, TrailingLogs: d.cfg.TrailingLogs,
		Bootstrap: bootstrap, ForceNewCluster: forceNew, HeartbeatPeriod: d.cfg.HeartbeatPeriod,
		Gossip: d.gsp,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", d.cfg.ListenAddr)
	if err != nil {
		m.Close()
		return fmt.Errorf("listen on %s: %w", d.cfg.ListenAddr, err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(d.id.ServerConfig())),
		grpc.UnaryInterceptor(m.Interceptor),
		grpc.StreamInterceptor(m.StreamInterceptor),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(manager.KeepaliveEnforcement),
	)
	m.Register(srv)
	ctx, cancel := context.WithCancel(d.ctx)
	run := &mgrRun{m: m, srv: srv, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
		m.Run(ctx)
		wg.Wait()
	}()
	d.mgr = run
	d.log.Info("manager started", zap.String("addr", d.st.Addr), zap.String("raft_addr", d.st.RaftAddr))
	return nil
}

// stopManager stops the manager. Callers hold d.mu.
func (d *Daemon) stopManager() {
	run := d.mgr
	if run == nil {
		return
	}
	d.mgr = nil
	stopped := make(chan struct{})
	go func() { run.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		run.srv.Stop()
	}
	run.stop()
	<-run.done
	if err := run.m.Close(); err != nil {
		d.log.Warn("raft shutdown", zap.Error(err))
	}
	d.closeLocalConn()
}

// managerConn dials this node's own manager API with its certificate.
func (d *Daemon) managerConn() (*grpc.ClientConn, error) {
	d.mu.Lock()
	st, id, isMgr := d.st, d.id, d.mgr != nil
	d.mu.Unlock()
	if st == nil {
		return nil, fmt.Errorf("this node is not part of a swarm; run `shoal swarm init` or `shoal swarm join`: %w", errdefs.ErrFailedPrecond)
	}
	if !isMgr {
		return nil, fmt.Errorf("this node is not a swarm manager; worker nodes cannot view or change cluster state: run the command on a manager, or promote this node: %w", errdefs.ErrFailedPrecond)
	}
	return d.dialLocal(st.Addr, id)
}

func (d *Daemon) dialLocal(addr string, id *tlsutil.Identity) (*grpc.ClientConn, error) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.localConn != nil && d.localAddr == addr {
		return d.localConn, nil
	}
	if d.localConn != nil {
		d.localConn.Close()
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(id.ClientConfig())))
	if err != nil {
		return nil, err
	}
	d.localConn, d.localAddr = c, addr
	return c, nil
}

func (d *Daemon) closeLocalConn() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.localConn != nil {
		d.localConn.Close()
		d.localConn = nil
	}
}

var errInSwarm = fmt.Errorf("this node is already part of a swarm; leave it first with `shoal swarm leave`: %w", errdefs.ErrFailedPrecond)

// errNotInSwarm is returned by calls that need cluster membership.
var errNotInSwarm = errors.New("this node is not part of a swarm")
