package orchestrator

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/store"
	"github.com/shoal-run/shoal/manager/store/storetest"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// direct applies batches to the store at once, as Raft would after
// committing them.
type direct struct{ storetest.Direct }

func (d *direct) put(t *testing.T, objs ...store.Object) {
	t.Helper()
	var b shoalv1.StoreBatch
	for _, o := range objs {
		kind := shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE
		var exists bool
		d.Store.View(func(r store.ReadTx) {
			switch o.(type) {
			case *shoalv1.Node:
				exists = store.Get[*shoalv1.Node](r, store.TableNode, o.GetId()) != nil
			case *shoalv1.Service:
				exists = store.Get[*shoalv1.Service](r, store.TableService, o.GetId()) != nil
			}
		})
		if exists {
			kind = shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE
		}
		b.Actions = append(b.Actions, &shoalv1.StoreAction{Kind: kind, Object: store.Wrap(o)})
	}
	if _, err := d.Propose(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

func capacity(n *shoalv1.Node) *shoalv1.Node {
	n.Description.Resources = &shoalv1.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30}
	return n
}

func tasksOf(s *store.Store) []*shoalv1.Task {
	var out []*shoalv1.Task
	s.View(func(r store.ReadTx) { out = store.List[*shoalv1.Task](r, store.TableTask) })
	return out
}

func activeByNode(s *store.Store) map[string]int {
	out := map[string]int{}
	for _, t := range tasksOf(s) {
		if t.GetDesiredState() == stRunning {
			out[t.GetNodeId()]++
		}
	}
	return out
}

// The loop against a real store: services become placed tasks, a lost
// node's tasks move, scale down retires, and nothing leaks.
func TestOrchestratorPasses(t *testing.T) {
	defer goleak.VerifyNone(t)
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	o := &Orchestrator{Store: st, Raft: d, Clock: clock.NewFake(t0), NewID: ids(), Log: zap.NewNop()}
	d.put(t, capacity(ready("n1")), capacity(ready("n2")), capacity(ready("n3")))
	d.put(t, svc("web", 6))
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := activeByNode(st); got["n1"] != 2 || got["n2"] != 2 || got["n3"] != 2 {
		t.Fatalf("6 replicas on 3 nodes: %v; want 2 each", got)
	}
	for _, tk := range tasksOf(st) {
		if tk.GetStatus().GetState() != stAssigned || tk.GetNodeId() == "" {
			t.Fatalf("task %s is %v on %q; want assigned", tk.GetId(), tk.GetStatus().GetState(), tk.GetNodeId())
		}
	}
	// n3 goes down: its two tasks are replaced on n1 and n2.
	d.put(t, capacity(node("n3", shoalv1.NodeState_NODE_STATE_DOWN, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil)))
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := activeByNode(st); got["n1"] != 3 || got["n2"] != 3 || got["n3"] != 0 {
		t.Fatalf("after n3 went down: %v; want 3, 3, 0", got)
	}
	// A second pass changes nothing.
	before := len(tasksOf(st))
	o.Pass(context.Background())
	if len(tasksOf(st)) != before {
		t.Fatal("a second pass changed the tasks")
	}
	// Scale down to 2.
	d.put(t, svc("web", 2))
	o.Pass(context.Background())
	active := 0
	for _, tk := range tasksOf(st) {
		if tk.GetDesiredState() == stRunning {
			active++
		}
	}
	if active != 2 {
		t.Fatalf("after scaling to 2: %d active tasks", active)
	}
	// A task no node can take says why.
	big := svc("big", 1)
	big.Spec.Task.Resources = &shoalv1.ResourceRequirements{Reservations: &shoalv1.Resources{MemoryBytes: 64 << 30}}
	d.put(t, big)
	o.Pass(context.Background())
	for _, tk := range tasksOf(st) {
		if tk.GetServiceId() == "big" {
			if tk.GetStatus().GetState() != stPending || !strings.Contains(tk.GetStatus().GetErr(), "no suitable node") {
				t.Fatalf("unplaceable task: %v %q", tk.GetStatus().GetState(), tk.GetStatus().GetErr())
			}
		}
	}
}

// parked waits until at least n timers of the fake clock wait: the loop
// under test came back to wait on its clock.
func parked(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clk.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("the orchestrator loop did not come back to wait on its clock: %v", err)
	}
}

