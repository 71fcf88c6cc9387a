// Command failover measures how long a 3-manager Shoal cluster on
// loopback refuses writes after its leader is killed with SIGKILL.
//
// Each trial finds the leader, kills it, and immediately loops
// CreateService through one surviving manager (short per-call timeout,
// retry at once on error) until a create succeeds: the time from the kill
// to that success is the trial's figure. The survivors' logs give the
// breakdown (heartbeat timeout noticed, Raft leader elected, leader ready
// after its barrier). The killed daemon is then restarted and the trial
// ends when a leader reports all 3 managers REACHABLE again.
//
//	go run ./tests/bench/failover [-trials 10] [-call-timeout 500ms] [-json]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
)

type config struct {
	Trials       int           `json:"trials"`
	CallTimeout  time.Duration `json:"call_timeout_ns"`
	TrialTimeout time.Duration `json:"trial_timeout_ns"`
	RejoinWait   time.Duration `json:"rejoin_timeout_ns"`
	RetryDelay   time.Duration `json:"retry_delay_ns"`
	LogLevel     string        `json:"log_level"`
	TargetMS     float64       `json:"target_median_ms"`
	JSON         bool          `json:"-"`
	Verbose      bool          `json:"-"`
}

type trial struct {
	N        int    `json:"trial"`
	Killed   string `json:"killed"`
	Via      string `json:"via"`
	NewLead  string `json:"new_leader"`
	OK       bool   `json:"ok"`
	Attempts int    `json:"attempts"`
	// Errors counts failed attempts by gRPC code.
	Errors    map[string]int `json:"errors"`
	FirstErr  string         `json:"first_error,omitempty"`
	KillMS    float64        `json:"kill_ms"`    // SIGKILL sent until the process was reaped
	DetectMS  float64        `json:"detect_ms"`  // a survivor's heartbeat timeout fired
	ElectMS   float64        `json:"elected_ms"` // a survivor entered Raft leader state
	ReadyMS   float64        `json:"ready_ms"`   // the new leader passed its barrier
	CreateMS  float64        `json:"create_ms"`  // first successful CreateService
	RejoinMS  float64        `json:"rejoin_ms"`  // restart until all 3 REACHABLE
	createDur time.Duration
}

