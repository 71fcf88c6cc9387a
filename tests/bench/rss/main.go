// Command rss measures the resident memory of shoal daemons on loopback,
// read from /proc/PID/status after each has been idle for a while:
//
//   - one daemon before `swarm init` (unclustered),
//   - the same daemon as the only manager after `swarm init`,
//   - that manager after N services were created through it,
//   - each manager of a 3-manager cluster, idle and after N services.
//
// VmRSS is split into anonymous memory (heap, stacks) and file pages
// (mostly the mapped binary); VmHWM is the peak.
//
//	go run ./tests/bench/rss [-idle 5s] [-services 1000] [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
)

type config struct {
	Idle     time.Duration `json:"idle_ns"`
	Services int           `json:"services"`
	Writers  int           `json:"writers"`
	LogLevel string        `json:"log_level"`
	TargetMB float64       `json:"target_idle_manager_mb"`
	JSON     bool          `json:"-"`
	Verbose  bool          `json:"-"`
}

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
	IdleManagerMiB float64 `json:"idle_manager_mib"`
	IdleManagerMB  float64 `json:"idle_manager_mb"`
	VsTarget       float64 `json:"idle_manager_over_target"`
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.Idle, "idle", 5*time.Second, "how long a daemon idles before it is measured")
	flag.IntVar(&cfg.Services, "services", 1000, "services to create before the loaded measurements")
	flag.IntVar(&cfg.Writers, "writers", 16, "concurrent clients creating the services")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level (the harness default is debug; info is the daemon's own default)")
	flag.Float64Var(&cfg.TargetMB, "target-mb", 40, "target VmRSS of an idle manager, MB (10^6 bytes)")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case cfg.Idle < 0 || cfg.Idle > 10*time.Minute:
		usage("-idle must be in [0, 10m]")
	case cfg.Services < 0 || cfg.Services > 100000:
		usage("-services must be 0..100000")
	case cfg.Writers < 1 || cfg.Writers > 256:
		usage("-writers must be 1..256")
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
		time.Sleep(cfg.Idle)
		for _, n := range nodes {
			m, err := benchkit.ReadMem(n.PID())
			if err != nil {
				tb.Fatalf("%s: read memory of %s: %v", phase, n.Name, err)
			}
			res.Readings = append(res.Readings, reading{Phase: phase, Node: n.Name, Mem: m})
		}
	}

	// One daemon, then one manager.
	solo := harness.NewNode(tb, "solo", args...)
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
	return res
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
	verdict := "MET"
	if r.IdleManagerMB > r.Config.TargetMB {
		verdict = "MISSED"
	}
	fmt.Printf("\nidle single manager: %.1f MiB = %.1f MB; target <= %.0f MB: %s (ratio %.2f)\n",
		r.IdleManagerMiB, r.IdleManagerMB, r.Config.TargetMB, verdict, r.VsTarget)
}

// progress goes to stderr so stdout holds only the result.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rss: "+format+"\n", args...)
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
