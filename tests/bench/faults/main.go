// Command faults runs fault scenarios of the multi-host harness several
// times and reports the times they measure (median, max), each trial on a
// fresh cluster whose hosts are network namespaces:
//
//	2 nodeloss    1 manager + 3 workers, 10 replicas; a worker host killed
//	              (daemon and containers, SIGKILL) → all 10 running again
//	3 leaderkill  3 managers + 1 worker; the leader killed 5 times under a
//	              stream of updates → the first update accepted after each;
//	              and a create sent through a surviving manager right after
//	              each kill (5 s deadline, repeated until it works) → accepted
//	5 partition   3 managers; the leader cut off from the other two by
//	              nftables → a new leader on the majority side; and the same
//	              create through a majority manager → accepted
//	6 freeze      1 manager + 2 workers, 6 replicas; a worker SIGSTOPped for
//	              10 s → its replicas running on the others; SIGCONT →
//	              exactly 6 again
//
// Every trial also checks the scenario's invariants, as the tests do; a
// broken one aborts the run.
//
//	go run ./tests/bench/faults [-trials 5] [-scenarios 2,3,5,6] [-json]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

// The first create through a surviving manager after the leader is lost,
// measured the same way in scenarios 3 and 5, and shown side by side.
const (
	firstKill = "3 leader killed -9 -> first create via a survivor accepted"
	firstCut  = "5 leader cut off -> first create via a survivor accepted"
)

// Result is every measured time, by figure.
type Result struct {
	Machine string                      `json:"machine"`
	Trials  int                         `json:"trials"`
	Figures map[string][]time.Duration  `json:"-"`
	Summary map[string]benchkit.Summary `json:"summary"`
	Order   []string                    `json:"order"`
	// Retried lists the first creates that needed more than one attempt.
	Retried []string `json:"retried"`
}

func (r *Result) note(fw faults.FirstWriteResult) {
	if fw.Attempts > 1 {
		r.Retried = append(r.Retried, fw.String())
	}
}

func (r *Result) add(figure string, d time.Duration) {
	if _, ok := r.Figures[figure]; !ok {
		r.Order = append(r.Order, figure)
	}
	r.Figures[figure] = append(r.Figures[figure], d)
}

func main() {
	trials := flag.Int("trials", 5, "fresh clusters per scenario")
	which := flag.String("scenarios", "2,3,5,6", "scenarios to run (2, 3, 4, 5, 6)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	verbose := flag.Bool("v", false, "log progress")
	flag.Parse()
	run := map[string]bool{}
	for _, s := range strings.Split(*which, ",") {
		run[strings.TrimSpace(s)] = true
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "faults: run as root: hosts are network namespaces, replicas real containers")
		os.Exit(1)
	}
	r := &Result{Machine: benchkit.DescribeMachine().String(), Trials: *trials, Figures: map[string][]time.Duration{}, Summary: map[string]benchkit.Summary{}}
	trial := func(name string, f func(e func(managers, workers int) *faults.Env)) {
		for i := 0; i < *trials; i++ {
			t := benchkit.NewTB(*verbose)
			f(func(m, w int) *faults.Env { return faults.Start(t, m, w, "--log-level", "info") })
			t.Close()
			harness.SweepNetns()
			if !*asJSON {
				fmt.Fprintf(os.Stderr, "faults: %s trial %d/%d done\n", name, i+1, *trials)
			}
		}
	}
	if run["2"] {
		trial("nodeloss", func(start func(int, int) *faults.Env) {
			res := faults.NodeLoss(start(1, 3), "web", 10)
			r.add("2 worker host killed -> all 10 replicas running again", res.Restored)
		})
	}
	if run["3"] {
		trial("leaderkill", func(start func(int, int) *faults.Env) {
			res := faults.LeaderKills(start(3, 1), "web", 2, 5)
			for _, d := range res.Recovery {
				r.add("3 leader killed -> an update accepted again", d)
			}
			for _, fw := range res.FirstWrites {
				r.add(firstKill, fw.Accepted)
				r.note(fw)
			}
		})
	}
	if run["4"] {
		trial("partition-worker", func(start func(int, int) *faults.Env) {
			res := faults.PartitionWorker(start(1, 3), "web", 6, 20*time.Second)
			r.add("4 worker cut off -> its replicas running on the others", res.Restored)
			r.add("4 heal -> exactly 6 replicas", res.Healed)
		})
	}
	if run["5"] {
		trial("partition-leader", func(start func(int, int) *faults.Env) {
			res := faults.PartitionLeader(start(3, 0), "register", 5*time.Second)
			r.add("5 leader cut off -> new leader on the majority side", res.Elected)
			r.add(firstCut, res.FirstWrite.Accepted)
			r.note(res.FirstWrite)
		})
	}
	if run["6"] {
		trial("freeze", func(start func(int, int) *faults.Env) {
			res := faults.Freeze(start(1, 2), "web", 6, 10*time.Second)
			r.add("6 worker frozen -> its replicas running on the others", res.Restored)
			r.add("6 SIGCONT -> exactly 6 replicas", res.Healed)
		})
	}
	for k, ds := range r.Figures {
		r.Summary[k] = benchkit.Summarize(append([]time.Duration{}, ds...))
	}
	if *asJSON {
		benchkit.PrintJSON(r)
		return
	}
	fmt.Printf("faults: %d trials per scenario, each on a fresh cluster of network-namespace hosts\nmachine: %s\n\n", *trials, r.Machine)
	fmt.Printf("%-60s %4s %10s %10s %10s\n", "figure", "n", "median ms", "max ms", "min ms")
	for _, k := range r.Order {
		s := r.Summary[k]
		fmt.Printf("%-60s %4d %10.0f %10.0f %10.0f\n", k, s.N, s.P50MS, s.MaxMS, s.MinMS)
	}
	k, c := r.Summary[firstKill], r.Summary[firstCut]
	if k.N > 0 && c.N > 0 {
		fmt.Printf("\nfirst create through a surviving manager (median / max ms): leader killed -9 %.0f / %.0f (n=%d), leader cut off %.0f / %.0f (n=%d)\n",
			k.P50MS, k.MaxMS, k.N, c.P50MS, c.MaxMS, c.N)
	}
	if len(r.Retried) > 0 {
		fmt.Printf("\n%d first creates needed more than one attempt:\n", len(r.Retried))
		for _, s := range r.Retried {
			fmt.Println("  " + s)
		}
	}
}
