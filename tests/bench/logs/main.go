// Command logs measures the CPU cost of `shoal service logs -f`: a
// 1-manager + 1-worker cluster on loopback runs -tasks containers on the
// worker, each writing -rate numbered lines a second to stdout
// (`whoami lograte N` from the test image, served by a loopback
// registry). Windows of -window alternate, -rounds times each, between
//
//   - baseline: the tasks logging, nobody reading;
//   - reading: `shoal service logs -f --tail 0` through the manager, its
//     output read as fast as it comes and counted.
//
// In each window it reads the CPU time (user + system, /proc/PID/stat)
// of the worker daemon, the manager daemon and the CLI, and the lines the
// CLI printed. The cost of the logs path is the reading windows' CPU over
// the baseline's, per million lines delivered. It needs root (it runs
// containers).
//
//	go run ./tests/bench/logs [-tasks 3] [-rate 5000] [-window 15s] [-rounds 3] [-profile DIR] [-json]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

type config struct {
	Tasks    int           `json:"tasks"`
	Rate     int           `json:"lines_per_s_per_task"`
	Window   time.Duration `json:"window_ns"`
	Rounds   int           `json:"rounds"`
	LogLevel string        `json:"log_level"`
	// Profile, if set, is a directory for CPU profiles of both daemons
	// taken over the first reading window (their --debug-addr).
	Profile string `json:"-"`
	JSON    bool   `json:"-"`
	Verbose bool   `json:"-"`
}

// window is one measured window: CPU as a fraction of one core.
type window struct {
	Reading      bool    `json:"reading"`
	Seconds      float64 `json:"seconds"`
	WorkerCores  float64 `json:"worker_cores"`
	ManagerCores float64 `json:"manager_cores"`
	CLICores     float64 `json:"cli_cores"`
	LinesPerSec  float64 `json:"lines_per_s"`
}

