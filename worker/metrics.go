package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-run/shoal/runtime/container"
)

// NodeCollector is a node's Prometheus collector: its containers by
// state, and each running task's CPU time and memory from its cgroup,
// labelled with its service, task and node, as cAdvisor's container
// metrics are. Read at each scrape.
type NodeCollector struct {
	Runtime *container.Runtime
	// NodeID is the node's ID in its cluster ("" before it joins).
	NodeID func() string
}

var (
	containersDesc = prometheus.NewDesc("shoal_node_containers", "Containers on this node, by state (created, running, exited).", []string{"state"}, nil)
	taskCPUDesc    = prometheus.NewDesc("shoal_task_cpu_usage_seconds_total", "CPU time a running task's container has used (its cgroup's).", []string{"service", "task", "node"}, nil)
	taskMemDesc    = prometheus.NewDesc("shoal_task_memory_usage_bytes", "Memory a running task's container uses now, page cache included (its cgroup's).", []string{"service", "task", "node"}, nil)
)

// Describe implements prometheus.Collector.
func (c *NodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- containersDesc
	ch <- taskCPUDesc
	ch <- taskMemDesc
}

// Collect implements prometheus.Collector.
func (c *NodeCollector) Collect(ch chan<- prometheus.Metric) {
	node := c.NodeID()
	byState := map[container.Status]int{container.Created: 0, container.Running: 0, container.Exited: 0}
	for _, st := range c.Runtime.List() {
		byState[st.Status]++
		task := st.Labels[LabelTask]
		if task == "" || st.Status != container.Running {
			continue
		}
		u, ok := c.Runtime.Usage(st.ID)
		if !ok {
			continue
		}
		svc := st.Labels[LabelServiceName]
		ch <- prometheus.MustNewConstMetric(taskCPUDesc, prometheus.CounterValue, float64(u.CPUNanos)/1e9, svc, task, node)
		ch <- prometheus.MustNewConstMetric(taskMemDesc, prometheus.GaugeValue, float64(u.MemoryBytes), svc, task, node)
	}
	for s, n := range byState {
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(n), string(s))
	}
}
