package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
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

// ExecutorMetrics count what the node's executor does: image pulls and
// their bytes, container starts and their latency, OOM kills.
type ExecutorMetrics struct {
	pulls        *prometheus.CounterVec
	pullBytes    prometheus.Counter
	starts       *prometheus.CounterVec
	startSeconds prometheus.Histogram
	oomKills     prometheus.Counter
}

// taskRestarts counts restarts in place (worker/runner.go), process-wide:
// NewExecutorMetrics registers it.
var taskRestarts = prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_node_task_restarts_total",
	Help: "Tasks this node restarted in place under their restart policy."})

// healthChecks counts health probes by result (pass, fail, error: the
// probe could not run), process-wide as taskRestarts.
var healthChecks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_node_health_checks_total",
	Help: "Health probes of task containers, by result: pass, fail, error (the probe could not run or timed out)."}, []string{"result"})

func countProbe(code int, err error) {
	switch {
	case err != nil:
		healthChecks.WithLabelValues("error").Inc()
	case code == 0:
		healthChecks.WithLabelValues("pass").Inc()
	default:
		healthChecks.WithLabelValues("fail").Inc()
	}
}

// NewExecutorMetrics registers the executor's metrics with reg.
func NewExecutorMetrics(reg prometheus.Registerer) *ExecutorMetrics {
	m := &ExecutorMetrics{
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_node_image_pulls_total",
			Help: "Image pulls for tasks that fetched from a registry, by result (ok, error)."}, []string{"result"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_node_image_pull_bytes_total",
			Help: "Compressed layer bytes fetched from registries for tasks."}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_node_container_starts_total",
			Help: "Task containers created and started, restarts in place included, by result (ok, error)."}, []string{"result"}),
		startSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_node_container_start_duration_seconds",
			Help: "Time to create and start a task's container (the image already here).", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		oomKills: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_node_container_oom_kills_total",
			Help: "Task containers the kernel killed for running out of memory."}),
	}
	for _, r := range []string{"ok", "error"} {
		m.pulls.WithLabelValues(r)
		m.starts.WithLabelValues(r)
	}
	for _, r := range []string{"pass", "fail", "error"} {
		healthChecks.WithLabelValues(r)
	}
	reg.MustRegister(m.pulls, m.pullBytes, m.starts, m.startSeconds, m.oomKills, taskRestarts, healthChecks)
	return m
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (m *ExecutorMetrics) pulled(p *PullProgress, err error) {
	if m == nil || (err == nil && len(p.layers) == 0) {
		return // the image was here: no pull
	}
	m.pulls.WithLabelValues(result(err)).Inc()
	for _, l := range p.layers {
		if l.Status == image.StatusDone {
			m.pullBytes.Add(float64(l.Total))
		}
	}
}

func (m *ExecutorMetrics) started(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.starts.WithLabelValues(result(err)).Inc()
	if err == nil {
		m.startSeconds.Observe(d.Seconds())
	}
}

func (m *ExecutorMetrics) exited(oom bool) {
	if m != nil && oom {
		m.oomKills.Inc()
	}
}