// runOrchestrator runs o until the test ends, and waits for it to stop.
func runOrchestrator(t *testing.T, o *Orchestrator) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Run makes a pass when it starts, then after every burst of store
// changes once the burst settled, and stops with its context.
func TestOrchestratorRunFollowsTheStore(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the loop stopped
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	clk := clock.NewFake(t0)
	o := &Orchestrator{Store: st, Raft: d, Clock: clk, NewID: ids(), Log: zap.NewNop()}
	d.put(t, capacity(ready("n1")), svc("web", 1))
	runOrchestrator(t, o)
	// The first pass places the task; the loop then lets its write settle.
	parked(t, clk, 1)
	if got := activeByNode(st); got["n1"] != 1 {
		t.Fatalf("the first pass placed %v; want 1 task on n1", got)
	}
	// A change within the settle time joins the burst: no pass before
	// the burst settled.
	d.put(t, svc("web", 3))
	clk.Advance(settle - time.Millisecond)
	if got := activeByNode(st); got["n1"] != 1 {
		t.Fatalf("a pass ran before the writes settled: %v", got)
	}
	clk.Advance(time.Millisecond)
	// The pass writes its tasks, and the loop waits for those writes to
	// settle in turn.
	parked(t, clk, 1)
	if got := activeByNode(st); got["n1"] != 3 {
		t.Fatalf("after the scale-up settled: %v; want 3 tasks on n1", got)
	}
}

// A task that failed is replaced when its restart delay has passed, by a
// pass the loop's own timer starts, with no store change to wake it.
func TestOrchestratorRunReplacesFailedTaskAfterDelay(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the loop stopped
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	clk := clock.NewFake(t0)
	o := &Orchestrator{Store: st, Raft: d, Clock: clk, NewID: ids(), Log: zap.NewNop()}
	web := svc("web", 1)
	web.Spec.Task.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ANY, Delay: durationpb.New(time.Second)}
	d.put(t, capacity(ready("n1")), web)
	d.put(t, task("a", web, 1, "n1", stRunning, stFailed, t0.Add(-time.Minute), t0))
	runOrchestrator(t, o)
	replacements := func() int {
		n := 0
		for _, tk := range tasksOf(st) {
			if tk.GetId() != "a" && tk.GetDesiredState() == stRunning {
				n++
			}
		}
		return n
	}
	// The first pass (at once) shuts the failed task down and sets a
	// timer for the end of the delay; its write settles into a pass that
	// creates nothing.
	parked(t, clk, 2)
	clk.Advance(settle)
	if got := replacements(); got != 0 {
		t.Fatalf("%d replacements %v after the failure; want none before the 1s delay", got, clk.Since(t0))
	}
	clk.Advance(time.Second - settle - time.Millisecond)
	if got := replacements(); got != 0 {
		t.Fatalf("%d replacements %v after the failure; want none before the 1s delay", got, clk.Since(t0))
	}
	// The delay's timer starts a pass, whose write the loop then lets
	// settle.
	clk.Advance(time.Millisecond)
	parked(t, clk, 1)
	if got := replacements(); got != 1 {
		t.Fatalf("%d replacements once the delay passed; want 1", got)
	}
}

