package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// startDev runs `shoal dev` and returns a CLI runner for it.
func startDev(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	needRoot(t)
	bin := harness.Binary(t)
	cmd := exec.Command(bin, "dev", "--listen-addr", fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	sockRE := regexp.MustCompile(`SHOAL_HOST=(unix://\S+)`)
	sc := bufio.NewScanner(out)
	host := ""
	for sc.Scan() {
		if m := sockRE.FindStringSubmatch(sc.Text()); m != nil {
			host = m[1]
			break
		}
	}
	if host == "" {
		t.Fatal("shoal dev printed no SHOAL_HOST")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return func(args ...string) (string, error) {
		c := exec.Command(bin, append([]string{"-H", host}, args...)...)
		var o, e strings.Builder
		c.Stdout, c.Stderr = &o, &e
		if err := c.Run(); err != nil {
			return o.String(), fmt.Errorf("shoal %s: %v: %s", strings.Join(args, " "), err, e.String())
		}
		return o.String(), nil
	}
}

type devTask struct {
	ID           string `json:"id"`
	Slot         string `json:"slot"`
	DesiredState string `json:"desired_state"`
	Status       struct {
		State    string `json:"state"`
		Restarts int    `json:"restarts"`
		Err      string `json:"err"`
	} `json:"status"`
}

func devTasks(t *testing.T, cli func(...string) (string, error), svc string) []devTask {
	out, err := cli("service", "ps", "--format", "json", svc)
	if err != nil {
		t.Fatal(err)
	}
	var ts []devTask
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

// One node (`shoal dev`): replicas run as containers, a killed container
// is restarted by its worker, restart condition none leaves a task ended,
// and a crash-looping task backs off, fails, and is replaced.
func TestWorkerOnOneNode(t *testing.T) {
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	cli := startDev(t)
	must := func(args ...string) string {
		out, err := cli(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	must("service", "create", "-d", "--name", "web", "--replicas", "5", img.Ref)
	harness.Eventually(t, 30*time.Second, func() error {
		if ls := must("service", "ls"); !strings.Contains(ls, "5/5") {
			return fmt.Errorf("not 5/5:\n%s", ls)
		}
		return nil
	})
	var cs []struct {
		Pid    int               `json:"pid"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(must("ps", "--format", "json")), &cs); err != nil || len(cs) != 5 {
		t.Fatalf("ps: %d containers (%v)", len(cs), err)
	}
	// Kill one workload: its own task restarts it.
	victim := cs[0].Labels["shoal.task.id"]
	if err := syscall.Kill(cs[0].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() error {
		for _, tk := range devTasks(t, cli, "web") {
			if tk.ID == victim && tk.Status.State == "TASK_STATE_RUNNING" && tk.Status.Restarts == 1 {
				return nil
			}
		}
		return fmt.Errorf("task %s not restarted: %+v", victim, devTasks(t, cli, "web"))
	})
	if ls := must("service", "ls"); !strings.Contains(ls, "5/5") {
		t.Fatalf("after the restart:\n%s", ls)
	}

	// Restart condition none: the task ends and stays ended.
	must("service", "create", "-d", "--name", "once", "--restart-condition", "none", img.Ref, "exit", "0")
	harness.Eventually(t, 20*time.Second, func() error {
		ts := devTasks(t, cli, "once")
		if len(ts) != 1 || ts[0].Status.State != "TASK_STATE_COMPLETE" {
			return fmt.Errorf("once: %+v", ts)
		}
		return nil
	})

	// A crash loop: local restarts with back-off, then failed, then a
	// replacement task from the manager.
	must("service", "create", "-d", "--name", "crash", "--restart-max-attempts", "2", img.Ref, "crashloop")
	harness.Eventually(t, 30*time.Second, func() error {
		ts := devTasks(t, cli, "crash")
		var failed, replacement bool
		for _, tk := range ts {
			if tk.Status.State == "TASK_STATE_FAILED" && tk.Status.Restarts == 2 {
				failed = true
			}
			if tk.DesiredState == "TASK_STATE_RUNNING" && len(ts) > 1 {
				replacement = true
			}
		}
		if !failed || !replacement {
			return fmt.Errorf("crash loop: %+v", ts)
		}
		return nil
	})
}

// containerPids lists the PIDs of a node's running containers by task.
func containerPids(t *testing.T, n *harness.Node) map[string]int {
	t.Helper()
	var cs []struct {
		Pid    int               `json:"pid"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(n.MustCLI("ps", "--format", "json")), &cs); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, c := range cs {
		out[c.Labels["shoal.task.id"]] = c.Pid
	}
	return out
}

// Restarting a worker daemon gracefully keeps its containers (same PIDs)
// and its tasks; a worker that was away while its tasks were replaced
// stops their containers when it is back.
func TestWorkerRestartsAndReturns(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 2)
	m := c.Managers[0]
	w := c.Workers[0]
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "6", img.Ref)
	harness.Eventually(t, 30*time.Second, func() error {
		if ls := m.MustCLI("service", "ls"); !strings.Contains(ls, "6/6") {
			return fmt.Errorf("not 6/6:\n%s", ls)
		}
		if len(containerPids(t, w)) == 0 {
			return fmt.Errorf("no task on the worker")
		}
		return nil
	})
	before := containerPids(t, w)
	w.Stop()
	w.Start()
	harness.Eventually(t, 10*time.Second, func() error {
		if ls := m.MustCLI("service", "ls"); !strings.Contains(ls, "6/6") {
			return fmt.Errorf("not 6/6 after the restart:\n%s", ls)
		}
		return nil
	})
	if after := containerPids(t, w); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a graceful daemon restart changed the containers: %v -> %v", before, after)
	}
	for _, tk := range servicePs(t, m, "web") {
		if tk.DesiredState == "TASK_STATE_RUNNING" && tk.Status.State != "TASK_STATE_RUNNING" {
			t.Fatalf("task %s is %s after the restart", tk.ID, tk.Status.State)
		}
	}

	// Freeze the worker long enough to be declared down: its tasks are
	// replaced elsewhere; when it thaws, it stops the old containers.
	w.Freeze()
	harness.Eventually(t, 15*time.Second, func() error {
		if by := activeTasks(servicePs(t, m, "web")); by[nodeID(t, w)] != 0 {
			return fmt.Errorf("worker still has active tasks: %v", by)
		}
		return nil
	})
	w.Thaw()
	harness.Eventually(t, 15*time.Second, func() error {
		if pids := containerPids(t, w); len(pids) != 0 {
			return fmt.Errorf("stale containers still run on the returned worker: %v", pids)
		}
		if ls := m.MustCLI("service", "ls"); !strings.Contains(ls, "6/6") {
			return fmt.Errorf("not 6/6:\n%s", ls)
		}
		return nil
	})
}
