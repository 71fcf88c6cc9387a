package manager

import (
	"context"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// NodeStatusChanges is the pure decision of the node status loop: the
// nodes whose state must change given when each was last seen. A node
// seen within ttl is ready; one not seen for longer is down. A new leader
// knows nothing of heartbeats sent to its predecessor, so a node it has
// not heard from since base (its leadership start) keeps its state until
// a full ttl after base: the grace period only delays marking nodes down,
// it never brings a down node up.
func NodeStatusChanges(nodes []*shoalv1.Node, seen map[string]time.Time, base, now time.Time, ttl time.Duration) []*shoalv1.Node {
	var out []*shoalv1.Node
	for _, n := range nodes {
		cur := n.GetStatus().GetState()
		want := cur
		at, ok := seen[n.GetId()]
		switch {
		case ok && !at.Before(base) && now.Sub(at) <= ttl:
			want = shoalv1.NodeState_NODE_STATE_READY
		case ok && !at.Before(base):
			want = shoalv1.NodeState_NODE_STATE_DOWN
		case now.Sub(base) > ttl:
			want = shoalv1.NodeState_NODE_STATE_DOWN
		}
		if cur == want {
			continue
		}
		msg := ""
		if want == shoalv1.NodeState_NODE_STATE_DOWN {
			msg = "heartbeat failure"
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

func (m *Manager) runNodeStatus(ctx context.Context) {
	t := time.NewTicker(m.cfg.HeartbeatPeriod / 2)
	defer t.Stop()
	ttl := m.cfg.HeartbeatPeriod * missedHeartbeats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var nodes []*shoalv1.Node
		m.store.View(func(r store.ReadTx) { nodes = store.List[*shoalv1.Node](r, store.TableNode) })
		seen, base := m.seen.copy()
		changes := NodeStatusChanges(nodes, seen, base, m.cfg.Now(), ttl)
		if len(changes) == 0 {
			continue
		}
		var b shoalv1.StoreBatch
		for _, n := range changes {
			m.log.Info("node status changed", zapNode(n.GetId()), zap.String("state", n.GetStatus().GetState().String()))
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
}

// dispatcher answers node heartbeats. The worker issue turns it into
// sessions with assignment streams.
type dispatcher struct {
	shoalv1.UnimplementedDispatcherServiceServer
	m *Manager
}

func (d *dispatcher) Heartbeat(ctx context.Context, req *shoalv1.HeartbeatRequest) (*shoalv1.HeartbeatResponse, error) {
	caller, _ := CallerFrom(ctx)
	var node *shoalv1.Node
	d.m.store.View(func(r store.ReadTx) { node = store.Get[*shoalv1.Node](r, store.TableNode, caller.NodeID) })
	if node == nil {
		return &shoalv1.HeartbeatResponse{Removed: true}, nil
	}
	now := d.m.cfg.Now()
	d.m.seen.mark(node.GetId(), now)
	addr := hostOf(caller.Addr)
	if (req.GetDescription() != nil && !proto.Equal(req.GetDescription(), node.GetDescription())) || node.GetStatus().GetAddr() != addr ||
		node.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
		next := proto.Clone(node).(*shoalv1.Node)
		if req.GetDescription() != nil {
			next.Description = req.GetDescription()
		}
		if next.Status == nil {
			next.Status = &shoalv1.NodeStatus{}
		}
		next.Status.Addr = addr
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
		PeriodMs:    d.m.cfg.HeartbeatPeriod.Milliseconds(),
		DesiredRole: node.GetSpec().GetDesiredRole(),
		Managers:    d.m.managerAddrs(),
	}, nil
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func zapNode(id string) zap.Field { return zap.String("node", id) }

func zapRole(r shoalv1.NodeRole) zap.Field { return zap.String("role", r.String()) }
