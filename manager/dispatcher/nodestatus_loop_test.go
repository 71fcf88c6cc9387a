package dispatcher

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/store"
	"github.com/shoal-run/shoal/manager/store/storetest"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// newDispatcher is a leader's dispatcher over a store of its own, timed
// by clk.
func newDispatcher(clk clock.Clock, gossip GossipView) *Dispatcher {
	st := store.New()
	return New(Config{Store: st, Raft: &storetest.Direct{Store: st}, Clock: clk, Log: zap.NewNop(), HeartbeatPeriod: period, Gossip: gossip})
}

// fakeGossip is a gossip membership that saw the nodes in failed fail.
type fakeGossip struct{ failed map[string]time.Time }

func (g fakeGossip) Failed() map[string]time.Time { return g.failed }
func (g fakeGossip) Changed() <-chan struct{}     { return nil }

// nodeStatusLoop runs d's node status loop until the test ends, and
// returns a function that moves the fake clock on by by and waits until
// the loop has decided and waits for its clock again.
func nodeStatusLoop(t *testing.T, d *Dispatcher, clk *clock.Fake) (advance func(by time.Duration)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.RunNodeStatus(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	parked := func() {
		t.Helper()
		wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer wcancel()
		if err := clk.BlockUntilContext(wctx, 1); err != nil {
			t.Fatalf("the node status loop did not come back to wait on its clock: %v", err)
		}
	}
	parked()
	return func(by time.Duration) {
		t.Helper()
		clk.Advance(by)
		parked()
	}
}

func putReadyNode(t *testing.T, d *Dispatcher, id string, at time.Time) {
	t.Helper()
	n := statusNode(id, ready, "")
	n.Meta = &shoalv1.Meta{CreatedAt: timestamppb.New(at), UpdatedAt: timestamppb.New(at)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.cfg.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{
		{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(n)},
	}}); err != nil {
		t.Fatal(err)
	}
}

func nodeStatus(d *Dispatcher, id string) (shoalv1.NodeState, string) {
	var n *shoalv1.Node
	d.cfg.Store.View(func(r store.ReadTx) { n = store.Get[*shoalv1.Node](r, store.TableNode, id) })
	return n.GetStatus().GetState(), n.GetStatus().GetMessage()
}

// The leader's loop marks a node down once it missed three heartbeats,
// not one decision sooner, and ready again with its next heartbeat; the
// clock is fake, so no test time passes waiting.
func TestNodeStatusLoopHeartbeatExpiry(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the loop stopped
	clk := clock.NewFake(t0)
	d := newDispatcher(clk, nil)
	putReadyNode(t, d, "w", t0)
	d.seen.resetAll(t0.Add(-time.Hour))
	d.seen.mark("w", t0)
	advance := nodeStatusLoop(t, d, clk)
	// Decisions come every half period: at 3 periods of silence the node
	// is still ready.
	for i := 1; i <= 2*missedHeartbeats; i++ {
		advance(period / 2)
		if st, _ := nodeStatus(d, "w"); st != ready {
			t.Fatalf("after %v of silence the node is %v; want ready until %v", clk.Since(t0), st, ttl)
		}
	}
	advance(period / 2)
	if st, msg := nodeStatus(d, "w"); st != down || msg != DownHeartbeat {
		t.Fatalf("after %v of silence the node is %v %q; want down %q", clk.Since(t0), st, msg, DownHeartbeat)
	}
	// A heartbeat after it was marked down brings it back at the next
	// decision.
	clk.Advance(time.Millisecond)
	d.seen.mark("w", clk.Now())
	advance(period/2 - time.Millisecond)
	if st, msg := nodeStatus(d, "w"); st != ready || msg != "" {
		t.Fatalf("after a heartbeat the node is %v %q; want ready", st, msg)
	}
}

// A node gossip saw fail after its last heartbeat is down after one missed
// period instead of three.
func TestNodeStatusLoopGossipConfirms(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the loop stopped
	clk := clock.NewFake(t0)
	d := newDispatcher(clk, fakeGossip{failed: map[string]time.Time{"w": t0.Add(100 * time.Millisecond)}})
	putReadyNode(t, d, "w", t0)
	d.seen.resetAll(t0.Add(-time.Hour))
	d.seen.mark("w", t0)
	advance := nodeStatusLoop(t, d, clk)
	advance(period / 2)
	advance(period / 2)
	if st, _ := nodeStatus(d, "w"); st != ready {
		t.Fatalf("after one period of silence the node is %v; want ready", st)
	}
	advance(period / 2)
	if st, msg := nodeStatus(d, "w"); st != down || msg != DownGossip {
		t.Fatalf("after %v of silence, failed in gossip, the node is %v %q; want down %q", clk.Since(t0), st, msg, DownGossip)
	}
}

// A new leader gives every node a full three periods from the start of
// its leadership, whatever it last heard under the old leader.
func TestNodeStatusLoopNewLeaderGrace(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the loop stopped
	clk := clock.NewFake(t0)
	d := newDispatcher(clk, nil)
	putReadyNode(t, d, "w", t0.Add(-time.Hour))
	d.seen.resetAll(t0) // leadership starts now; w was never heard
	advance := nodeStatusLoop(t, d, clk)
	for i := 1; i <= 2*missedHeartbeats; i++ {
		advance(period / 2)
		if st, _ := nodeStatus(d, "w"); st != ready {
			t.Fatalf("%v into the leadership the node is %v; want ready for the grace of %v", clk.Since(t0), st, ttl)
		}
	}
	advance(period / 2)
	if st, msg := nodeStatus(d, "w"); st != down || msg != DownHeartbeat {
		t.Fatalf("after the grace the node is %v %q; want down %q", st, msg, DownHeartbeat)
	}
}
