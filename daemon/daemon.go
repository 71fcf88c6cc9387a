// Package daemon is the composition root of `shoal daemon`: it depends on
// everything and wires it. It builds the parts (the runtime and its API,
// the gossip node, the overlay, the worker's session, task agent and
// attachments, the manager when the node's certificate says so), connects
// them, starts them and stops them in order. It serves the local control
// socket, keeps the node's cluster state on disk and acts on membership:
// init, join, leave, promotion, demotion and removal (membership.go).
// Only cmd imports it.
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
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-run/shoal/gossip"
	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/regauth"
	"github.com/shoal-run/shoal/internal/shimbin"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager"
	"github.com/shoal-run/shoal/manager/raftnode"
	"github.com/shoal-run/shoal/manager/store"
	"github.com/shoal-run/shoal/netoverlay"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
	"github.com/shoal-run/shoal/runtime/volume"
	"github.com/shoal-run/shoal/runtimeapi"
	"github.com/shoal-run/shoal/worker"
	"github.com/shoal-run/shoal/worker/session"
)

// Config configures the daemon; the CLI flags map onto it.
type Config struct {
	DataDir string
	// ExecRoot holds the tasks' secrets and configs, each task's on a
	// tmpfs of its own (daemon --exec-root); never under DataDir.
	ExecRoot   string
	Socket     string
	ListenAddr string
	// MetricsAddr serves Prometheus metrics at /metrics (off when empty).
	MetricsAddr   string
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

	// DockerSocket serves the Docker Engine API (root-only, as Socket);
	// "" is DockerSocketFor(Socket), DockerSocketNone none.
	DockerSocket string
	// DockerAddr serves the Docker Engine API over TLS while the node is
	// a manager, to clients with a manager certificate of the cluster
	// (off when empty).
	DockerAddr string
}

// DefaultMaxImageSize is what a MaxImageSize of 0 means.
const DefaultMaxImageSize = image.DefaultMaxImageSize

// Daemon is one node process.
type Daemon struct {
	cfg Config
	log *zap.Logger
	ctx context.Context // the daemon's lifetime

	mu sync.Mutex // serializes membership changes; guards the fields below
	st *state
	id *tlsutil.Identity
	// locked: a manager restarted under autolock, waiting for swarm
	// unlock (locked.go): st and keys (locked) are set, id is nil, and
	// nothing of the cluster runs.
	locked bool
	rt     *container.Runtime // for the data plane restored at unlock
	images *image.Store       // resolves image references for the control API
	vols   *volume.Store      // reported in the node's description

	// keysMu guards keys and every save of the certificate set that
	// holds them; the rewrap loop takes it without d.mu. Lock order:
	// d.mu, then keysMu.
	keysMu sync.Mutex
	keys   *keys.Material // a manager's key material (keys.go); nil on a worker
	mgr    *mgrRun
	// metrics are served by --metrics-addr (metrics.go); metricsMgr is
	// the running manager they read, without d.mu.
	metrics    *daemonMetrics
	metricsMgr atomic.Pointer[manager.Manager]
	agt        *loop // heartbeats
	sess       *loop // the assignment stream
	logSubs    *loop // the log subscriptions stream
	logPub     *worker.LogPublisher

	session *session.Session
	agent   *worker.Agent
	overlay *netoverlay.OnDemand
	att     *worker.Attachments
	gsp     *gossip.Node

	connMu    sync.Mutex
	localConn *grpc.ClientConn
	localAddr string

	// docker is the Docker API's handler (docker.go); nil when off.
	docker *dockerAPI
}

