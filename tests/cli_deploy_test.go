package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// alive reports whether process pid exists.
func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// The deploy flags through the real CLI against a real cluster: a
// service created with a health check and update and rollback configs
// shows them in inspect --pretty and templates, waits for its update
// monitor (not docker's fixed 5 s), and `service update --force` with a
// new parallelism replaces every container (new workload processes in
// /proc, the old ones gone) while keeping the rest of the config.
func TestCLIDeployFlags(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 1)
	m := c.Managers[0]

	out := m.MustCLI("service", "create", "--name", "web", "--replicas", "4",
		"--health-cmd", "true", "--health-interval", "1s", "--health-retries", "2",
		"--update-delay", "1s", "--update-monitor", "2s", "--update-failure-action", "rollback", "--update-order", "start-first",
		"--rollback-parallelism", "3", "--rollback-monitor", "3s", img.Ref)
	if !strings.Contains(out, "\nverify: Waiting 2 seconds to verify that tasks are stable...\n") || strings.Contains(out, "Waiting 5 seconds") {
		t.Errorf("create's verify window is not the 2 s --update-monitor:\n%s", out)
	}
	if !strings.HasSuffix(out, "\nverify: Service converged\n") {
		t.Errorf("create did not converge:\n%s", out)
	}
	before := serviceContainers(c, "web")
	if len(before) != 4 {
		t.Fatalf("create returned with %d of 4 containers running:\n%s", len(before), out)
	}

	pretty := m.MustCLI("service", "inspect", "--pretty", "web")
	for _, want := range []string{
		"\nName:\t\tweb\n",
		"\nService Mode:\tReplicated\n Replicas:\t4\n",
		"\nUpdateConfig:\n Parallelism:\t1\n Delay:\t\t1s\n On failure:\trollback\n Monitoring Period: 2s\n Max failure ratio: 0\n Update order:      start-first\n",
		"\nRollbackConfig:\n Parallelism:\t3\n On failure:\tpause\n Monitoring Period: 3s\n Max failure ratio: 0\n Rollback order:    stop-first\n",
		"\nContainerSpec:\n Image:\t\t" + img.Ref + "@sha256:", // pinned at create

		"\n Healthcheck:\n  Interval = 1s\n  Retries = 2\n",
		"\n  Tests:\n\t Test = CMD-SHELL\n\t Test = true\n",
	} {
		if !strings.Contains(pretty, want) {
			t.Errorf("inspect --pretty lacks %q:\n%s", want, pretty)
		}
	}
	tmpl := "{{.Spec.UpdateConfig.Parallelism}} {{.Spec.UpdateConfig.Order}} {{.Spec.RollbackConfig.Parallelism}} {{.Spec.Task.Container.Healthcheck.Test}} {{.Spec.Task.ForceUpdate}}"
	if got := m.MustCLI("service", "inspect", "--format", tmpl, "web"); got != "1 UPDATE_ORDER_START_FIRST 3 [CMD-SHELL true] 0\n" {
		t.Errorf("inspect --format %s = %q", tmpl, got)
	}

	// Bad values are refused before anything changes.
	if _, err := m.CLI("service", "update", "--update-max-failure-ratio", "2", "web"); err == nil ||
		!strings.Contains(err.Error(), "exit status 125") || !strings.Contains(err.Error(), `invalid argument "2" for "--update-max-failure-ratio" flag`) {
		t.Errorf("update --update-max-failure-ratio 2 = %v; want docker's flag error, exit status 125", err)
	}
	if _, err := m.CLI("service", "update", "--health-cmd", "true", "--health-tcp", "80", "web"); err == nil ||
		!strings.Contains(err.Error(), "exit status 1:") || !strings.Contains(err.Error(), "--health-cmd and --health-tcp conflict") {
		t.Errorf("update --health-cmd --health-tcp = %v; want the conflict, exit status 1", err)
	}

	// --force with a new parallelism: every task replaced, the config
	// otherwise kept.
	out = m.MustCLI("service", "update", "--update-parallelism", "2", "--force", "web")
	if !strings.HasPrefix(out, "web\n") || !strings.HasSuffix(out, "\nverify: Service converged\n") {
		t.Errorf("update --force output:\n%s", out)
	}
	after := serviceContainers(c, "web")
	if len(after) != 4 {
		t.Fatalf("update --force returned with %d of 4 containers running:\n%s", len(after), out)
	}
	old := map[int]bool{}
	for _, ct := range before {
		old[ct.Pid] = true
	}
	for _, ct := range after {
		if old[ct.Pid] {
			t.Errorf("container %s (task %s) kept its workload process %d through update --force", ct.ID, ct.Task, ct.Pid)
		}
	}
	harness.Eventually(t, 30*time.Second, func() error {
		for _, ct := range before {
			if alive(ct.Pid) {
				return fmt.Errorf("old workload process %d (task %s) still alive", ct.Pid, ct.Task)
			}
		}
		return nil
	})
	if got := m.MustCLI("service", "inspect", "--format", tmpl, "web"); got != "2 UPDATE_ORDER_START_FIRST 3 [CMD-SHELL true] 1\n" {
		t.Errorf("after update --force: inspect --format %s = %q", tmpl, got)
	}

	// Subtests call m.CLI, not m.MustCLI, which fails the parent test.
	cli := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := m.CLI(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Run("health in service ps", func(t *testing.T) {
		tasks, err := c.Tasks("web")
		if err != nil {
			t.Fatal(err)
		}
		reported := false
		for _, task := range tasks {
			reported = reported || task.GetStatus().GetHealth() != nil
		}
		if !reported {
			// Waits for branches health (the prober) and exec (CMD checks).
			t.Skip("the workers report no task health yet: nothing for service ps to show")
		}
		// --health-cmd true passes: every running task is healthy.
		harness.Eventually(t, 30*time.Second, func() error {
			ps, err := m.CLI("service", "ps", "--format", "{{.Name}}|{{.DesiredState}}|{{.CurrentState}}", "web")
			if err != nil {
				return err
			}
			n := 0
			for _, row := range strings.Split(strings.TrimSpace(ps), "\n") {
				f := strings.Split(row, "|")
				if len(f) != 3 || f[1] != "Running" {
					continue
				}
				if !strings.HasPrefix(f[2], "Running ") || !strings.HasSuffix(f[2], " ago (healthy)") {
					return fmt.Errorf("task %s is %q; want Running ... ago (healthy):\n%s", f[0], f[2], ps)
				}
				n++
			}
			if n != 4 {
				return fmt.Errorf("%d tasks running healthy; want 4:\n%s", n, ps)
			}
			return nil
		})
	})

	t.Run("rollback", func(t *testing.T) {
		out := cli(t, "service", "rollback", "web")
		state := cli(t, "service", "inspect", "--format", "{{with .UpdateStatus}}{{.State}}{{end}}", "web")
		if s := strings.TrimSpace(state); s == "" || s == shoalv1.UpdateState_UPDATE_STATE_UNSPECIFIED.String() {
			// Waits for branch updater (the manager's side of rollback).
			t.Skipf("the manager keeps no update status yet: rollback printed\n%s", out)
		}
		if !strings.Contains(out, "\nrollback: manually requested rollback\n") || !strings.Contains(out, "\noverall progress: rolling back update: 4 out of 4 tasks\n") {
			t.Errorf("rollback's progress:\n%s", out)
		}
		if got := cli(t, "service", "inspect", "--format", tmpl, "web"); got != "1 UPDATE_ORDER_START_FIRST 3 [CMD-SHELL true] 0\n" {
			t.Errorf("after rollback: inspect --format %s = %q; want the spec before update --force", tmpl, got)
		}
		if got := len(serviceContainers(c, "web")); got != 4 {
			t.Errorf("rollback returned with %d of 4 containers running", got)
		}
	})

	t.Run("paused update", func(t *testing.T) {
		state := cli(t, "service", "inspect", "--format", "{{with .UpdateStatus}}{{.State}}{{end}}", "web")
		if s := strings.TrimSpace(state); s == "" || s == shoalv1.UpdateState_UPDATE_STATE_UNSPECIFIED.String() {
			t.Skip("the manager keeps no update status yet (branch updater)")
		}
		// An image that cannot be pulled: the first new task fails, the
		// update pauses, and the waiting command fails with its message.
		out, err := m.CLI("service", "update", "--update-failure-action", "pause", "--image", unreachableImage, "web")
		// The unreachable registry gives docker's warning first, on stderr.
		if err == nil || !strings.Contains(err.Error(), "exit status 1: ") || !strings.Contains(err.Error(), "could not be accessed on a registry to record") ||
			!strings.Contains(err.Error(), "\nError: service update paused: update paused due to failure or early termination of task ") {
			t.Fatalf("update to an image that cannot be pulled = %v; want docker's paused error, exit status 1\n%s", err, out)
		}
		pretty := cli(t, "service", "inspect", "--pretty", "web")
		if !strings.Contains(pretty, "\nUpdateStatus:\n State:\t\tpaused\n Started:\t") || !strings.Contains(pretty, "\n Message:\tupdate paused due to failure or early termination of task ") {
			t.Errorf("inspect --pretty of a paused update:\n%s", pretty)
		}
		if got := len(serviceContainers(c, "web")); got < 3 {
			t.Errorf("%d containers of web running while the update is paused; want the old ones serving", got)
		}
	})
}
