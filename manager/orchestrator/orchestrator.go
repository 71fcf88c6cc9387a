package orchestrator

import (
	"context"
	"errors"
	"hash/fnv"
	"net/netip"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/metrics/timing"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Proposer writes a batch through Raft.
type Proposer interface {
	Propose(ctx context.Context, b *shoalv1.StoreBatch) (uint64, error)
}

// Orchestrator runs Reconcile and Schedule on the leader whenever the
// store changes or a delayed replacement falls due, and applies their
// decisions in Raft batches guarded by the versions it read, so a write
// based on stale state is refused and simply recomputed.
type Orchestrator struct {
	Store    *store.Store
	Raft     Proposer
	Clock    clock.Clock // times passes and delayed replacements
	NewID    func() string
	Log      *zap.Logger
	MaxBatch int // actions per Raft entry
	// Book holds network addresses being allocated; the control API
	// shares it so a VIP and a task address in flight never collide.
	Book *allocator.Book

	computed time.Duration // how long the last pass took, its writes aside
}

// Run loops until ctx ends.
func (o *Orchestrator) Run(ctx context.Context) {
	events, cancel := o.Store.Watch()
	defer func() { cancel() }()
	timer := o.Clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events, cancel = o.Store.Watch()
			}
			// Let a burst of changes settle into one pass. A pass reads
			// the whole store, so under a stream of writes passes are
			// spaced by twice what the last one computed: the
			// orchestrator then takes at most a third of a core from the
			// writes it follows, however large the store.
			o.drain(ctx, events, max(settle, 2*o.computed))
		case <-timer.Chan():
		}
		wake, err := o.Pass(ctx)
		if err != nil {
			o.Log.Debug("orchestration pass", zap.Error(err))
			wake = o.Clock.Now().Add(50 * time.Millisecond)
		}
		timer.Stop()
		select {
		case <-timer.Chan():
		default:
		}
		if !wake.IsZero() {
			d := wake.Sub(o.Clock.Now())
			if d < 0 {
				d = 0
			}
			timer.Reset(d)
		}
	}
}

// settle is the least time a burst of changes is given to end before a
// pass.
const settle = 5 * time.Millisecond

func (o *Orchestrator) drain(ctx context.Context, ch <-chan *shoalv1.StoreEvent, settle time.Duration) {
	t := o.Clock.NewTimer(settle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-t.Chan():
			return
		}
	}
}

// Input reads what Reconcile needs from the store.
func (o *Orchestrator) Input() Input {
	var in Input
	o.Store.View(func(r store.ReadTx) {
		in.Services = store.List[*shoalv1.Service](r, store.TableService)
		in.Tasks = store.List[*shoalv1.Task](r, store.TableTask)
		in.Nodes = store.List[*shoalv1.Node](r, store.TableNode)
		if cs := store.List[*shoalv1.Cluster](r, store.TableCluster); len(cs) > 0 {
			in.HistoryLimit = int(cs[0].GetSpec().GetTaskHistoryLimit())
		}
	})
	return in
}

