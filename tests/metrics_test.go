package tests

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// scrape reads addr's /metrics with Prometheus' own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeWith(t, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}, addr)
}

// scrapeWith is scrape through client (a host's, for a daemon in its
// namespace).
func scrapeWith(t *testing.T, client *http.Client, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics of %s: %v\n%s", addr, err, body)
	}
	return fams
}

// value sums the family's series whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	var sum float64
	n := 0
series:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		n++
		switch {
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, n
}

// histogram is the family's one histogram (nil if none).
func histogram(fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 {
		return nil
	}
	return f.GetMetric()[0].GetHistogram()
}

// --metrics-addr serves Prometheus metrics that match the cluster: the
// manager's nodes, tasks, Raft state and API calls; the worker's
// containers, each task's CPU and memory from its cgroup, its image
// pulls, container starts and OOM kills.
func TestMetrics(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "metrics"})
	mAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	wAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	m := harness.NewNode(t, "manager1", "--metrics-addr", mAddr)
	m.Start()
	w := harness.NewNode(t, "worker1", "--metrics-addr", wAddr)
	w.Start()
	harness.NewCluster(t, []*harness.Node{m}, []*harness.Node{w})
	m.MustCLI("service", "create", "--name", "web", "--replicas", "3", "--constraint", "node.role==worker",
		"--health-cmd", "exit 0", "--health-interval", "500ms", img.Ref)

	harness.Eventually(t, 30*time.Second, func() error {
		fams := scrape(t, mAddr)
		if v, _ := value(fams, "shoal_manager_tasks", map[string]string{"state": "running", "desired_state": "running"}); v != 3 {
			return fmt.Errorf("manager: %v tasks running; want 3", v)
		}
		if v, _ := value(fams, "shoal_manager_nodes", map[string]string{"state": "ready"}); v != 2 {
			return fmt.Errorf("manager: %v nodes ready; want 2", v)
		}
		if v, _ := value(fams, "shoal_manager_raft_state", map[string]string{"state": "leader"}); v != 1 {
			return fmt.Errorf("manager: raft leader gauge %v; want 1", v)
		}
		if v, _ := value(fams, "shoal_manager_store_objects", map[string]string{"type": "service"}); v != 1 {
			return fmt.Errorf("manager: %v services in the store; want 1", v)
		}
		if v, _ := value(fams, "shoal_manager_api_requests_total", map[string]string{"method": "/shoal.v1.ControlService/CreateService", "code": "OK"}); v != 1 {
			return fmt.Errorf("manager: %v CreateService calls counted; want 1", v)
		}
		if _, n := value(fams, "shoal_manager_api_request_duration_seconds", nil); n == 0 {
			return fmt.Errorf("manager: no API latency histogram")
		}
		if _, n := value(fams, "process_resident_memory_bytes", nil); n != 1 {
			return fmt.Errorf("manager: no process metrics")
		}
		for _, h := range []string{"shoal_manager_raft_commit_duration_seconds", "shoal_manager_raft_apply_duration_seconds",
			"shoal_manager_orchestrator_pass_duration_seconds", "shoal_manager_scheduler_pass_duration_seconds"} {
			if hh := histogram(fams, h); hh.GetSampleCount() == 0 || hh.GetSampleSum() <= 0 {
				return fmt.Errorf("manager: %s has no samples", h)
			}
		}
		if v, _ := value(fams, "shoal_manager_dispatcher_sessions", nil); v != 2 {
			return fmt.Errorf("manager: %v assignment sessions; want 2 (its own node and the worker)", v)
		}
		if v, _ := value(fams, "shoal_manager_raft_log_bytes", nil); v <= 0 {
			return fmt.Errorf("manager: Raft log of %v bytes", v)
		}
		return nil
	})
	// The worker: its own containers, and each task's usage.
	harness.Eventually(t, 30*time.Second, func() error {
		fams := scrape(t, wAddr)
		if v, _ := value(fams, "shoal_node_containers", map[string]string{"state": "running"}); v != 3 {
			return fmt.Errorf("worker: %v containers running; want 3", v)
		}
		wid := nodeID(t, w)
		mem, n := value(fams, "shoal_task_memory_usage_bytes", map[string]string{"service": "web", "node": wid})
		if n != 3 || mem <= 0 {
			return fmt.Errorf("worker: %d task memory series of web on %s (%v bytes); want 3, above 0", n, wid, mem)
		}
		if cpu, n := value(fams, "shoal_task_cpu_usage_seconds_total", map[string]string{"service": "web"}); n != 3 || cpu <= 0 {
			return fmt.Errorf("worker: %d task CPU series (%v s); want 3, above 0", n, cpu)
		}
		if _, n := value(fams, "shoal_node_dns_queries_total", nil); n != 5 {
			return fmt.Errorf("worker: %d DNS query series; want one per result (5)", n)
		}
		if _, n := value(fams, "shoal_manager_tasks", nil); n != 0 {
			return fmt.Errorf("the worker serves manager metrics")
		}
		// The image was pulled from the registry (at least once: three
		// tasks may pull it side by side) and three containers started.
		if v, _ := value(fams, "shoal_node_image_pulls_total", map[string]string{"result": "ok"}); v < 1 {
			return fmt.Errorf("worker: %v image pulls counted; want at least 1", v)
		}
		if v, _ := value(fams, "shoal_node_image_pull_bytes_total", nil); v <= 0 {
			return fmt.Errorf("worker: %v bytes pulled; want above 0", v)
		}
		if v, _ := value(fams, "shoal_node_container_starts_total", map[string]string{"result": "ok"}); v != 3 {
			return fmt.Errorf("worker: %v container starts; want 3", v)
		}
		if v, _ := value(fams, "shoal_node_health_checks_total", map[string]string{"result": "pass"}); v < 3 {
			return fmt.Errorf("worker: %v passing health probes; want one per task at least", v)
		}
		if h := histogram(fams, "shoal_node_container_start_duration_seconds"); h.GetSampleCount() != 3 || h.GetSampleSum() <= 0 {
			return fmt.Errorf("worker: start latency histogram %v; want 3 samples", h)
		}
		return nil
	})
	// A task that runs out of memory is counted as an OOM kill.
	m.MustCLI("service", "create", "-d", "--name", "hog", "--limit-memory", "16m", "--restart-condition", "none",
		"--constraint", "node.role==worker", img.Ref, "alloc", "64")
	harness.Eventually(t, 30*time.Second, func() error {
		if v, _ := value(scrape(t, wAddr), "shoal_node_container_oom_kills_total", nil); v != 1 {
			return fmt.Errorf("worker: %v OOM kills counted; want 1", v)
		}
		return nil
	})
	// A task killed is restarted in place, and counted.
	web := harness.Of("web", w.RunningContainers())
	if len(web) == 0 {
		t.Fatal("no web container on the worker")
	}
	if err := syscall.Kill(web[0].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		if v, _ := value(scrape(t, wAddr), "shoal_node_task_restarts_total", nil); v != 1 {
			return fmt.Errorf("worker: %v restarts counted; want 1", v)
		}
		return nil
	})
	// A refused call is counted with its code.
	if _, err := m.CLI("service", "inspect", "nosuch"); err == nil {
		t.Fatal("inspect of a missing service worked")
	}
	fams := scrape(t, mAddr)
	if v, _ := value(fams, "shoal_manager_api_requests_total", map[string]string{"method": "/shoal.v1.ControlService/GetService", "code": "NotFound"}); v < 1 {
		t.Errorf("GetService NotFound counted %v times; want at least 1", v)
	}
	// The worker's host dies: the manager marks it down for missed
	// heartbeats (or sooner, through gossip), and counts it.
	w.KillHost()
	harness.Eventually(t, 30*time.Second, func() error {
		if v, _ := value(scrape(t, mAddr), "shoal_manager_nodes_marked_down_total", nil); v != 1 {
			return fmt.Errorf("manager: %v nodes marked down; want 1", v)
		}
		return nil
	})
}
