package cli

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-run/shoal/daemon"
	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/logging"
)

type daemonFlags struct {
	dataDir, execRoot, socket, listen, raftAddr, advertise, logLevel string
	forceNewCluster                                                  bool
	snapshotThreshold, trailingLogs                                  uint64
	snapshotInterval, heartbeatPeriod, raftHeartbeat                 time.Duration
	insecureRegistries                                               []string
	maxImageSize                                                     string
	cgroupParent, shimBinary, gossipAddr, hostname                   string
	dnsUpstream                                                      []string
	labels                                                           []string
	debugAddr                                                        string
	metricsAddr, dockerSocket, dockerAddr                            string
}

func newDaemonCmd(g *globals) *cobra.Command {
	f := &daemonFlags{}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the Shoal node daemon",
		Long: "Run the node process. It is unclustered until `shoal swarm init` or `shoal swarm join`;\n" +
			"a node that was in a cluster rejoins it when the daemon starts again.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(f.logLevel)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			labels, err := applyKV(nil, f.labels, nil, "--label")
			if err != nil {
				return err
			}
			maxImageSize, err := parseBytes(f.maxImageSize)
			if err != nil {
				return fmt.Errorf("--max-image-size: %v", err)
			}
			if maxImageSize == 0 {
				maxImageSize = -1 // no limit
			}
			if f.debugAddr != "" {
				stop, err := serveDebug(f.debugAddr)
				if err != nil {
					return err
				}
				defer stop()
			}
			return daemon.Run(cmd.Context(), daemon.Config{
				DataDir: f.dataDir, ExecRoot: f.execRoot, Socket: f.socket, ListenAddr: f.listen, MetricsAddr: f.metricsAddr, RaftAddr: f.raftAddr, AdvertiseAddr: f.advertise,
				GossipAddr: f.gossipAddr, EngineLabels: labels, Hostname: f.hostname, DNSUpstream: f.dnsUpstream,
				Log: log, ForceNewCluster: f.forceNewCluster, SnapshotThreshold: f.snapshotThreshold,
				SnapshotInterval: f.snapshotInterval, TrailingLogs: f.trailingLogs, RaftHeartbeat: f.raftHeartbeat, HeartbeatPeriod: f.heartbeatPeriod,
				InsecureRegistries: f.insecureRegistries, MaxImageSize: maxImageSize, CgroupParent: f.cgroupParent, ShimBinary: f.shimBinary,
				DockerSocket: f.dockerSocket, DockerAddr: f.dockerAddr,
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", defaults.DataDir, "where the node keeps its state")
	fl.StringVar(&f.execRoot, "exec-root", defaults.ExecRoot, "root directory for execution state files: the tmpfs holding the tasks' secrets and configs")
	fl.StringVar(&f.socket, "socket", DefaultSocket, "local control socket (mode 0600)")
	fl.StringVar(&f.dockerSocket, "docker-socket", "", "serve the Docker Engine API on this socket, mode 0600 (default: docker.sock beside --socket, /run/shoal/docker.sock; none for off)")
	fl.StringVar(&f.dockerAddr, "docker-addr", "", "serve the Docker Engine API over TLS on HOST:PORT while this node is a manager, e.g. 0.0.0.0:2376; clients need a manager certificate of the cluster (off by default)")
	fl.StringVar(&f.listen, "listen-addr", defaults.ListenAddr, "gRPC listen address (managers)")
	fl.StringVar(&f.raftAddr, "raft-addr", "", "Raft listen address (default port 4243 on the listen host)")
	fl.StringVar(&f.gossipAddr, "gossip-addr", "", "gossip listen address, tcp and udp (default port 7946 on the listen host); off detects failures by heartbeats alone")
	fl.StringArrayVar(&f.labels, "label", nil, "engine label KEY=VALUE of this node, for constraints like engine.labels.KEY==VALUE (repeatable)")
	fl.StringArrayVar(&f.dnsUpstream, "dns-upstream", nil, "resolver (IP) the containers' DNS forwards names outside the cluster to (repeatable; default: the nameservers of /etc/resolv.conf; none forwards nothing)")
	fl.StringVar(&f.hostname, "hostname", "", "the node's hostname in node ls and for constraints (default: the machine's)")
	fl.StringVar(&f.advertise, "advertise-addr", "", "address other nodes use to reach this one (default: the listen address when it is not 0.0.0.0)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&f.forceNewCluster, "force-new-cluster", false, "restart this manager as a new one-manager cluster keeping all state (disaster recovery)")
	fl.Uint64Var(&f.snapshotThreshold, "raft-snapshot-threshold", 8192, "raft log entries between snapshots")
	fl.DurationVar(&f.snapshotInterval, "raft-snapshot-interval", 2*time.Minute, "how often to check whether a snapshot is due")
	fl.Uint64Var(&f.trailingLogs, "raft-trailing-logs", 10240, "raft log entries kept after a snapshot")
	fl.DurationVar(&f.raftHeartbeat, "raft-heartbeat-timeout", 0, "raft heartbeat and election timeout (default 400ms)")
	fl.DurationVar(&f.heartbeatPeriod, "heartbeat-period", 500*time.Millisecond, "how often nodes report to the managers (managers only)")
	fl.StringArrayVar(&f.insecureRegistries, "insecure-registry", nil, "registry (HOST[:PORT]) to reach over plain HTTP; loopback registries always may")
	fl.StringVar(&f.maxImageSize, "max-image-size", fmt.Sprintf("%dg", daemon.DefaultMaxImageSize>>30), "most bytes one image pull or load may unpack into new layers (e.g. 512m, 64g), so a decompression bomb cannot fill the disk; 0 for no limit")
	fl.StringVar(&f.cgroupParent, "cgroup-parent", "shoal", "cgroup under which containers' groups are made")
	fl.StringVar(&f.shimBinary, "shim-binary", "", "program run as each container's shim and init (default: this binary)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics on this address, e.g. 127.0.0.1:9323 (off by default; no authentication)")
	fl.StringVar(&f.debugAddr, "debug-addr", "", "serve Go's runtime profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; no authentication, keep it on loopback")
	return cmd
}

// serveDebug serves net/http/pprof's handlers on addr.
func serveDebug(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { srv.Close() }, nil
}

func version() string { return daemon.Version }
