// Command rss measures the resident memory of shoal daemons on loopback,
// read from /proc/PID/status after each has been idle for a while:
//
//   - one daemon before `swarm init` (unclustered),
//   - the same daemon as the only manager after `swarm init`,
//   - that manager after N services were created through it,
//   - each manager of a 3-manager cluster, idle and after N services,
//   - the worker daemon of a 1-manager + 1-worker cluster (the manager
//     drained, so every task lands on the worker), joined and idle, then
//     with T real containers running (`whoami sleep 1h` from the test
//     image, served by a loopback registry).
//
// VmRSS is split into anonymous memory (heap, stacks) and file pages
// (mostly the mapped binary); VmHWM is the peak. The worker phase runs
// containers, so it needs root; -phases manager skips it.
//
//	go run ./tests/bench/rss [-idle 5s] [-services 1000] [-tasks 100] [-phases manager,worker] [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

type config struct {
	Phases   []string      `json:"phases"`
	Idle     time.Duration `json:"idle_ns"`
	Services int           `json:"services"`
	Writers  int           `json:"writers"`
	Tasks    int           `json:"tasks"`
	LogLevel string        `json:"log_level"`
	TargetMB float64       `json:"target_idle_manager_mb"`
	// TargetWorkerMB is the target VmRSS of an idle joined worker.
	TargetWorkerMB float64 `json:"target_idle_worker_mb"`
	// Metrics runs the daemons with --metrics-addr, the single
	// manager's scraped every 500 ms while it idles.
	Metrics bool `json:"metrics"`
	JSON    bool `json:"-"`
	Verbose bool `json:"-"`
}

func (c config) phase(name string) bool { return slices.Contains(c.Phases, name) }

type reading struct {
	Phase string       `json:"phase"`
	Node  string       `json:"node"`
	Mem   benchkit.Mem `json:"mem"`
}

type result struct {
	Machine   benchkit.Machine `json:"machine"`
	Config    config           `json:"config"`
	BinaryMiB float64          `json:"binary_mib"`
	Readings  []reading        `json:"readings"`
	// IdleManagerMiB is the single manager's idle VmRSS, the figure the
	// target is about.
	// They are absent when the manager phase did not run.
	IdleManagerMiB float64 `json:"idle_manager_mib,omitempty"`
	IdleManagerMB  float64 `json:"idle_manager_mb,omitempty"`
	VsTarget       float64 `json:"idle_manager_over_target,omitempty"`
	// Worker is the worker phase, when it ran.
	Worker *workerResult `json:"worker,omitempty"`
}

// workerResult is what the worker phase saw besides its two readings.
type workerResult struct {
	// IdleMiB is the joined worker's idle VmRSS, before any task, the
	// figure the worker target is about.
	IdleMiB  float64 `json:"idle_worker_mib"`
	IdleMB   float64 `json:"idle_worker_mb"`
	VsTarget float64 `json:"idle_worker_over_target"`
	// Started is the time from CreateService to every task running on
	// the worker (the image pull included).
	Started time.Duration `json:"started_ns"`
	// Workloads and Shims are the container processes found when the
	// loaded reading was taken: processes in the worker's cgroup parent,
	// and supervisors (`shoal-shim __shim DIR`, DIR under the worker's
	// directory).
	Workloads int `json:"workload_procs"`
	Shims     int `json:"shim_procs"`
	// Leftover is the same count after the hosts were killed; the
	// program fails unless it is 0.
	Leftover int `json:"leftover_procs"`
}