// Pass runs one reconciliation and placement and writes the result. It
// returns when it wants to run again without a store change.
func (o *Orchestrator) Pass(ctx context.Context) (time.Time, error) {
	// Wall time, whatever o.Clock is: the cost of the pass.
	defer func(begin time.Time) { timing.OrchestratorPass.Observe(time.Since(begin).Seconds()) }(time.Now())
	start := o.Clock.Now()
	in := o.Input()
	now := o.Clock.Now()
	plan := Reconcile(in, now, o.NewID)
	release, err := o.allocate(in, &plan)
	defer release()
	if err != nil {
		o.Log.Warn("network addresses for new tasks", zap.Error(err))
	}
	releaseEndpoints := o.respec(&plan)
	defer releaseEndpoints()
	nodeActions, releaseNodes, err := o.allocateNodes(in)
	defer releaseNodes()
	if err != nil {
		o.Log.Warn("ingress addresses for nodes", zap.Error(err))
	}
	// Placement sees the tasks as the plan leaves them.
	changed := map[string]*shoalv1.Task{}
	for _, c := range plan.Update {
		changed[c.Task.GetId()] = c.Task
	}
	for _, c := range plan.Delete {
		changed[c.Task.GetId()] = nil
	}
	existing := make([]*shoalv1.Task, 0, len(in.Tasks))
	for _, t := range in.Tasks {
		if n, ok := changed[t.GetId()]; ok {
			if n != nil {
				existing = append(existing, n)
			}
			continue
		}
		existing = append(existing, t)
	}
	fresh := make([]*shoalv1.Task, len(plan.Create))
	for i, c := range plan.Create {
		fresh[i] = c.Task
	}
	placing := time.Now()
	sched := Schedule(in.Nodes, existing, fresh, now, seedOf(now))
	timing.SchedulerPass.Observe(time.Since(placing).Seconds())
	versions := map[string]uint64{}
	for _, t := range in.Tasks {
		versions[t.GetId()] = t.GetMeta().GetVersion()
	}
	var actions []*shoalv1.StoreAction
	// Service writes first, in the first batch with the task writes
	// decided with them: a service changed meanwhile refuses the batch,
	// and the next pass decides again.
	for _, c := range plan.Services {
		actions = append(actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE,
			Object: store.Wrap(c.Service), ExpectedVersion: c.Service.GetMeta().GetVersion()})
	}
	for _, c := range plan.Create {
		actions = append(actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(c.Task)})
	}
	for _, list := range [][]Change{plan.Update, sched} {
		for _, c := range list {
			actions = append(actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE,
				Object: store.Wrap(c.Task), ExpectedVersion: versions[c.Task.GetId()]})
		}
	}
	for _, c := range plan.Delete {
		actions = append(actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE,
			Object: store.Wrap(c.Task), ExpectedVersion: versions[c.Task.GetId()]})
	}

	o.computed = o.Clock.Since(start)
	if len(actions) > 0 {
		for _, c := range plan.Services {
			o.Log.Info("service update status", zap.String("service", c.Service.GetSpec().GetName()),
				zap.String("state", c.Service.GetUpdateStatus().GetState().String()), zap.String("message", c.Reason))
		}
		o.Log.Debug("orchestration", zap.Int("create", len(plan.Create)), zap.Int("update", len(plan.Update)),
			zap.Int("placed", len(sched)), zap.Int("delete", len(plan.Delete)))
	}
	batch := o.MaxBatch
	if batch <= 0 {
		batch = 1000
	}
	for len(actions) > 0 {
		n := min(len(actions), batch)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := o.Raft.Propose(pctx, &shoalv1.StoreBatch{Actions: actions[:n]})
		cancel()
		if err != nil {
			return time.Time{}, err
		}
		actions = actions[n:]
	}
	// Apart from the tasks: a heartbeat that changed a node meanwhile
	// must not hold them up; the next pass tries again.
	if len(nodeActions) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := o.Raft.Propose(pctx, &shoalv1.StoreBatch{Actions: nodeActions})
		cancel()
		if err != nil {
			o.Log.Debug("ingress addresses for nodes", zap.Error(err))
			return o.Clock.Now().Add(100 * time.Millisecond), nil
		}
	}
	return plan.Wake, nil
}

// allocate gives the tasks the plan creates their network interfaces; a
// task that cannot get an address is not created this pass. The addresses
// stay held until release, after the write.
func (o *Orchestrator) allocate(in Input, plan *Plan) (release func(), err error) {
	if len(plan.Create) == 0 {
		return func() {}, nil
	}
	creating := map[string]bool{}
	for _, c := range plan.Create {
		creating[c.Task.GetServiceId()] = true
	}
	attached := map[string]bool{}
	for _, s := range in.Services {
		if creating[s.GetId()] {
			attached[s.GetId()] = len(s.GetEndpoint().GetVirtualIps()) > 0 || len(s.GetSpec().GetNetworks()) > 0 || allocator.Publishes(s.GetSpec())
		}
	}
	need := false
	for _, c := range plan.Create {
		if attached[c.Task.GetServiceId()] && len(c.Task.GetNetworks()) == 0 {
			need = true
			break
		}
	}
	if !need {
		return func() {}, nil
	}
	if o.Book == nil {
		o.Book = &allocator.Book{}
	}
	var failed []error
	release, err = o.Book.Do(func(h *allocator.Held) error {
		networks := map[string]*shoalv1.Network{}
		services := map[string]*shoalv1.Service{}
		var ingress *shoalv1.Network
		o.Store.View(func(r store.ReadTx) {
			for _, n := range store.List[*shoalv1.Network](r, store.TableNetwork) {
				networks[n.GetId()] = n
				if n.GetSpec().GetIngress() {
					ingress = n
				}
			}
			used := func(network string, a netip.Addr) bool { return store.AddrInUse(r, network, a) }
			kept := plan.Create[:0]
			for _, c := range plan.Create {
				svc := services[c.Task.GetServiceId()]
				if svc == nil {
					if svc = store.Get[*shoalv1.Service](r, store.TableService, c.Task.GetServiceId()); svc != nil {
						services[svc.GetId()] = svc
					}
				}
				if svc == nil || len(c.Task.GetNetworks()) > 0 {
					kept = append(kept, c)
					continue
				}
				nets, err := allocator.TaskNetworks(svc, networks, ingress, used, h)
				if err != nil {
					failed = append(failed, err)
					continue
				}
				c.Task.Networks = nets
				kept = append(kept, c)
			}
			plan.Create = kept
		})
		return nil
	})
	return release, errors.Join(append(failed, err)...)
}