type result struct {
	Machine benchkit.Machine `json:"machine"`
	Config  config           `json:"config"`
	Windows []window         `json:"windows"`
	// Medians over the rounds of each kind.
	BaselineWorkerCores  float64 `json:"baseline_worker_cores"`
	BaselineManagerCores float64 `json:"baseline_manager_cores"`
	ReadingWorkerCores   float64 `json:"reading_worker_cores"`
	ReadingManagerCores  float64 `json:"reading_manager_cores"`
	ReadingCLICores      float64 `json:"reading_cli_cores"`
	LinesPerSec          float64 `json:"lines_per_s"`
	// WrittenPerSec is what the tasks were asked to write.
	WrittenPerSec float64 `json:"written_lines_per_s"`
	// CoreSecondsPerMillion is the whole path's extra CPU (worker and
	// manager over their baseline, plus the CLI) per million lines
	// delivered.
	CoreSecondsPerMillion float64 `json:"core_s_per_million_lines"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Tasks, "tasks", 3, "logging containers on the worker")
	flag.IntVar(&cfg.Rate, "rate", 5000, "lines a second each task writes")
	flag.DurationVar(&cfg.Window, "window", 15*time.Second, "length of each measured window")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "windows of each kind (baseline, reading), alternating")
	flag.StringVar(&cfg.LogLevel, "log-level", "info", "daemon log level")
	flag.StringVar(&cfg.Profile, "profile", "", "write CPU profiles of the worker and the manager, over the first reading window, to this directory")
	flag.BoolVar(&cfg.JSON, "json", false, "print the result as JSON on stdout")
	flag.BoolVar(&cfg.Verbose, "v", false, "log harness messages to stderr")
	flag.Parse()
	switch {
	case os.Geteuid() != 0:
		usage("it runs containers and needs root")
	case cfg.Tasks < 1 || cfg.Tasks > 50:
		usage("-tasks must be 1..50")
	case cfg.Rate < 1 || cfg.Rate > 100000:
		usage("-rate must be 1..100000")
	case cfg.Window < time.Second || cfg.Window > 10*time.Minute:
		usage("-window must be in [1s, 10m]")
	case cfg.Rounds < 1 || cfg.Rounds > 20:
		usage("-rounds must be 1..20")
	}
	benchkit.Run(cfg.Verbose, cfg.JSON, func(tb *benchkit.TB) result { return run(tb, cfg) }, printSummary)
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "logs:", msg)
	os.Exit(2)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "logs: "+format+"\n", args...)
}

func cpu(tb *benchkit.TB, pid int) time.Duration {
	d, err := benchkit.CPUTime(pid)
	if err != nil {
		tb.Fatalf("CPU time of %d: %v", pid, err)
	}
	return d
}

// reader is a running `service logs -f`, its lines counted.
type reader struct {
	cmd   *exec.Cmd
	lines atomic.Int64
	done  chan error
}

func startReader(tb *benchkit.TB, m *harness.Node, service string) *reader {
	r := &reader{done: make(chan error, 1)}
	r.cmd = exec.Command(m.Bin, "-H", "unix://"+m.Socket, "service", "logs", "-f", "--tail", "0", service)
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	if err := r.cmd.Start(); err != nil {
		tb.Fatalf("start the reader: %v", err)
	}
	go func() {
		br := bufio.NewReaderSize(out, 1<<20)
		for {
			_, err := br.ReadSlice('\n')
			if err == nil {
				r.lines.Add(1)
				continue
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			r.done <- errors.Join(err, r.cmd.Wait())
			return
		}
	}()
	return r
}

func (r *reader) stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

func run(tb *benchkit.TB, cfg config) result {
	res := result{Machine: benchkit.DescribeMachine(), Config: cfg, WrittenPerSec: float64(cfg.Tasks * cfg.Rate)}
	tb.BuildBinary()
	progress("building the test image and starting a loopback registry")
	img := testimage.Serve(tb, testimage.Options{Tag: "logs"})
	progress("starting 1 manager + 1 worker")
	debug := map[string]string{}
	node := func(name string) *harness.Node {
		args := benchkit.DaemonArgs(cfg.LogLevel)
		if cfg.Profile != "" {
			debug[name] = fmt.Sprintf("127.0.0.1:%d", harness.FreePort(tb))
			args = append(args, "--debug-addr", debug[name])
		}
		n := harness.NewNode(tb, name, args...)
		n.Start()
		return n
	}
	m, w := node("manager1"), node("worker1")
	harness.NewCluster(tb, []*harness.Node{m}, []*harness.Node{w})
	m.MustCLI("service", "create", "-d", "--name", "spam", "--replicas", strconv.Itoa(cfg.Tasks), "--constraint", "node.role==worker",
		img.Ref, "lograte", strconv.Itoa(cfg.Rate))
	if err := benchkit.WaitFor(2*time.Minute, func() error {
		if n := len(harness.Of("spam", w.RunningContainers())); n != cfg.Tasks {
			return fmt.Errorf("%d/%d logging containers running on the worker", n, cfg.Tasks)
		}
		return nil
	}); err != nil {
		tb.Fatalf("%v", err)
	}
	progress("%d containers writing %d lines/s each on the worker", cfg.Tasks, cfg.Rate)
	time.Sleep(2 * time.Second) // past the starts

	profiledOnce := false
	measure := func(reading bool) window {
		var r *reader
		if reading {
			r = startReader(tb, m, "spam")
			// The first lines mean the stream is up on every task.
			if err := benchkit.WaitFor(30*time.Second, func() error {
				if r.lines.Load() == 0 {
					return errors.New("no line read yet")
				}
				return nil
			}); err != nil {
				tb.Fatalf("the reader: %v", err)
			}
			time.Sleep(time.Second)
		}
		w0, m0, t0 := cpu(tb, w.PID()), cpu(tb, m.PID()), time.Now()
		var c0 time.Duration
		var l0 int64
		if r != nil {
			c0, l0 = cpu(tb, r.cmd.Process.Pid), r.lines.Load()
		}
		profiled := make(chan struct{})
		if reading && cfg.Profile != "" && !profiledOnce {
			profiledOnce = true
			go func() {
				defer close(profiled)
				profile(tb, cfg, debug)
			}()
		} else {
			close(profiled)
		}
		time.Sleep(cfg.Window)
		<-profiled
		w1, m1, secs := cpu(tb, w.PID()), cpu(tb, m.PID()), time.Since(t0).Seconds()
		win := window{Reading: reading, Seconds: secs, WorkerCores: (w1 - w0).Seconds() / secs, ManagerCores: (m1 - m0).Seconds() / secs}
		if r != nil {
			win.CLICores = (cpu(tb, r.cmd.Process.Pid) - c0).Seconds() / secs
			win.LinesPerSec = float64(r.lines.Load()-l0) / secs
			r.stop()
		}
		progress("%s: worker %.3f, manager %.3f, CLI %.3f cores; %.0f lines/s read", map[bool]string{false: "baseline", true: "reading "}[reading],
			win.WorkerCores, win.ManagerCores, win.CLICores, win.LinesPerSec)
		return win
	}
	for i := 0; i < cfg.Rounds; i++ {
		res.Windows = append(res.Windows, measure(false), measure(true))
	}
	pick := func(reading bool, f func(window) float64) float64 {
		var ds []time.Duration
		for _, win := range res.Windows {
			if win.Reading == reading {
				ds = append(ds, time.Duration(f(win)*1e9))
			}
		}
		return benchkit.Median(ds).Seconds()
	}
	res.BaselineWorkerCores = round3(pick(false, func(w window) float64 { return w.WorkerCores }))
	res.BaselineManagerCores = round3(pick(false, func(w window) float64 { return w.ManagerCores }))
	res.ReadingWorkerCores = round3(pick(true, func(w window) float64 { return w.WorkerCores }))
	res.ReadingManagerCores = round3(pick(true, func(w window) float64 { return w.ManagerCores }))
	res.ReadingCLICores = round3(pick(true, func(w window) float64 { return w.CLICores }))
	res.LinesPerSec = math.Round(pick(true, func(w window) float64 { return w.LinesPerSec }))
	extra := (res.ReadingWorkerCores - res.BaselineWorkerCores) + (res.ReadingManagerCores - res.BaselineManagerCores) + res.ReadingCLICores
	if res.LinesPerSec > 0 {
		res.CoreSecondsPerMillion = round3(extra / res.LinesPerSec * 1e6)
	}
	return res
}

// profile saves each daemon's CPU profile over most of a window.
func profile(tb *benchkit.TB, cfg config, debug map[string]string) {
	if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
		tb.Fatalf("-profile: %v", err)
	}
	secs := max(int(cfg.Window.Seconds())-2, 1)
	done := make(chan string, len(debug))
	for name, addr := range debug {
		go func() {
			path := filepath.Join(cfg.Profile, name+".pprof")
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
			if err != nil {
				done <- fmt.Sprintf("%s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err == nil {
				err = os.WriteFile(path, data, 0o644)
			}
			if err != nil {
				done <- fmt.Sprintf("%s: %v", name, err)
				return
			}
			done <- "wrote " + path
		}()
	}
	for range debug {
		progress("profile: %s", <-done)
	}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func printSummary(r result) {
	fmt.Printf("%s\n", r.Machine)
	fmt.Printf("%d tasks × %d lines/s on one worker; %d rounds of %s windows\n", r.Config.Tasks, r.Config.Rate, r.Config.Rounds, r.Config.Window)
	fmt.Printf("%-10s %8s %8s %8s %12s\n", "median", "worker", "manager", "CLI", "lines/s")
	fmt.Printf("%-10s %8.3f %8.3f %8s %12s\n", "baseline", r.BaselineWorkerCores, r.BaselineManagerCores, "-", "-")
	fmt.Printf("%-10s %8.3f %8.3f %8.3f %12.0f\n", "reading", r.ReadingWorkerCores, r.ReadingManagerCores, r.ReadingCLICores, r.LinesPerSec)
	fmt.Printf("written %.0f lines/s; the logs path costs %.3f core-seconds per million lines (worker and manager over baseline, plus the CLI)\n",
		r.WrittenPerSec, r.CoreSecondsPerMillion)
}
