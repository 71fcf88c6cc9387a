package tests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// startDev runs `shoal dev` and returns a CLI runner for it and a lister
// of the containers really running on it (harness.RunningIn).
func startDev(t *testing.T) (cli func(args ...string) (string, error), running func() []harness.Container) {
	t.Helper()
	needRoot(t)
	d := harness.StartDev(t)
	return d.CLI, d.Running
}

// replaceDelay is the manager's delay before it replaces a task that
// failed once (orchestrator.DefaultReplaceDelay).
const replaceDelay = time.Second

type devTask struct {
	ID           string `json:"id"`
	Slot         uint64 `json:"slot"`
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

// devContainer is a container as `shoal ps -a --format json` shows it.
type devContainer struct {
	ID       string            `json:"id"`
	Status   string            `json:"status"`
	ExitCode int               `json:"exit_code"`
	Labels   map[string]string `json:"labels"`
}

// devContainerOf is the container of task on the dev node, running or
// not; false when there is none.
func devContainerOf(t *testing.T, cli func(...string) (string, error), task string) (devContainer, bool) {
	t.Helper()
	out, err := cli("ps", "-a", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var cs []devContainer
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Labels["shoal.task.id"] == task {
			return c, true
		}
	}
	return devContainer{}, false
}

// One node (`shoal dev`): replicas run as containers, a killed container
// is restarted by its worker, restart condition none leaves a task ended,
// and a crash-looping task restarts in place until its slot has used its
// --restart-max-attempts, then stays failed and is not replaced. What
// runs is counted in /proc; what ran, in the containers' exit codes and
// logs.
func TestWorkerOnOneNode(t *testing.T) {
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	cli, running := startDev(t)
	must := func(args ...string) string {
		out, err := cli(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// of is the containers of svc alive on the node, one per task.
	of := func(svc string) (map[string]harness.Container, error) {
		out := map[string]harness.Container{}
		for _, c := range harness.Of(svc, running()) {
			if prev, ok := out[c.Task]; ok {
				return nil, fmt.Errorf("task %s runs twice: pids %d and %d", c.Task, prev.Pid, c.Pid)
			}
			out[c.Task] = c
		}
		return out, nil
	}
	must("service", "create", "-d", "--name", "web", "--replicas", "5", img.Ref)
	var web map[string]harness.Container
	harness.Eventually(t, 30*time.Second, func() (err error) {
		if web, err = of("web"); err != nil {
			return err
		}
		if len(web) != 5 {
			return fmt.Errorf("%d containers of web run; want 5", len(web))
		}
		if ls := must("service", "ls"); !strings.Contains(ls, "5/5") {
			return fmt.Errorf("not 5/5:\n%s", ls)
		}
		return nil
	})
	// Kill one workload: its own task restarts it, in a new container.
	var victim harness.Container
	for _, c := range web {
		victim = c
		break
	}
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() error {
		web, err := of("web")
		if err != nil {
			return err
		}
		again, ok := web[victim.Task]
		if !ok || again.ID == victim.ID || again.Pid == victim.Pid {
			return fmt.Errorf("task %s runs no new container since pid %d was killed: %+v", victim.Task, victim.Pid, again)
		}
		if len(web) != 5 {
			return fmt.Errorf("%d containers of web run; want 5", len(web))
		}
		for _, tk := range devTasks(t, cli, "web") {
			if tk.ID == victim.Task && tk.Status.State == "TASK_STATE_RUNNING" && tk.Status.Restarts == 1 {
				return nil
			}
		}
		return fmt.Errorf("task %s not reported restarted once: %+v", victim.Task, devTasks(t, cli, "web"))
	})
	if ls := must("service", "ls"); !strings.Contains(ls, "5/5") {
		t.Fatalf("after the restart:\n%s", ls)
	}

	// Restart condition none: the task runs once, ends, and stays ended.
	must("service", "create", "-d", "--name", "once", "--restart-condition", "none", img.Ref, "echo", "once ran")
	var once devTask
	harness.Eventually(t, 20*time.Second, func() error {
		ts := devTasks(t, cli, "once")
		if len(ts) != 1 || ts[0].Status.State != "TASK_STATE_COMPLETE" {
			return fmt.Errorf("once: %+v", ts)
		}
		once = ts[0]
		return nil
	})
	ended := func() error {
		c, ok := devContainerOf(t, cli, once.ID)
		if !ok || c.Status != "exited" || c.ExitCode != 0 {
			return fmt.Errorf("task %s of once: container %+v (found %v); want one that exited 0", once.ID, c, ok)
		}
		if logs := must("logs", c.ID); !strings.Contains(logs, "once ran") {
			return fmt.Errorf("once's container did not run its command: logs %q", logs)
		}
		if live, err := of("once"); err != nil || len(live) != 0 {
			return fmt.Errorf("once runs %v (%v) after it ended", live, err)
		}
		if ts := devTasks(t, cli, "once"); len(ts) != 1 {
			return fmt.Errorf("once has %d tasks after its one ended: %+v", len(ts), ts)
		}
		return nil
	}
	if err := ended(); err != nil {
		t.Fatal(err)
	}

	// A crash loop with --restart-max-attempts 2: the worker restarts the
	// task in place twice (the first at once), and then the slot has
	// used its attempts: the task stays failed, shut down, and nothing
	// replaces it, as in Swarm (whose slot runs 3 times too).
	must("service", "create", "-d", "--name", "crash", "--restart-max-attempts", "2", img.Ref, "crashloop")
	var crashed devTask
	harness.Eventually(t, 30*time.Second, func() error {
		ts := devTasks(t, cli, "crash")
		if len(ts) != 1 || ts[0].Status.State != "TASK_STATE_FAILED" || ts[0].DesiredState != "TASK_STATE_SHUTDOWN" {
			return fmt.Errorf("crash: %+v; want one task, failed and shut down", ts)
		}
		crashed = ts[0]
		return nil
	})
	if crashed.Status.Restarts != 2 || !strings.Contains(crashed.Status.Err, "max restart attempts (2) reached: task: non-zero exit (1)") {
		t.Fatalf("crash's task: %+v; want 2 restarts and the error saying its attempts are used", crashed)
	}
	spent := func() error {
		if ts := devTasks(t, cli, "crash"); len(ts) != 1 || ts[0].ID != crashed.ID {
			return fmt.Errorf("crash has tasks %+v; want only %s", ts, crashed.ID)
		}
		if live, err := of("crash"); err != nil || len(live) != 0 {
			return fmt.Errorf("crash runs %v (%v) after its slot gave up", live, err)
		}
		var cs []devContainer
		if err := json.Unmarshal([]byte(must("ps", "-a", "--format", "json")), &cs); err != nil {
			return err
		}
		var mine []devContainer
		for _, c := range cs {
			if c.Labels["shoal.service.name"] == "crash" {
				mine = append(mine, c)
			}
		}
		if len(mine) != 1 || mine[0].Labels["shoal.task.id"] != crashed.ID || mine[0].Status != "exited" || mine[0].ExitCode != 1 {
			return fmt.Errorf("crash's containers %+v; want one, of task %s, that exited 1", mine, crashed.ID)
		}
		if logs := must("logs", mine[0].ID); !strings.Contains(logs, "crashloop: exiting") {
			return fmt.Errorf("crash's container did not run crashloop: logs %q", logs)
		}
		return nil
	}
	// An absence: the manager would replace a failed task after its
	// replace delay (1 s after one failure), so watch for three times
	// that, checking at every poll that nothing new was made or runs.
	harness.Holds(t, 3*replaceDelay, spent)
	if ls := must("service", "ls"); !regexp.MustCompile(`crash\s+replicated\s+0/1`).MatchString(ls) {
		t.Fatalf("service ls shows crash not as 0/1:\n%s", ls)
	}
	ps := must("service", "ps", "crash")
	if !regexp.MustCompile(`crash\.1 .*Shutdown\s+Failed .* ago \(2 restarts\)\s+"max restart attempts \(2\) reached: task: non-zero exit \(1\)"`).MatchString(ps) {
		t.Fatalf("service ps crash does not show the failed task, its restarts and why:\n%s", ps)
	}
	// Seconds later, once is still ended.
	if err := ended(); err != nil {
		t.Fatal(err)
	}
}

// containerPids maps the tasks of a node's containers that really run to
// their PIDs.
func containerPids(n *harness.Node) map[string]int {
	out := map[string]int{}
	for _, c := range n.RunningContainers() {
		out[c.Task] = c.Pid
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
		if err := c.Converged("web", 6); err != nil {
			return err
		}
		if len(containerPids(w)) == 0 {
			return fmt.Errorf("no task on the worker")
		}
		return nil
	})
	before := containerPids(w)
	following := w.LogCount(faults.FollowingLog)
	w.Stop()
	w.Start()
	// Back when it follows the leader's assignments again (and so has
	// re-adopted its containers, or restarted them).
	harness.Eventually(t, 10*time.Second, func() error {
		if w.LogCount(faults.FollowingLog) <= following {
			return fmt.Errorf("%s does not follow the assignments again", w.Name)
		}
		return c.Converged("web", 6)
	})
	if after := containerPids(w); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a graceful daemon restart changed the containers: %v -> %v", before, after)
	}
	if ls := m.MustCLI("service", "ls"); !strings.Contains(ls, "6/6") {
		t.Fatalf("not 6/6 after the restart:\n%s", ls)
	}

	// Freeze the worker long enough to be declared down: its tasks are
	// replaced elsewhere; when it thaws, it stops the old containers.
	w.Freeze()
	harness.Eventually(t, 15*time.Second, func() error { return c.ConvergedOn("web", 6, c.Except(w)) })
	w.Thaw()
	harness.Eventually(t, 15*time.Second, func() error {
		if pids := containerPids(w); len(pids) != 0 {
			return fmt.Errorf("stale containers still run on the returned worker: %v", pids)
		}
		if ls := m.MustCLI("service", "ls"); !strings.Contains(ls, "6/6") {
			return fmt.Errorf("not 6/6:\n%s", ls)
		}
		return c.Converged("web", 6)
	})
}