// Tasks of a service on a network get distinct addresses that are not the
// VIP or the gateway; a task that ended gives its address back; changing
// the service's networks replaces its tasks.
func TestOrchestratorAllocatesTaskAddresses(t *testing.T) {
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	clk := clock.NewFake(t0)
	o := &Orchestrator{Store: st, Raft: d, Clock: clk, NewID: ids(), Log: zap.NewNop()}
	app := &shoalv1.Network{Id: "app", Spec: &shoalv1.NetworkSpec{Name: "app"}, Allocation: &shoalv1.NetworkAllocation{Vni: 4097, Subnet: "10.0.1.0/29", Gateway: "10.0.1.1"}}
	d.put(t, capacity(ready("n1")), app)
	web := svc("web", 3)
	web.Spec.Networks = []*shoalv1.NetworkAttachment{{Target: "app", Aliases: []string{"www"}}}
	web.Endpoint = &shoalv1.ServiceEndpoint{VirtualIps: []*shoalv1.VirtualIP{{NetworkId: "app", Addr: "10.0.1.2/29"}}}
	d.put(t, web)
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tk := range tasksOf(st) {
		if len(tk.GetNetworks()) != 1 {
			t.Fatalf("task %s has %d interfaces", tk.GetId(), len(tk.GetNetworks()))
		}
		n := tk.GetNetworks()[0]
		if n.GetVip() != "10.0.1.2/29" || n.GetGateway() != "10.0.1.1" || n.GetVni() != 4097 || n.GetAliases()[0] != "www" {
			t.Errorf("interface %v", n)
		}
		got[n.GetAddr()] = tk.GetId()
	}
	if len(got) != 3 || got["10.0.1.3/29"] == "" || got["10.0.1.4/29"] == "" || got["10.0.1.5/29"] == "" {
		t.Fatalf("addresses %v; want .3, .4, .5", got)
	}
	// A /29 has 6 host addresses: gateway, VIP and 3 tasks leave one; a
	// fourth and fifth replica: one gets .6, the other waits.
	web.Spec.GetReplicated().Replicas = 5
	d.put(t, web)
	o.Pass(context.Background()) // the task without an address is not created
	if n := len(tasksOf(st)); n != 4 {
		t.Fatalf("%d tasks with one address left; want 4", n)
	}
	// A task that ended gives its address back to the next one.
	var ended *shoalv1.Task
	for _, tk := range tasksOf(st) {
		if tk.GetNetworks()[0].GetAddr() == "10.0.1.3/29" {
			ended = tk
		}
	}
	ended = proto.Clone(ended).(*shoalv1.Task) // the store's own objects are read-only
	ended.DesiredState = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	ended.Status = &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_FAILED}
	if _, err := d.Propose(context.Background(), &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(ended)}}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	o.Pass(context.Background())
	holders := map[string]int{}
	for _, tk := range tasksOf(st) {
		if tk.GetDesiredState() == stRunning {
			holders[tk.GetNetworks()[0].GetAddr()]++
		}
	}
	if holders["10.0.1.3/29"] != 1 || len(holders) != 4 {
		t.Errorf("running tasks' addresses %v; want .3 reused by the replacement, 4 in all (the subnet is full)", holders)
	}
	// Another alias is a network change: every task is outdated.
	for _, tk := range tasksOf(st) {
		if !networksCurrent(web, tk) {
			t.Fatalf("task %s outdated before the change", tk.GetId())
		}
	}
	web.Spec.Networks[0].Aliases = []string{"web2"}
	for _, tk := range tasksOf(st) {
		if networksCurrent(web, tk) {
			t.Fatalf("task %s current after an alias change", tk.GetId())
		}
	}
}

// A global service's tasks, made for their nodes, go through the
// scheduler's filters on those nodes: assigned where the node can take
// them (so the dispatcher hands them out), pending with the node's reason
// where it cannot, and assigned once it can.
func TestOrchestratorRunsGlobalTasks(t *testing.T) {
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	o := &Orchestrator{Store: st, Raft: d, Clock: clock.NewFake(t0), NewID: ids(), Log: zap.NewNop()}
	small := capacity(ready("n3"))
	small.Description.Resources.MemoryBytes = 4 << 30
	d.put(t, capacity(ready("n1")), capacity(ready("n2")), small)
	agent := global("agent")
	agent.Spec.Task.Resources = &shoalv1.ResourceRequirements{Reservations: &shoalv1.Resources{MemoryBytes: 6 << 30}}
	d.put(t, agent)
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	byNode := func() map[string]*shoalv1.Task {
		out := map[string]*shoalv1.Task{}
		for _, tk := range tasksOf(st) {
			if tk.GetDesiredState() == stRunning {
				out[tk.GetNodeId()] = tk
			}
		}
		return out
	}
	got := byNode()
	if len(got) != 3 {
		t.Fatalf("global service on 3 nodes: active tasks on %v; want n1, n2, n3", got)
	}
	for _, n := range []string{"n1", "n2"} {
		if s := got[n].GetStatus(); s.GetState() != stAssigned || s.GetErr() != "" {
			t.Errorf("task on %s: %v %q; want assigned", n, s.GetState(), s.GetErr())
		}
	}
	want := "node n3 lacks 6 GiB of memory"
	if s := got["n3"].GetStatus(); s.GetState() != stPending || s.GetErr() != want {
		t.Errorf("task on the small n3: %v %q; want pending with %q", s.GetState(), s.GetErr(), want)
	}
	// Nothing changed: nothing written.
	before := got["n3"].GetMeta().GetVersion()
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := byNode()["n3"].GetMeta().GetVersion(); v != before {
		t.Errorf("an idle pass rewrote the pending task (version %d -> %d)", before, v)
	}
	// n3 grows: the same task is assigned (its own reservation does not
	// count against it while it waits).
	d.put(t, capacity(ready("n3")))
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := byNode()["n3"]
	if after.GetId() != got["n3"].GetId() || after.GetStatus().GetState() != stAssigned || after.GetStatus().GetErr() != "" {
		t.Fatalf("after n3 grew: task %s %v %q; want %s assigned", after.GetId(), after.GetStatus().GetState(), after.GetStatus().GetErr(), got["n3"].GetId())
	}
}

