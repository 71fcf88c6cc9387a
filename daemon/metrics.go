package daemon

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-run/shoal/internal/grpcmetrics"
	"github.com/shoal-run/shoal/manager/metrics"
	"github.com/shoal-run/shoal/manager/metrics/timing"
	"github.com/shoal-run/shoal/netoverlay"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/worker"
)

// daemonMetrics are what `--metrics-addr` serves: the process and Go
// runtime, the node's containers and tasks, the manager's Raft and store
// while this node is one, and the manager API's calls.
type daemonMetrics struct {
	reg  *prometheus.Registry
	api  *grpcmetrics.Server
	exec *worker.ExecutorMetrics
}

func newDaemonMetrics(d *Daemon, rt *container.Runtime) *daemonMetrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector(),
		&worker.NodeCollector{Runtime: rt, NodeID: func() string { id, _, _ := d.self(); return id }}, managerCollector{d})
	timing.Register(reg)
	reg.MustRegister(netoverlay.DNSQueries, d.overlay)
	return &daemonMetrics{reg: reg, api: grpcmetrics.New(reg, "shoal_manager_api", "manager's API (control, dispatcher, CA, Raft)"),
		exec: worker.NewExecutorMetrics(reg)}
}

// serve serves /metrics on addr until stop.
func (m *daemonMetrics) serve(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { srv.Close() }, nil
}

// managerCollector is the manager's collector while this node runs one,
// nothing otherwise.
type managerCollector struct{ d *Daemon }

func (c managerCollector) Describe(ch chan<- *prometheus.Desc) { (&metrics.Collector{}).Describe(ch) }

func (c managerCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.d.metricsMgr.Load()
	if m == nil {
		return
	}
	(&metrics.Collector{Store: m.Store(), Raft: m.Raft()}).Collect(ch)
}
