package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// taskName is docker's web.3 (replicated) or web.<node ID> (global: the
// full ID, truncated or not, as docker shows it).
func taskName(t *shoalv1.Task) string {
	if t.GetSlot() > 0 {
		return fmt.Sprintf("%s.%d", t.GetServiceName(), t.GetSlot())
	}
	return t.GetServiceName() + "." + t.GetNodeId()
}

func taskState(s shoalv1.TaskState) string {
	return titleCase(enumName(s.String(), "TASK_STATE_"))
}

// currentState is docker's "Running 3 seconds ago", with a running
// task's health and its in-place restarts after it: "Running 3 seconds
// ago (healthy)", "Running 3 seconds ago (unhealthy, 2 restarts)".
// Docker shows a row per restart, each a new task; a Shoal worker
// restarts a task in place, in a new container of the same task, so the
// count stands where docker's rows would be.
func currentState(t *shoalv1.Task, now time.Time) string {
	st := t.GetStatus()
	s := taskState(st.GetState()) + " " + humanDuration(now.Sub(st.GetTimestamp().AsTime())) + " ago"
	var notes []string
	if h := healthName(t); h != "" {
		notes = append(notes, h)
	}
	if n := st.GetRestarts(); n > 0 {
		notes = append(notes, plural(int(n), "restart"))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, ", ") + ")"
	}
	return s
}

// healthName is a running task's health as docker's ps shows it:
// starting, healthy or unhealthy; "" with no check or when not running.
func healthName(t *shoalv1.Task) string {
	h := t.GetStatus().GetHealth()
	if h == nil || h.GetState() == shoalv1.HealthState_HEALTH_STATE_UNSPECIFIED || t.GetStatus().GetState() != shoalv1.TaskState_TASK_STATE_RUNNING {
		return ""
	}
	return enumName(h.GetState().String(), "HEALTH_STATE_")
}

// taskError is the ERROR column: the task's error; with noTrunc, for a
// task running unhealthy with no error yet, its last probe's output
// (docker keeps that for inspect; a table is where an operator looks).
func taskError(t *shoalv1.Task, noTrunc bool) string {
	e := t.GetStatus().GetErr()
	if e == "" && noTrunc && healthName(t) == "unhealthy" {
		if out := strings.TrimSpace(t.GetStatus().GetHealth().GetOutput()); out != "" {
			e = "health check: " + strings.Join(strings.Fields(out), " ")
		}
	}
	if !noTrunc {
		e = truncate(e, 60)
	}
	if e != "" {
		e = fmt.Sprintf("%q", e)
	}
	return e
}

// taskColumns are service ps's template fields, docker's. Like docker's
// table, the older tasks of a slot are indented under the newest: tasks
// come from the server newest first within a slot.
func taskColumns(hosts map[string]string, now time.Time, noTrunc bool) []column[*shoalv1.Task] {
	prevSlot := ""
	return []column[*shoalv1.Task]{
		{"ID", "ID", func(t *shoalv1.Task) any {
			if noTrunc {
				return t.GetId()
			}
			return shortID(t.GetId())
		}},
		{"Name", "NAME", func(t *shoalv1.Task) any {
			name := taskName(t)
			if name == prevSlot {
				return " \\_ " + name
			}
			prevSlot = name
			return name
		}},
		{"Image", "IMAGE", func(t *shoalv1.Task) any {
			if noTrunc {
				return t.GetSpec().GetContainer().GetImage()
			}
			return displayImage(t.GetSpec().GetContainer().GetImage())
		}},
		{"Node", "NODE", func(t *shoalv1.Task) any { return hosts[t.GetNodeId()] }},
		{"DesiredState", "DESIRED STATE", func(t *shoalv1.Task) any { return taskState(t.GetDesiredState()) }},
		{"CurrentState", "CURRENT STATE", func(t *shoalv1.Task) any { return currentState(t, now) }},
		{"Error", "ERROR", func(t *shoalv1.Task) any { return taskError(t, noTrunc) }},
		{"Ports", "PORTS", func(t *shoalv1.Task) any {
			var host []*shoalv1.PortConfig
			for _, p := range t.GetEndpoint().GetPorts() {
				if p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_HOST {
					host = append(host, p)
				}
			}
			return formatPorts(host)
		}},
	}
}

type taskPsFlags struct {
	listFlags
	filter  filterFlag
	noTrunc bool
}

