// Command runstart measures the wall time of starting a container that
// does nothing, `shoal run --rm --entrypoint /bin/true IMG`, next to
// `runc run` of the same image's root filesystem and next to
// `unshare --pid --fork --mount --uts --ipc --net /bin/true`, all timed by
// hyperfine in one invocation (no shell, -N), plus `shoal version` as the
// cost of starting the CLI process alone.
//
// Then it breaks shoal's time down: a Go client makes the CLI's calls
// over the daemon's socket (new connection, CreateContainer,
// StartContainer, ContainerLogs until the end, WaitContainer,
// RemoveContainer) and times each.
//
// The image is tests/testimage's whoami image (static busybox has
// /bin/true), served from a loopback registry. The runc bundle is the
// same image written as an OCI layout and unpacked with umoci, its
// config.json set to run /bin/true without a terminal.
//
//	SHOAL_BIN=bin/shoal go run ./tests/bench/runstart [-runs 100] [-warmup 5] [-rounds 1] [-phase-runs 100] [-json]
//
// Needs root, hyperfine, runc, umoci and unshare.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/testimage"
)

type config struct {
	Runs         int           `json:"runs"`
	Warmup       int           `json:"warmup"`
	Rounds       int           `json:"rounds"`
	PhaseRuns    int           `json:"phase_runs"`
	ProbeRuns    int           `json:"cgroup_probe_runs"`
	LogLevel     string        `json:"log_level"`
	MaxLoad      float64       `json:"max_load1"`
	QuietTimeout time.Duration `json:"quiet_timeout_ns"`
	TargetMS     float64       `json:"target_shoal_median_ms"`
	TargetRatio  float64       `json:"target_runc_over_shoal"`
	JSON         bool          `json:"-"`
	Verbose      bool          `json:"-"`
}

// Names of the timed commands.
const (
	cmdShoal   = "shoal run --rm"
	cmdRunc    = "runc run"
	cmdUnshare = "unshare"
	cmdVersion = "shoal version"
)

type timed struct {
	Name    string `json:"name"`
	Command string `json:"command,omitempty"`
	// MedianMS is the middle value (the mean of the two middle ones for
	// an even count, as hyperfine's median); Summary's p50 is the
	// nearest-rank one.
	MedianMS float64          `json:"median_ms"`
	Summary  benchkit.Summary `json:"summary"`
}

func newTimed(name, command string, ds []time.Duration) timed {
	return timed{Name: name, Command: command, MedianMS: benchkit.MS(benchkit.Median(ds)), Summary: benchkit.Summarize(ds)}
}

