// Command pull measures pull-and-unpack throughput of a large image from
// a loopback registry: `shoal image pull REF` into a fresh daemon data
// directory, against `skopeo copy docker://REF oci:DIR:TAG` followed by
// `umoci unpack --image DIR:TAG BUNDLE`, the same bytes from the same
// registry, trials interleaved (the order alternates each trial).
//
// The image is tests/testimage's whoami image with an extra layer of
// -mb MiB of incompressible bytes. Throughput is the image's pull size
// (config and compressed layers) over the wall time.
//
// shoal syncs the filesystem before it records a layer (syncfs);
// skopeo and umoci write without syncing. So the program also times a
// `sync` right after umoci, reported apart and as "durable", and runs an
// untimed `sync` before every timed step so that no tool pays for the
// previous one's dirty pages.
//
//	SHOAL_BIN=bin/shoal go run ./tests/bench/pull [-trials 5] [-mb 100] [-json]
//
// Needs root, skopeo and umoci.
package main

import (
	"bytes"
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

// randomSeed seeds the image's random layer.
const randomSeed = 3

type config struct {
	Trials       int           `json:"trials"`
	MB           int           `json:"random_mib"`
	LogLevel     string        `json:"log_level"`
	MaxLoad      float64       `json:"max_load1"`
	QuietTimeout time.Duration `json:"quiet_timeout_ns"`
	JSON         bool          `json:"-"`
	Verbose      bool          `json:"-"`
}

// trial is one trial's wall times.
type trial struct {
	First  string        `json:"first"` // which tool ran first
	Shoal  time.Duration `json:"shoal_pull_ns"`
	Skopeo time.Duration `json:"skopeo_copy_ns"`
	Umoci  time.Duration `json:"umoci_unpack_ns"`
	Sync   time.Duration `json:"sync_after_umoci_ns"`
}

// figure is a median and what it means in throughput.
type figure struct {
	MedianS float64 `json:"median_s"`
	MinS    float64 `json:"min_s"`
	MaxS    float64 `json:"max_s"`
	MBps    float64 `json:"mb_per_s"` // image size in MB (10^6) / median
}

type result struct {
	Machine benchkit.Machine `json:"machine"`
	Config  config           `json:"config"`
	Quiet   benchkit.Quiet   `json:"quiet"`
	LoadEnd benchkit.LoadAvg `json:"load_end"`
	Version string           `json:"binary_version"` // `shoal version` of the benchmarked binary
	Image   string           `json:"image"`
	// SizeBytes is what a pull transfers: config and compressed layers.
	SizeBytes int64 `json:"size_bytes"`
	// UnpackedBytes is the size of the files of the unpacked root
	// filesystem (umoci's bundle).
	UnpackedBytes int64   `json:"unpacked_bytes"`
	Skopeo        string  `json:"skopeo_version"`
	Umoci         string  `json:"umoci_version"`
	Trials        []trial `json:"trials"`

	ShoalPull   figure `json:"shoal_pull"`
	SkopeoCopy  figure `json:"skopeo_copy"`
	UmociUnpack figure `json:"umoci_unpack"`
	SkopeoUmoci figure `json:"skopeo_plus_umoci"`
	Durable     figure `json:"skopeo_plus_umoci_plus_sync"`
	// Ratios are shoal's median over the others' (below 1: shoal is
	// faster).
	RatioVsSkopeoUmoci float64 `json:"shoal_over_skopeo_umoci"`
	RatioVsDurable     float64 `json:"shoal_over_skopeo_umoci_sync"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Trials, "trials", 5, "trials of each tool")
	flag.IntVar(&cfg.MB, "mb", 100, "MiB of incompressible data in the image's extra layer")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level")
	flag.Float64Var(&cfg.MaxLoad, "max-load", 0.7, "wait until the 1-minute load average is below this before measuring")
	flag.DurationVar(&cfg.QuietTimeout, "quiet-timeout", 3*time.Minute, "longest wait for that load (then measure anyway and say so)")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case cfg.Trials < 1 || cfg.Trials > 50:
		usage("-trials must be 1..50")
	case cfg.MB < 1 || cfg.MB > 2048:
		usage("-mb must be 1..2048")
	case cfg.QuietTimeout < 0 || cfg.QuietTimeout > 30*time.Minute:
		usage("-quiet-timeout must be 0..30m")
	}
	for _, tool := range []string{"skopeo", "umoci", "sync"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "pull: %s is missing: apt-get install -y skopeo umoci\n", tool)
			os.Exit(2)
		}
	}
	if os.Getenv("SHOAL_BIN") == "" {
		progress("SHOAL_BIN is not set: building cmd/shoal from the working tree; benchmark a `make build` binary with SHOAL_BIN=bin/shoal")
	}
	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "pull:", msg)
	os.Exit(2)
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg}
	res.Version = benchkit.BinaryVersion(tb.BuildBinary())
	res.Skopeo = version("skopeo", "--version")
	res.Umoci = version("umoci", "--version")

	progress("building the image with a %d MiB random layer and serving it on loopback", cfg.MB)
	// testimage caches the random layer under its CacheDir; a seed of our
	// own keeps other users of that cache apart, and the file is removed
	// at the end when this run made it.
	cached := filepath.Join(testimage.CacheDir(), fmt.Sprintf("random-%dmib-%d.tar.gz", cfg.MB, randomSeed))
	if _, err := os.Stat(cached); os.IsNotExist(err) {
		tb.Cleanup(func() { _ = os.Remove(cached) })
	}
	img := testimage.Serve(tb, testimage.Options{Tag: "big", RandomMB: cfg.MB, RandomSeed: randomSeed})
	res.Image, res.SizeBytes = img.Ref, img.Image.Size
	size := float64(res.SizeBytes) / 1e6

	// One untimed pull with each tool first: a failure shows at once, and
	// the registry and the page cache of the binaries are warm.
	progress("untimed pull with each tool")
	_ = shoalTrial(tb, cfg, img.Ref, "warm")
	_, _, _, unpacked := skopeoTrial(tb, img.Ref, "warm")
	res.UnpackedBytes = unpacked

	res.Quiet = benchkit.WaitQuiet(cfg.MaxLoad, cfg.QuietTimeout, progress)
	progress("%s", res.Quiet)
	for i := 0; i < cfg.Trials; i++ {
		t := trial{First: "shoal"}
		name := fmt.Sprintf("t%d", i+1)
		if i%2 == 1 {
			t.First = "skopeo+umoci"
			t.Skopeo, t.Umoci, t.Sync, _ = skopeoTrial(tb, img.Ref, name)
			t.Shoal = shoalTrial(tb, cfg, img.Ref, name)
		} else {
			t.Shoal = shoalTrial(tb, cfg, img.Ref, name)
			t.Skopeo, t.Umoci, t.Sync, _ = skopeoTrial(tb, img.Ref, name)
		}
		progress("trial %d/%d: shoal %.2f s; skopeo %.2f s + umoci %.2f s (+ sync %.2f s)", i+1, cfg.Trials,
			t.Shoal.Seconds(), t.Skopeo.Seconds(), t.Umoci.Seconds(), t.Sync.Seconds())
		res.Trials = append(res.Trials, t)
	}
	res.LoadEnd, _ = benchkit.ReadLoadAvg()

	pick := func(f func(trial) time.Duration) figure {
		var ds []time.Duration
		for _, t := range res.Trials {
			ds = append(ds, f(t))
		}
		s := benchkit.Summarize(ds)
		med := benchkit.Median(ds).Seconds()
		return figure{MedianS: round3(med), MinS: round3(s.MinMS / 1000), MaxS: round3(s.MaxMS / 1000), MBps: round3(size / med)}
	}
	res.ShoalPull = pick(func(t trial) time.Duration { return t.Shoal })
	res.SkopeoCopy = pick(func(t trial) time.Duration { return t.Skopeo })
	res.UmociUnpack = pick(func(t trial) time.Duration { return t.Umoci })
	res.SkopeoUmoci = pick(func(t trial) time.Duration { return t.Skopeo + t.Umoci })
	res.Durable = pick(func(t trial) time.Duration { return t.Skopeo + t.Umoci + t.Sync })
	res.RatioVsSkopeoUmoci = round3(res.ShoalPull.MedianS / res.SkopeoUmoci.MedianS)
	res.RatioVsDurable = round3(res.ShoalPull.MedianS / res.Durable.MedianS)
	return res
}

// shoalTrial starts a daemon on a fresh data directory, times
// `shoal image pull ref`, then stops the daemon and removes its
// directory.
func shoalTrial(tb *benchkit.TB, cfg config, ref, name string) time.Duration {
	node := benchkit.StartRuntimeNode(tb, "pull-"+name, benchkit.DaemonArgs(cfg.LogLevel)...)
	defer func() {
		node.Close()
		_ = os.RemoveAll(node.Dir)
	}()
	syncAll(tb)
	start := time.Now()
	if _, err := node.CLI("image", "pull", ref); err != nil {
		tb.Fatal(err)
	}
	d := time.Since(start)
	if out := node.MustCLI("image", "ls"); !strings.Contains(out, "whoami") {
		tb.Fatalf("image ls after the pull does not list it:\n%s", out)
	}
	return d
}

// skopeoTrial times skopeo copy into a new OCI layout, umoci unpack of
// it, and a sync, and removes both directories. It also returns the size
// of the unpacked files.
func skopeoTrial(tb *benchkit.TB, ref, name string) (copyD, unpackD, syncD time.Duration, unpacked int64) {
	dir := filepath.Join(tb.Root(), "skopeo-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	layout, bundle := filepath.Join(dir, "oci"), filepath.Join(dir, "bundle")
	syncAll(tb)
	copyD = timeCmd(tb, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+layout+":big")
	unpackD = timeCmd(tb, "umoci", "unpack", "--image", layout+":big", bundle)
	syncD = timeCmd(tb, "sync")
	_ = filepath.WalkDir(filepath.Join(bundle, "rootfs"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				unpacked += fi.Size()
			}
		}
		return nil
	})
	return copyD, unpackD, syncD, unpacked
}

func syncAll(tb *benchkit.TB) {
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		tb.Fatalf("sync: %v %s", err, out)
	}
}

func timeCmd(tb *benchkit.TB, name string, args ...string) time.Duration {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return d
}

func version(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func round3(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }

func printSummary(r result) {
	fmt.Printf("pull: pull + unpack of %s, %.1f MB to transfer (%.1f MiB), %.1f MB unpacked, %d trials each, interleaved\n",
		r.Image, float64(r.SizeBytes)/1e6, float64(r.SizeBytes)/(1<<20), float64(r.UnpackedBytes)/1e6, r.Config.Trials)
	fmt.Printf("machine: %s (%s)\n", r.Machine, r.Version)
	fmt.Printf("%s; %s\n", r.Skopeo, r.Umoci)
	fmt.Printf("%s; load at the end %s\n\n", r.Quiet, r.LoadEnd)
	fmt.Printf("%-34s %9s %9s %9s %10s\n", "", "median", "min", "max", "MB/s")
	for _, f := range []struct {
		name string
		f    figure
	}{
		{"shoal image pull (fresh data dir)", r.ShoalPull},
		{"skopeo copy", r.SkopeoCopy},
		{"umoci unpack", r.UmociUnpack},
		{"skopeo copy + umoci unpack", r.SkopeoUmoci},
		{"  + sync (durable, like shoal)", r.Durable},
	} {
		fmt.Printf("%-34s %7.3f s %7.3f s %7.3f s %10.1f\n", f.name, f.f.MedianS, f.f.MinS, f.f.MaxS, f.f.MBps)
	}
	fmt.Printf("\nshoal / (skopeo + umoci) = %.2f; shoal / (skopeo + umoci + sync) = %.2f (medians; below 1 means shoal is faster)\n",
		r.RatioVsSkopeoUmoci, r.RatioVsDurable)
	fmt.Printf("\n%-6s %-13s %8s %8s %8s %8s\n", "trial", "first", "shoal", "skopeo", "umoci", "sync")
	for i, t := range r.Trials {
		fmt.Printf("%-6d %-13s %6.3f s %6.3f s %6.3f s %6.3f s\n", i+1, t.First, t.Shoal.Seconds(), t.Skopeo.Seconds(), t.Umoci.Seconds(), t.Sync.Seconds())
	}
}

// progress goes to stderr so stdout holds only the result.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pull: "+format+"\n", args...)
}
