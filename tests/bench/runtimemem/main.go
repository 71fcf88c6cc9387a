// Command runtimemem measures what running containers costs in memory on
// one unclustered shoal daemon:
//
//   - the daemon's VmRSS idle before any image or container, after the
//     test image was pulled, and with N running containers
//     (`shoal run -d IMG sleep 1h`);
//   - each container's supervisor, the `shoal-shim __shim DIR` process
//     (a child of the daemon until the daemon restarts): VmRSS and RssAnon
//     from /proc/PID/status, Pss from /proc/PID/smaps_rollup, mean and
//     max. Pss divides the pages the shims share (the binary's text) among
//     them, so it is the honest per-container cost; VmRSS counts the
//     shared pages in every shim;
//   - the daemon's RSS growth per container.
//
// The containers' own processes (whoami sleep) are reported apart: they
// are the workload, not the supervisor.
//
//	SHOAL_BIN=bin/shoal go run ./tests/bench/runtimemem [-containers 50] [-idle 5s] [-json]
//
// Needs root.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/testimage"
)

type config struct {
	Containers   int           `json:"containers"`
	Idle         time.Duration `json:"idle_ns"`
	LogLevel     string        `json:"log_level"`
	TargetMB     float64       `json:"target_supervisor_mb"`
	MaxLoad      float64       `json:"max_load1"`
	QuietTimeout time.Duration `json:"quiet_timeout_ns"`
	JSON         bool          `json:"-"`
	Verbose      bool          `json:"-"`
}

// proc is one process's memory.
type proc struct {
	PID    int             `json:"pid"`
	PPID   int             `json:"ppid"`
	Status benchkit.Mem    `json:"status"`
	Rollup benchkit.Rollup `json:"smaps_rollup"`
}

// stat is the mean and max of a per-process figure, in KiB.
type stat struct {
	MeanKiB float64 `json:"mean_kib"`
	MaxKiB  int64   `json:"max_kib"`
	MinKiB  int64   `json:"min_kib"`
}

func (s stat) String() string {
	return fmt.Sprintf("mean %6.2f MiB (%5.2f MB), min %6.2f MiB, max %6.2f MiB",
		s.MeanKiB/1024, s.MeanKiB*1024/1e6, float64(s.MinKiB)/1024, float64(s.MaxKiB)/1024)
}

type group struct {
	N       int    `json:"n"`
	VmRSS   stat   `json:"vm_rss"`
	RssAnon stat   `json:"rss_anon"`
	RssFile stat   `json:"rss_file"`
	Pss     stat   `json:"pss"`
	PssAnon stat   `json:"pss_anon"`
	PssFile stat   `json:"pss_file"`
	Threads stat   `json:"threads"` // counts, not KiB
	Procs   []proc `json:"procs"`
}

