// Package defaults is the one place for the values a node uses when it
// is told nothing else: ports, paths, the heartbeat period, the task
// history kept. The CLI's flags, the daemon's configuration and the
// manager all read them from here. It imports nothing of the product.
package defaults

import "time"

// Ports (DESIGN.md's table).
const (
	APIPort    = "4242" // gRPC: the control API and the dispatcher (managers)
	RaftPort   = "4243" // Raft between managers
	GossipPort = 7946   // memberlist, tcp and udp (all nodes)
	VXLANPort  = 4789   // the overlay's data plane, udp (all nodes)
)

// Paths and addresses of a node.
const (
	DataDir = "/var/lib/shoal"
	CertDir = DataDir + "/certificates"
	Socket  = "/run/shoal/shoal.sock"
	// ExecRoot holds a node's execution state that must not outlive a
	// reboot nor reach a disk: the tmpfs of the tasks' secrets and
	// configs (docker's --exec-root).
	ExecRoot   = "/run/shoal"
	ListenAddr = "0.0.0.0:" + APIPort
)

// HeartbeatPeriod is how often nodes heartbeat to the managers; a node
// is down after three missed periods.
const HeartbeatPeriod = 500 * time.Millisecond

// TaskHistoryLimit is how many finished tasks a slot keeps, as Docker.
const TaskHistoryLimit = 5

// MaxRecvMsgSize is the largest gRPC message a client of the cluster
// takes (gRPC's default is 4 MiB): a node's full assignment set carries
// its tasks' secrets and configs (up to 500 KiB and 1000 KiB each) and
// `config ls` every config's data.
const MaxRecvMsgSize = 64 << 20
