package cli

import (
	"context"
	"fmt"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// progressPoll is how often the wait looks at the service. The control
// API has no watch stream of tasks, so the wait polls, as docker's does
// (every 200 ms, three small reads).
const progressPoll = 200 * time.Millisecond

// waitConverged shows the progress of service ref (an ID or name) until
// it has converged (see progress.go). Interrupted (Ctrl-C), it leaves the
// service as it is, says so and succeeds, as docker does; quiet shows
// nothing while it waits. A paused update or rollback is an error. prior
// is the service's update status before the command changed it (nil for
// a new service).
func (g *globals) waitConverged(ctx context.Context, c shoalv1.ControlServiceClient, ref string, quiet bool, prior *shoalv1.UpdateStatus) error {
	if job, err := g.waitJob(ctx, c, ref, quiet); job { // service_jobs.go
		return err
	}
	out := newProgressOutput(g.out, quiet)
	conv := newConvergence(prior)
	tick := time.NewTicker(progressPoll)
	defer tick.Stop()
	for {
		look, err := lookAt(ctx, c, ref)
		switch {
		case ctx.Err() != nil:
			out.note("Operation continuing in background.")
			out.note(fmt.Sprintf("Use `shoal service ps %s` to check progress.", ref))
			return nil
		case err != nil:
			return err
		}
		f := conv.step(look)
		out.show(f)
		if f.err != nil || f.converged {
			return f.err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// lookAt reads what the progress needs: the service, its tasks of the
// current spec, the nodes meant to run any of its tasks and the nodes
// that are down.
func lookAt(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (serviceLook, error) {
	svc, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: ref})
	if err != nil {
		return serviceLook{}, err
	}
	id := svc.GetService().GetId()
	tasks, err := c.ListTasks(ctx, &shoalv1.ListTasksRequest{ServiceId: id, UpToDate: true})
	if err != nil {
		return serviceLook{}, err
	}
	active := map[string]bool{}
	if svc.GetService().GetSpec().GetGlobal() != nil {
		all, err := c.ListTasks(ctx, &shoalv1.ListTasksRequest{ServiceId: id})
		if err != nil {
			return serviceLook{}, err
		}
		for _, t := range all.GetTasks() {
			if t.GetDesiredState() == shoalv1.TaskState_TASK_STATE_RUNNING && t.GetNodeId() != "" {
				active[t.GetNodeId()] = true
			}
		}
	}
	nodes, err := c.ListNodes(ctx, &shoalv1.ListNodesRequest{})
	if err != nil {
		return serviceLook{}, err
	}
	down := map[string]bool{}
	for _, n := range nodes.GetNodes() {
		if n.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_DOWN {
			down[n.GetId()] = true
		}
	}
	return serviceLook{service: svc.GetService(), tasks: tasks.GetTasks(), active: active, down: down, now: time.Now()}, nil
}