// report writes tasks as their workers' status reports would.
func report(t *testing.T, d *direct, tasks ...*shoalv1.Task) {
	t.Helper()
	var b shoalv1.StoreBatch
	for _, tk := range tasks {
		b.Actions = append(b.Actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(tk)})
	}
	if _, err := d.Propose(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

func serviceOf(s *store.Store, id string) *shoalv1.Service {
	var out *shoalv1.Service
	s.View(func(r store.ReadTx) { out = store.Get[*shoalv1.Service](r, store.TableService, id) })
	return out
}

// The loop writes the update's status, and an automatic rollback's spec
// swap, to the store: an update to a failing image rolls back by itself
// and completes on the old spec.
func TestOrchestratorUpdateRollsBack(t *testing.T) {
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	clk := clock.NewFake(t0)
	o := &Orchestrator{Store: st, Raft: d, Clock: clk, NewID: ids(), Log: zap.NewNop()}
	web := svc("web", 2)
	web.Spec.Update = &shoalv1.UpdateConfig{Parallelism: 1, FailureAction: actRollback, Monitor: durationpb.New(time.Second)}
	d.put(t, capacity(ready("n1")), web)
	// workers: start what is assigned, stop what is told to, fail "bad".
	work := func() {
		var changed []*shoalv1.Task
		for _, tk := range tasksOf(st) {
			n := proto.Clone(tk).(*shoalv1.Task)
			switch s := tk.GetStatus().GetState(); {
			case tk.GetDesiredState() == stRunning && s == stAssigned:
				n.Status.State = stRunning
				if tk.GetSpec().GetContainer().GetImage() == "bad" {
					n.Status.State = stFailed
				}
			case tk.GetDesiredState() > stRunning && !Terminal(s):
				n.Status.State = stShutdown
			default:
				continue
			}
			n.Status.Timestamp = timestamppb.New(clk.Now())
			changed = append(changed, n)
		}
		if len(changed) > 0 {
			report(t, d, changed...)
		}
	}
	pass := func() {
		t.Helper()
		if _, err := o.Pass(context.Background()); err != nil {
			t.Fatal(err)
		}
		work()
	}
	pass()
	clk.Advance(time.Minute)
	pass()
	cur := serviceOf(st, "web")
	next := proto.Clone(cur).(*shoalv1.Service)
	next.PreviousSpec = cur.GetSpec()
	next.Spec = proto.Clone(cur.GetSpec()).(*shoalv1.ServiceSpec)
	next.Spec.Task.Container.Image = "bad"
	next.UpdateStatus = &shoalv1.UpdateStatus{State: usUpdating, StartedAt: timestamppb.New(clk.Now()), Message: msgUpdating}
	d.put(t, next)
	var states []string
	for i := 0; i < 30; i++ {
		pass()
		if s := serviceOf(st, "web").GetUpdateStatus().GetState().String(); len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
		clk.Advance(500 * time.Millisecond)
	}
	final := serviceOf(st, "web")
	if got := strings.Join(states, " "); got != "UPDATE_STATE_UPDATING UPDATE_STATE_ROLLBACK_STARTED UPDATE_STATE_ROLLBACK_COMPLETED" {
		t.Fatalf("update states %s; want updating, rollback started, rollback completed", got)
	}
	if final.GetSpec().GetTask().GetContainer().GetImage() != "img:1" || final.GetPreviousSpec().GetTask().GetContainer().GetImage() != "bad" {
		t.Fatalf("after the rollback: spec %v previous %v; want img:1 back", final.GetSpec(), final.GetPreviousSpec())
	}
	active := 0
	for _, tk := range tasksOf(st) {
		if tk.GetDesiredState() == stRunning {
			active++
			if tk.GetSpec().GetContainer().GetImage() != "img:1" || tk.GetStatus().GetState() != stRunning {
				t.Fatalf("task %s runs %s (%v) after the rollback", tk.GetId(), tk.GetSpec().GetContainer().GetImage(), tk.GetStatus().GetState())
			}
		}
	}
	if active != 2 {
		t.Fatalf("%d active tasks after the rollback; want 2", active)
	}
}

// An automatic rollback to a spec on another network gives the service
// that network's VIP again, in the same write as the spec.
func TestOrchestratorRollbackRestoresEndpoint(t *testing.T) {
	st := store.New()
	d := &direct{storetest.Direct{Store: st}}
	clk := clock.NewFake(t0)
	o := &Orchestrator{Store: st, Raft: d, Clock: clk, NewID: ids(), Log: zap.NewNop()}
	app := &shoalv1.Network{Id: "app", Spec: &shoalv1.NetworkSpec{Name: "app"}, Allocation: &shoalv1.NetworkAllocation{Vni: 4097, Subnet: "10.0.1.0/29", Gateway: "10.0.1.1"}}
	app2 := &shoalv1.Network{Id: "app2", Spec: &shoalv1.NetworkSpec{Name: "app2"}, Allocation: &shoalv1.NetworkAllocation{Vni: 4098, Subnet: "10.0.2.0/29", Gateway: "10.0.2.1"}}
	d.put(t, capacity(ready("n1")), app, app2)
	v1 := svc("web", 1).Spec
	v1.Networks = []*shoalv1.NetworkAttachment{{Target: "app"}}
	web := svc("web", 1)
	web.Spec.Networks = []*shoalv1.NetworkAttachment{{Target: "app2"}}
	web.Spec.Update = &shoalv1.UpdateConfig{FailureAction: actRollback}
	web.PreviousSpec = v1
	web.Endpoint = &shoalv1.ServiceEndpoint{VirtualIps: []*shoalv1.VirtualIP{{NetworkId: "app2", Addr: "10.0.2.2/29"}}}
	web.UpdateStatus = &shoalv1.UpdateStatus{State: usUpdating, StartedAt: timestamppb.New(t0.Add(-time.Minute))}
	d.put(t, web)
	failed := task("b", web, 1, "n1", stRunning, stFailed, t0, t0)
	failed.Networks = []*shoalv1.TaskNetwork{{NetworkId: "app2", Vip: "10.0.2.2/29", Addr: "10.0.2.3/29"}}
	d.put(t, failed)
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := serviceOf(st, "web")
	if got.GetUpdateStatus().GetState() != usRollbackStarted || got.GetSpec().GetNetworks()[0].GetTarget() != "app" {
		t.Fatalf("after the failure: %v on %v; want rolled back to app", got.GetUpdateStatus(), got.GetSpec().GetNetworks())
	}
	if vips := got.GetEndpoint().GetVirtualIps(); len(vips) != 1 || vips[0].GetNetworkId() != "app" || !strings.HasPrefix(vips[0].GetAddr(), "10.0.1.") {
		t.Fatalf("endpoint after the rollback %v; want a VIP on app (10.0.1.0/29)", got.GetEndpoint())
	}
	// The next pass makes the slot's task on app.
	if _, err := o.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasksOf(st) {
		if tk.GetDesiredState() == stRunning && (tk.GetId() == "b" || tk.GetNetworks()[0].GetNetworkId() != "app") {
			t.Fatalf("task %s active on %v after the rollback", tk.GetId(), tk.GetNetworks())
		}
	}
}
