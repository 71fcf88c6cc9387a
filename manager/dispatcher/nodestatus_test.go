package dispatcher

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

const (
	ready   = shoalv1.NodeState_NODE_STATE_READY
	down    = shoalv1.NodeState_NODE_STATE_DOWN
	unknown = shoalv1.NodeState_NODE_STATE_UNSPECIFIED
)

var (
	t0     = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	period = 500 * time.Millisecond
	ttl    = 3 * period // three missed heartbeats
)

func liveness(seen map[string]time.Time, base time.Time) Liveness {
	return Liveness{Seen: seen, Base: base, Period: period}
}

func statusNode(id string, state shoalv1.NodeState, msg string) *shoalv1.Node {
	return &shoalv1.Node{
		Id:     id,
		Meta:   &shoalv1.Meta{Version: 7, CreatedAt: timestamppb.New(t0.Add(-time.Hour)), UpdatedAt: timestamppb.New(t0.Add(-time.Hour))},
		Spec:   &shoalv1.NodeSpec{DesiredRole: shoalv1.NodeRole_NODE_ROLE_WORKER},
		Status: &shoalv1.NodeStatus{State: state, Message: msg, Addr: "10.0.0.9"},
	}
}

type statusChange struct {
	id    string
	state shoalv1.NodeState
	msg   string
}