// taskFilterHelp is what service ps and node ps take for --filter.
const taskFilterHelp = "desired-state (running, shutdown or accepted), id, name (service.slot), node (ID or hostname), service, label"

func newServicePsCmd(g *globals) *cobra.Command {
	return newTaskPsCmd(g, "ps SERVICE [SERVICE...]", "List the tasks of one or more services", minArgs(1),
		func(ref string) *shoalv1.ListTasksRequest { return &shoalv1.ListTasksRequest{ServiceId: ref} })
}

func newNodePsCmd(g *globals) *cobra.Command {
	return newTaskPsCmd(g, "ps [NODE...]", "List tasks running on one or more nodes, defaults to current node", cobra.ArbitraryArgs,
		func(ref string) *shoalv1.ListTasksRequest { return &shoalv1.ListTasksRequest{NodeId: ref} })
}

// newTaskPsCmd is service ps and node ps: the tasks of each argument
// (node ps: "self", this node, when none), filtered by the managers.
func newTaskPsCmd(g *globals, use, short string, args cobra.PositionalArgs, request func(ref string) *shoalv1.ListTasksRequest) *cobra.Command {
	f := &taskPsFlags{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			filters, err := f.filter.parse()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{"self"}
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			var tasks []*shoalv1.Task
			for _, ref := range args {
				req := request(ref)
				req.Filters = filters
				resp, err := c.ListTasks(ctx, req)
				if err != nil {
					return err
				}
				tasks = append(tasks, resp.GetTasks()...)
			}
			return g.printTasks(ctx, c, f, tasks)
		},
	}
	f.register(cmd.Flags(), "print task IDs only")
	f.filter.register(cmd.Flags(), taskFilterHelp)
	cmd.Flags().BoolVar(&f.noTrunc, "no-trunc", false, "do not truncate IDs and errors; show an unhealthy task's last health check output")
	return cmd
}

// printTasks prints tasks as service ps does: docker's table, with
// each task's node by hostname.
func (g *globals) printTasks(ctx context.Context, c shoalv1.ControlServiceClient, f *taskPsFlags, tasks []*shoalv1.Task) error {
	return printList(g.out, &f.listFlags, tasks, (*shoalv1.Task).GetId,
		"table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}",
		func() ([]column[*shoalv1.Task], error) {
			return taskColumns(g.hostnames(ctx, c), time.Now(), f.noTrunc), nil
		})
}

// hostnames maps node IDs to hostnames (falling back to the ID).
func (g *globals) hostnames(ctx context.Context, c shoalv1.ControlServiceClient) map[string]string {
	out := map[string]string{}
	resp, err := c.ListNodes(ctx, &shoalv1.ListNodesRequest{})
	if err != nil {
		return out
	}
	count := map[string]int{}
	for _, n := range resp.GetNodes() {
		count[n.GetDescription().GetHostname()]++
	}
	for _, n := range resp.GetNodes() {
		h := n.GetDescription().GetHostname()
		if count[h] > 1 || h == "" {
			// Test clusters on one machine share a hostname.
			h = strings.TrimSpace(h + " " + shortID(n.GetId()))
		}
		out[n.GetId()] = h
	}
	return out
}

// replicaCounts returns running and desired counts per service ID, and
// the counts of jobs' current runs (service_jobs.go).
func replicaCounts(ctx context.Context, c shoalv1.ControlServiceClient, svcs []*shoalv1.Service) (map[string][2]int, map[string]jobCount, error) {
	resp, err := c.ListTasks(ctx, &shoalv1.ListTasksRequest{})
	if err != nil {
		return nil, nil, err
	}
	out := map[string][2]int{}
	for _, s := range svcs {
		if r := s.GetSpec().GetReplicated(); r != nil {
			out[s.GetId()] = [2]int{0, int(r.GetReplicas())}
		}
	}
	global := map[string]bool{}
	for _, s := range svcs {
		global[s.GetId()] = s.GetSpec().GetGlobal() != nil
	}
	for _, t := range resp.GetTasks() {
		if t.GetDesiredState() != shoalv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		v := out[t.GetServiceId()]
		if t.GetStatus().GetState() == shoalv1.TaskState_TASK_STATE_RUNNING {
			v[0]++
		}
		if global[t.GetServiceId()] {
			v[1]++
		}
		out[t.GetServiceId()] = v
	}
	return out, jobCounts(svcs, resp.GetTasks()), nil
}
