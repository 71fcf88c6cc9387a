// Package dispatcher is the leader's side of every node's session:
// heartbeats and the node status they decide (down after missed
// heartbeats, sooner when gossip confirms), the assignment stream of each
// node's tasks, the task status nodes report, standalone containers'
// network attachments, and the gossip peers handed out with each
// heartbeat answer. It sees the store through Store and writes through
// Proposer; the manager wires it.
package dispatcher

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/logging"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/metrics/timing"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Store is what the dispatcher reads of the store.
type Store interface {
	View(fn func(store.ReadTx))
	Watch() (events <-chan *shoalv1.StoreEvent, cancel func())
}

// Proposer writes a batch through Raft.
type Proposer interface {
	Propose(ctx context.Context, b *shoalv1.StoreBatch) (uint64, error)
}

// GossipView is what the dispatcher needs of the node's gossip membership.
type GossipView interface {
	// Failed maps nodes that dropped out of the membership to when.
	Failed() map[string]time.Time
	// Changed receives when the membership changed.
	Changed() <-chan struct{}
}

// Config is what a Dispatcher is wired to.
type Config struct {
	Store Store
	Raft  Proposer
	Clock clock.Clock
	Log   *zap.Logger
	// HeartbeatPeriod is how often nodes report; a node is down after
	// three missed periods.
	HeartbeatPeriod time.Duration
	// Gossip tells which nodes gossip saw fail; nil when the node does
	// not gossip.
	Gossip GossipView
	// Book holds network allocations in flight, shared with the control
	// API and the orchestrator.
	Book *allocator.Book
	// Managers lists the advertised gRPC addresses of the managers.
	Managers func() []string
	// Leading reports whether this manager is the ready leader.
	Leading func() bool
	// Logs is the log broker nodes listen and publish to; nil relays
	// none.
	Logs Logs
}

// Dispatcher serves shoalv1.DispatcherService and runs the node status
// loop.
type Dispatcher struct {
	shoalv1.UnimplementedDispatcherServiceServer
	cfg  Config
	seen *lastSeen
}

// New makes a dispatcher.
func New(cfg Config) *Dispatcher {
	return &Dispatcher{cfg: cfg, seen: newLastSeen()}
}

// Lead starts a leadership at now: heartbeats sent to an earlier leader
// are unknown, so every node is given a grace period from now.
func (d *Dispatcher) Lead(now time.Time) { d.seen.resetAll(now) }

// Seen records that node id was heard from at now (it joined).
func (d *Dispatcher) Seen(id string, now time.Time) { d.seen.mark(id, now) }

// missedHeartbeats is how many periods a node may miss before it is down.
const missedHeartbeats = 3

// lastSeen holds, on the leader only, when each node last reported.
type lastSeen struct {
	mu   sync.Mutex
	at   map[string]time.Time
	base time.Time // leadership start: nodes get a grace period from it
}

func newLastSeen() *lastSeen { return &lastSeen{at: map[string]time.Time{}} }

func (l *lastSeen) mark(id string, now time.Time) {
	l.mu.Lock()
	l.at[id] = now
	l.mu.Unlock()
}

func (l *lastSeen) resetAll(now time.Time) {
	l.mu.Lock()
	l.at = map[string]time.Time{}
	l.base = now
	l.mu.Unlock()
}

func (l *lastSeen) copy() (map[string]time.Time, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.at))
	for k, v := range l.at {
		out[k] = v
	}
	return out, l.base
}

// Liveness is what the leader knows of whether nodes are alive.
type Liveness struct {
	// Seen is when each node's last heartbeat arrived.
	Seen map[string]time.Time
	// Failed is when gossip saw each node drop out of the membership.
	Failed map[string]time.Time
	// Base is the start of this leadership: heartbeats sent to an earlier
	// leader are not in Seen.
	Base time.Time
	// Period is the heartbeat period.
	Period time.Duration
}

// Reasons a node is marked down.
const (
	DownHeartbeat = "heartbeat failure"
	DownGossip    = "heartbeat failure, confirmed by gossip"
)

