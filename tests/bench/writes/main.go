// Command writes measures the control plane's write throughput: C
// concurrent clients, spread over every manager's gRPC connections, create
// services with unique names for a fixed time after a warm-up. Followers
// forward each call to the leader, which commits it through Raft.
//
// It reports creates per second, latency percentiles (overall and by the
// manager a client talks to), errors by gRPC code, and the CPU each
// daemon and the benchmark itself used in the measured window, since all
// of them share this machine's cores. With -publish every service also
// publishes its own ingress port, which makes each create run the
// published-port conflict check and the allocation of a VIP on the
// ingress network (replaced by a /16 first: the default /24 holds 253).
//
//	go run ./tests/bench/writes [-managers 3] [-clients 64] [-duration 10s] [-publish] [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
)

type config struct {
	Managers    int           `json:"managers"`
	Clients     int           `json:"clients"`
	Conns       int           `json:"conns_per_manager"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	CallTimeout time.Duration `json:"call_timeout_ns"`
	LogLevel    string        `json:"log_level"`
	Target      float64       `json:"target_per_s"`
	Publish     bool          `json:"publish"`
	JSON        bool          `json:"-"`
	Verbose     bool          `json:"-"`
}

type byManager struct {
	Name     string           `json:"manager"`
	Leader   bool             `json:"leader"`
	Clients  int              `json:"clients"`
	PerSec   float64          `json:"creates_per_s"`
	Latency  benchkit.Summary `json:"latency"`
	CPUSecs  float64          `json:"cpu_s"`
	RSSMiB   float64          `json:"rss_mib_after"`
	lat      []time.Duration
	creates  int
	errCount int
}

type result struct {
	Machine  benchkit.Machine `json:"machine"`
	Config   config           `json:"config"`
	Creates  int              `json:"creates"`
	PerSec   float64          `json:"creates_per_s"`
	Latency  benchkit.Summary `json:"latency"`
	Errors   map[string]int   `json:"errors"`
	ErrorEx  []string         `json:"error_examples,omitempty"`
	Managers []*byManager     `json:"by_manager"`
	BenchCPU float64          `json:"bench_cpu_s"`
	VsTarget float64          `json:"per_s_over_target"`
	Window   float64          `json:"window_s"`
	// PerSecond is creates completed in each second of the window, to
	// show whether the rate holds as the store grows.
	PerSecond []int `json:"creates_each_second"`
	// Before is how many services existed when the window opened.
	Before int `json:"services_before_window"`
}

// sample is one finished call.
type sample struct {
	end time.Time
	lat time.Duration
	err error
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Managers, "managers", 3, "managers in the cluster (1, 3 or 5)")
	flag.IntVar(&cfg.Clients, "clients", 64, "concurrent clients, each its own goroutine")
	flag.IntVar(&cfg.Conns, "conns", 2, "gRPC connections per manager the clients share")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured time before it")
	flag.DurationVar(&cfg.CallTimeout, "call-timeout", 5*time.Second, "timeout of each CreateService")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level (the harness default is debug; info is the daemon's own default)")
	flag.Float64Var(&cfg.Target, "target", 2000, "target creates per second")
	flag.BoolVar(&cfg.Publish, "publish", false, "give every service its own published ingress port (1-65535, tcp then udp), so creates exercise the port-conflict check")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case cfg.Managers < 1 || cfg.Managers > 7:
		usage("-managers must be 1..7")
	case cfg.Clients < 1 || cfg.Clients > 4096:
		usage("-clients must be 1..4096")
	case cfg.Conns < 1 || cfg.Conns > 64:
		usage("-conns must be 1..64")
	case cfg.Duration <= 0 || cfg.Duration > 10*time.Minute:
		usage("-duration must be in (0, 10m]")
	case cfg.Warmup < 0 || cfg.Warmup > time.Minute:
		usage("-warmup must be in [0, 1m]")
	}

	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "writes:", msg)
	os.Exit(2)
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg, Errors: map[string]int{}}
	tb.BuildBinary()
	fmt.Fprintf(os.Stderr, "writes: starting %d managers on loopback\n", cfg.Managers)
	c := harness.StartCluster(tb, cfg.Managers, 0, benchkit.DaemonArgs(cfg.LogLevel)...)

	// Connections: cfg.Conns per manager; client i uses manager i%M.
	conns := make([][]shoalv1.ControlServiceClient, len(c.Managers))
	for i, m := range c.Managers {
		for k := 0; k < cfg.Conns; k++ {
			conns[i] = append(conns[i], m.Control())
		}
	}
	var first []shoalv1.ControlServiceClient
	for i := range conns {
		first = append(first, conns[i][0])
	}
	var leaderAddr string
	if err := benchkit.WaitFor(30*time.Second, func() error {
		for _, cl := range first {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := cl.ListNodes(ctx, &shoalv1.ListNodesRequest{})
			cancel()
			if err != nil {
				return err
			}
			if err := benchkit.AllReachable(resp, cfg.Managers); err != nil {
				return err
			}
		}
		var err error
		leaderAddr, err = benchkit.Leader(context.Background(), first, 2*time.Second)
		return err
	}); err != nil {
		tb.Fatalf("cluster not ready: %v", err)
	}
	for _, m := range c.Managers {
		res.Managers = append(res.Managers, &byManager{Name: m.Name, Leader: m.Addr == leaderAddr})
	}
	if cfg.Publish {
		// Every service publishing in ingress mode takes a VIP on the
		// ingress network, whose default /24 holds 253: replace it with
		// a /16, as an operator would (Swarm's ingress has the same limit).
		m := c.Managers[0]
		m.MustCLI("network", "rm", "ingress")
		m.MustCLI("network", "create", "--ingress", "--subnet", "10.128.0.0/16", "ingress")
	}

	start := time.Now()
	from := start.Add(cfg.Warmup)
	to := from.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(context.Background(), to.Add(cfg.CallTimeout))
	defer cancel()

	samples := make([][]sample, cfg.Clients)
	var warm, ports atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < cfg.Clients; i++ {
		mi := i % len(c.Managers)
		cl := conns[mi][(i/len(c.Managers))%cfg.Conns]
		res.Managers[mi].Clients++
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				begin := time.Now()
				if !begin.Before(to) {
					return
				}
				cctx, ccancel := context.WithTimeout(ctx, cfg.CallTimeout)
				spec := benchkit.ServiceSpec(fmt.Sprintf("w%d-%d", i, seq))
				if cfg.Publish {
					spec.Endpoint = publish(ports.Add(1))
				}
				_, err := cl.CreateService(cctx, &shoalv1.CreateServiceRequest{Spec: spec})
				ccancel()
				end := time.Now()
				if end.Before(from) {
					if err == nil {
						warm.Add(1)
					}
					continue
				}
				if end.After(to) {
					continue
				}
				samples[i] = append(samples[i], sample{end: end, lat: end.Sub(begin), err: err})
			}
		}()
	}

	// CPU used in the window, by each daemon and by this program.
	time.Sleep(time.Until(from))
	fmt.Fprintf(os.Stderr, "writes: warm-up done, measuring %s with %d clients\n", cfg.Duration, cfg.Clients)
	cpu0 := cpuTimes(c.Managers)
	self0, _ := benchkit.CPUTime(os.Getpid())
	time.Sleep(time.Until(to))
	cpu1 := cpuTimes(c.Managers)
	self1, _ := benchkit.CPUTime(os.Getpid())
	wg.Wait()
	for i, m := range c.Managers {
		res.Managers[i].CPUSecs = round2((cpu1[i] - cpu0[i]).Seconds())
		if mem, err := benchkit.ReadMem(m.PID()); err == nil {
			res.Managers[i].RSSMiB = round2(mem.MiB())
		}
	}
	res.BenchCPU = round2((self1 - self0).Seconds())
	res.Before = int(warm.Load())
	res.PerSecond = make([]int, int(cfg.Duration.Seconds()+0.999))

	window := cfg.Duration.Seconds()
	res.Window = window
	var all []time.Duration
	for i, ss := range samples {
		bm := res.Managers[i%len(c.Managers)]
		for _, s := range ss {
			if s.err != nil {
				st, _ := status.FromError(s.err)
				res.Errors[st.Code().String()]++
				bm.errCount++
				if len(res.ErrorEx) < 5 {
					res.ErrorEx = append(res.ErrorEx, st.Code().String()+": "+st.Message())
				}
				continue
			}
			res.Creates++
			if sec := int(s.end.Sub(from) / time.Second); sec < len(res.PerSecond) {
				res.PerSecond[sec]++
			}
			bm.creates++
			bm.lat = append(bm.lat, s.lat)
			all = append(all, s.lat)
		}
	}
	res.PerSec = round2(float64(res.Creates) / window)
	res.Latency = benchkit.Summarize(all)
	res.VsTarget = round2(res.PerSec / cfg.Target)
	for _, bm := range res.Managers {
		bm.PerSec = round2(float64(bm.creates) / window)
		bm.Latency = benchkit.Summarize(bm.lat)
	}
	return res
}

// publish gives the n-th service (from 1) a port no other service has
// until n passes 2*65535, after which creates fail with conflicts.
func publish(n int64) *shoalv1.EndpointSpec {
	proto := shoalv1.PortProtocol_PORT_PROTOCOL_TCP
	if (n-1)/65535%2 == 1 {
		proto = shoalv1.PortProtocol_PORT_PROTOCOL_UDP
	}
	return &shoalv1.EndpointSpec{Ports: []*shoalv1.PortConfig{{
		Protocol: proto, TargetPort: 80, PublishedPort: uint32((n-1)%65535 + 1), PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS,
	}}}
}

func cpuTimes(ns []*harness.Node) []time.Duration {
	out := make([]time.Duration, len(ns))
	for i, n := range ns {
		out[i], _ = benchkit.CPUTime(n.PID())
	}
	return out
}

func printSummary(r result) {
	fmt.Printf("writes: %d managers on loopback, %d clients over %d gRPC conns per manager, CreateService for %s after %s warm-up\n",
		r.Config.Managers, r.Config.Clients, r.Config.Conns, r.Config.Duration, r.Config.Warmup)
	fmt.Printf("machine: %s\n", r.Machine)
	fmt.Printf("daemon log level %s, per-call timeout %s, published ports: %v\n\n", r.Config.LogLevel, r.Config.CallTimeout, r.Config.Publish)
	fmt.Printf("creates: %d in %.0f s = %.0f/s   (target %.0f/s: %s, ratio %.2f)\n",
		r.Creates, r.Window, r.PerSec, r.Config.Target, verdict(r.PerSec >= r.Config.Target), r.VsTarget)
	fmt.Printf("latency: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, mean %.1f ms\n",
		r.Latency.P50MS, r.Latency.P90MS, r.Latency.P99MS, r.Latency.MaxMS, r.Latency.MeanMS)
	fmt.Printf("rate:    each second of the window %v (%d services existed before it)\n", r.PerSecond, r.Before)
	fmt.Printf("errors:  %s\n", errString(r.Errors))
	for _, e := range r.ErrorEx {
		fmt.Printf("         e.g. %s\n", e)
	}
	fmt.Println()
	fmt.Printf("%-10s %-8s %7s %10s %9s %9s %9s %11s %9s\n", "via", "role", "clients", "creates/s", "p50", "p99", "max", "daemon CPU", "RSS")
	var cpu float64
	for _, m := range r.Managers {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		cpu += m.CPUSecs
		fmt.Printf("%-10s %-8s %7d %10.0f %6.1f ms %6.1f ms %6.1f ms %8.2f s %6.1f MiB\n",
			m.Name, role, m.Clients, m.PerSec, m.Latency.P50MS, m.Latency.P99MS, m.Latency.MaxMS, m.CPUSecs, m.RSSMiB)
	}
	fmt.Printf("CPU in the window: daemons %.2f s + benchmark %.2f s = %.2f of %.0f core-seconds available\n",
		cpu, r.BenchCPU, cpu+r.BenchCPU, float64(r.Machine.CPUs)*r.Window)
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

func errString(m map[string]int) string { return benchkit.Counts(m, "none") }

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