// respec gives the services an automatic rollback returns to their
// previous spec the endpoint of that spec (its VIPs and published ports,
// kept where they are the same). A rollback that cannot have them is not
// written: the next pass tries again.
func (o *Orchestrator) respec(plan *Plan) (release func()) {
	var releases []func()
	kept := plan.Services[:0]
	for _, c := range plan.Services {
		if !c.Respec {
			kept = append(kept, c)
			continue
		}
		spec, old := c.Service.GetSpec(), c.Service.GetPreviousSpec()
		if proto.Equal(spec.GetEndpoint(), old.GetEndpoint()) && sameNetworks(spec, old) {
			kept = append(kept, c)
			continue
		}
		if len(spec.GetNetworks()) == 0 && !allocator.Publishes(spec) {
			ep := &shoalv1.ServiceEndpoint{}
			for _, p := range spec.GetEndpoint().GetPorts() {
				ep.Ports = append(ep.Ports, proto.Clone(p).(*shoalv1.PortConfig))
			}
			c.Service.Endpoint = ep
			kept = append(kept, c)
			continue
		}
		if o.Book == nil {
			o.Book = &allocator.Book{}
		}
		rel, err := o.Book.Do(func(h *allocator.Held) (err error) {
			in := allocator.Endpoint{Spec: spec, Current: c.Service, Networks: map[string]*shoalv1.Network{}}
			o.Store.View(func(r store.ReadTx) {
				for _, n := range store.List[*shoalv1.Network](r, store.TableNetwork) {
					in.Networks[n.GetId()] = n
					if n.GetSpec().GetIngress() {
						in.Ingress = n
					}
				}
				in.Used = func(network string, a netip.Addr) bool { return store.AddrInUse(r, network, a) }
				in.PortInUse = func(key string) bool { return store.PortInUse(r, key, c.Service.GetId()) }
				var ep *shoalv1.ServiceEndpoint
				if ep, err = allocator.AllocateEndpoint(in, h); err == nil {
					c.Service.Endpoint = ep
				}
			})
			return err
		})
		if err != nil {
			o.Log.Warn("rolling back: the previous spec's endpoint", zap.String("service", spec.GetName()), zap.Error(err))
			continue
		}
		releases = append(releases, rel)
		kept = append(kept, c)
	}
	plan.Services = kept
	return func() {
		for _, r := range releases {
			r()
		}
	}
}

func sameNetworks(a, b *shoalv1.ServiceSpec) bool {
	if len(a.GetNetworks()) != len(b.GetNetworks()) {
		return false
	}
	for i := range a.GetNetworks() {
		if !proto.Equal(a.GetNetworks()[i], b.GetNetworks()[i]) {
			return false
		}
	}
	return true
}

// allocateNodes gives every node without one its own address on the
// ingress network, which the routing mesh on that node sends from.
func (o *Orchestrator) allocateNodes(in Input) (actions []*shoalv1.StoreAction, release func(), err error) {
	need := false
	for _, n := range in.Nodes {
		if n.GetIngress().GetAddr() == "" {
			need = true
		}
	}
	if !need {
		return nil, func() {}, nil
	}
	if o.Book == nil {
		o.Book = &allocator.Book{}
	}
	var failed []error
	release, err = o.Book.Do(func(h *allocator.Held) error {
		o.Store.View(func(r store.ReadTx) {
			var ingress *shoalv1.Network
			for _, n := range store.List[*shoalv1.Network](r, store.TableNetwork) {
				if n.GetSpec().GetIngress() {
					ingress = n
				}
			}
			if ingress == nil {
				return
			}
			used := func(network string, a netip.Addr) bool { return store.AddrInUse(r, network, a) }
			for _, n := range store.List[*shoalv1.Node](r, store.TableNode) {
				att, err := allocator.NodeIngress(n, ingress, used, h)
				if err != nil {
					failed = append(failed, err)
					continue
				}
				if att == nil {
					continue
				}
				next := proto.Clone(n).(*shoalv1.Node)
				next.Ingress = att
				actions = append(actions, &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE,
					Object: store.Wrap(next), ExpectedVersion: n.GetMeta().GetVersion()})
			}
		})
		return nil
	})
	return actions, release, errors.Join(append(failed, err)...)
}

func seedOf(t time.Time) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.String()))
	return int64(h.Sum64() >> 1)
}
