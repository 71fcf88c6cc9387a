// Command deploy measures issue 14's rolling updates under load, on a
// cluster of 1 manager + 3 workers whose hosts are network namespaces
// (tests/deploy, tests/faults): the whoami service web, -replicas tasks
// on the workers with an HTTP health check every -health-interval, on
// overlay network app and published on port 8080, while two load clients
// send a request every 20 ms each on a new connection: one inside a
// container on app through web's VIP, one on a host outside the cluster
// through the routing mesh on manager1 (which runs no replica).
//
// Each trial, on a fresh cluster:
//
//  1. start-first rolling update (image 1 → 2), -parallelism, monitor 1 s:
//     the time from the UpdateService call to the update status
//     COMPLETED, and the failed requests meanwhile;
//  2. stop-first, the same otherwise (image 2 → 3);
//  3. `service rollback` (UpdateService with rollback set) under the
//     rollback config start-first, -parallelism, monitor 1 s: the time
//     from the call to every container running image 2 again, converged;
//  4. from the tasks of steps 1 and 2: the time from a task's health
//     turning healthy (as its worker reported, TaskStatus.health.since)
//     to the first request it answered;
//  5. -unhealthy times: /tmp/unhealthy created in a running container, so
//     its check fails: the time from its worker reporting it unhealthy,
//     and from the file's creation, to the last request it answered.
//
// The invariants of tests/deploy_test.go are checked along the way; a
// broken one is reported with the figures, not hidden.
//
//	go run ./tests/bench/deploy [-trials 3] [-replicas 10] [-parallelism 2] [-health-interval 1s] [-unhealthy 3] [-json] [-v]
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/deploy"
	"github.com/shoal-run/shoal/tests/harness"
)

// Step is one update or rollback of a trial.
type Step struct {
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	Err      string  `json:"error,omitempty"`
}

// Trial is one fresh cluster's figures.
type Trial struct {
	StartFirst Step `json:"start_first"`
	StopFirst  Step `json:"stop_first"`
	Rollback   Step `json:"rollback"`
	// In milliseconds.
	HealthyToTraffic []float64 `json:"healthy_to_traffic_ms"`
	UnhealthyToNone  []float64 `json:"unhealthy_to_none_ms"`
	FileToNone       []float64 `json:"file_to_none_ms"`
	Errors           []string  `json:"errors,omitempty"`
}

// Result is the whole run.
type Result struct {
	Machine        benchkit.Machine            `json:"machine"`
	Version        string                      `json:"version"`
	Replicas       int                         `json:"replicas"`
	Parallelism    int                         `json:"parallelism"`
	HealthInterval time.Duration               `json:"health_interval_ns"`
	Trials         []Trial                     `json:"trials"`
	Summaries      map[string]benchkit.Summary `json:"summaries"`
	FailedTotal    map[string]int              `json:"failed_requests_total"`
	RequestsTotal  map[string]int              `json:"requests_total"`
}

const (
	keyStart     = "start-first update: call → COMPLETED"
	keyStop      = "stop-first update: call → COMPLETED"
	keyRollback  = "service rollback: call → all tasks on the old spec"
	keyHealthy   = "task healthy → first request answered"
	keyUnhealthy = "task reported unhealthy → last request answered"
	keyFile      = "check starts failing (/tmp/unhealthy) → last request answered"
)

func main() {
	trials := flag.Int("trials", 3, "fresh clusters")
	replicas := flag.Int("replicas", 10, "replicas of web")
	parallelism := flag.Int("parallelism", 2, "--update-parallelism of both updates")
	interval := flag.Duration("health-interval", time.Second, "health check interval")
	unhealthy := flag.Int("unhealthy", 3, "tasks made unhealthy per trial")
	asJSON := flag.Bool("json", false, "print the full result as JSON")
	verbose := flag.Bool("v", false, "log the harness's progress")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "deploy: run as root: hosts are network namespaces, replicas real containers")
		os.Exit(1)
	}
	if *trials < 1 || *replicas < 1 || *parallelism < 0 || *interval <= 0 || *unhealthy < 0 {
		fmt.Fprintln(os.Stderr, "deploy: -trials and -replicas must be positive, -parallelism and -unhealthy >= 0, -health-interval > 0")
		os.Exit(2)
	}
	defer harness.RemoveBinary()
	r := &Result{Replicas: *replicas, Parallelism: *parallelism, HealthInterval: *interval,
		Summaries: map[string]benchkit.Summary{}, FailedTotal: map[string]int{}, RequestsTotal: map[string]int{}}
	figures := map[string][]time.Duration{}
	// The binary lives in a TB of its own for the whole run: each trial's
	// TB removes its directory when the trial ends.
	outer := benchkit.NewTB(*verbose)
	defer outer.Close()
	r.Machine, r.Version = benchkit.DescribeMachine(), benchkit.BinaryVersion(outer.BuildBinary())
	for i := 0; i < *trials; i++ {
		t := benchkit.NewTB(*verbose)
		progress("trial %d/%d: starting 1 manager + 3 workers", i+1, *trials)
		r.Trials = append(r.Trials, trial(t, *replicas, uint64(*parallelism), *interval, *unhealthy, figures))
		t.Close()
		harness.SweepNetns()
	}
	for k, ds := range figures {
		r.Summaries[k] = benchkit.Summarize(ds)
	}
	for _, tr := range r.Trials {
		for k, s := range map[string]Step{"start-first": tr.StartFirst, "stop-first": tr.StopFirst, "rollback": tr.Rollback} {
			r.FailedTotal[k] += s.Failed
			r.RequestsTotal[k] += s.Requests
		}
	}
	outer.Close()
	if *asJSON {
		benchkit.PrintJSON(r)
		return
	}
	summary(r)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "deploy: "+format+"\n", args...)
}

