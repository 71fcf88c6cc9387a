// Command converge measures how fast services converge on real
// containers: create with N replicas until all N run (on 1 node and on 3
// nodes), and a killed container until its task runs again (default
// restart policy).
//
//	make build && SHOAL_BIN=$PWD/bin/shoal go run ./tests/bench/converge [-trials 5]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

func main() {
	trials := flag.Int("trials", 5, "runs of each measurement")
	flag.Parse()
	t := benchkit.NewTB(false)
	defer t.Close()
	defer harness.RemoveBinary()
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	fmt.Printf("converge: real containers (whoami sleep) from a loopback registry, %d trials each\nmachine: %s\n", *trials, benchkit.DescribeMachine())
	for _, nodes := range []int{1, 3} {
		c := harness.StartCluster(t, 1, nodes-1, benchkit.DaemonArgs("info")...)
		m := c.Managers[0]
		ctl := m.Control()
		for _, n := range []int64{10, 100} {
			var ds []time.Duration
			for i := 0; i < *trials; i++ {
				ds = append(ds, createToRunning(t, ctl, img.Ref, fmt.Sprintf("c%d-%d-%d", nodes, n, i), n))
			}
			report(fmt.Sprintf("%d node(s): create --replicas %d -> %d running", nodes, n, n), ds)
		}
		if nodes == 1 {
			report("1 node: container killed -> its task running again", killToRunning(t, m, ctl, img.Ref, *trials))
		}
		for _, n := range c.Nodes() {
			n.KillHost()
		}
	}
}

func report(what string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	fmt.Printf("%-58s median %7.1f ms   max %7.1f ms\n", what, float64(ds[len(ds)/2].Microseconds())/1000, float64(ds[len(ds)-1].Microseconds())/1000)
}

func spec(name, image string, n int64) *shoalv1.ServiceSpec {
	s := benchkit.ServiceSpec(name)
	s.GetReplicated().Replicas = n
	s.Task.Container.Image = image
	s.Task.Container.Args = []string{"sleep", "1h"}
	return s
}

func running(ctl shoalv1.ControlServiceClient, svc string) (int, map[string]*shoalv1.Task) {
	resp, err := ctl.ListTasks(context.Background(), &shoalv1.ListTasksRequest{ServiceId: svc})
	if err != nil {
		return 0, nil
	}
	n, byID := 0, map[string]*shoalv1.Task{}
	for _, tk := range resp.GetTasks() {
		byID[tk.GetId()] = tk
		if tk.GetDesiredState() == shoalv1.TaskState_TASK_STATE_RUNNING && tk.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_RUNNING {
			n++
		}
	}
	return n, byID
}

func waitFor(t *benchkit.TB, what string, fn func() bool) {
	deadline := time.Now().Add(120 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func createToRunning(t *benchkit.TB, ctl shoalv1.ControlServiceClient, image, name string, n int64) time.Duration {
	ctx := context.Background()
	start := time.Now()
	resp, err := ctl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec(name, image, n)})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetService().GetId()
	waitFor(t, name+" running", func() bool { k, _ := running(ctl, id); return int64(k) == n })
	took := time.Since(start)
	if _, err := ctl.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: id}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, name+" removed", func() bool { _, all := running(ctl, id); return len(all) == 0 })
	return took
}

// killToRunning kills the container of a fresh one-replica service each
// trial, so every restart is a task's first (the default policy restarts
// that one at once, later ones with back-off).
func killToRunning(t *benchkit.TB, m *harness.Node, ctl shoalv1.ControlServiceClient, image string, trials int) []time.Duration {
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; i < trials; i++ {
		resp, err := ctl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec(fmt.Sprintf("restarts-%d", i), image, 1)})
		if err != nil {
			t.Fatal(err)
		}
		id := resp.GetService().GetId()
		var taskID string
		var restarts int32
		waitFor(t, "running", func() bool {
			k, all := running(ctl, id)
			for _, tk := range all {
				if tk.GetDesiredState() == shoalv1.TaskState_TASK_STATE_RUNNING {
					taskID, restarts = tk.GetId(), tk.GetStatus().GetRestarts()
				}
			}
			return k == 1
		})
		out, err := m.CLI("ps", "--format", "json")
		if err != nil {
			t.Fatal(err)
		}
		var cs []struct {
			Pid    int               `json:"pid"`
			Labels map[string]string `json:"labels"`
		}
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			t.Fatal(err)
		}
		pid := 0
		for _, c := range cs {
			if c.Labels["shoal.task.id"] == taskID {
				pid = c.Pid
			}
		}
		if pid == 0 || !strings.Contains(readFile(fmt.Sprintf("/proc/%d/cgroup", pid)), m.CgroupParent) {
			t.Fatalf("no container for task %s", taskID)
		}
		start := time.Now()
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, "restarted", func() bool {
			_, all := running(ctl, id)
			tk := all[taskID]
			return tk != nil && tk.GetStatus().GetRestarts() > restarts && tk.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_RUNNING
		})
		ds = append(ds, time.Since(start))
		if _, err := ctl.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: id}); err != nil {
			t.Fatal(err)
		}
	}
	return ds
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