func TestNodeStatusChanges(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		node   *shoalv1.Node
		seen   time.Duration // before now; <0 means never seen
		base   time.Duration // leadership start, before now
		failed time.Duration // gossip saw it fail, before now; 0 means it did not
		wantC  bool
		want   shoalv1.NodeState
		msg    string
	}{
		{name: "ready and seen recently", node: statusNode("n", ready, ""), seen: 100 * ms, base: time.Hour},
		{name: "ready, seen exactly ttl ago", node: statusNode("n", ready, ""), seen: ttl, base: time.Hour},
		{name: "ready, not seen for more than ttl", node: statusNode("n", ready, ""), seen: ttl + ms, base: time.Hour, wantC: true, want: down, msg: "heartbeat failure"},
		{name: "ready, not seen for long", node: statusNode("n", ready, ""), seen: 10 * time.Minute, base: time.Hour, wantC: true, want: down, msg: "heartbeat failure"},
		{name: "ready, never seen, old leader", node: statusNode("n", ready, ""), seen: -1, base: time.Hour, wantC: true, want: down, msg: "heartbeat failure"},
		{name: "down and seen recently", node: statusNode("n", down, "heartbeat failure"), seen: 10 * ms, base: time.Hour, wantC: true, want: ready, msg: ""},
		{name: "down and still not seen", node: statusNode("n", down, "heartbeat failure"), seen: time.Minute, base: time.Hour},
		{name: "unknown state, seen", node: statusNode("n", unknown, ""), seen: 0, base: time.Hour, wantC: true, want: ready},
		{name: "no status, seen", node: &shoalv1.Node{Id: "n", Meta: &shoalv1.Meta{Version: 3}}, seen: 0, base: time.Hour, wantC: true, want: ready},
		{name: "no status, not seen", node: &shoalv1.Node{Id: "n", Meta: &shoalv1.Meta{Version: 3}}, seen: time.Hour, base: 2 * time.Hour, wantC: true, want: down, msg: "heartbeat failure"},
		// A new leader does not know when nodes last reported: every node
		// counts as seen at base and gets a full ttl.
		{name: "new leader, never seen", node: statusNode("n", ready, ""), seen: -1, base: 200 * ms},
		{name: "new leader, seen under the old one", node: statusNode("n", ready, ""), seen: time.Hour, base: ttl},
		{name: "new leader, grace over", node: statusNode("n", ready, ""), seen: -1, base: ttl + ms, wantC: true, want: down, msg: "heartbeat failure"},
		{name: "new leader, seen before base, grace over", node: statusNode("n", ready, ""), seen: time.Hour, base: 2 * ttl, wantC: true, want: down, msg: "heartbeat failure"},
		// Gossip confirms a failure after one missed period instead of
		// three, but only when it saw the node fail after its last
		// heartbeat: either signal alone is not enough.
		{name: "gossip failed, one period missed", node: statusNode("n", ready, ""), seen: period + ms, base: time.Hour, failed: 100 * ms, wantC: true, want: down, msg: DownGossip},
		{name: "gossip failed, within a period", node: statusNode("n", ready, ""), seen: period, base: time.Hour, failed: 100 * ms},
		{name: "gossip failed before the last heartbeat", node: statusNode("n", ready, ""), seen: period + 100*ms, base: time.Hour, failed: time.Minute},
		{name: "gossip failed, heartbeats late but no ttl", node: statusNode("n", ready, ""), seen: ttl, base: time.Hour},
		{name: "gossip failed, never seen by new leader", node: statusNode("n", ready, ""), seen: -1, base: period + ms, failed: 10 * ms, wantC: true, want: down, msg: DownGossip},
		{name: "gossip failed, new leader within a period", node: statusNode("n", ready, ""), seen: -1, base: period, failed: 10 * ms},
		{name: "down by gossip, ttl passes: no rewrite", node: statusNode("n", down, DownGossip), seen: 2 * ttl, base: time.Hour, failed: ttl},
		{name: "down, heartbeat before it went down", node: statusNode("n", down, DownGossip), seen: 2 * time.Hour, base: 3 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			seen := map[string]time.Time{}
			if tc.seen >= 0 {
				seen[tc.node.GetId()] = now.Add(-tc.seen)
			}
			base := now.Add(-tc.base)
			in := proto.Clone(tc.node).(*shoalv1.Node)
			l := liveness(seen, base)
			if tc.failed > 0 {
				l.Failed = map[string]time.Time{tc.node.GetId(): now.Add(-tc.failed)}
			}

			got := NodeStatusChanges([]*shoalv1.Node{in}, l, now)

			if !proto.Equal(in, tc.node) {
				t.Errorf("NodeStatusChanges changed its input node to %v", in)
			}
			if !tc.wantC {
				if len(got) != 0 {
					t.Errorf("NodeStatusChanges(%s, seen %v ago, base %v ago) = %v; want no change", tc.node.GetStatus().GetState(), tc.seen, tc.base, got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("NodeStatusChanges(%s, seen %v ago, base %v ago) = %v; want one change to %v", tc.node.GetStatus().GetState(), tc.seen, tc.base, got, tc.want)
			}
			n := got[0]
			if n.GetStatus().GetState() != tc.want || n.GetStatus().GetMessage() != tc.msg {
				t.Errorf("NodeStatusChanges(%s, seen %v ago, base %v ago) = %v %q; want %v %q",
					tc.node.GetStatus().GetState(), tc.seen, tc.base, n.GetStatus().GetState(), n.GetStatus().GetMessage(), tc.want, tc.msg)
			}
			if !n.GetMeta().GetUpdatedAt().AsTime().Equal(now) {
				t.Errorf("updated_at = %v; want now %v", n.GetMeta().GetUpdatedAt().AsTime(), now)
			}
			// The write is conditional on the version that was read, and
			// keeps everything else.
			if n.GetMeta().GetVersion() != tc.node.GetMeta().GetVersion() {
				t.Errorf("version = %d; want the version read %d", n.GetMeta().GetVersion(), tc.node.GetMeta().GetVersion())
			}
			if n.GetId() != tc.node.GetId() || n.GetStatus().GetAddr() != tc.node.GetStatus().GetAddr() || !proto.Equal(n.GetSpec(), tc.node.GetSpec()) {
				t.Errorf("NodeStatusChanges changed more than the status: %v from %v", n, tc.node)
			}
		})
	}
}

