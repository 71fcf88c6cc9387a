package orchestrator

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/scheduler"
)

// recentFailureWindow is how long a task failure on a node ranks that node
// down for the same service.
const recentFailureWindow = 5 * time.Minute

// needsPlacement reports whether a task waits for the scheduler: meant
// to run (or, a job's, to run to completion) and not assigned yet. A task made for its node (a global
// service's) waits too: the scheduler checks that its node can take it.
func needsPlacement(t *shoalv1.Task) bool {
	s := t.GetStatus().GetState()
	return shoalv1.Runnable(t.GetDesiredState()) && (s == stNew || s == stPending)
}

func hostPorts(e *shoalv1.EndpointSpec) []string {
	var out []string
	for _, p := range e.GetPorts() {
		if p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_HOST && p.GetPublishedPort() != 0 {
			out = append(out, store.PortString(p))
		}
	}
	return out
}

// schedulerNodes converts nodes and the load of the tasks on them.
func schedulerNodes(nodes []*shoalv1.Node, tasks []*shoalv1.Task, now time.Time) []scheduler.Node {
	idx := make(map[string]int, len(nodes))
	out := make([]scheduler.Node, len(nodes))
	for i, n := range nodes {
		role := "worker"
		if n.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER {
			role = "manager"
		}
		avail := scheduler.Active
		switch n.GetSpec().GetAvailability() {
		case shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE:
			avail = scheduler.Pause
		case shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
			avail = scheduler.Drain
		}
		d := n.GetDescription()
		out[i] = scheduler.Node{
			ID: n.GetId(), Hostname: d.GetHostname(), Role: role,
			Ready:        n.GetStatus().GetState() == shoalv1.NodeState_NODE_STATE_READY,
			Availability: avail, Labels: n.GetSpec().GetLabels(), EngineLabels: d.GetEngineLabels(),
			OS: d.GetPlatform().GetOs(), Arch: d.GetPlatform().GetArchitecture(),
			NanoCPUs: d.GetResources().GetNanoCpus(), MemoryBytes: d.GetResources().GetMemoryBytes(),
			ServiceTasks: map[string]int{}, HostPorts: map[string]bool{}, RecentFailures: map[string]int{},
		}
		idx[n.GetId()] = i
	}
	for _, t := range tasks {
		i, ok := idx[t.GetNodeId()]
		if !ok {
			continue
		}
		n := &out[i]
		s := t.GetStatus().GetState()
		if (s == stFailed || s == stRejected) && now.Sub(statusTime(t)) < recentFailureWindow {
			n.RecentFailures[t.GetServiceId()]++
		}
		if !shoalv1.Runnable(t.GetDesiredState()) || Terminal(s) || needsPlacement(t) {
			continue // not on the node (a task waiting for it is the batch's)
		}
		n.Tasks++
		n.ServiceTasks[t.GetServiceId()]++
		r := t.GetSpec().GetResources().GetReservations()
		n.ReservedNanoCPUs += r.GetNanoCpus()
		n.ReservedMemory += r.GetMemoryBytes()
		for _, p := range hostPorts(t.GetEndpoint()) {
			n.HostPorts[p] = true
		}
	}
	return out
}

func schedulerTask(t *shoalv1.Task) scheduler.Task {
	p := t.GetSpec().GetPlacement()
	var prefs []string
	for _, pr := range p.GetPreferences() {
		prefs = append(prefs, pr.GetSpreadDescriptor())
	}
	strategy := scheduler.Spread
	if p.GetStrategy() == shoalv1.PlacementStrategy_PLACEMENT_STRATEGY_BINPACK {
		strategy = scheduler.Binpack
	}
	r := t.GetSpec().GetResources().GetReservations()
	var platforms []string
	for _, pl := range p.GetPlatforms() {
		platforms = append(platforms, pl.GetOs()+"/"+pl.GetArchitecture())
	}
	return scheduler.Task{
		ID: t.GetId(), ServiceID: t.GetServiceId(), Constraints: p.GetConstraints(), Preferences: prefs,
		ReserveNanoCPUs: r.GetNanoCpus(), ReserveMemory: r.GetMemoryBytes(), HostPorts: hostPorts(t.GetEndpoint()),
		MaxReplicasPerNode: p.GetMaxReplicas(), Strategy: strategy, Node: t.GetNodeId(), Platforms: platforms,
	}
}

// Schedule places the tasks that wait for a node. existing are the
// stored tasks (their load counts), fresh are tasks created in this pass
// (changed in place). It returns updates for stored tasks.
func Schedule(nodes []*shoalv1.Node, existing []*shoalv1.Task, fresh []*shoalv1.Task, now time.Time, seed int64) []Change {
	var pending []*shoalv1.Task
	stored := map[string]bool{}
	for _, t := range existing {
		if needsPlacement(t) {
			pending = append(pending, t)
			stored[t.GetId()] = true
		}
	}
	for _, t := range fresh {
		if needsPlacement(t) {
			pending = append(pending, t)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	all := append(append([]*shoalv1.Task{}, existing...), fresh...)
	snodes := schedulerNodes(nodes, all, now)
	stasks := make([]scheduler.Task, len(pending))
	for i, t := range pending {
		stasks[i] = schedulerTask(t)
	}
	res := scheduler.Place(snodes, stasks, seed)
	ts := timestamppb.New(now)
	var out []Change
	for _, t := range pending {
		next := t
		if stored[t.GetId()] {
			next = proto.Clone(t).(*shoalv1.Task)
		}
		if next.Status == nil {
			next.Status = &shoalv1.TaskStatus{}
		}
		if node, ok := res.Placements[t.GetId()]; ok {
			next.NodeId = node
			next.Status.State = stAssigned
			next.Status.Timestamp = ts
			next.Status.Message = "scheduled"
			next.Status.Err = ""
		} else {
			reason := res.Unplaced[t.GetId()]
			if t.GetStatus().GetState() == stPending && t.GetStatus().GetErr() == reason {
				continue // unchanged: no write
			}
			next.Status.State = stPending
			next.Status.Timestamp = ts
			next.Status.Message = "pending task scheduling"
			next.Status.Err = reason
		}
		if stored[t.GetId()] {
			out = append(out, Change{Task: next, Reason: next.Status.Message})
		}
	}
	return out
}
