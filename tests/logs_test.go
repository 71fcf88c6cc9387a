package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// logLine is docker's service logs line: web.2.ztalzxy0pqdb@host2    | text
var logLine = regexp.MustCompile(`^([a-z]+)\.(\d+)\.([0-9a-z]{12})@(\S+)\s*    \| (.*)$`)

type parsedLine struct {
	service, slot, task, node, text string
}

func parseLogLines(t *testing.T, out string) []parsedLine {
	t.Helper()
	var lines []parsedLine
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		m := logLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a service logs line: %q", l)
		}
		lines = append(lines, parsedLine{m[1], m[2], m[3], m[4], m[5]})
	}
	return lines
}

// hosts starts n nodes named and hostnamed host1..hostN.
func hosts(t *testing.T, n int, extra ...string) []*harness.Node {
	var out []*harness.Node
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("host%d", i)
		h := harness.NewNode(t, name, append([]string{"--hostname", name}, extra...)...)
		h.Start()
		out = append(out, h)
	}
	return out
}

// follower is a running `shoal service logs -f`, its output read line by
// line until paused.
type follower struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
	gate   sync.Mutex // held: the reader stops reading
	done   chan error
}

func followLogs(t *testing.T, n *harness.Node, args ...string) *follower {
	t.Helper()
	return streamCLI(t, n, append([]string{"service", "logs", "-f"}, args...)...)
}