type result struct {
	Machine benchkit.Machine `json:"machine"`
	Config  config           `json:"config"`
	Quiet   benchkit.Quiet   `json:"quiet"`
	// LoadEnd is the load average when the measurements ended.
	LoadEnd          benchkit.LoadAvg `json:"load_end"`
	Version          string           `json:"binary_version"` // `shoal version` of the benchmarked binary
	Image            string           `json:"image"`
	ShimBinary       string           `json:"shim_binary"` // "" when the daemon runs itself as the shim
	RuncVersion      string           `json:"runc_version"`
	RuncSpecNS       []string         `json:"runc_bundle_namespaces"`
	Commands         []timed          `json:"commands"`
	ShoalOverRunc    float64          `json:"shoal_over_runc_median"`
	ShoalOverUnshare float64          `json:"shoal_over_unshare_median"`
	RuncOverShoal    float64          `json:"runc_over_shoal_median"`
	// Phases are the Go client's timings of the CLI's calls, each run
	// starting one `shoal run` median after the previous one (PhasePeriod),
	// so that the kernel sees containers start at the CLI's pace;
	// PhasesB2B the same with each run right after the previous one.
	PhasePeriod time.Duration `json:"phase_period_ns"`
	Phases      []timed       `json:"phases"`
	PhasesB2B   []timed       `json:"phases_back_to_back"`
	// CLIOverheadMS is the median of `shoal run` minus the median of the
	// paced Go client's whole sequence: what the CLI process adds.
	CLIOverheadMS float64 `json:"cli_overhead_ms"`
	// Attach is the cgroup attach probe; AttachFirst the first write of
	// each move (the one that waits), AttachAll all writes of a move.
	// ShimStart is the wall time of running the installed shoal-shim with
	// no arguments (it prints its usage and exits 2): what starting one of
	// the two Go processes of a container (shim, then init) costs.
	ShimStart   timed        `json:"shim_process_start"`
	Attach      *attachProbe `json:"cgroup_attach,omitempty"`
	AttachFirst timed        `json:"cgroup_attach_first"`
	AttachAll   timed        `json:"cgroup_attach_all"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Runs, "runs", 100, "timed runs of each command")
	flag.IntVar(&cfg.Warmup, "warmup", 5, "untimed runs of each command before its timed runs (in each round)")
	flag.IntVar(&cfg.Rounds, "rounds", 1, "hyperfine invocations the runs are split into, rotating the command order")
	flag.IntVar(&cfg.PhaseRuns, "phase-runs", 100, "runs of the Go client that times each call")
	flag.IntVar(&cfg.ProbeRuns, "probe-runs", 20, "moves of a process between cgroups, 100 ms apart, to time the cgroup attach (0: skip)")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level")
	flag.Float64Var(&cfg.MaxLoad, "max-load", 0.7, "wait until the 1-minute load average is below this before measuring")
	flag.DurationVar(&cfg.QuietTimeout, "quiet-timeout", 3*time.Minute, "longest wait for that load (then measure anyway and say so)")
	flag.Float64Var(&cfg.TargetMS, "target-ms", 10, "target median of shoal run, ms")
	flag.Float64Var(&cfg.TargetRatio, "target-ratio", 3, "target runc median / shoal median")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case cfg.Runs < 2 || cfg.Runs > 10000:
		usage("-runs must be 2..10000")
	case cfg.Warmup < 0 || cfg.Warmup > 1000:
		usage("-warmup must be 0..1000")
	case cfg.Rounds < 1 || cfg.Rounds > cfg.Runs/2:
		usage("-rounds must be 1..runs/2")
	case cfg.PhaseRuns < 0 || cfg.PhaseRuns > 10000:
		usage("-phase-runs must be 0..10000")
	case cfg.ProbeRuns < 0 || cfg.ProbeRuns > 1000:
		usage("-probe-runs must be 0..1000")
	case cfg.QuietTimeout < 0 || cfg.QuietTimeout > 30*time.Minute:
		usage("-quiet-timeout must be 0..30m")
	}
	for _, tool := range []string{"hyperfine", "runc", "umoci", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "runstart: %s is missing: apt-get install -y runc umoci hyperfine util-linux\n", tool)
			os.Exit(2)
		}
	}
	if os.Getenv("SHOAL_BIN") == "" {
		progress("SHOAL_BIN is not set: building cmd/shoal without the embedded shim; benchmark a `make build` binary with SHOAL_BIN=bin/shoal")
	}

	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "runstart:", msg)
	os.Exit(2)
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg}
	bin := tb.BuildBinary()
	res.Version = benchkit.BinaryVersion(bin)
	if out, err := exec.Command("runc", "--version").Output(); err == nil {
		res.RuncVersion = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}

	progress("building the test image and serving it on loopback")
	img := testimage.Serve(tb, testimage.Options{Tag: "1"})
	res.Image = img.Ref

	// runc: a bundle of the same image, a state root and a cgroup parent
	// of its own.
	runcParent := fmt.Sprintf("shoal-bench-%d-runc", os.Getpid())
	tb.Cleanup(func() { benchkit.RemoveCgroupParent(runcParent) })
	work := filepath.Join(tb.Root(), "runc")
	if err := os.MkdirAll(work, 0o700); err != nil {
		tb.Fatal(err)
	}
	bundle, err := makeBundle(img.Image, work, "/"+runcParent+"/runstart")
	if err != nil {
		tb.Fatal(err)
	}
	res.RuncSpecNS = bundleNamespaces(bundle)
	runcRoot := filepath.Join(work, "state")
	const runcID = "shoal-bench-runstart"
	tb.Cleanup(func() {
		// Only if a run was interrupted: runc run deletes its container
		// when it exits.
		_ = exec.Command("runc", "--root", runcRoot, "delete", "--force", runcID).Run()
	})

	node := benchkit.StartRuntimeNode(tb, "runstart", benchkit.DaemonArgs(cfg.LogLevel)...)
	progress("pulling %s", img.Ref)
	node.MustCLI("image", "pull", img.Ref)

	unshare, _ := exec.LookPath("unshare")
	cmds := []command{
		{cmdShoal, fmt.Sprintf("%s -H unix://%s run --rm --entrypoint /bin/true %s", bin, node.Socket, img.Ref)},
		{cmdRunc, fmt.Sprintf("runc --root %s run --bundle %s %s", runcRoot, bundle, runcID)},
		{cmdUnshare, unshare + " --pid --fork --mount --uts --ipc --net /bin/true"},
		{cmdVersion, bin + " version"},
	}
	for _, c := range cmds {
		if strings.ContainsAny(c.Line, "\"'\\") {
			tb.Fatalf("command %q holds quotes: hyperfine -N would split it wrongly", c.Line)
		}
		f := strings.Fields(c.Line)
		if out, err := exec.Command(f[0], f[1:]...).CombinedOutput(); err != nil {
			tb.Fatalf("%s: %v\n%s", c.Line, err, out)
		}
	}

	res.ShimBinary = node.ShimInstalled() // installed by now: a container ran
	res.Quiet = benchkit.WaitQuiet(cfg.MaxLoad, cfg.QuietTimeout, progress)
	progress("%s", res.Quiet)

	times, err := runHyperfine(work, cmds, cfg.Runs, cfg.Warmup, cfg.Rounds, tb.Cleanup)
	if err != nil {
		tb.Fatal(err)
	}
	med := map[string]float64{}
	for _, c := range cmds {
		t := newTimed(c.Name, c.Line, times[c.Name])
		res.Commands = append(res.Commands, t)
		med[c.Name] = t.MedianMS
	}
	res.ShoalOverRunc = ratio(med[cmdShoal], med[cmdRunc])
	res.ShoalOverUnshare = ratio(med[cmdShoal], med[cmdUnshare])
	res.RuncOverShoal = ratio(med[cmdRunc], med[cmdShoal])

	if cfg.PhaseRuns > 0 {
		progress("timing the CLI's calls with a Go client, %d runs", cfg.PhaseRuns)
		res.PhasePeriod = time.Duration(med[cmdShoal] * float64(time.Millisecond))
		for _, set := range []struct {
			period time.Duration
			out    *[]timed
		}{{res.PhasePeriod, &res.Phases}, {0, &res.PhasesB2B}} {
			ph, err := measurePhases(node, img.Ref, cfg.PhaseRuns, set.period)
			if err != nil {
				tb.Fatal(err)
			}
			for _, name := range phaseNames {
				*set.out = append(*set.out, newTimed(name, "", ph[name]))
			}
		}
		total := res.Phases[len(res.Phases)-1].MedianMS
		res.CLIOverheadMS = round2(med[cmdShoal] - total)
	}
	if res.ShimBinary != "" && cfg.PhaseRuns > 0 {
		ds, err := timeShim(res.ShimBinary, cfg.PhaseRuns)
		if err != nil {
			tb.Fatal(err)
		}
		res.ShimStart = newTimed("shim start", res.ShimBinary, ds)
	}
	if cfg.ProbeRuns > 0 {
		progress("timing %d cgroup attaches, 100 ms apart", cfg.ProbeRuns)
		parent := fmt.Sprintf("shoal-bench-%d-probe", os.Getpid())
		tb.Cleanup(func() { benchkit.RemoveCgroupParent(parent) })
		p, err := probeAttach(parent, cfg.ProbeRuns, 100*time.Millisecond, tb.Cleanup)
		if err != nil {
			tb.Fatalf("cgroup attach probe: %v", err)
		}
		res.Attach = &p
		res.AttachFirst = newTimed("first write", "", p.First)
		res.AttachAll = newTimed(fmt.Sprintf("all %d writes", p.Hierarchies), "", p.All)
	}
	res.LoadEnd, _ = benchkit.ReadLoadAvg()
	if out, err := node.CLI("ps", "-a", "-q"); err != nil || strings.TrimSpace(out) != "" {
		tb.Errorf("containers left after the runs: %q %v", out, err)
	}
	return res
}

// timeShim runs the shim binary with no arguments n times, one after the
// other, and times each run; it must exit 2 (usage).
func timeShim(shim string, n int) ([]time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		err := exec.Command(shim).Run()
		d := time.Since(start)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			return nil, fmt.Errorf("%s with no arguments: %v, want exit status 2", shim, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round2(a / b)
}

func round2(f float64) float64 {
	if f < 0 {
		return -round2(-f)
	}
	return float64(int(f*100+0.5)) / 100
}

func printSummary(r result) {
	fmt.Printf("runstart: wall time of starting a container that runs /bin/true (hyperfine -N, %d runs after %d warm-up, %d round(s))\n",
		r.Config.Runs, r.Config.Warmup, r.Config.Rounds)
	fmt.Printf("machine: %s (%s)\n", r.Machine, r.Version)
	fmt.Printf("image: %s; runc: %s, bundle namespaces %s; shim: %s\n", r.Image, r.RuncVersion,
		strings.Join(r.RuncSpecNS, ","), orNone(r.ShimBinary, "none embedded (the daemon runs itself as the shim)"))
	fmt.Printf("%s; load at the end %s\n\n", r.Quiet, r.LoadEnd)
	fmt.Printf("%-16s %9s %9s %9s %9s %9s\n", "command", "median", "mean", "min", "p90", "max")
	for _, c := range r.Commands {
		s := c.Summary
		fmt.Printf("%-16s %6.2f ms %6.2f ms %6.2f ms %6.2f ms %6.2f ms\n", c.Name, c.MedianMS, s.MeanMS, s.MinMS, s.P90MS, s.MaxMS)
	}
	fmt.Println()
	for _, c := range r.Commands {
		fmt.Printf("  %-16s %s\n", c.Name+":", c.Command)
	}
	fmt.Printf("\nshoal / runc = %.2f, shoal / unshare = %.2f (medians); runc is %.2fx shoal\n", r.ShoalOverRunc, r.ShoalOverUnshare, r.RuncOverShoal)
	shoal := r.Commands[0].MedianMS
	fmt.Printf("target shoal median <= %.0f ms: %s (%.2f ms, %.2fx the target)\n", r.Config.TargetMS,
		verdict(shoal <= r.Config.TargetMS), shoal, shoal/r.Config.TargetMS)
	fmt.Printf("target runc / shoal >= %.0fx: %s (%.2fx)\n", r.Config.TargetRatio, verdict(r.RuncOverShoal >= r.Config.TargetRatio), r.RuncOverShoal)
	if len(r.Phases) > 0 {
		printPhases(r)
	}
	if r.Attach != nil {
		fmt.Printf("\ncgroup attach (a PID written to cgroup.procs in each of %d hierarchies, %d moves %s apart):\n",
			r.Attach.Hierarchies, len(r.Attach.All), r.Attach.Pause)
		fmt.Printf("  first write median %.2f ms (p90 %.2f ms); all writes median %.2f ms\n",
			r.AttachFirst.MedianMS, r.AttachFirst.Summary.P90MS, r.AttachAll.MedianMS)
	}
}

func printPhases(r result) {
	fmt.Printf("\nshoal's calls from a Go client, %d runs each (new connection each run, like the CLI);\n", r.Config.PhaseRuns)
	fmt.Printf("paced: one run every %.2f ms (the shoal run median); back-to-back: each run right after the previous\n", benchkit.MS(r.PhasePeriod))
	fmt.Printf("%-8s %16s %16s %16s | %16s %16s\n", "phase", "paced median", "mean", "p90", "b2b median", "p90")
	for i, p := range r.Phases {
		s, b := p.Summary, r.PhasesB2B[i]
		fmt.Printf("%-8s %13.2f ms %13.2f ms %13.2f ms | %13.2f ms %13.2f ms\n", p.Name, p.MedianMS, s.MeanMS, s.P90MS, b.MedianMS, b.Summary.P90MS)
	}
	fmt.Printf("CLI overhead (shoal run median - paced Go client total median): %.2f ms; `shoal version` alone: %.2f ms\n",
		r.CLIOverheadMS, r.Commands[3].MedianMS)
	if r.ShimStart.Summary.N > 0 {
		fmt.Printf("shoal-shim process start (no arguments, exits 2), %d runs: median %.2f ms, p90 %.2f ms\n",
			r.ShimStart.Summary.N, r.ShimStart.MedianMS, r.ShimStart.Summary.P90MS)
	}
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// progress goes to stderr so stdout holds only the result.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "runstart: "+format+"\n", args...)
}