// NodeStatusChanges is the pure decision of the node status loop: the
// nodes whose state must change. A node is down when it has missed
// missedHeartbeats heartbeats, or sooner, after one missed period, when
// gossip saw it fail after its last heartbeat: two independent signals
// (gRPC heartbeats to the leader, probes from every node) must agree, so a
// slow link or a broken gossip port alone never takes a node down. A node
// that heartbeats is ready; one marked down is ready again only with a
// heartbeat that arrived after it was marked down.
//
// A new leader knows nothing of heartbeats sent to its predecessor, so a
// node it has not heard from since Base counts as silent only since Base:
// the grace period delays marking nodes down, and never brings a down
// node up.
func NodeStatusChanges(nodes []*shoalv1.Node, l Liveness, now time.Time) []*shoalv1.Node {
	var out []*shoalv1.Node
	for _, n := range nodes {
		cur := n.GetStatus().GetState()
		want, msg := cur, n.GetStatus().GetMessage()
		last, heard := l.Seen[n.GetId()]
		if !heard || last.Before(l.Base) {
			last, heard = l.Base, false
		}
		silence := now.Sub(last)
		failedAt, failed := l.Failed[n.GetId()]
		switch {
		case silence > missedHeartbeats*l.Period:
			if cur != shoalv1.NodeState_NODE_STATE_DOWN {
				want, msg = shoalv1.NodeState_NODE_STATE_DOWN, DownHeartbeat
			}
		case failed && failedAt.After(last) && silence > l.Period:
			if cur != shoalv1.NodeState_NODE_STATE_DOWN {
				want, msg = shoalv1.NodeState_NODE_STATE_DOWN, DownGossip
			}
		case heard && (cur != shoalv1.NodeState_NODE_STATE_DOWN || last.After(n.GetMeta().GetUpdatedAt().AsTime())):
			// A down node comes back only with a heartbeat sent after it
			// was marked down, not because gossip saw it again.
			want, msg = shoalv1.NodeState_NODE_STATE_READY, ""
		}
		if cur == want {
			continue
		}
		next := proto.Clone(n).(*shoalv1.Node)
		if next.Status == nil {
			next.Status = &shoalv1.NodeStatus{}
		}
		next.Status.State = want
		next.Status.Message = msg
		next.Meta.UpdatedAt = timestamppb.New(now)
		out = append(out, next)
	}
	return out
}

// RunNodeStatus decides node states, on the leader, half a period after
// its last decision, and at once when gossip membership changes, until
// ctx ends.
func (d *Dispatcher) RunNodeStatus(ctx context.Context) {
	t := d.cfg.Clock.NewTimer(d.cfg.HeartbeatPeriod / 2)
	defer t.Stop()
	var changed <-chan struct{}
	if d.cfg.Gossip != nil {
		changed = d.cfg.Gossip.Changed()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		case <-changed:
			t.Stop()
			select {
			case <-t.Chan():
			default:
			}
		}
		d.decideNodeStatus(ctx)
		t.Reset(d.cfg.HeartbeatPeriod / 2)
	}
}