func main() {
	var cfg config
	phases := flag.String("phases", "manager,worker", "comma-separated phases to run: manager (unclustered, 1 and 3 managers), worker (1 manager + 1 worker, idle and with -tasks containers; needs root)")
	flag.DurationVar(&cfg.Idle, "idle", 5*time.Second, "how long a daemon idles before it is measured")
	flag.IntVar(&cfg.Services, "services", 1000, "services to create before the loaded measurements")
	flag.IntVar(&cfg.Writers, "writers", 16, "concurrent clients creating the services")
	flag.IntVar(&cfg.Tasks, "tasks", 100, "replicas (real containers) the worker runs for its loaded measurement")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level (the harness default is debug; info is the daemon's own default)")
	flag.Float64Var(&cfg.TargetMB, "target-mb", 40, "target VmRSS of an idle manager, MB (10^6 bytes)")
	flag.Float64Var(&cfg.TargetWorkerMB, "target-worker-mb", 30, "target VmRSS of an idle joined worker, MB (10^6 bytes)")
	flag.BoolVar(&cfg.Metrics, "metrics", false, "run the daemons with --metrics-addr; the single manager's /metrics is scraped every 500 ms while it idles")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "manager", "worker":
			if !cfg.phase(p) {
				cfg.Phases = append(cfg.Phases, p)
			}
		case "":
		default:
			usage(fmt.Sprintf("-phases: unknown phase %q (manager, worker)", p))
		}
	}
	switch {
	case len(cfg.Phases) == 0:
		usage("-phases names no phase")
	case cfg.Idle < 0 || cfg.Idle > 10*time.Minute:
		usage("-idle must be in [0, 10m]")
	case cfg.Services < 0 || cfg.Services > 100000:
		usage("-services must be 0..100000")
	case cfg.Writers < 1 || cfg.Writers > 256:
		usage("-writers must be 1..256")
	case cfg.Tasks < 1 || cfg.Tasks > 1000:
		usage("-tasks must be 1..1000")
	case cfg.phase("worker") && os.Geteuid() != 0:
		usage("the worker phase runs containers and needs root (-phases manager skips it)")
	}

	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "rss:", msg)
	os.Exit(2)
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg}
	bin := tb.BuildBinary()
	if st, err := os.Stat(bin); err == nil {
		res.BinaryMiB = round2(float64(st.Size()) / (1 << 20))
	}
	args := benchkit.DaemonArgs(cfg.LogLevel)
	measure := func(phase string, nodes ...*harness.Node) {
		progress("%s: idling %s", phase, cfg.Idle)
		stop := make(chan struct{})
		var scraping sync.WaitGroup
		if addr := metricsAddr(nodes[0]); addr != "" {
			scraping.Add(1)
			go func() { defer scraping.Done(); scrape(addr, stop) }()
		}
		time.Sleep(cfg.Idle)
		close(stop)
		scraping.Wait()
		for _, n := range nodes {
			m, err := benchkit.ReadMem(n.PID())
			if err != nil {
				tb.Fatalf("%s: read memory of %s: %v", phase, n.Name, err)
			}
			res.Readings = append(res.Readings, reading{Phase: phase, Node: n.Name, Mem: m})
		}
	}
	if cfg.phase("manager") {
		runManagers(tb, cfg, &res, args, measure)
	}
	if cfg.phase("worker") {
		res.Worker = runWorker(tb, cfg, &res, args, measure)
	}
	return res
}

// runManagers measures an unclustered daemon, a single manager and a
// 3-manager cluster, idle and after cfg.Services services.
func runManagers(tb *benchkit.TB, cfg config, res *result, args []string, measure func(string, ...*harness.Node)) {
	// One daemon, then one manager.
	soloArgs := args
	if cfg.Metrics {
		soloArgs = append(slices.Clone(args), "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", harness.FreePort(tb)))
		args = append(slices.Clone(args), "--metrics-addr", "127.0.0.1:0")
	}
	runSolo(tb, cfg, res, harness.NewNode(tb, "solo", soloArgs...), measure)
	runTrio(tb, cfg, args, measure)
}

// metricsAddr is the --metrics-addr a node was started with, to scrape
// while it idles ("" when none or a port chosen by the kernel).
func metricsAddr(n *harness.Node) string {
	for i, a := range n.Args {
		if a == "--metrics-addr" && i+1 < len(n.Args) && !strings.HasSuffix(n.Args[i+1], ":0") {
			return n.Args[i+1]
		}
	}
	return ""
}

