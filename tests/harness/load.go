package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-run/shoal/tests/testimage"
)

// LoadSpec says where a load client runs and what it asks.
type LoadSpec struct {
	// Host runs the client on that host (its network namespace, the
	// machine's files): a client outside the cluster, such as one of the
	// routing mesh.
	Host *Host
	// Pid, instead, runs it inside the container whose workload process
	// is Pid: in its network and mount namespaces, as `docker exec`
	// would, so it uses the container's addresses, routes, VIP rules and
	// DNS server, and the image's own /whoami.
	Pid int
	// URLs are asked in turn, each by its own loop.
	URLs []string
	// Every is the pause between two requests to a URL (default 20 ms);
	// Timeout bounds one request (default 2 s).
	Every, Timeout time.Duration
}

// Load is a `whoami load` client (see tests/testimage/whoami/load.go)
// that the harness started: it sends GETs on a new connection each and
// counts every answer and failure. Report reads its running totals;
// Stop ends it and returns the final ones. It is killed at cleanup if
// still running.
type Load struct {
	t    TB
	cmd  *exec.Cmd
	file string // where the test reads the running totals
	desc string

	mu     sync.Mutex
	out    bytes.Buffer // stdout: the final totals
	stderr bytes.Buffer
	done   chan struct{}
	final  *testimage.LoadReport
}

var loadSeq struct {
	sync.Mutex
	n int
}

// StartLoad starts a load client as spec says and waits until it wrote
// its first totals.
func StartLoad(t TB, spec LoadSpec) *Load {
	t.Helper()
	if len(spec.URLs) == 0 {
		t.Fatal("StartLoad: no URL")
	}
	if (spec.Host == nil) == (spec.Pid == 0) {
		t.Fatal("StartLoad: give Host or Pid, one of them")
	}
	if spec.Every == 0 {
		spec.Every = 10 * time.Millisecond
	}
	if spec.Timeout == 0 {
		spec.Timeout = 2 * time.Second
	}
	loadSeq.Lock()
	loadSeq.n++
	name := fmt.Sprintf("shoal-load-%d-%d.json", os.Getpid(), loadSeq.n)
	loadSeq.Unlock()
	l := &Load{t: t, done: make(chan struct{})}
	args := []string{"load", "-every", spec.Every.String(), "-timeout", spec.Timeout.String()}
	if spec.Host != nil {
		bin, err := testimage.BuildWhoami("")
		if err != nil {
			t.Fatal(err)
		}
		l.file = filepath.Join(t.TempDir(), name)
		l.desc = "on " + spec.Host.Name
		l.cmd = spec.Host.Command(bin, append(append(args, "-out", l.file), spec.URLs...)...)
	} else {
		inside := "/tmp/" + name
		l.file = fmt.Sprintf("/proc/%d/root%s", spec.Pid, inside)
		l.desc = fmt.Sprintf("in the container of pid %d", spec.Pid)
		l.cmd = exec.Command("nsenter", append(append([]string{"--target", strconv.Itoa(spec.Pid), "--net", "--mount", "--", "/whoami"},
			append(args, "-out", inside)...), spec.URLs...)...)
	}
	l.cmd.Stdout, l.cmd.Stderr = &lockedWriter{mu: &l.mu, b: &l.out}, &lockedWriter{mu: &l.mu, b: &l.stderr}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("load client %s: %v", l.desc, err)
	}
	go func() { _ = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = l.cmd.Process.Kill()
			<-l.done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := l.Report(); err == nil {
			return l
		}
		select {
		case <-l.done:
			t.Fatalf("load client %s exited at start: %s", l.desc, l.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("load client %s wrote no totals in 10s: %s", l.desc, l.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (l *Load) stderrText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.stderr.String())
}

// Report is the totals so far: the running ones the client rewrites every
// 100 ms, or the final ones once stopped.
func (l *Load) Report() (testimage.LoadReport, error) {
	l.mu.Lock()
	final := l.final
	l.mu.Unlock()
	if final != nil {
		return *final, nil
	}
	data, err := os.ReadFile(l.file)
	if err != nil {
		return testimage.LoadReport{}, err
	}
	return testimage.ParseLoadReport(data)
}

// WaitFlowing waits until every URL was answered at least n times since
// the client started, failing the test after timeout.
func (l *Load) WaitFlowing(timeout time.Duration, n int) {
	l.t.Helper()
	Eventually(l.t, timeout, func() error {
		r, err := l.Report()
		if err != nil {
			return err
		}
		for _, tg := range r.Targets {
			if tg.OK < n {
				return fmt.Errorf("load client %s: %s answered %d times; want %d:\n%s", l.desc, tg.URL, tg.OK, n, r.Summary())
			}
		}
		return nil
	})
}

// Stop sends the client SIGTERM, waits for it to finish the requests in
// flight and exit, and returns its final totals. Stopping again returns
// them again.
func (l *Load) Stop() testimage.LoadReport {
	l.t.Helper()
	l.mu.Lock()
	final := l.final
	l.mu.Unlock()
	if final != nil {
		return *final
	}
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
		l.t.Fatalf("load client %s did not exit within 30s of SIGTERM", l.desc)
	}
	l.mu.Lock()
	out := l.out.String()
	l.mu.Unlock()
	var last string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "{") {
			last = sc.Text()
		}
	}
	r, err := testimage.ParseLoadReport([]byte(last))
	if err != nil || !r.Final {
		l.t.Fatalf("load client %s printed no final totals (%v); stderr: %s", l.desc, err, l.stderrText())
	}
	l.mu.Lock()
	l.final = &r
	l.mu.Unlock()
	return r
}

// Failed stops the client if it runs and returns how many of its requests
// failed.
func (l *Load) Failed() int {
	l.t.Helper()
	return l.Stop().Failed()
}

// NoFailures stops the client if it runs and returns nil if none of its
// requests failed, else an error listing the failures (time, URL, error)
// and the totals.
func (l *Load) NoFailures() error {
	l.t.Helper()
	r := l.Stop()
	if r.Failed() == 0 {
		return nil
	}
	return fmt.Errorf("load client %s: %d of %d requests failed:\n%s", l.desc, r.Failed(), r.Failed()+r.OK(), r.Summary())
}

// String names the client: where it runs.
func (l *Load) String() string { return "load client " + l.desc }