// mgrRun is a running manager and its gRPC server.
type mgrRun struct {
	m      *manager.Manager
	srv    *grpc.Server
	docker *dockerTLS // the Docker API's TLS port
	stop   context.CancelFunc
	done   chan struct{}
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
		c.DataDir = defaults.DataDir
	}
	if c.Socket == "" {
		c.Socket = defaults.Socket
	}
	if c.ExecRoot == "" {
		c.ExecRoot = defaults.ExecRoot
	}
	if c.ListenAddr == "" {
		c.ListenAddr = defaults.ListenAddr
	}
	if c.RaftAddr == "" {
		host, _, _ := net.SplitHostPort(c.ListenAddr)
		c.RaftAddr = net.JoinHostPort(host, defaults.RaftPort)
	}
	if c.GossipAddr == "" {
		host, _, _ := net.SplitHostPort(c.ListenAddr)
		c.GossipAddr = net.JoinHostPort(host, strconv.Itoa(defaults.GossipPort))
	}
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = defaults.HeartbeatPeriod
	}
	if c.DockerSocket == "" {
		c.DockerSocket = DockerSocketFor(c.Socket)
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
	if _, err := netoverlay.DNSUpstreams(cfg.DNSUpstream); err != nil {
		return err
	}
	if cfg.DockerAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.DockerAddr); err != nil {
			return fmt.Errorf("--docker-addr %q: want HOST:PORT, such as 0.0.0.0:2376: %v", cfg.DockerAddr, err)
		}
	}
	clk := clock.Real()
	d := &Daemon{cfg: cfg, log: cfg.Log, ctx: ctx, gsp: gossip.NewNode(cfg.Log, cfg.GossipAddr)}
	d.session = session.New(session.Config{Node: d, Clock: clk, Log: d.log})
	d.overlay = netoverlay.NewOnDemand(netoverlay.OnDemandConfig{Self: d.self, Records: d.gsp, DNSUpstream: cfg.DNSUpstream, Log: d.log.Named("overlay")})
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ln, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	if cfg.DockerSocket != DockerSocketNone || cfg.DockerAddr != "" {
		if d.docker, err = d.newDockerAPI(); err != nil {
			ln.Close()
			return err
		}
	}
	local := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(d.proxy),
		grpc.ChainUnaryInterceptor(errgrpc.UnaryServerInterceptor), grpc.ChainStreamInterceptor(errgrpc.StreamServerInterceptor))
	shoalv1.RegisterSwarmServiceServer(local, &swarmServer{d: d})
	rt, err := openRuntime(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer rt.Images.Close()
	d.metrics = newDaemonMetrics(d, rt.Containers)
	if cfg.MetricsAddr != "" {
		stopMetrics, err := d.metrics.serve(cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopMetrics()
	}
	shoalv1.RegisterRuntimeServiceServer(local, rt)
	workCtx, stopWork := context.WithCancel(ctx)
	exec := &worker.RuntimeExecutor{Runtime: rt.Containers, PullImage: func(ctx context.Context, ref, registryAuth string, progress func(image.Progress)) error {
		if _, err := rt.Images.Get(ref); err == nil {
			return nil
		}
		auth, err := regauth.Authenticator(registryAuth)
		if err != nil {
			return err
		}
		_, err = rt.Images.PullAuth(ctx, ref, auth, progress)
		return err
	}, Net: d.overlay, Image: rt.Images.Get, Clock: clk, ExecRoot: cfg.ExecRoot,
		Hostname: worker.Describe(cfg.Hostname, nil, "").GetHostname(), Metrics: d.metrics.exec}
	d.agent = worker.NewAgent(workCtx, clk, exec, d.session.Report, d.log)
	d.logPub = &worker.LogPublisher{Source: rt.Containers, Clock: clk, Log: d.log.Named("logs"), Ctx: workCtx}
	exec.Files = d.agent.Files()
	// The secrets and configs of tasks whose container is gone (removed,
	// or it exited while the daemon was down) leave the node now; a
	// running one keeps its files for a restart in place.
	running := map[string]bool{}
	for task, c := range exec.Containers() {
		running[task] = c.Running
	}
	if gone := exec.PruneFiles(running); len(gone) > 0 {
		d.log.Info("removed the secrets and configs of tasks no longer here", zap.Strings("tasks", gone))
	}
	rt.Health = d.agent.ContainerHealth
	d.agent.OnHealth = func(id, state string) {
		if st, err := rt.Containers.Get(id); err == nil {
			rt.Events.Health(st, state, clk.Now())
		}
	}
	d.att = worker.NewAttachments(ctx, worker.AttachmentsConfig{Containers: rt.Containers, Net: d.overlay,
		Dispatch: d.session.Dispatch, NewID: store.NewID, Log: d.log})
	rt.Net = lockGuard{Networks: d.att, d: d}
	d.rt = rt.Containers
	d.images = rt.Images
	d.vols = rt.Volumes
	sendDone := make(chan struct{})
	go func() { d.session.SendReports(workCtx); close(sendDone) }()
	defer func() {
		stopWork()
		<-sendDone
		// The agent's runners end with workCtx; containers keep running.
		d.agent.Wait()
		d.overlay.Close()
	}()

	st, err := d.loadState()
	if err != nil {
		ln.Close()
		return err
	}
	if st != nil {
		locked, err := d.resume(st)
		if err != nil {
			ln.Close()
			return fmt.Errorf("rejoin cluster %s: %w", st.ClusterID, err)
		}
		if !locked {
			d.restoreDataPlane(st, rt.Containers)
		}
	} else if cfg.ForceNewCluster {
		ln.Close()
		return fmt.Errorf("--force-new-cluster: %s holds no cluster state", cfg.DataDir)
	}
	d.log.Info("daemon started", zap.String("socket", cfg.Socket), zap.String("data_dir", cfg.DataDir))
	errc := make(chan error, 1)
	go func() { errc <- local.Serve(ln) }()
	if d.docker != nil && cfg.DockerSocket != DockerSocketNone {
		stopDocker, err := d.serveDockerSocket(d.docker)
		if err != nil {
			d.log.Error("docker api", zap.Error(err))
		} else {
			defer stopDocker()
		}
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	local.Stop()
	d.stopAgent()
	d.mu.Lock()
	d.stopManager()
	d.mu.Unlock()
	d.gsp.Stop(false)
	d.closeLocalConn()
	d.session.CloseConns()
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
	vols, err := volume.Open(filepath.Join(cfg.DataDir, "runtime", "volumes"))
	if err != nil {
		images.Close()
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	events := runtimeapi.NewEvents(nil, worker.LabelTaskRecord)
	rt, err := container.Open(container.Options{
		Root: filepath.Join(cfg.DataDir, "runtime", "containers"), CgroupParent: cfg.CgroupParent,
		ShimBinary: cfg.ShimBinary, Images: runtimeapi.ImageSource{Store: images}, Volumes: vols, Log: cfg.Log,
		Events: events.Container,
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
	return &runtimeapi.Server{Images: images, Containers: rt, Volumes: vols, Events: events}, nil
}

// restoreDataPlane brings back the data plane of a node restarted in a
// cluster from what it saved and from its containers' labels, without
// waiting for a manager (there may be none answering): gossip with the
// last keys and peers, the routing mesh with the last ingress attachment,
// and every running container plugged in and announced again.
func (d *Daemon) restoreDataPlane(st *state, rt *container.Runtime) {
	if len(st.GossipKeys) > 0 {
		d.syncGossip(&shoalv1.HeartbeatResponse{GossipKeys: st.GossipKeys, GossipPeers: st.GossipPeers})
	}
	if in := st.ingress(); in != nil {
		d.overlay.SetIngress(in)
	}
	worker.RestoreNetworks(rt.List(), d.overlay, d.att, d.log)
	// Its running task containers are watched and restarted in place
	// from now, whether a manager answers or not.
	d.agent.Resume(worker.Records(rt.List()))
}

// resume brings back a node that was in a cluster when it stopped. A
// manager whose keys are autolocked is left locked (locked.go): nothing
// starts until swarm unlock.
func (d *Daemon) resume(st *state) (locked bool, err error) {
	id, mat, err := d.certs().LoadSet("")
	if errors.Is(err, keys.ErrLocked) {
		d.lock(st, mat)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("load certificates: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return false, d.start(st, id, mat)
}

// start runs a node of a cluster from its state and certificate set: the
// manager when the certificate says so, and the agent. Callers hold d.mu.
func (d *Daemon) start(st *state, id *tlsutil.Identity, mat *keys.Material) error {
	d.st, d.id = st, id
	d.setKeys(mat)
	if id.Role() == tlsutil.RoleManager {
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
	dek, err := d.managerDEK()
	if err != nil {
		return err
	}
	m, err := manager.New(manager.Config{
		NodeID: d.st.NodeID, ClusterID: d.st.ClusterID, Addr: d.st.Addr,
		RaftBind: d.raftBind(), RaftAdvertise: d.st.RaftAddr, Dir: d.raftDir(),
		Identity: d.id, DEK: dek, Log: d.log, Timing: raftnode.TimingFor(d.cfg.RaftHeartbeat),
		SnapshotThreshold: d.cfg.SnapshotThreshold, SnapshotInterval: d.cfg.SnapshotInterval, TrailingLogs: d.cfg.TrailingLogs,
		Bootstrap: bootstrap, ForceNewCluster: forceNew, HeartbeatPeriod: d.cfg.HeartbeatPeriod,
		Gossip: d.gsp, Keys: &managerKeys{d: d, id: d.id}, NewUnlockKey: keys.NewUnlockKey,
		ResolveDigest: imageResolver{d.images}.Resolve,
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
		grpc.ChainUnaryInterceptor(d.metrics.api.Unary, errgrpc.UnaryServerInterceptor, m.Interceptor),
		grpc.ChainStreamInterceptor(d.metrics.api.Stream, errgrpc.StreamServerInterceptor, m.StreamInterceptor),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(manager.KeepaliveEnforcement),
	)
	m.Register(srv)
	ctx, cancel := context.WithCancel(d.ctx)
	run := &mgrRun{m: m, srv: srv, stop: cancel, done: make(chan struct{})}
	if run.docker, err = d.startDockerTLS(m, d.id); err != nil {
		d.log.Error("docker api", zap.Error(err))
	}
	go func() {
		defer close(run.done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
		m.Run(ctx)
		wg.Wait()
	}()
	d.mgr = run
	d.metricsMgr.Store(m)
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
	d.metricsMgr.Store(nil)
	run.docker.stop()
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
	st, id, isMgr, locked := d.st, d.id, d.mgr != nil, d.locked
	d.mu.Unlock()
	if locked {
		return nil, keys.ErrLocked
	}
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
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(id.ClientConfig())),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.MaxRecvMsgSize)))
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