// scrape GETs addr's /metrics every 500 ms until stop.
func scrape(addr string, stop <-chan struct{}) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if resp, err := client.Get("http://" + addr + "/metrics"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func runSolo(tb *benchkit.TB, cfg config, res *result, solo *harness.Node, measure func(string, ...*harness.Node)) {
	solo.Start()
	measure("unclustered daemon", solo)
	solo.MustCLI("swarm", "init", "--advertise-addr", solo.Addr)
	cl := solo.Control()
	waitReady(tb, []shoalv1.ControlServiceClient{cl}, 1)
	measure("single manager, idle", solo)
	idle := res.Readings[len(res.Readings)-1].Mem
	res.IdleManagerMiB = round2(idle.MiB())
	res.IdleManagerMB = round2(float64(idle.VmRSS) * 1024 / 1e6)
	res.VsTarget = round2(res.IdleManagerMB / cfg.TargetMB)
	createServices(tb, cfg, "solo", []shoalv1.ControlServiceClient{cl})
	measure(fmt.Sprintf("single manager, %d services", cfg.Services), solo)
	solo.Kill()
}

func runTrio(tb *benchkit.TB, cfg config, args []string, measure func(string, ...*harness.Node)) {
	// Three managers.
	progress("starting a 3-manager cluster")
	c := harness.StartCluster(tb, 3, 0, args...)
	var cls []shoalv1.ControlServiceClient
	for _, m := range c.Managers {
		cls = append(cls, m.Control())
	}
	waitReady(tb, cls, 3)
	measure("3 managers, idle", c.Managers...)
	createServices(tb, cfg, "trio", cls)
	measure(fmt.Sprintf("3 managers, %d services", cfg.Services), c.Managers...)
	for _, m := range c.Managers {
		m.Kill()
	}
}

// runWorker measures the worker daemon of a 1-manager + 1-worker cluster
// with the manager drained: joined and idle, then with cfg.Tasks
// containers running. It kills both hosts at the end and fails if any of
// their container processes is left.
func runWorker(tb *benchkit.TB, cfg config, res *result, args []string, measure func(string, ...*harness.Node)) *workerResult {
	progress("building the test image and starting a loopback registry")
	img := testimage.Serve(tb, testimage.Options{Tag: "1"})
	progress("starting 1 manager + 1 worker")
	c := harness.StartCluster(tb, 1, 1, args...)
	m, w := c.Managers[0], c.Workers[0]
	ctl := m.Control()
	ctx := context.Background()

	// Both nodes READY, the manager leading; tell them apart by role.
	var mgrID, wrkID string
	err := benchkit.WaitFor(30*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := ctl.ListNodes(cctx, &shoalv1.ListNodesRequest{})
		if err != nil {
			return err
		}
		if err := benchkit.AllReachable(resp, 1); err != nil {
			return err
		}
		mgrID, wrkID = "", ""
		for _, n := range resp.GetNodes() {
			if n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
				return fmt.Errorf("node %s is %s", n.GetId(), n.GetStatus().GetState())
			}
			if n.GetManagerStatus() != nil {
				mgrID = n.GetId()
			} else {
				wrkID = n.GetId()
			}
		}
		if len(resp.GetNodes()) != 2 || mgrID == "" || wrkID == "" {
			return fmt.Errorf("%d nodes, want a manager and a worker", len(resp.GetNodes()))
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("cluster not ready: %v", err)
	}
	m.MustCLI("node", "update", "--availability", "drain", mgrID)
	if n, err := ctl.GetNode(ctx, &shoalv1.GetNodeRequest{NodeId: mgrID}); err != nil || n.GetNode().GetSpec().GetAvailability() != shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN {
		tb.Fatalf("manager not drained: %v", err)
	}

	measure("worker, joined, idle", w)
	idle := res.Readings[len(res.Readings)-1].Mem
	wr := &workerResult{IdleMiB: round2(idle.MiB()), IdleMB: round2(float64(idle.VmRSS) * 1024 / 1e6)}
	wr.VsTarget = round2(wr.IdleMB / cfg.TargetWorkerMB)

	progress("creating a service of %d replicas (%s, whoami sleep 1h)", cfg.Tasks, img.Ref)
	spec := benchkit.ServiceSpec("whoami")
	spec.GetReplicated().Replicas = int64(cfg.Tasks)
	spec.Task.Container.Image = img.Ref
	spec.Task.Container.Args = []string{"sleep", "1h"}
	start := time.Now()
	created, err := ctl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		tb.Fatalf("create service: %v", err)
	}
	svcID := created.GetService().GetId()
	err = benchkit.WaitFor(5*time.Minute, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := ctl.ListTasks(cctx, &shoalv1.ListTasksRequest{ServiceId: svcID})
		if err != nil {
			return err
		}
		onWorker, elsewhere := 0, 0
		for _, tk := range resp.GetTasks() {
			if tk.GetDesiredState() != shoalv1.TaskState_TASK_STATE_RUNNING || tk.GetStatus().GetState() != shoalv1.TaskState_TASK_STATE_RUNNING {
				continue
			}
			if tk.GetNodeId() == wrkID {
				onWorker++
			} else {
				elsewhere++
			}
		}
		if elsewhere > 0 {
			return fmt.Errorf("%d tasks running off the worker", elsewhere)
		}
		if onWorker != cfg.Tasks {
			return fmt.Errorf("%d/%d running on the worker", onWorker, cfg.Tasks)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("tasks not running: %v", err)
	}
	wr.Started = time.Since(start)
	progress("%d/%d tasks running on the worker after %s", cfg.Tasks, cfg.Tasks, wr.Started.Round(time.Millisecond))

	measure(fmt.Sprintf("worker, %d tasks running", cfg.Tasks), w)
	wr.Workloads, wr.Shims = containerProcs(w)
	if wr.Workloads < cfg.Tasks || wr.Shims != cfg.Tasks {
		tb.Fatalf("found %d workload and %d shim processes for %d tasks", wr.Workloads, wr.Shims, cfg.Tasks)
	}

	// Kill both hosts (daemons and their containers) and check that
	// nothing of theirs is left.
	for _, n := range c.Nodes() {
		n.KillHost()
	}
	for _, n := range c.Nodes() {
		wl, sh := containerProcs(n)
		wr.Leftover += wl + sh
		if dirs := cgroup.ParentDirs(n.CgroupParent); len(dirs) > 0 {
			tb.Fatalf("%s: cgroup parent left: %v", n.Name, dirs)
		}
	}
	if wr.Leftover > 0 {
		tb.Fatalf("%d container processes left after the hosts were killed", wr.Leftover)
	}
	progress("hosts killed; no container process or cgroup left")
	return wr
}

// containerProcs counts n's container processes: workloads by their
// cgroup (under n's unique cgroup parent) and supervisors by their
// command line (`shoal-shim __shim DIR`, DIR under n's directory).
func containerProcs(n *harness.Node) (workloads, shims int) {
	shims = len(benchkit.FindProcs(func(_ int, args []string) bool {
		return len(args) >= 3 && args[1] == "__shim" && strings.HasPrefix(args[2], n.Dir+"/")
	}))
	workloads = len(benchkit.FindProcs(func(pid int, _ []string) bool {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return strings.Contains(string(data), "/"+n.CgroupParent+"/")
	}))
	return workloads, shims
}

// waitReady waits until every client's manager lists want managers, all
// REACHABLE, one of them leader.
func waitReady(tb *benchkit.TB, cls []shoalv1.ControlServiceClient, want int) {
	err := benchkit.WaitFor(30*time.Second, func() error {
		for _, cl := range cls {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := cl.ListNodes(ctx, &shoalv1.ListNodesRequest{})
			cancel()
			if err != nil {
				return err
			}
			if err := benchkit.AllReachable(resp, want); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("cluster not ready: %v", err)
	}
}

// createServices creates cfg.Services services with cfg.Writers clients
// spread over cls.
func createServices(tb *benchkit.TB, cfg config, prefix string, cls []shoalv1.ControlServiceClient) {
	progress("creating %d services", cfg.Services)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < cfg.Writers; w++ {
		cl := cls[w%len(cls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.Services) {
					return
				}
				name := fmt.Sprintf("%s-%d", prefix, i)
				err := benchkit.WaitFor(30*time.Second, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_, err := cl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: benchkit.ServiceSpec(name)})
					return err
				})
				if err != nil {
					tb.Fatalf("create %s: %v", name, err)
				}
			}
		}()
	}
	wg.Wait()
	progress("created %d services in %s", cfg.Services, time.Since(start).Round(time.Millisecond))
}

