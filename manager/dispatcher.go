package manager

import (
	"context"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

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

// runNodeStatus decides node states half a period after its last
// decision, and at once when gossip membership changes.
func (m *Manager) runNodeStatus(ctx context.Context) {
	t := m.cfg.Clock.NewTimer(m.cfg.HeartbeatPeriod / 2)
	defer t.Stop()
	var changed <-chan struct{}
	if m.cfg.Gossip != nil {
		changed = m.cfg.Gossip.Changed()
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
		m.decideNodeStatus(ctx)
		t.Reset(m.cfg.HeartbeatPeriod / 2)
	}
}

// decideNodeStatus writes the node states NodeStatusChanges decides now.
func (m *Manager) decideNodeStatus(ctx context.Context) {
	var nodes []*shoalv1.Node
	m.store.View(func(r store.ReadTx) { nodes = store.List[*shoalv1.Node](r, store.TableNode) })
	seen, base := m.seen.copy()
	l := Liveness{Seen: seen, Base: base, Period: m.cfg.HeartbeatPeriod}
	if m.cfg.Gossip != nil {
		l.Failed = m.cfg.Gossip.Failed()
	}
	changes := NodeStatusChanges(nodes, l, m.cfg.Clock.Now())
	if len(changes) == 0 {
		return
	}
	var b shoalv1.StoreBatch
	for _, n := range changes {
		m.log.Info("node status changed", zapNode(n.GetId()), zap.String("state", n.GetStatus().GetState().String()), zap.String("reason", n.GetStatus().GetMessage()))
		b.Actions = append(b.Actions, &shoalv1.StoreAction{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(n), ExpectedVersion: n.GetMeta().GetVersion(),
		})
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := m.raft.Propose(pctx, &b); err != nil {
		m.log.Debug("node status update", zap.Error(err))
	}
	cancel()
}

// dispatcher answers node heartbeats. The worker issue turns it into
// sessions with assignment streams.
type dispatcher struct {
	shoalv1.UnimplementedDispatcherServiceServer
	m *Manager
}

func (d *dispatcher) Heartbeat(ctx context.Context, req *shoalv1.HeartbeatRequest) (*shoalv1.HeartbeatResponse, error) {
	caller, _ := auth.From(ctx)
	var (
		node    *shoalv1.Node
		cluster *shoalv1.Cluster
		nodes   []*shoalv1.Node
		ingress *shoalv1.Network
	)
	d.m.store.View(func(r store.ReadTx) {
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
	now := d.m.cfg.Clock.Now()
	d.m.seen.mark(node.GetId(), now)
	addr := hostOf(caller.Addr)
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
		if _, err := d.m.raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(next), ExpectedVersion: node.GetMeta().GetVersion(),
		}}}); err != nil {
			return nil, err
		}
	}
	return &shoalv1.HeartbeatResponse{
		PeriodMs:     d.m.cfg.HeartbeatPeriod.Milliseconds(),
		DesiredRole:  node.GetSpec().GetDesiredRole(),
		Managers:     d.m.managerAddrs(),
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
		Addr: node.GetIngress().GetAddr(), Gateway: nw.GetAllocation().GetGateway(), Ingress: true,
	}
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func zapNode(id string) zap.Field { return zap.String("node", id) }

func zapRole(r shoalv1.NodeRole) zap.Field { return zap.String("role", r.String()) }
