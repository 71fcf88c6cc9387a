// Package benchkit is what the control-plane benchmark programs under
// tests/bench share: a testing.TB for standalone programs so they can use
// tests/harness, the prebuilt daemon binary, percentiles, /proc readings,
// daemon log markers and the machine description every report carries.
// It starts nothing itself; every daemon comes from the harness, which
// kills what it started (by PID) when the program ends.
package benchkit

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// TB is a testing.TB for a program that is not a test. The harness calls
// Helper, Fatal, Fatalf, Logf, Cleanup, TempDir and Failed; the embedded
// nil interface only satisfies testing.TB's unexported method, so any
// other method panics.
type TB struct {
	testing.TB

	verbose bool

	mu       sync.Mutex
	failed   bool
	cleanups []func()
	root     string
	once     sync.Once
}

// NewTB returns a TB whose temporary directories live under one root that
// Close removes. verbose prints Logf lines to stderr. SIGINT and SIGTERM
// run the cleanups (killing the daemons) before the program exits.
func NewTB(verbose bool) *TB {
	root, err := os.MkdirTemp("", "shoal-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	t := &TB{verbose: verbose, root: root}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "bench: %v: stopping the daemons\n", s)
		t.Close()
		os.Exit(130)
	}()
	return t
}

// Helper does nothing.
func (t *TB) Helper() {}

// Name names the program.
func (t *TB) Name() string { return filepath.Base(os.Args[0]) }

// Logf prints when verbose.
func (t *TB) Logf(format string, args ...any) {
	if t.verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// Log prints when verbose.
func (t *TB) Log(args ...any) {
	if t.verbose {
		fmt.Fprintln(os.Stderr, args...)
	}
}

// Errorf records a failure and goes on.
func (t *TB) Errorf(format string, args ...any) {
	t.setFailed()
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// Error records a failure and goes on.
func (t *TB) Error(args ...any) {
	t.setFailed()
	fmt.Fprintln(os.Stderr, append([]any{"bench:"}, args...)...)
}

// Fatalf reports, stops every daemon and exits 1, from any goroutine.
func (t *TB) Fatalf(format string, args ...any) { t.die(fmt.Sprintf(format, args...)) }

// Fatal reports, stops every daemon and exits 1, from any goroutine.
func (t *TB) Fatal(args ...any) { t.die(fmt.Sprint(args...)) }

// FailNow stops every daemon and exits 1.
func (t *TB) FailNow() { t.die("failed") }

func (t *TB) die(msg string) {
	t.setFailed()
	fmt.Fprintln(os.Stderr, "bench: FAILED:", msg)
	// The harness dumps each node's log tail on cleanup when Failed.
	verbose := t.verbose
	t.verbose = true
	t.Close()
	t.verbose = verbose
	os.Exit(1)
}

func (t *TB) setFailed() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}

// Failed reports whether Fatal or Error was called.
func (t *TB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// Cleanup registers f to run, last registered first, at Close.
func (t *TB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// TempDir makes a fresh directory under the root.
func (t *TB) TempDir() string {
	d, err := os.MkdirTemp(t.root, "node-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Root is the directory holding everything this run wrote.
func (t *TB) Root() string { return t.root }

// Close runs the cleanups once (the harness's kill every daemon it
// started) and removes the temporary directories unless keep is set
// through SHOAL_BENCH_KEEP=1.
func (t *TB) Close() {
	t.once.Do(func() {
		t.mu.Lock()
		fs := t.cleanups
		t.cleanups = nil
		t.mu.Unlock()
		for i := len(fs) - 1; i >= 0; i-- {
			fs[i]()
		}
		if os.Getenv("SHOAL_BENCH_KEEP") == "1" {
			fmt.Fprintln(os.Stderr, "bench: kept", t.root)
			return
		}
		_ = os.RemoveAll(t.root)
	})
}

// BuildBinary builds cmd/shoal into the run's root and points the harness
// at it with SHOAL_BIN, unless SHOAL_BIN is already set. Building here
// rather than in the harness keeps the binary inside the directory Close
// removes.
func (t *TB) BuildBinary() string {
	if p := os.Getenv("SHOAL_BIN"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
	bin := filepath.Join(t.root, "shoal")
	if out, err := goBuild(root, bin); err != nil {
		t.Fatalf("go build ./cmd/shoal: %v\n%s", err, out)
	}
	os.Setenv("SHOAL_BIN", bin)
	return bin
}
