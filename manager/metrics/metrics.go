// Package metrics is a manager's Prometheus collector: Raft's state and
// indexes, and the store's objects, tasks and nodes, read at each scrape
// (nothing is kept between scrapes, so the figures are the store's).
package metrics

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Raft is what the collector reads of the manager's Raft node.
type Raft interface {
	// Stats is hashicorp/raft's Stats(): state, term, commit_index, ...
	Stats() map[string]string
	// DiskSizes are the Raft log file's bytes and the latest snapshot's.
	DiskSizes() (logBytes, snapshotBytes int64)
}

// Collector describes one manager.
type Collector struct {
	Store *store.Store
	Raft  Raft
}

var (
	raftState = prometheus.NewDesc("shoal_manager_raft_state", "The manager's Raft state: 1 for the one it is in (leader, follower, candidate, shutdown).", []string{"state"}, nil)
	raftIndex = map[string]*prometheus.Desc{
		"term":                prometheus.NewDesc("shoal_manager_raft_term", "The Raft term this manager is in.", nil, nil),
		"commit_index":        prometheus.NewDesc("shoal_manager_raft_commit_index", "The index of the last Raft entry known committed.", nil, nil),
		"applied_index":       prometheus.NewDesc("shoal_manager_raft_applied_index", "The index of the last Raft entry applied to the store.", nil, nil),
		"last_log_index":      prometheus.NewDesc("shoal_manager_raft_last_log_index", "The index of the last entry in this manager's Raft log.", nil, nil),
		"last_snapshot_index": prometheus.NewDesc("shoal_manager_raft_last_snapshot_index", "The index the last Raft snapshot covers.", nil, nil),
		"num_peers":           prometheus.NewDesc("shoal_manager_raft_peers", "Other voting members this manager knows.", nil, nil),
	}
	logBytes      = prometheus.NewDesc("shoal_manager_raft_log_bytes", "Size of this manager's Raft log file on disk.", nil, nil)
	snapshotBytes = prometheus.NewDesc("shoal_manager_raft_snapshot_bytes", "Size of this manager's latest Raft snapshot on disk (0: none yet).", nil, nil)
	objects       = prometheus.NewDesc("shoal_manager_store_objects", "Objects in the replicated store, by type.", []string{"type"}, nil)
	tasks         = prometheus.NewDesc("shoal_manager_tasks", "Tasks in the store, by current state and desired state.", []string{"state", "desired_state"}, nil)
	nodes         = prometheus.NewDesc("shoal_manager_nodes", "Nodes of the cluster, by state, availability and role.", []string{"state", "availability", "role"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- raftState
	for _, d := range raftIndex {
		ch <- d
	}
	ch <- logBytes
	ch <- snapshotBytes
	ch <- objects
	ch <- tasks
	ch <- nodes
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	stats := c.Raft.Stats()
	lb, sb := c.Raft.DiskSizes()
	ch <- prometheus.MustNewConstMetric(logBytes, prometheus.GaugeValue, float64(lb))
	ch <- prometheus.MustNewConstMetric(snapshotBytes, prometheus.GaugeValue, float64(sb))
	cur := strings.ToLower(stats["state"])
	for _, s := range []string{"leader", "follower", "candidate", "shutdown"} {
		v := 0.0
		if s == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(raftState, prometheus.GaugeValue, v, s)
	}
	for k, d := range raftIndex {
		if n, err := strconv.ParseUint(stats[k], 10, 64); err == nil {
			kind := prometheus.GaugeValue
			ch <- prometheus.MustNewConstMetric(d, kind, float64(n))
		}
	}
	counts := map[string]int{}
	taskCounts := map[[2]string]int{}
	nodeCounts := map[[3]string]int{}
	c.Store.View(func(r store.ReadTx) {
		for _, t := range []string{store.TableService, store.TableNetwork, store.TableSecret, store.TableConfig, store.TableCluster} {
			counts[t] = len(store.List[store.Object](r, t))
		}
		ts := store.List[*shoalv1.Task](r, store.TableTask)
		counts[store.TableTask] = len(ts)
		for _, t := range ts {
			taskCounts[[2]string{stateWord(t.GetStatus().GetState()), stateWord(t.GetDesiredState())}]++
		}
		ns := store.List[*shoalv1.Node](r, store.TableNode)
		counts[store.TableNode] = len(ns)
		for _, n := range ns {
			role := "worker"
			if n.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER {
				role = "manager"
			}
			nodeCounts[[3]string{
				strings.ToLower(strings.TrimPrefix(n.GetStatus().GetState().String(), "NODE_STATE_")),
				strings.ToLower(strings.TrimPrefix(n.GetSpec().GetAvailability().String(), "NODE_AVAILABILITY_")),
				role,
			}]++
		}
	})
	for t, n := range counts {
		ch <- prometheus.MustNewConstMetric(objects, prometheus.GaugeValue, float64(n), t)
	}
	for k, n := range taskCounts {
		ch <- prometheus.MustNewConstMetric(tasks, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	for k, n := range nodeCounts {
		ch <- prometheus.MustNewConstMetric(nodes, prometheus.GaugeValue, float64(n), k[0], k[1], k[2])
	}
}

// stateWord is a task state as docker writes it: running, shutdown, ...
func stateWord(s shoalv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}
