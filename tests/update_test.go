package tests

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// A rolling update of workloads that ignore SIGTERM (each old container
// lives its whole stop grace period), watched in /proc: stop-first never
// has more than 3 workload processes alive and takes down one slot at a
// time; start-first never has fewer than 3 running. Then an update to an
// image that cannot be pulled rolls back by itself. The update config is
// set through the control API.
func TestRollingUpdateOrder(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	c := harness.StartCluster(t, 1, 1)
	m := c.Managers[0]
	m.MustCLI("service", "create", "-d", "--name", "slow", "--replicas", "3", "--stop-grace-period", "2s", img.Ref, "hang")
	harness.Eventually(t, 20*time.Second, func() error { return c.Converged("slow", 3) })

	setUpdateConfig(t, m, &shoalv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Second),
		Order: shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST})
	w := watchWorkloads(t, c, "slow")
	m.MustCLI("service", "update", "-d", "--env-add", "V=2", "slow")
	waitUpdated(t, c, m, "V=2")
	lo, hi, steps := w.stop()
	if hi > 3 || lo < 2 {
		t.Fatalf("stop-first: between %d and %d workloads alive during the update; want 2 to 3 (one slot down at a time, never old and new together)\n%s", lo, hi, steps)
	}
	if !strings.Contains(steps, "2 alive") {
		t.Fatalf("stop-first: never saw a slot down while its old task stopped:\n%s", steps)
	}

	setUpdateConfig(t, m, &shoalv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Second),
		Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST})
	w = watchWorkloads(t, c, "slow")
	m.MustCLI("service", "update", "-d", "--env-add", "V=3", "slow")
	waitUpdated(t, c, m, "V=3")
	lo, hi, steps = w.stop()
	// (Old tasks may still be dying in their grace period beside the
	// next new one: they left the update once their replacement was
	// ready.)
	if lo < 3 {
		t.Fatalf("start-first parallelism 1: between %d and %d workloads alive during the update; want never fewer than 3\n%s", lo, hi, steps)
	}
	if !strings.Contains(steps, "4 alive") {
		t.Fatalf("start-first: never saw the new task beside the old one:\n%s", steps)
	}
	out := m.MustCLI("service", "inspect", "slow")
	if !strings.Contains(out, "update completed") {
		t.Fatalf("service inspect after the update lacks its status:\n%s", out)
	}

	// An image that cannot be pulled, with --update-failure-action
	// rollback: the first new task is rejected, the orchestrator rolls
	// the service back by itself, and the old spec runs on every slot.
	setUpdateConfig(t, m, &shoalv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Second),
		FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK})
	before := imageOf(t, m)
	m.MustCLI("service", "update", "-d", "--image", "127.0.0.1:1/nosuch:1", "slow")
	var svc *shoalv1.Service
	harness.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := m.Control().GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "slow"})
		if err != nil {
			return err
		}
		svc = got.GetService()
		if st := svc.GetUpdateStatus(); st.GetState() != shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED {
			return fmt.Errorf("update status %v", st)
		}
		n := 0
		for _, node := range c.Nodes() {
			for _, ct := range harness.Of("slow", node.RunningContainers()) {
				if !hasEnv(ct.Env, "V=3") {
					return fmt.Errorf("container %s (task %s) runs without V=3", ct.ID, ct.Task)
				}
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d workloads alive; want 3", n)
		}
		return nil
	})
	if img := svc.GetSpec().GetTask().GetContainer().GetImage(); img != before || svc.GetPreviousSpec().GetTask().GetContainer().GetImage() != "127.0.0.1:1/nosuch:1" {
		t.Fatalf("after the automatic rollback the spec runs %s (previous %s); want the old image back", img, svc.GetPreviousSpec().GetTask().GetContainer().GetImage())
	}
	if ps := m.MustCLI("service", "inspect", "slow"); !strings.Contains(ps, "rollback completed") {
		t.Fatalf("service inspect after the rollback lacks its status:\n%s", ps)
	}
}

func imageOf(t *testing.T, m *harness.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := m.Control().GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	return got.GetService().GetSpec().GetTask().GetContainer().GetImage()
}

// setUpdateConfig sets the service's update config through the control
// API (a change of no task: no update).
func setUpdateConfig(t *testing.T, m *harness.Node, cfg *shoalv1.UpdateConfig) {
	t.Helper()
	ctl := m.Control()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ctl.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	spec := got.GetService().GetSpec()
	spec.Update = cfg
	if _, err := ctl.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: got.GetService().GetId(), Version: got.GetService().GetMeta().GetVersion(), Spec: spec}); err != nil {
		t.Fatal(err)
	}
}

// waitUpdated waits for the update to complete with every workload
// running with env.
func waitUpdated(t *testing.T, c *harness.Cluster, m *harness.Node, env string) {
	t.Helper()
	harness.Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := m.Control().GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "slow"})
		if err != nil {
			return err
		}
		if st := got.GetService().GetUpdateStatus(); st.GetState() != shoalv1.UpdateState_UPDATE_STATE_COMPLETED {
			return fmt.Errorf("update status %v", st)
		}
		n := 0
		for _, node := range c.Nodes() {
			for _, ct := range harness.Of("slow", node.RunningContainers()) {
				if !hasEnv(ct.Env, env) {
					return fmt.Errorf("container %s (task %s) still runs without %s", ct.ID, ct.Task, env)
				}
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d workloads alive; want 3", n)
		}
		return nil
	})
}

func hasEnv(env []string, kv string) bool {
	for _, e := range env {
		if e == kv {
			return true
		}
	}
	return false
}

// watch samples the service's workload processes alive in /proc on every
// node until stopped.
type watch struct {
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	min, max int
	steps    []string
}

func watchWorkloads(t *testing.T, c *harness.Cluster, svc string) *watch {
	w := &watch{done: make(chan struct{}), min: 1 << 30}
	t.Cleanup(func() { w.stop() }) // also when the test fails first
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		last := ""
		for {
			select {
			case <-w.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var tasks []string
			for _, n := range c.Nodes() {
				for _, ct := range harness.Of(svc, n.RunningContainers()) {
					tasks = append(tasks, ct.Task)
				}
			}
			w.min, w.max = min(w.min, len(tasks)), max(w.max, len(tasks))
			if s := fmt.Sprintf("%d alive: %s", len(tasks), strings.Join(tasks, " ")); s != last {
				w.steps = append(w.steps, s)
				last = s
			}
		}
	}()
	return w
}

func (w *watch) stop() (min, max int, steps string) {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
	return w.min, w.max, strings.Join(w.steps, "\n")
}
