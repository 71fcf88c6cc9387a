package raftnode

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type member struct {
	id    string
	addr  string
	dir   string
	ident *tlsutil.Identity
	dek   []byte
	// snapThreshold and trailing are Config's (0: raft's defaults).
	snapThreshold, trailing uint64
	store                   *store.Store
	node                    *Node
}

func identity(t *testing.T, root *ca.RootCA, id string, role shoalv1.NodeRole) *tlsutil.Identity {
	key, csr, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.Sign(csr, id, "cluster", role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ident, err := tlsutil.NewIdentity(root.CertPEM, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

func (m *member) start(t *testing.T, bootstrap bool) {
	t.Helper()
	n, err := m.try(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	m.node = n
}

// try starts the member, with a DEK of its own unless it has one.
func (m *member) try(bootstrap bool) (*Node, error) {
	if m.dek == nil {
		m.dek = make([]byte, keys.KeySize)
		if _, err := rand.Read(m.dek); err != nil {
			return nil, err
		}
	}
	m.store = store.New()
	return Start(Config{
		NodeID: m.id, BindAddr: m.addr, AdvertiseAddr: m.addr, Dir: m.dir, Identity: m.ident, DEK: m.dek,
		FSM: &store.FSM{Store: m.store, Log: zap.NewNop()}, Log: zap.NewNop(),
		Timing:    Timing{Heartbeat: 200 * time.Millisecond, Election: 200 * time.Millisecond, LeaderLease: 150 * time.Millisecond},
		Bootstrap: bootstrap, SnapshotThreshold: m.snapThreshold, TrailingLogs: m.trailing,
	})
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createSvc(name string) *shoalv1.StoreBatch {
	return &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind:   shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE,
		Object: store.Wrap(&shoalv1.Service{Id: name, Spec: &shoalv1.ServiceSpec{Name: name}}),
	}}}
}

func leaderOf(ms []*member) *member {
	for _, m := range ms {
		if m.node != nil && m.node.IsLeader() {
			return m
		}
	}
	return nil
}

// Three real Raft members over mutual TLS on loopback: writes replicate,
// a leader's loss is survived (and told to followers), a store conflict comes back to the
// proposer, and nothing leaks after shutdown.
func TestThreeMembers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ms []*member
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("m%d", i)
		ms = append(ms, &member{id: id, addr: freeAddr(t), dir: t.TempDir(), ident: identity(t, root, id, shoalv1.NodeRole_NODE_ROLE_MANAGER)})
	}
	ms[0].start(t, true)
	for _, m := range ms[1:] {
		m.start(t, false)
	}
	defer func() {
		for _, m := range ms {
			if m.node != nil {
				m.node.Shutdown()
			}
		}
	}()
	waitFor(t, "first leader", func() bool { return ms[0].node.IsLeader() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range ms[1:] {
		if err := ms[0].node.AddVoter(ctx, m.id, m.addr); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := ms[0].node.Propose(ctx, createSvc(fmt.Sprintf("s%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A refused batch reports the store's error to the proposer.
	if _, err := ms[0].node.Propose(ctx, createSvc("s0")); err == nil {
		t.Fatal("duplicate create was accepted")
	}
	// A follower cannot propose.
	if _, err := ms[1].node.Propose(ctx, createSvc("x")); err == nil {
		t.Fatal("a follower accepted a proposal")
	}

	old := ms[0]
	changed := ms[1].node.LeaderChanged()
	select {
	case <-changed:
		t.Fatal("LeaderChanged closed while the leader stayed")
	default:
	}
	old.node.Shutdown()
	old.node = nil
	var next *member
	waitFor(t, "new leader", func() bool { next = leaderOf(ms); return next != nil })
	// A follower is told the leader changed.
	waitFor(t, "LeaderChanged closed on "+ms[1].id, func() bool {
		select {
		case <-changed:
			return true
		default:
			return false
		}
	})
	if _, err := next.node.Propose(ctx, createSvc("after")); err != nil {
		t.Fatal(err)
	}
	// The old leader restarts from its disk and catches up.
	old.start(t, false)
	waitFor(t, "catch-up", func() bool {
		n := 0
		old.store.View(func(r store.ReadTx) { n = len(store.List[*shoalv1.Service](r, store.TableService)) })
		return n == 21
	})
	// All replicas agree object by object, versions included.
	want := ms[1].store.Snapshot()
	for _, m := range ms {
		waitFor(t, "replicas agree", func() bool { return m.store.Index() >= next.store.Index() })
		got := m.store.Snapshot()
		if len(got.GetServices()) != len(want.GetServices()) {
			t.Fatalf("%s has %d services, want %d", m.id, len(got.GetServices()), len(want.GetServices()))
		}
		for i := range got.GetServices() {
			if got.Services[i].GetMeta().GetVersion() != want.Services[i].GetMeta().GetVersion() {
				t.Fatalf("%s: %s version %d, want %d", m.id, got.Services[i].GetId(), got.Services[i].GetMeta().GetVersion(), want.Services[i].GetMeta().GetVersion())
			}
		}
	}
}

// A worker certificate cannot join the Raft transport.
func TestTransportRefusesWorkers(t *testing.T) {
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mgr := identity(t, root, "m", shoalv1.NodeRole_NODE_ROLE_MANAGER)
	wrk := identity(t, root, "w", shoalv1.NodeRole_NODE_ROLE_WORKER)
	s, err := newTLSStream("127.0.0.1:0", nil, mgr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1)
				_, _ = c.Read(buf) // drives the handshake
				c.Close()
			}()
		}
	}()
	ws := &tlsStream{id: wrk}
	c, err := ws.Dial(raft.ServerAddress(s.Addr().String()), time.Second)
	if err == nil {
		_, err = c.Write([]byte("x"))
		if err == nil {
			buf := make([]byte, 1)
			_, err = c.Read(buf)
		}
		c.Close()
	}
	if err == nil {
		t.Fatal("a worker certificate completed a raft connection")
	}
}

func TestTimingFor(t *testing.T) {
	for _, tc := range []struct {
		heartbeat time.Duration
		want      Timing
	}{
		{0, DefaultTiming},
		{-time.Second, DefaultTiming},
		{time.Second, Timing{Heartbeat: time.Second, Election: time.Second, LeaderLease: 750 * time.Millisecond}},
		{200 * time.Millisecond, Timing{Heartbeat: 200 * time.Millisecond, Election: 200 * time.Millisecond, LeaderLease: 150 * time.Millisecond}},
	} {
		if got := TimingFor(tc.heartbeat); got != tc.want {
			t.Errorf("TimingFor(%v) = %+v; want %+v", tc.heartbeat, got, tc.want)
		}
	}
}