// streamCLI runs a shoal command that streams, reading its output line
// by line.
func streamCLI(t *testing.T, n *harness.Node, args ...string) *follower {
	t.Helper()
	f := &follower{done: make(chan error, 1)}
	f.cmd = exec.Command(n.Bin, append([]string{"-H", "unix://" + n.Socket}, args...)...)
	f.cmd.Stderr = &lockedBuilder{mu: &f.mu, b: &f.stderr}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		br := bufio.NewReaderSize(out, 64<<10)
		for {
			f.gate.Lock()
			l, err := br.ReadString('\n')
			f.gate.Unlock()
			if l != "" {
				f.mu.Lock()
				f.lines = append(f.lines, strings.TrimSuffix(l, "\n"))
				f.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { <-read; f.done <- f.cmd.Wait() }()
	t.Cleanup(func() { _ = f.cmd.Process.Kill() })
	return f
}

type lockedBuilder struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedBuilder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (f *follower) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

func (f *follower) errText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stderr.String()
}

// tasksWith maps task IDs to the nodes they logged text from (text
// matched as a prefix of a line's message).
func tasksWith(t *testing.T, lines []string, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range parseLogLines(t, strings.Join(lines, "\n")) {
		if strings.HasPrefix(l.text, text) {
			out[l.task] = l.node
		}
	}
	return out
}

// service logs shows every task's lines on every host, docker's way;
// -f through a follower manager follows a restart, a scale-up and ends
// when the service is removed.
func TestServiceLogs(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "logs"})
	c := harness.NewCluster(t, hosts(t, 3), nil)
	leader := c.Leader(30 * time.Second)
	var other *harness.Node
	for _, m := range c.Managers {
		if m != leader {
			other = m
		}
	}
	script := `echo start; i=0; while :; do i=$((i+1)); echo "tick $i"; echo "oops $i" >&2; sleep 0.2; done`
	leader.MustCLI("service", "create", "-d", "--name", "chat", "--replicas", "6", "--entrypoint", "/bin/sh", img.Ref, "-c", script)
	harness.Eventually(t, 60*time.Second, func() error { return c.Converged("chat", 6) })
	ids := map[string]bool{}
	for _, id := range strings.Fields(leader.MustCLI("service", "ps", "-q", "chat")) {
		ids[id] = true
	}

	// Without -f: all six tasks, from all three hosts, stdout and stderr
	// apart, each line docker's.
	harness.Eventually(t, 30*time.Second, func() error {
		out, errOut, err := leader.CLIOut("service", "logs", "chat")
		if err != nil {
			return err
		}
		ticks, oops, nodes := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, l := range parseLogLines(t, out) {
			if l.service != "chat" || !shortIn(l.task, ids) {
				return fmt.Errorf("a line of another task: %+v (tasks %v)", l, ids)
			}
			if strings.HasPrefix(l.text, "oops") {
				return fmt.Errorf("stderr on stdout: %+v", l)
			}
			if strings.HasPrefix(l.text, "tick") {
				ticks[l.task], nodes[l.node] = true, true
			}
		}
		for _, l := range parseLogLines(t, errOut) {
			if !strings.HasPrefix(l.text, "oops") {
				return fmt.Errorf("stdout on stderr: %+v", l)
			}
			oops[l.task] = true
		}
		if len(ticks) != 6 || len(oops) != 6 || len(nodes) != 3 {
			return fmt.Errorf("stdout from %d tasks on %v, stderr from %d; want 6 tasks on 3 hosts", len(ticks), nodes, len(oops))
		}
		return nil
	})
	// Docker's other layouts.
	// Each container's last two lines are a tick (stdout) and an oops
	// (stderr), in some order: six to twelve ticks.
	out := leader.MustCLI("service", "logs", "--raw", "--tail", "2", "chat")
	raw := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range raw {
		if !strings.HasPrefix(l, "tick ") && l != "start" {
			t.Fatalf("--raw printed %q", l)
		}
	}
	if len(raw) < 6 || len(raw) > 12 {
		t.Fatalf("--raw --tail 2 printed %d stdout lines of 6 tasks: %q", len(raw), raw)
	}
	out = leader.MustCLI("service", "logs", "--no-task-ids", "-t", "--tail", "2", "chat")
	stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z chat\.\d@host\d    \| (tick \d+|start)$`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !stamped.MatchString(l) {
			t.Fatalf("--no-task-ids -t printed %q", l)
		}
	}
	// One task by ID: its lines only.
	var one string
	for id := range ids {
		one = id
		break
	}
	for _, l := range parseLogLines(t, leader.MustCLI("service", "logs", one)) {
		if l.task != one[:12] {
			t.Fatalf("service logs %s printed a line of %s", one, l.task)
		}
	}

	// -f through the follower, new lines only.
	f := followLogs(t, other, "--tail", "0", "chat")
	harness.Eventually(t, 30*time.Second, func() error {
		if got := tasksWith(t, f.snapshot(), "tick"); len(got) != 6 {
			return fmt.Errorf("following: ticks from %d tasks; want 6 (stderr %q)", len(got), f.errText())
		}
		return nil
	})
	// A task restarts (its process killed): the same task's new
	// container is followed, from its first line.
	victim := c.Managers[0].RunningContainers()
	if len(victim) == 0 {
		t.Fatal("no chat container on host1")
	}
	if err := syscall.Kill(victim[0].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		if _, ok := tasksWith(t, f.snapshot(), "start")[victim[0].Task[:12]]; !ok {
			return fmt.Errorf("no start line from the restarted task %s", victim[0].Task)
		}
		return nil
	})
	// A scale-up: the new tasks are followed.
	leader.MustCLI("service", "scale", "chat=8")
	harness.Eventually(t, 60*time.Second, func() error {
		started := tasksWith(t, f.snapshot(), "start")
		n := 0
		for id := range started {
			if !shortIn(id, ids) {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("start lines from %d new tasks; want 2", n)
		}
		return nil
	})
	// The service's removal ends the stream, successfully.
	leader.MustCLI("service", "rm", "chat")
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("service logs -f ended with %v after the service's removal: %s", err, f.errText())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("service logs -f still runs after the service's removal")
	}
	if out, err := leader.CLI("service", "logs", "chat"); err == nil || !strings.Contains(err.Error(), "no such task or service: chat") {
		t.Fatalf("logs of a removed service: %v %s", err, out)
	}
}

func shortIn(short string, ids map[string]bool) bool {
	for id := range ids {
		if strings.HasPrefix(id, short) {
			return true
		}
	}
	return false
}

// lastSeq is the number of the last whole lograte line in a container's
// log file on its node's disk.
func lastSeq(t *testing.T, n *harness.Node, ctr string) int {
	t.Helper()
	path := filepath.Join(n.Dir, "data", "runtime", "containers", ctr, "container.log")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	off := max(st.Size()-8192, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`lograte (\d{9})`)
	m := re.FindAllSubmatch(buf, -1)
	if len(m) == 0 {
		t.Fatalf("no lograte line at the end of %s", path)
	}
	v, _ := strconv.Atoi(string(m[len(m)-1][1]))
	return v
}

// seqs is the last lograte number each task printed, by short task ID.
func seqs(t *testing.T, lines []string) map[string]int {
	out := map[string]int{}
	re := regexp.MustCompile(`@\S+\s*    \| lograte (\d{9})`)
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		i := strings.IndexByte(l, '@')
		if m == nil || i < 13 {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		task := l[i-12 : i]
		out[task] = max(out[task], v)
	}
	return out
}

// A reader of service logs -f that stops reading for 30 s does not slow
// the tasks (5,000 lines/s each, 15,000 together, counted in their log
// files), then catches up.
func TestServiceLogsSlowReader(t *testing.T) {
	needRoot(t)
	const rate = 5000
	img := testimage.Serve(t, testimage.Options{Tag: "lograte"})
	nodes := hosts(t, 3)
	c := harness.NewCluster(t, nodes[:1], nodes[1:])
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "spam", "--mode", "global", img.Ref, "lograte", strconv.Itoa(rate))
	harness.Eventually(t, 60*time.Second, func() error { return c.Converged("spam", 3) })
	type ctr struct {
		node *harness.Node
		id   string
		task string
	}
	var ctrs []ctr
	for _, n := range nodes {
		for _, x := range harness.Of("spam", n.RunningContainers()) {
			ctrs = append(ctrs, ctr{n, x.ID, x.Task[:12]})
		}
	}
	if len(ctrs) != 3 {
		t.Fatalf("%d spam containers; want 3", len(ctrs))
	}
	f := followLogs(t, m, "--tail", "0", "spam")
	harness.Eventually(t, 30*time.Second, func() error {
		if got := seqs(t, f.snapshot()); len(got) != 3 {
			return fmt.Errorf("lines from %d tasks; want 3 (stderr %q)", len(got), f.errText())
		}
		return nil
	})

	// Stop reading for 30 s.
	f.gate.Lock()
	time.Sleep(2 * time.Second)
	t1, first := time.Now(), map[string]int{}
	for _, x := range ctrs {
		first[x.task] = lastSeq(t, x.node, x.id)
	}
	time.Sleep(28 * time.Second)
	t2, second := time.Now(), map[string]int{}
	for _, x := range ctrs {
		second[x.task] = lastSeq(t, x.node, x.id)
	}
	read := seqs(t, f.snapshot())
	f.gate.Unlock()
	secs := t2.Sub(t1).Seconds()
	for _, x := range ctrs {
		got := float64(second[x.task]-first[x.task]) / secs
		t.Logf("task %s on %s wrote %.0f lines/s while the reader was stopped; the reader had %d of its %d lines", x.task, x.node.Name, got, read[x.task], second[x.task])
		if got < 0.9*rate {
			t.Errorf("task %s wrote %.0f lines/s while the reader was stopped; want about %d", x.task, got, rate)
		}
		if second[x.task]-read[x.task] < 10*rate {
			t.Errorf("the reader was not held back (it had %d of %d lines): the test did not stop it", read[x.task], second[x.task])
		}
	}
	// It resumes and catches up.
	start := time.Now()
	harness.Eventually(t, 90*time.Second, func() error {
		got := seqs(t, f.snapshot())
		for _, x := range ctrs {
			if got[x.task] < second[x.task] {
				return fmt.Errorf("task %s: the reader is at line %d of %d", x.task, got[x.task], second[x.task])
			}
		}
		return nil
	})
	n := 0
	for _, x := range ctrs {
		n += second[x.task] - read[x.task]
	}
	t.Logf("caught up %d lines in %v after resuming", n, time.Since(start).Round(time.Millisecond))
	if w := f.errText(); w != "" {
		t.Logf("the reader's warnings: %s", w)
	}
}
