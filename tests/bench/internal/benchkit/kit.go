package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

func goBuild(root, out string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-o", out, "./cmd/shoal")
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// DaemonArgs are the extra daemon flags every benchmark passes. The
// harness starts daemons with --log-level debug; a later flag wins, so
// this sets the level the benchmark asks for (info, the daemon's own
// default, unless told otherwise).
func DaemonArgs(logLevel string) []string {
	return []string{"--log-level", logLevel}
}

// ServiceSpec is the smallest valid replicated service, with no replicas.
func ServiceSpec(name string) *shoalv1.ServiceSpec {
	return &shoalv1.ServiceSpec{
		Name: name,
		// Nothing listens on 127.0.0.1:1: benchmarks of the control
		// plane run no containers (0 replicas) and reach no registry.
		Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "127.0.0.1:1/bench:1"}},
		Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 0}},
	}
}

// Leader asks each client in turn which manager leads and returns its
// advertised gRPC address.
func Leader(ctx context.Context, clients []shoalv1.ControlServiceClient, perCall time.Duration) (string, error) {
	var last error = errors.New("no client")
	for _, c := range clients {
		if c == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, perCall)
		resp, err := c.ListNodes(cctx, &shoalv1.ListNodesRequest{})
		cancel()
		if err != nil {
			last = err
			continue
		}
		for _, n := range resp.GetNodes() {
			if n.GetManagerStatus().GetLeader() {
				return n.GetManagerStatus().GetAddr(), nil
			}
		}
		last = errors.New("no manager is marked leader")
	}
	return "", last
}

// AllReachable reports nil when the answer lists want managers, one of
// them leader and all REACHABLE.
func AllReachable(resp *shoalv1.ListNodesResponse, want int) error {
	managers, reachable, leader := 0, 0, false
	for _, n := range resp.GetNodes() {
		ms := n.GetManagerStatus()
		if ms == nil {
			continue
		}
		managers++
		if ms.GetReachability() == shoalv1.Reachability_REACHABILITY_REACHABLE {
			reachable++
		}
		leader = leader || ms.GetLeader()
	}
	if managers != want || reachable != want || !leader {
		return fmt.Errorf("%d managers, %d reachable, leader known: %v", managers, reachable, leader)
	}
	return nil
}

// WaitFor retries fn every 20ms until it returns nil or timeout passes.
func WaitFor(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NodeByAddr finds a node by its gRPC address.
func NodeByAddr(nodes []*harness.Node, addr string) *harness.Node {
	for _, n := range nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// Percentile is the nearest-rank percentile p (0..100) of sorted ds.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summary is the spread of a set of durations, in milliseconds for JSON.
type Summary struct {
	N      int     `json:"n"`
	MinMS  float64 `json:"min_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
	MeanMS float64 `json:"mean_ms"`
}

// Summarize sorts ds in place and summarizes it.
func Summarize(ds []time.Duration) Summary {
	slices.Sort(ds)
	if len(ds) == 0 {
		return Summary{}
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Summary{
		N: len(ds), MinMS: MS(ds[0]), P50MS: MS(Percentile(ds, 50)), P90MS: MS(Percentile(ds, 90)),
		P99MS: MS(Percentile(ds, 99)), MaxMS: MS(ds[len(ds)-1]), MeanMS: MS(sum / time.Duration(len(ds))),
	}
}

// MS is d in milliseconds, rounded to 0.01.
func MS(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// Mem is a process's memory from /proc/PID/status, in KiB.
type Mem struct {
	PID     int   `json:"pid"`
	VmRSS   int64 `json:"vm_rss_kib"`
	VmHWM   int64 `json:"vm_hwm_kib"`
	RssAnon int64 `json:"rss_anon_kib"`
	RssFile int64 `json:"rss_file_kib"`
	Threads int64 `json:"threads"`
}

// MiB is VmRSS in MiB.
func (m Mem) MiB() float64 { return float64(m.VmRSS) / 1024 }

// String formats the fields for a summary line.
func (m Mem) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB (anon %.1f, file %.1f), peak VmHWM %.1f MiB, %d threads",
		float64(m.VmRSS)/1024, float64(m.RssAnon)/1024, float64(m.RssFile)/1024, float64(m.VmHWM)/1024, m.Threads)
}

// ReadMem reads /proc/PID/status.
func ReadMem(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	m := Mem{PID: pid}
	fields := map[string]*int64{"VmRSS": &m.VmRSS, "VmHWM": &m.VmHWM, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile, "Threads": &m.Threads}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if p := fields[k]; ok && p != nil {
			*p, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return m, sc.Err()
}

// CPUTime is the user+system CPU time a process has used so far, from
// /proc/PID/stat.
func CPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(data)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// utime and stime are fields 14 and 15 of stat, 12 and 13 of rest.
	ut, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// LogMark finds the first line of a node's daemon.log at or after since
// whose message is msg, and returns its time. The log's timestamps have
// millisecond precision.
func LogMark(n *harness.Node, since time.Time, msg string) (time.Time, bool) {
	f, err := os.Open(filepath.Join(n.Dir, "daemon.log"))
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	since = since.Truncate(time.Millisecond)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), msg) {
			continue
		}
		var e struct {
			TS  string `json:"ts"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal(line, &e) != nil || e.Msg != msg {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.TS)
		if err != nil || ts.Before(since) {
			continue
		}
		return ts, true
	}
	return time.Time{}, false
}

// Machine describes where a benchmark ran.
type Machine struct {
	Date      string `json:"date"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit,omitempty"` // HEAD of the tree the benchmark ran from
	// Binary is the daemon binary: SHOAL_BIN, or the working tree's
	// cmd/shoal built at start (uncommitted changes included).
	Binary string `json:"binary"`
}

// DescribeMachine reads /proc for the machine's CPUs and memory.
func DescribeMachine() Machine {
	m := Machine{Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == "MemTotal" {
				kib, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	m.Binary = "working tree"
	if p := os.Getenv("SHOAL_BIN"); p != "" {
		m.Binary = p
	}
	return m
}

// String is one line for a summary.
func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d CPUs (%s), %s RAM, Linux %s, %s", m.Date, m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.GoVersion)
	if m.Commit != "" {
		s += ", HEAD " + m.Commit
	}
	return s + ", daemon binary: " + m.Binary
}

// PrintJSON writes v indented to stdout.
func PrintJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