// decideNodeStatus writes the node states NodeStatusChanges decides now.
func (d *Dispatcher) decideNodeStatus(ctx context.Context) {
	var nodes []*shoalv1.Node
	d.cfg.Store.View(func(r store.ReadTx) { nodes = store.List[*shoalv1.Node](r, store.TableNode) })
	seen, base := d.seen.copy()
	l := Liveness{Seen: seen, Base: base, Period: d.cfg.HeartbeatPeriod}
	if d.cfg.Gossip != nil {
		l.Failed = d.cfg.Gossip.Failed()
	}
	changes := NodeStatusChanges(nodes, l, d.cfg.Clock.Now())
	if len(changes) == 0 {
		return
	}
	var b shoalv1.StoreBatch
	for _, n := range changes {
		d.cfg.Log.Info("node status changed", logging.Node(n.GetId()), zap.String("state", n.GetStatus().GetState().String()), zap.String("reason", n.GetStatus().GetMessage()))
		b.Actions = append(b.Actions, &shoalv1.StoreAction{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(n), ExpectedVersion: n.GetMeta().GetVersion(),
		})
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := d.cfg.Raft.Propose(pctx, &b); err != nil {
		d.cfg.Log.Debug("node status update", zap.Error(err))
	} else {
		for _, n := range changes {
			switch n.GetStatus().GetMessage() {
			case DownHeartbeat:
				timing.NodesDown.WithLabelValues("heartbeat").Inc()
			case DownGossip:
				timing.NodesDown.WithLabelValues("gossip").Inc()
			}
		}
	}
	cancel()
}

// Heartbeat records that a node is alive, keeps its description and
// addresses current, and answers what it needs: its desired role, the
// managers, gossip keys and peers, its ingress address and attachments.
func (d *Dispatcher) Heartbeat(ctx context.Context, req *shoalv1.HeartbeatRequest) (*shoalv1.HeartbeatResponse, error) {
	caller, _ := auth.From(ctx)
	var (
		node    *shoalv1.Node
		cluster *shoalv1.Cluster
		nodes   []*shoalv1.Node
		ingress *shoalv1.Network
	)
	d.cfg.Store.View(func(r store.ReadTx) {
		node = store.Get[*shoalv1.Node](r, store.TableNode, caller.NodeID)
		if a := node.GetIngress(); a != nil {
			ingress = store.Get[*shoalv1.Network](r, store.TableNetwork, a.GetNetworkId())
		}
		if cs := store.List[*shoalv1.Cluster](r, store.TableCluster); len(cs) > 0 {
			cluster = cs[0]
		}
		nodes = store.List[*shoalv1.Node](r, store.TableNode)
	})
	if node == nil {
		return &shoalv1.HeartbeatResponse{Removed: true}, nil
	}
	now := d.cfg.Clock.Now()
	d.seen.mark(node.GetId(), now)
	addr := caller.Host()
	gossipAddr := req.GetGossipAddr()
	if gossipAddr == "" {
		gossipAddr = node.GetStatus().GetGossipAddr()
	}
	if (req.GetDescription() != nil && !proto.Equal(req.GetDescription(), node.GetDescription())) || node.GetStatus().GetAddr() != addr ||
		node.GetStatus().GetGossipAddr() != gossipAddr || node.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
		next := proto.Clone(node).(*shoalv1.Node)
		if req.GetDescription() != nil {
			next.Description = req.GetDescription()
		}
		if next.Status == nil {
			next.Status = &shoalv1.NodeStatus{}
		}
		next.Status.Addr = addr
		next.Status.GossipAddr = gossipAddr
		next.Status.State = shoalv1.NodeState_NODE_STATE_READY
		next.Status.Message = ""
		next.Meta.UpdatedAt = timestamppb.New(now)
		if _, err := d.cfg.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(next), ExpectedVersion: node.GetMeta().GetVersion(),
		}}}); err != nil {
			return nil, err
		}
	}
	return &shoalv1.HeartbeatResponse{
		PeriodMs:     d.cfg.HeartbeatPeriod.Milliseconds(),
		DesiredRole:  node.GetSpec().GetDesiredRole(),
		Managers:     d.cfg.Managers(),
		GossipKeys:   cluster.GetGossipKeys(),
		GossipPeers:  GossipPeers(nodes, node.GetId(), maxGossipPeers),
		ObservedAddr: addr,
		Ingress:      ingressOf(node, ingress),
		Attachments:  attachmentIDs(node),
	}, nil
}

// ingressOf is what a node needs of the ingress network for its routing
// mesh: the network and its own address on it.
func ingressOf(node *shoalv1.Node, nw *shoalv1.Network) *shoalv1.TaskNetwork {
	if nw.GetId() == "" || node.GetIngress().GetAddr() == "" {
		return nil
	}
	return &shoalv1.TaskNetwork{
		NetworkId: nw.GetId(), NetworkName: nw.GetSpec().GetName(), Vni: nw.GetAllocation().GetVni(),
		Addr: node.GetIngress().GetAddr(), Gateway: nw.GetAllocation().GetGateway(), Ingress: true, Mtu: allocator.MTU(nw),
	}
}