type result struct {
	Machine  benchkit.Machine `json:"machine"`
	Config   config           `json:"config"`
	Trials   []trial          `json:"trials"`
	Create   benchkit.Summary `json:"first_create"`
	Elected  benchkit.Summary `json:"elected"`
	Failed   int              `json:"failed_trials"`
	VsTarget float64          `json:"median_over_target"`
	VsSwarm  float64          `json:"swarm_10s_over_median"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Trials, "trials", 10, "number of leader kills")
	flag.DurationVar(&cfg.CallTimeout, "call-timeout", 500*time.Millisecond, "timeout of each CreateService attempt")
	flag.DurationVar(&cfg.TrialTimeout, "trial-timeout", 30*time.Second, "give up on a trial when no create succeeded by then")
	flag.DurationVar(&cfg.RejoinWait, "rejoin-timeout", 60*time.Second, "how long the restarted manager may take to be REACHABLE")
	flag.DurationVar(&cfg.RetryDelay, "retry-delay", 0, "pause after a failed attempt (0: retry at once)")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level (the harness default is debug; info is the daemon's own default)")
	flag.Float64Var(&cfg.TargetMS, "target-ms", 1000, "target for the median time to the first successful write")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log progress and harness messages to stderr")
	flag.Parse()
	if cfg.Trials < 1 || cfg.Trials > 1000 {
		fmt.Fprintln(os.Stderr, "failover: -trials must be 1..1000")
		os.Exit(2)
	}

	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg}
	tb.BuildBinary()
	progress(cfg, "starting a 3-manager cluster on loopback")
	c := harness.StartCluster(tb, 3, 0, benchkit.DaemonArgs(cfg.LogLevel)...)
	waitRejoined(tb, c, cfg.RejoinWait)

	var creates, elects []time.Duration
	for i := 1; i <= cfg.Trials; i++ {
		tr := runTrial(tb, c, cfg, i)
		res.Trials = append(res.Trials, tr)
		if !tr.OK {
			res.Failed++
		} else {
			creates = append(creates, tr.createDur)
		}
		if tr.ElectMS > 0 {
			elects = append(elects, time.Duration(tr.ElectMS*float64(time.Millisecond)))
		}
		progress(cfg, "trial %d: killed %s, first create via %s after %.0f ms (%d attempts), new leader %s, rejoined in %.0f ms",
			i, tr.Killed, tr.Via, tr.CreateMS, tr.Attempts, tr.NewLead, tr.RejoinMS)
	}
	res.Create = benchkit.Summarize(creates)
	res.Elected = benchkit.Summarize(elects)
	if res.Create.P50MS > 0 {
		res.VsTarget = round2(res.Create.P50MS / cfg.TargetMS)
		res.VsSwarm = round2(10000 / res.Create.P50MS)
	}
	return res
}

// clients dials each running manager afresh and makes one call on each,
// so a trial never waits on a client connection still backing off from
// an earlier kill.
func clients(tb *benchkit.TB, c *harness.Cluster) map[*harness.Node]shoalv1.ControlServiceClient {
	out := map[*harness.Node]shoalv1.ControlServiceClient{}
	for _, m := range c.Managers {
		if !m.Running() {
			continue
		}
		cl := m.Control()
		if err := benchkit.WaitFor(30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := cl.ListNodes(ctx, &shoalv1.ListNodesRequest{})
			return err
		}); err != nil {
			tb.Fatalf("%s does not answer: %v", m.Name, err)
		}
		out[m] = cl
	}
	return out
}

func runTrial(tb *benchkit.TB, c *harness.Cluster, cfg config, n int) trial {
	cls := clients(tb, c)
	var all []shoalv1.ControlServiceClient
	for _, m := range c.Managers {
		all = append(all, cls[m])
	}
	addr, err := benchkit.Leader(context.Background(), all, 2*time.Second)
	if err != nil {
		tb.Fatalf("trial %d: no leader before the kill: %v", n, err)
	}
	leader := benchkit.NodeByAddr(c.Managers, addr)
	if leader == nil {
		tb.Fatalf("trial %d: leader %s is none of the managers", n, addr)
	}
	var survivors []*harness.Node
	for _, m := range c.Managers {
		if m != leader {
			survivors = append(survivors, m)
		}
	}
	via := survivors[n%len(survivors)]
	cl := cls[via]
	// One write before the kill proves the path works.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = cl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: benchkit.ServiceSpec(fmt.Sprintf("pre-%d", n))})
	cancel()
	if err != nil {
		tb.Fatalf("trial %d: create via %s before the kill: %v", n, via.Name, err)
	}

	tr := trial{N: n, Killed: leader.Name, Via: via.Name, Errors: map[string]int{}}
	t0 := time.Now()
	leader.Kill()
	tr.KillMS = benchkit.MS(time.Since(t0))
	for seq := 0; ; seq++ {
		tr.Attempts++
		ctx, cancel := context.WithTimeout(context.Background(), cfg.CallTimeout)
		_, err := cl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: benchkit.ServiceSpec(fmt.Sprintf("fo-%d-%d", n, seq))})
		cancel()
		if err == nil {
			tr.OK = true
			tr.createDur = time.Since(t0)
			tr.CreateMS = benchkit.MS(tr.createDur)
			break
		}
		st, _ := status.FromError(err)
		tr.Errors[st.Code().String()]++
		if tr.FirstErr == "" {
			tr.FirstErr = st.Code().String() + ": " + st.Message()
		}
		if time.Since(t0) > cfg.TrialTimeout {
			break
		}
		time.Sleep(cfg.RetryDelay)
	}

	// Breakdown from the survivors' logs.
	mark := func(msg string) (float64, *harness.Node) {
		var best time.Time
		var who *harness.Node
		for _, s := range survivors {
			if ts, ok := benchkit.LogMark(s, t0, msg); ok && (best.IsZero() || ts.Before(best)) {
				best, who = ts, s
			}
		}
		if best.IsZero() {
			return 0, nil
		}
		return benchkit.MS(best.Sub(t0.Truncate(time.Millisecond))), who
	}
	tr.DetectMS, _ = mark("heartbeat timeout reached, starting election")
	tr.ElectMS, _ = mark("entering leader state")
	var nl *harness.Node
	tr.ReadyMS, nl = mark("became leader")
	if nl != nil {
		tr.NewLead = nl.Name
	}

	t1 := time.Now()
	leader.Start()
	waitRejoined(tb, c, cfg.RejoinWait)
	tr.RejoinMS = benchkit.MS(time.Since(t1))
	return tr
}

// waitRejoined waits until a leader lists all 3 managers REACHABLE and
// every manager answers ListNodes (followers forward it to the leader).
func waitRejoined(tb *benchkit.TB, c *harness.Cluster, timeout time.Duration) {
	cls := clients(tb, c)
	err := benchkit.WaitFor(timeout, func() error {
		for _, m := range c.Managers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := cls[m].ListNodes(ctx, &shoalv1.ListNodesRequest{})
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if err := benchkit.AllReachable(resp, len(c.Managers)); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("cluster did not recover: %v", err)
	}
}

func printSummary(r result) {
	fmt.Printf("failover: 3 managers on loopback, leader killed with SIGKILL, %d trials\n", r.Config.Trials)
	fmt.Printf("machine:  %s\n", r.Machine)
	fmt.Printf("writes:   CreateService through a surviving manager, %s per call, retried after %s on error; daemon log level %s\n\n",
		r.Config.CallTimeout, r.Config.RetryDelay, r.Config.LogLevel)
	fmt.Printf("%5s  %-9s %-9s %-10s %9s %9s %9s %10s %8s  %-30s %9s\n",
		"trial", "killed", "via", "new leader", "detect", "elected", "ready", "1st write", "attempts", "errors", "rejoin")
	for _, t := range r.Trials {
		w := fmt.Sprintf("%.0f ms", t.CreateMS)
		if !t.OK {
			w = "FAILED"
		}
		fmt.Printf("%5d  %-9s %-9s %-10s %6.0f ms %6.0f ms %6.0f ms %10s %8d  %-30s %6.0f ms\n",
			t.N, t.Killed, t.Via, t.NewLead, t.DetectMS, t.ElectMS, t.ReadyMS, w, t.Attempts, errString(t.Errors), t.RejoinMS)
	}
	fmt.Println()
	fmt.Printf("kill -> first successful write: median %.0f ms, p90 %.0f ms, max %.0f ms, min %.0f ms (n=%d, failed %d)\n",
		r.Create.P50MS, r.Create.P90MS, r.Create.MaxMS, r.Create.MinMS, r.Create.N, r.Failed)
	fmt.Printf("kill -> Raft leader elected: median %.0f ms, p90 %.0f ms, max %.0f ms\n", r.Elected.P50MS, r.Elected.P90MS, r.Elected.MaxMS)
	verdict := "MET"
	if r.Create.P50MS > r.Config.TargetMS || r.Failed > 0 {
		verdict = "MISSED"
	}
	fmt.Printf("target median <= %.0f ms: %s (median/target = %.2f); Docker Swarm's default election (~10 s) / median = %.1fx\n",
		r.Config.TargetMS, verdict, r.VsTarget, r.VsSwarm)
}

func errString(m map[string]int) string { return benchkit.Counts(m, "-") }

// progress goes to stderr so stdout holds only the result.
func progress(_ config, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "failover: "+format+"\n", args...)
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