func TestNodeStatusChangesMany(t *testing.T) {
	now := t0
	base := now.Add(-time.Hour)
	nodes := []*shoalv1.Node{
		statusNode("a", ready, ""),                 // seen: no change
		statusNode("b", ready, ""),                 // lost: down
		statusNode("c", down, "heartbeat failure"), // back: ready
		statusNode("d", down, "heartbeat failure"), // still gone: no change
		statusNode("e", ready, ""),                 // never seen: down
	}
	seen := map[string]time.Time{
		"a": now.Add(-time.Second),
		"b": now.Add(-time.Minute),
		"c": now,
		"d": now.Add(-time.Hour),
		"x": now, // a node that is gone from the store
	}
	var got []statusChange
	for _, n := range NodeStatusChanges(nodes, liveness(seen, base), now) {
		got = append(got, statusChange{n.GetId(), n.GetStatus().GetState(), n.GetStatus().GetMessage()})
	}
	want := []statusChange{{"b", down, "heartbeat failure"}, {"c", ready, ""}, {"e", down, "heartbeat failure"}}
	if !slices.Equal(got, want) {
		t.Errorf("NodeStatusChanges(a..e) = %v; want %v", got, want)
	}
	if got := NodeStatusChanges(nil, liveness(seen, base), now); len(got) != 0 {
		t.Errorf("NodeStatusChanges(no nodes) = %v; want none", got)
	}
}

// TestNodeStatusChangesNewLeaderKeepsDownNodesDown: the grace period a new
// leader gives is a reason not to declare nodes down, not evidence that a
// node is up. A node that has been down for a day and has not reported to
// the new leader must stay down.
func TestNodeStatusChangesNewLeaderKeepsDownNodesDown(t *testing.T) {
	now := t0
	base := now.Add(-200 * time.Millisecond) // leadership just started
	n := statusNode("dead", down, "heartbeat failure")
	for _, seen := range []map[string]time.Time{
		{},                                 // the new leader never heard from it
		{"dead": now.Add(-24 * time.Hour)}, // last seen long before base
	} {
		if got := NodeStatusChanges([]*shoalv1.Node{n}, liveness(seen, base), now); len(got) != 0 {
			t.Errorf("NodeStatusChanges(DOWN node, seen %v, base %v ago) = %v %q; want no change",
				seen, now.Sub(base), got[0].GetStatus().GetState(), got[0].GetStatus().GetMessage())
		}
	}
}

func TestLastSeen(t *testing.T) {
	l := newLastSeen()
	l.mark("a", t0)
	l.mark("b", t0.Add(time.Second))
	l.mark("a", t0.Add(2*time.Second))
	seen, base := l.copy()
	if len(seen) != 2 || !seen["a"].Equal(t0.Add(2*time.Second)) || !seen["b"].Equal(t0.Add(time.Second)) || !base.IsZero() {
		t.Errorf("copy() = %v, %v; want a at t0+2s, b at t0+1s, zero base", seen, base)
	}
	seen["c"] = t0 // the copy is the caller's
	if again, _ := l.copy(); len(again) != 2 {
		t.Errorf("changing a copy changed lastSeen: %v", again)
	}
	l.resetAll(t0.Add(time.Minute))
	seen, base = l.copy()
	if len(seen) != 0 || !base.Equal(t0.Add(time.Minute)) {
		t.Errorf("after resetAll(t0+1m) copy() = %v, %v; want nothing seen, base t0+1m", seen, base)
	}
}

func TestGossipPeers(t *testing.T) {
	node := func(id string, role shoalv1.NodeRole, state shoalv1.NodeState, addr string) *shoalv1.Node {
		return &shoalv1.Node{Id: id, Role: role, Status: &shoalv1.NodeStatus{State: state, GossipAddr: addr}}
	}
	const (
		mgr = shoalv1.NodeRole_NODE_ROLE_MANAGER
		wrk = shoalv1.NodeRole_NODE_ROLE_WORKER
	)
	nodes := []*shoalv1.Node{
		node("w1", wrk, ready, "10.0.0.11:7946"),
		node("m1", mgr, ready, "10.0.0.1:7946"),
		node("self", wrk, ready, "10.0.0.99:7946"),
		node("wdown", wrk, down, "10.0.0.12:7946"),
		node("m2", mgr, ready, "10.0.0.2:7946"),
		node("nogossip", wrk, ready, ""),
		node("w3", wrk, ready, "10.0.0.13:7946"),
	}
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{5, []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.11:7946", "10.0.0.13:7946"}},
		{3, []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.11:7946"}},
		{1, []string{"10.0.0.1:7946"}},
	} {
		if got := GossipPeers(nodes, "self", tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("GossipPeers(max %d) = %v; want %v (managers first, ready, not self, with an address)", tc.max, got, tc.want)
		}
	}
}
