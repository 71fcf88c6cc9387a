// Command nodeloss measures, on a loopback cluster of real daemons running
// real containers, the time from killing a worker host (its daemon and its
// containers, SIGKILL) to the leader marking it down, and from then to
// every one of its tasks running again on another node. With -gossip both
// it runs the trials twice, side by side: with gossip (the default) and
// with `--gossip-addr off`, heartbeats alone.
//
//	go run ./tests/bench/nodeloss [-replicas 60] [-trials 5] [-gossip on|off|both]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

func main() {
	replicas := flag.Int64("replicas", 60, "tasks of the service")
	trials := flag.Int("trials", 5, "nodes killed, one per trial")
	gossip := flag.String("gossip", "on", "on, off (heartbeats alone) or both, side by side")
	flag.Parse()
	t := benchkit.NewTB(false)
	defer t.Close()
	defer harness.RemoveBinary()
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	variants := map[string][]string{"on": {"on"}, "off": {"off"}, "both": {"on", "off"}}[*gossip]
	if variants == nil {
		t.Fatalf("-gossip %q: want on, off or both", *gossip)
	}
	fmt.Printf("nodeloss: 1 manager + 3 workers on loopback, %d replicas of real containers, %d trials (a worker host killed: daemon and containers, SIGKILL)\n", *replicas, *trials)
	fmt.Printf("machine: %s\n", benchkit.DescribeMachine())
	for _, v := range variants {
		args := benchkit.DaemonArgs("info")
		if v == "off" {
			args = append(args, "--gossip-addr", "off")
		}
		fmt.Printf("gossip %s:\n", v)
		run(t, img, *replicas, *trials, args)
	}
}

func run(t *benchkit.TB, img testimage.Served, replicas int64, trials int, args []string) {
	c := harness.StartCluster(t, 1, 3, args...)
	defer func() {
		for _, n := range c.Nodes() {
			n.KillHost()
		}
	}()
	m := c.Managers[0]
	ctl := m.Control()
	ctx := context.Background()
	spec := benchkit.ServiceSpec("web")
	spec.GetReplicated().Replicas = replicas
	spec.Task.Container.Image = img.Ref
	spec.Task.Container.Args = []string{"sleep", "1h"}
	created, err := ctl.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	svcID := created.GetService().GetId()
	ids := map[*harness.Node]string{}
	// Map workers to node IDs through their state files.
	for _, w := range c.Workers {
		ids[w] = readNodeID(w)
	}
	active := func() (map[string]int, int) {
		resp, err := ctl.ListTasks(ctx, &shoalv1.ListTasksRequest{ServiceId: svcID})
		if err != nil {
			return nil, 0
		}
		by, total := map[string]int{}, 0
		for _, tk := range resp.GetTasks() {
			if tk.GetDesiredState() == shoalv1.TaskState_TASK_STATE_RUNNING && tk.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_RUNNING {
				by[tk.GetNodeId()]++
				total++
			}
		}
		return by, total
	}
	wait := func(what string, fn func() bool) time.Time {
		deadline := time.Now().Add(60 * time.Second)
		for !fn() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Now()
	}
	var downs, replaces, totals []time.Duration
	for i := 0; i < trials; i++ {
		victim := c.Workers[i%len(c.Workers)]
		id := ids[victim]
		wait("all tasks running", func() bool {
			by, total := active()
			return total == int(replicas) && by[id] > 0
		})
		by, _ := active()
		lost := by[id]
		killed := time.Now()
		victim.KillHost()
		down := wait("node down", func() bool {
			n, err := ctl.GetNode(ctx, &shoalv1.GetNodeRequest{NodeId: id})
			return err == nil && n.GetNode().GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_DOWN
		})
		done := wait("replacements running", func() bool {
			by, total := active()
			return by[id] == 0 && total == int(replicas)
		})
		downs = append(downs, down.Sub(killed))
		replaces = append(replaces, done.Sub(down))
		totals = append(totals, done.Sub(killed))
		fmt.Fprintf(os.Stderr, "trial %d: %d tasks on the lost node; down after %v, all running again %v later (%v in all)\n",
			i+1, lost, down.Sub(killed).Round(time.Millisecond), done.Sub(down).Round(time.Millisecond), done.Sub(killed).Round(time.Millisecond))
		victim.Start()
		// Spread the tasks again for the next trial.
		cur, _ := ctl.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: svcID})
		sp := cur.GetService().GetSpec()
		sp.GetReplicated().Replicas = 0
		up, err := ctl.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: svcID, Version: cur.GetService().GetMeta().GetVersion(), Spec: sp})
		if err != nil {
			t.Fatal(err)
		}
		wait("scaled to 0", func() bool { _, total := active(); return total == 0 })
		wait("node back", func() bool {
			n, err := ctl.GetNode(ctx, &shoalv1.GetNodeRequest{NodeId: id})
			return err == nil && n.GetNode().GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_READY
		})
		sp.GetReplicated().Replicas = replicas
		if _, err := ctl.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: svcID, Version: up.GetService().GetMeta().GetVersion(), Spec: sp}); err != nil {
			t.Fatal(err)
		}
	}
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{{"kill -> node down", downs}, {"down -> all running again", replaces}, {"kill -> all running again", totals}} {
		sort.Slice(row.ds, func(i, j int) bool { return row.ds[i] < row.ds[j] })
		fmt.Printf("%-22s median %7.0f ms   max %7.0f ms\n", row.name, float64(row.ds[len(row.ds)/2].Microseconds())/1000, float64(row.ds[len(row.ds)-1].Microseconds())/1000)
	}
}

func readNodeID(n *harness.Node) string {
	data, err := os.ReadFile(n.Dir + "/data/state.json")
	if err != nil {
		return ""
	}
	s := string(data)
	const key = `"node_id": "`
	for i := 0; i+len(key) < len(s); i++ {
		if s[i:i+len(key)] == key {
			j := i + len(key)
			k := j
			for k < len(s) && s[k] != '"' {
				k++
			}
			return s[j:k]
		}
	}
	return ""
}