func printSummary(r result) {
	fmt.Printf("rss: resident memory of shoal daemons on loopback after %s idle (binary %.1f MiB, daemon log level %s)\n",
		r.Config.Idle, r.BinaryMiB, r.Config.LogLevel)
	fmt.Printf("machine: %s\n\n", r.Machine)
	fmt.Printf("%-30s %-9s %9s %9s %9s %9s %8s\n", "phase", "node", "VmRSS", "anon", "file", "VmHWM", "threads")
	for _, rd := range r.Readings {
		m := rd.Mem
		fmt.Printf("%-30s %-9s %5.1f MiB %5.1f MiB %5.1f MiB %5.1f MiB %8d\n", rd.Phase, rd.Node,
			float64(m.VmRSS)/1024, float64(m.RssAnon)/1024, float64(m.RssFile)/1024, float64(m.VmHWM)/1024, m.Threads)
	}
	fmt.Println()
	if r.Config.phase("manager") {
		fmt.Printf("idle single manager: %.1f MiB = %.1f MB; target <= %.0f MB: %s (ratio %.2f)\n",
			r.IdleManagerMiB, r.IdleManagerMB, r.Config.TargetMB, verdict(r.IdleManagerMB, r.Config.TargetMB), r.VsTarget)
	}
	if w := r.Worker; w != nil {
		fmt.Printf("idle joined worker: %.1f MiB = %.1f MB; target <= %.0f MB: %s (ratio %.2f)\n",
			w.IdleMiB, w.IdleMB, r.Config.TargetWorkerMB, verdict(w.IdleMB, r.Config.TargetWorkerMB), w.VsTarget)
		fmt.Printf("worker: %d tasks running %s after create (%d workload, %d shim processes); %d left after the hosts were killed\n",
			r.Config.Tasks, w.Started.Round(time.Millisecond), w.Workloads, w.Shims, w.Leftover)
	}
}

func verdict(mb, target float64) string {
	if mb > target {
		return "MISSED"
	}
	return "MET"
}

// progress goes to stderr so stdout holds only the result.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rss: "+format+"\n", args...)
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
