package tests

import (
	"bufio"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// serviceContainers lists the containers of svc really running across c.
func serviceContainers(c *harness.Cluster, svc string) []harness.Container {
	var out []harness.Container
	for _, n := range c.Nodes() {
		out = append(out, harness.Of(svc, n.RunningContainers())...)
	}
	return out
}

// noEscapes fails the test if output meant for a pipe has terminal
// control sequences.
func noEscapes(t *testing.T, what, out string) {
	t.Helper()
	if strings.ContainsRune(out, '\x1b') || strings.ContainsRune(out, '\r') {
		t.Errorf("%s wrote terminal control characters to a pipe: %q", what, out)
	}
}

// Without -d, service create, update and scale return once the service
// has converged, showing docker's progress; -d returns at once and -q
// prints only the ID. Counted from the containers really running.
func TestServiceProgress(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 1)
	m := c.Managers[0]

	start := time.Now()
	out := m.MustCLI("service", "create", "--name", "web", "--replicas", "3", img.Ref)
	took := time.Since(start)
	if got := len(serviceContainers(c, "web")); got != 3 {
		t.Fatalf("service create returned with %d of 3 containers running; output:\n%s", got, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines[0]) != 25 {
		t.Errorf("create's first line is %q; want the service ID", lines[0])
	}
	for _, want := range []string{"overall progress: 3 out of 3 tasks", "1/3: running", "2/3: running", "3/3: running",
		"verify: Waiting 5 seconds to verify that tasks are stable...", "verify: Service converged"} {
		if !slices.Contains(lines, want) {
			t.Errorf("create's progress lacks the line %q:\n%s", want, out)
		}
	}
	if lines[len(lines)-1] != "verify: Service converged" {
		t.Errorf("create's progress ends with %q; want verify: Service converged", lines[len(lines)-1])
	}
	if took < 5*time.Second {
		t.Errorf("create returned after %v, before the 5 s verify window", took)
	}
	t.Logf("service create --replicas 3 returned converged after %v (5 s of it the verify window)", took)
	noEscapes(t, "service create", out)

	// A rolling update: it returns once every container runs the new spec.
	out = m.MustCLI("service", "update", "--env-add", "B=2", "web")
	cs := serviceContainers(c, "web")
	if len(cs) != 3 {
		t.Fatalf("service update returned with %d containers of web running; output:\n%s", len(cs), out)
	}
	for _, ct := range cs {
		if !slices.Contains(ct.Env, "B=2") {
			t.Errorf("service update returned while container %s (task %s) still runs the old spec: env %v", ct.ID, ct.Task, ct.Env)
		}
	}
	if !strings.HasPrefix(out, "web\n") || !strings.Contains(out, "\nverify: Service converged\n") {
		t.Errorf("update output:\n%s", out)
	}
	// The progress counts the tasks of the new spec only: the old ones,
	// running until replaced, are neither counted nor seen to fail.
	if strings.Contains(out, "Detected task failure") {
		t.Errorf("update's progress took old tasks for its own:\n%s", out)
	}
	noEscapes(t, "service update", out)

	out = m.MustCLI("service", "scale", "web=5")
	if got := len(serviceContainers(c, "web")); got != 5 {
		t.Fatalf("service scale returned with %d of 5 containers running; output:\n%s", got, out)
	}
	if !strings.HasPrefix(out, "web scaled to 5\n") || !strings.Contains(out, "\noverall progress: 5 out of 5 tasks\n") ||
		!strings.Contains(out, "\n5/5: running\n") || !strings.HasSuffix(out, "\nverify: Service converged\n") {
		t.Errorf("scale output:\n%s", out)
	}
	noEscapes(t, "service scale", out)

	// -q waits as well, and prints only the ID.
	out = m.MustCLI("service", "create", "-q", "--name", "quiet", img.Ref)
	if got := len(serviceContainers(c, "quiet")); got != 1 {
		t.Fatalf("service create -q returned with %d of 1 container running", got)
	}
	if id := strings.TrimSuffix(out, "\n"); len(id) != 25 || strings.Contains(id, "\n") {
		t.Errorf("service create -q printed %q; want only the service ID", out)
	}

	// -d returns at once: even for a service that can never converge
	// (waiting, the CLI would be killed by the harness's timeout).
	out = m.MustCLI("service", "create", "-d", "--name", "never", unreachableImage)
	if id := strings.TrimSuffix(out, "\n"); len(id) != 25 || strings.Contains(id, "\n") {
		t.Errorf("service create -d printed %q; want only the service ID", out)
	}
	if out := m.MustCLI("service", "scale", "-d", "never=2"); out != "never scaled to 2\n" {
		t.Errorf("service scale -d printed %q", out)
	}
	if out := m.MustCLI("service", "update", "-d", "--env-add", "X=1", "never"); out != "never\n" {
		t.Errorf("service update -d printed %q", out)
	}
}

// An image that does not exist: the slot's line shows the task's error
// while create keeps waiting; Ctrl-C stops the wait, leaves the service
// in place and exits 0, as docker does.
func TestServiceProgressErrorAndInterrupt(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	missing := strings.TrimSuffix(img.Ref, ":1") + ":nosuch"

	cmd := exec.Command(m.Bin, "-H", "unix://"+m.Socket, "service", "create", "--name", "bad", missing)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000) // never blocks the reader, so Wait is always reached
	done := make(chan struct{})
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by PID; a no-op once it was waited for
		<-done
	})
	var seen []string
	// read takes lines until stop says so or the output ends; false if
	// 30 s pass first.
	read := func(stop func(line string) bool) (ended, ok bool) {
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, open := <-lines:
				if !open {
					return true, true
				}
				seen = append(seen, l)
				if stop(l) {
					return false, true
				}
			case <-deadline:
				return false, false
			}
		}
	}
	ended, ok := read(func(l string) bool {
		return strings.HasPrefix(l, "1/1: ") && strings.Contains(l, "nosuch") && strings.Contains(l, "not found")
	})
	if ended || !ok {
		t.Fatalf("no error line for the missing image (exited: %v; stderr %q):\n%s", ended, stderr.String(), strings.Join(seen, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if _, ok := read(func(string) bool { return false }); !ok {
		t.Fatalf("service create still runs 30 s after SIGINT:\n%s", strings.Join(seen, "\n"))
	}
	<-done
	if waitErr != nil {
		t.Fatalf("interrupted service create: %v (%s); want exit status 0", waitErr, stderr.String())
	}
	out := strings.Join(seen, "\n")
	if !strings.HasSuffix(out, "Operation continuing in background.\nUse `shoal service ps "+strings.TrimSpace(seen[0])+"` to check progress.") {
		t.Errorf("interrupted output:\n%s", out)
	}
	if strings.Contains(out, "Service converged") {
		t.Errorf("a service that cannot run was said to converge:\n%s", out)
	}
	noEscapes(t, "service create", out)
	if ids := strings.Fields(m.MustCLI("service", "ls", "-q")); len(ids) != 1 || ids[0] != strings.TrimSpace(seen[0]) {
		t.Errorf("after the interrupt, service ls -q = %v; want the service %s left in place", ids, seen[0])
	}
}

// A global service: a line per node, by short node ID, and create and
// update return once every node runs a container of the current spec.
// (Global tasks run with issue 12 part 1's orchestrator fix.)
func TestServiceProgressGlobal(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	out := m.MustCLI("service", "create", "--name", "agent", "--mode", "global", "--env", "V=1", img.Ref)
	check := func(what, env string) {
		t.Helper()
		for _, n := range c.Nodes() {
			mine := harness.Of("agent", n.RunningContainers())
			if len(mine) != 1 || !slices.Contains(mine[0].Env, env) {
				t.Fatalf("%s returned with %d containers of agent on %s (want 1 with %s: %+v); output:\n%s", what, len(mine), n.Name, env, mine, out)
			}
			if line := shortNodeID(t, n) + ": running"; !strings.Contains(out, "\n"+line+"\n") {
				t.Errorf("%s's progress lacks the line %q:\n%s", what, line, out)
			}
		}
		if !strings.Contains(out, "\noverall progress: 3 out of 3 tasks\n") || !strings.HasSuffix(out, "\nverify: Service converged\n") ||
			strings.Contains(out, "Detected task failure") {
			t.Errorf("%s output:\n%s", what, out)
		}
		noEscapes(t, what, out)
	}
	check("service create", "V=1")
	out = m.MustCLI("service", "update", "--env-add", "V=2", "agent")
	check("service update", "V=2")
}

func shortNodeID(t *testing.T, n *harness.Node) string { return nodeID(t, n)[:12] }