func step(res deploy.Result) Step {
	s := Step{Seconds: res.Took.Seconds(), Requests: res.Requests(), Failed: res.Failed()}
	if res.Err != nil {
		s.Err = res.Err.Error()
	}
	return s
}

func ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = benchkit.MS(d)
	}
	return out
}

func trial(t *benchkit.TB, replicas int, parallelism uint64, interval time.Duration, unhealthy int, figures map[string][]time.Duration) Trial {
	var tr Trial
	e := deploy.Start(t, 1, 3, "--log-level", "info")
	e.Logf = func(format string, args ...any) { progress(format, args...) }
	// The rollback config: start-first with the updates' parallelism and
	// monitor (docker's default would be one at a time, stop-first, 5 s).
	spec := e.Spec("web", int64(replicas), e.V1, interval, nil)
	spec.Rollback = deploy.Update(parallelism, shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST, shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, time.Second)
	e.CreateService(spec)
	progress("web: %d replicas healthy and answering", replicas)

	start := e.RollUnderLoad("web", "1", e.V2, "2", replicas, shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST, parallelism)
	tr.StartFirst = step(start)
	stop := e.RollUnderLoad("web", "2", e.V3, "3", replicas, shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST, parallelism)
	tr.StopFirst = step(stop)
	if start.Err == nil {
		figures[keyStart] = append(figures[keyStart], start.Took)
	}
	if stop.Err == nil {
		figures[keyStop] = append(figures[keyStop], stop.Took)
	}
	var healthy []time.Duration
	for _, res := range []deploy.Result{start, stop} {
		ds, err := e.HealthyToTraffic("web", res)
		if err != nil {
			tr.Errors = append(tr.Errors, "healthy → traffic: "+err.Error())
		}
		healthy = append(healthy, ds...)
	}
	tr.HealthyToTraffic = ms(healthy)
	figures[keyHealthy] = append(figures[keyHealthy], healthy...)

	rb := e.RollbackUnderLoad("web", "2", replicas)
	tr.Rollback = step(rb)
	if rb.Err == nil {
		figures[keyRollback] = append(figures[keyRollback], rb.Took)
	}

	if unhealthy > 0 {
		loads := e.StartLoads("web")
		var fromU, fromF []time.Duration
		for i := 0; i < unhealthy; i++ {
			cs := e.Containers("web")
			sort.Slice(cs, func(a, b int) bool { return cs[a].ID < cs[b].ID })
			u, f, err := e.UnhealthyTimes("web", loads, cs[0], replicas)
			if err != nil {
				tr.Errors = append(tr.Errors, "unhealthy → no traffic: "+err.Error())
				break
			}
			fromU, fromF = append(fromU, u), append(fromF, f)
		}
		loads.Stop()
		tr.UnhealthyToNone, tr.FileToNone = ms(fromU), ms(fromF)
		figures[keyUnhealthy] = append(figures[keyUnhealthy], fromU...)
		figures[keyFile] = append(figures[keyFile], fromF...)
	}
	for _, s := range []Step{tr.StartFirst, tr.StopFirst, tr.Rollback} {
		if s.Err != "" {
			tr.Errors = append(tr.Errors, s.Err)
		}
	}
	progress("trial: start-first %.1fs (%d failed), stop-first %.1fs (%d failed), rollback %.1fs (%d failed), %d errors",
		tr.StartFirst.Seconds, tr.StartFirst.Failed, tr.StopFirst.Seconds, tr.StopFirst.Failed, tr.Rollback.Seconds, tr.Rollback.Failed, len(tr.Errors))
	return tr
}

func summary(r *Result) {
	fmt.Printf("machine: %s\nbinary: %s\n%d trials: %d replicas, parallelism %d, health check every %s, monitor 1s\n\n",
		r.Machine, r.Version, len(r.Trials), r.Replicas, r.Parallelism, r.HealthInterval)
	fmt.Printf("%-62s %4s %10s %10s %10s\n", "", "n", "median", "min", "max")
	for _, k := range []string{keyStart, keyStop, keyRollback, keyHealthy, keyUnhealthy, keyFile} {
		s := r.Summaries[k]
		fmt.Printf("%-62s %4d %8.0fms %8.0fms %8.0fms\n", k, s.N, s.P50MS, s.MinMS, s.MaxMS)
	}
	fmt.Println()
	for _, k := range []string{"start-first", "stop-first", "rollback"} {
		fmt.Printf("failed requests during %-12s %d of %d\n", k+":", r.FailedTotal[k], r.RequestsTotal[k])
	}
	for i, tr := range r.Trials {
		for _, e := range tr.Errors {
			fmt.Printf("\ntrial %d: %s\n", i+1, strings.TrimSpace(e))
		}
	}
}
