// Package timing holds the manager's latency and event instruments that
// its loops observe as they run: Raft commits and applies, orchestrator
// and scheduler passes, dispatcher sessions and nodes marked down. They
// are process-wide; the daemon registers them with its registry
// (Register). It imports nothing of the manager, so any part may use it.
package timing

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var buckets = prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms to about 16 s

var (
	// RaftCommit is a proposal's time from Apply to committed and
	// applied on the leader.
	RaftCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_manager_raft_commit_duration_seconds",
		Help: "Time from proposing a store batch to its commit and apply on the leader.", Buckets: buckets})
	// RaftApply is one log entry's apply to the store, on every manager.
	RaftApply = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_manager_raft_apply_duration_seconds",
		Help: "Time to apply one Raft log entry to the store.", Buckets: buckets})
	// OrchestratorPass is one orchestration pass: read, reconcile,
	// schedule, allocate, write.
	OrchestratorPass = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_manager_orchestrator_pass_duration_seconds",
		Help: "Time of one orchestration pass, its write included.", Buckets: buckets})
	// SchedulerPass is one placement of pending tasks on nodes.
	SchedulerPass = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_manager_scheduler_pass_duration_seconds",
		Help: "Time to place one pass's pending tasks on nodes.", Buckets: buckets})
	// Sessions counts the nodes' open assignment streams.
	Sessions = prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_manager_dispatcher_sessions",
		Help: "Nodes' assignment streams open on this manager."})
	// NodesDown counts nodes marked down, by reason: heartbeat (missed
	// heartbeats) or gossip.
	NodesDown = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_manager_nodes_marked_down_total",
		Help: "Nodes this manager marked down, by reason: heartbeat (missed heartbeats) or gossip (seen failed, one period missed)."}, []string{"reason"})
)

var once sync.Once

// Register registers the instruments with reg (once per process).
func Register(reg prometheus.Registerer) {
	once.Do(func() {
		NodesDown.WithLabelValues("heartbeat")
		NodesDown.WithLabelValues("gossip")
		reg.MustRegister(RaftCommit, RaftApply, OrchestratorPass, SchedulerPass, Sessions, NodesDown)
	})
}