type result struct {
	Machine   benchkit.Machine `json:"machine"`
	Config    config           `json:"config"`
	Quiet     benchkit.Quiet   `json:"quiet"`
	LoadEnd   benchkit.LoadAvg `json:"load_end"`
	Version   string           `json:"binary_version"` // `shoal version` of the benchmarked binary
	Image     string           `json:"image"`
	ShimPath  string           `json:"shim_binary"`
	ShimBytes int64            `json:"shim_binary_bytes"`
	BinBytes  int64            `json:"shoal_binary_bytes"`

	DaemonIdle      benchkit.Mem    `json:"daemon_idle"`
	DaemonPulled    benchkit.Mem    `json:"daemon_image_pulled"`
	DaemonLoaded    benchkit.Mem    `json:"daemon_with_containers"`
	DaemonRollupIdl benchkit.Rollup `json:"daemon_rollup_idle"`
	DaemonRollupLd  benchkit.Rollup `json:"daemon_rollup_with_containers"`
	// DaemonPerCtrKiB is (daemon VmRSS with N containers - after the
	// pull) / N; DaemonAnonPerCtrKiB the same for RssAnon.
	DaemonPerCtrKiB     float64 `json:"daemon_growth_per_container_kib"`
	DaemonAnonPerCtrKiB float64 `json:"daemon_anon_growth_per_container_kib"`
	// PerContainerKiB is the shims' mean Pss plus the daemon's VmRSS
	// growth per container: all a container costs outside its own
	// processes.
	PerContainerKiB float64 `json:"per_container_total_kib"`

	StartSeconds float64 `json:"start_all_seconds"`
	Shims        group   `json:"shims"`
	Workloads    group   `json:"workloads"`
	// PssMeetsTarget etc. say which metric is at or below the target.
	PssMeetsTarget   bool `json:"pss_meets_target"`
	AnonMeetsTarget  bool `json:"rss_anon_meets_target"`
	VmRSSMeetsTarget bool `json:"vm_rss_meets_target"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Containers, "containers", 50, "running containers to measure")
	flag.DurationVar(&cfg.Idle, "idle", 5*time.Second, "how long to idle before each reading")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level")
	flag.Float64Var(&cfg.TargetMB, "target-mb", 2, "target supervisor memory per container, MB (10^6 bytes)")
	flag.Float64Var(&cfg.MaxLoad, "max-load", 0.7, "wait until the 1-minute load average is below this before measuring")
	flag.DurationVar(&cfg.QuietTimeout, "quiet-timeout", 3*time.Minute, "longest wait for that load (then measure anyway and say so)")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case cfg.Containers < 1 || cfg.Containers > 500:
		usage("-containers must be 1..500")
	case cfg.Idle < 0 || cfg.Idle > 10*time.Minute:
		usage("-idle must be 0..10m")
	case cfg.QuietTimeout < 0 || cfg.QuietTimeout > 30*time.Minute:
		usage("-quiet-timeout must be 0..30m")
	}
	if os.Getenv("SHOAL_BIN") == "" {
		progress("SHOAL_BIN is not set: building cmd/shoal without the embedded shim; benchmark a `make build` binary with SHOAL_BIN=bin/shoal")
	}
	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "runtimemem:", msg)
	os.Exit(2)
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg}
	bin := tb.BuildBinary()
	res.Version = benchkit.BinaryVersion(bin)
	if st, err := os.Stat(bin); err == nil {
		res.BinBytes = st.Size()
	}
	progress("building the test image and serving it on loopback")
	img := testimage.Serve(tb, testimage.Options{Tag: "1"})
	res.Image = img.Ref

	res.Quiet = benchkit.WaitQuiet(cfg.MaxLoad, cfg.QuietTimeout, progress)
	progress("%s", res.Quiet)

	node := benchkit.StartRuntimeNode(tb, "runtimemem", benchkit.DaemonArgs(cfg.LogLevel)...)
	daemon := node.PID()
	readDaemon := func(what string) benchkit.Mem {
		progress("%s: idling %s", what, cfg.Idle)
		time.Sleep(cfg.Idle)
		m, err := benchkit.ReadMem(daemon)
		if err != nil {
			tb.Fatalf("daemon memory: %v", err)
		}
		return m
	}
	res.DaemonIdle = readDaemon("daemon idle, no image")
	res.DaemonRollupIdl, _ = benchkit.ReadRollup(daemon)
	node.MustCLI("image", "pull", img.Ref)
	res.DaemonPulled = readDaemon("daemon idle, image pulled")

	progress("starting %d containers", cfg.Containers)
	start := time.Now()
	var ids []string
	for i := 0; i < cfg.Containers; i++ {
		out, err := node.CLI("run", "-d", img.Ref, "sleep", "1h")
		if err != nil {
			tb.Fatalf("container %d: %v", i+1, err)
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	res.StartSeconds = round2(time.Since(start).Seconds())
	res.ShimPath = node.ShimInstalled() // installed at the first start
	if st, err := os.Stat(res.ShimPath); err == nil {
		res.ShimBytes = st.Size()
	}
	res.DaemonLoaded = readDaemon(fmt.Sprintf("daemon with %d containers", cfg.Containers))
	res.DaemonRollupLd, _ = benchkit.ReadRollup(daemon)
	n := float64(cfg.Containers)
	res.DaemonPerCtrKiB = round2(float64(res.DaemonLoaded.VmRSS-res.DaemonPulled.VmRSS) / n)
	res.DaemonAnonPerCtrKiB = round2(float64(res.DaemonLoaded.RssAnon-res.DaemonPulled.RssAnon) / n)

	containers := filepath.Join(node.DataDir(), "runtime", "containers") + "/"
	shims := benchkit.FindProcs(func(_ int, args []string) bool {
		return len(args) >= 3 && args[1] == "__shim" && strings.HasPrefix(args[2], containers)
	})
	if len(shims) != cfg.Containers {
		tb.Fatalf("found %d shims for %d containers", len(shims), cfg.Containers)
	}
	res.Shims = measure(tb, shims)
	for _, p := range res.Shims.Procs {
		if p.PPID != daemon {
			tb.Errorf("shim %d has parent %d, not the daemon %d", p.PID, p.PPID, daemon)
		}
	}
	// The workloads are the shims' children.
	isShim := map[int]bool{}
	for _, p := range shims {
		isShim[p] = true
	}
	workloads := benchkit.FindProcs(func(pid int, _ []string) bool { return isShim[benchkit.PPID(pid)] })
	res.Workloads = measure(tb, workloads)

	target := cfg.TargetMB * 1e6 / 1024 // KiB
	res.PssMeetsTarget = res.Shims.Pss.MeanKiB <= target
	res.AnonMeetsTarget = res.Shims.RssAnon.MeanKiB <= target
	res.VmRSSMeetsTarget = res.Shims.VmRSS.MeanKiB <= target
	res.PerContainerKiB = round2(res.Shims.Pss.MeanKiB + res.DaemonPerCtrKiB)
	res.LoadEnd, _ = benchkit.ReadLoadAvg()

	progress("removing %d containers", len(ids))
	for _, id := range ids {
		if _, err := node.CLI("rm", "-f", id); err != nil {
			tb.Errorf("rm -f %s: %v", id, err)
		}
	}
	return res
}

// measure reads the memory of pids.
func measure(tb *benchkit.TB, pids []int) group {
	g := group{N: len(pids)}
	var vm, an, fi, ps, pa, pf, th []int64
	for _, pid := range pids {
		m, err := benchkit.ReadMem(pid)
		if err != nil {
			tb.Fatalf("memory of %d: %v", pid, err)
		}
		r, err := benchkit.ReadRollup(pid)
		if err != nil {
			tb.Fatalf("smaps_rollup of %d: %v", pid, err)
		}
		g.Procs = append(g.Procs, proc{PID: pid, PPID: benchkit.PPID(pid), Status: m, Rollup: r})
		vm, an, fi = append(vm, m.VmRSS), append(an, m.RssAnon), append(fi, m.RssFile)
		ps, pa, pf = append(ps, r.Pss), append(pa, r.PssAnon), append(pf, r.PssFile)
		th = append(th, m.Threads)
	}
	g.VmRSS, g.RssAnon, g.RssFile = stats(vm), stats(an), stats(fi)
	g.Pss, g.PssAnon, g.PssFile = stats(ps), stats(pa), stats(pf)
	g.Threads = stats(th)
	return g
}

func stats(xs []int64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	s := stat{MinKiB: xs[0], MaxKiB: xs[0]}
	var sum int64
	for _, x := range xs {
		sum += x
		s.MaxKiB = max(s.MaxKiB, x)
		s.MinKiB = min(s.MinKiB, x)
	}
	s.MeanKiB = round2(float64(sum) / float64(len(xs)))
	return s
}

func round2(f float64) float64 {
	if f < 0 {
		return -round2(-f)
	}
	return float64(int(f*100+0.5)) / 100
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func printSummary(r result) {
	fmt.Printf("runtimemem: memory of a shoal daemon and its container supervisors, %d containers running `whoami sleep 1h`\n", r.Config.Containers)
	fmt.Printf("machine: %s (%s)\n", r.Machine, r.Version)
	shim := "none embedded (the daemon runs itself as the shim)"
	if r.ShimPath != "" {
		shim = fmt.Sprintf("%s, %.2f MiB", r.ShimPath, float64(r.ShimBytes)/(1<<20))
	}
	fmt.Printf("shoal binary %.1f MiB; shim %s\n", float64(r.BinBytes)/(1<<20), shim)
	fmt.Printf("%s; load at the end %s\n\n", r.Quiet, r.LoadEnd)
	fmt.Printf("%-34s %9s %9s %9s %9s\n", "daemon", "VmRSS", "anon", "file", "threads")
	for _, d := range []struct {
		name string
		m    benchkit.Mem
	}{{"idle, no image", r.DaemonIdle}, {"idle, image pulled", r.DaemonPulled}, {fmt.Sprintf("%d containers running", r.Config.Containers), r.DaemonLoaded}} {
		fmt.Printf("%-34s %5.1f MiB %5.1f MiB %5.1f MiB %9d\n", d.name, mib(d.m.VmRSS), mib(d.m.RssAnon), mib(d.m.RssFile), d.m.Threads)
	}
	fmt.Printf("daemon growth per container: VmRSS %.1f KiB, anon %.1f KiB (started %d containers in %.2f s)\n\n",
		r.DaemonPerCtrKiB, r.DaemonAnonPerCtrKiB, r.Config.Containers, r.StartSeconds)
	for _, g := range []struct {
		name string
		g    group
	}{{"supervisors (shoal-shim __shim)", r.Shims}, {"workloads (whoami sleep, for reference)", r.Workloads}} {
		fmt.Printf("%s, %d processes:\n", g.name, g.g.N)
		fmt.Printf("  VmRSS    %s\n  RssAnon  %s\n  RssFile  %s\n", g.g.VmRSS, g.g.RssAnon, g.g.RssFile)
		fmt.Printf("  Pss      %s\n  PssAnon  %s\n  PssFile  %s\n", g.g.Pss, g.g.PssAnon, g.g.PssFile)
		fmt.Printf("  threads  mean %.1f, max %d\n\n", g.g.Threads.MeanKiB, g.g.Threads.MaxKiB)
	}
	t := r.Config.TargetMB
	fmt.Printf("target supervisor <= %.0f MB per container: Pss %s (%.2f MB), RssAnon %s (%.2f MB), VmRSS %s (%.2f MB)\n", t,
		verdict(r.PssMeetsTarget), r.Shims.Pss.MeanKiB*1024/1e6,
		verdict(r.AnonMeetsTarget), r.Shims.RssAnon.MeanKiB*1024/1e6,
		verdict(r.VmRSSMeetsTarget), r.Shims.VmRSS.MeanKiB*1024/1e6)
	fmt.Printf("per container outside its own processes (shim Pss + daemon growth): %.1f KiB = %.2f MB\n",
		r.PerContainerKiB, r.PerContainerKiB*1024/1e6)
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

// progress goes to stderr so stdout holds only the result.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "runtimemem: "+format+"\n", args...)
}
