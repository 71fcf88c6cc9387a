package manager

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/raftnode"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// This file holds an in-process cluster of real managers for the tests:
// Raft over mutual TLS on loopback, each manager's gRPC server behind the
// interceptor, and in front of each server a proxy that can drop traffic
// silently, like a pulled cable (see blackhole).

const testClusterID = "cluster"

// testManager is one manager of a testCluster.
type testManager struct {
	id     string
	m      *Manager
	srv    *grpc.Server
	proxy  *blackhole // the address the other managers have for this one
	conn   *grpc.ClientConn
	client shoalv1.ControlServiceClient // straight to this manager's server
	stop   context.CancelFunc
	done   chan struct{}
	raftUp bool
}

type testCluster struct {
	t        *testing.T
	root     *ca.RootCA
	managers []*testManager
}

func testIdentity(t *testing.T, root *ca.RootCA, id string) *tlsutil.Identity {
	t.Helper()
	key, csr, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.Sign(csr, id, testClusterID, shoalv1.NodeRole_NODE_ROLE_MANAGER, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ident, err := tlsutil.NewIdentity(root.CertPEM, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startTestCluster starts n managers, m0 bootstrapping the cluster and the
// others joining it as voters, and waits until every manager knows every
// manager's address. Everything is stopped at the test's end, and no
// goroutine may outlive it.
func startTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, root: root}
	// Cleanups run last first: this one after the cluster is closed.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start")) })
	t.Cleanup(c.close)
	admin := testIdentity(t, root, "admin")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%d", i)
		ident := testIdentity(t, root, id)
		ln := listenLoopback(t)
		raftLn := listenLoopback(t)
		raftAddr := raftLn.Addr().String()
		raftLn.Close()
		tm := &testManager{id: id, proxy: newBlackhole(t, ln.Addr().String()), done: make(chan struct{})}
		tm.m, err = New(Config{
			NodeID: id, ClusterID: testClusterID, Addr: tm.proxy.addr(), RaftBind: raftAddr, RaftAdvertise: raftAddr,
			Dir: t.TempDir(), Identity: ident, DEK: testDEK(t), Log: zap.NewNop(), Bootstrap: i == 0,
			Timing: raftnode.Timing{Heartbeat: 200 * time.Millisecond, Election: 200 * time.Millisecond, LeaderLease: 150 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		tm.raftUp = true
		tm.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(ident.ServerConfig())), grpc.UnaryInterceptor(tm.m.Interceptor))
		tm.m.Register(tm.srv)
		go func() { _ = tm.srv.Serve(ln) }()
		runCtx, stop := context.WithCancel(context.Background())
		tm.stop = stop
		go func() { defer close(tm.done); tm.m.Run(runCtx) }()
		tm.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(admin.ClientConfig())))
		if err != nil {
			t.Fatal(err)
		}
		tm.client = shoalv1.NewControlServiceClient(tm.conn)
		c.managers = append(c.managers, tm)

		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		node := &shoalv1.Node{
			Id:            id,
			Meta:          &shoalv1.Meta{},
			Spec:          &shoalv1.NodeSpec{DesiredRole: shoalv1.NodeRole_NODE_ROLE_MANAGER, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
			Status:        &shoalv1.NodeStatus{State: shoalv1.NodeState_NODE_STATE_READY, Addr: "127.0.0.1"},
			Role:          shoalv1.NodeRole_NODE_ROLE_MANAGER,
			ManagerStatus: &shoalv1.ManagerStatus{Addr: tm.proxy.addr(), RaftAddr: raftAddr},
		}
		if i == 0 {
			cluster := &shoalv1.Cluster{
				Id:         testClusterID,
				Meta:       &shoalv1.Meta{},
				Spec:       &shoalv1.ClusterSpec{Name: "default"},
				RootCa:     &shoalv1.RootCA{CertPem: root.CertPEM, Digest: root.Digest},
				JoinTokens: &shoalv1.JoinTokens{Worker: ca.NewToken(root.Digest).String(), Manager: ca.NewToken(root.Digest).String()},
			}
			err = tm.m.Bootstrap(ctx, cluster, node)
		} else {
			// Through whichever manager leads now: on a loaded machine
			// the first may lose its lead while the others join.
			err = c.addManager(ctx, node, id, raftAddr)
		}
		cancel()
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
	}
	c.waitFor("every manager to know every manager", func() error {
		for _, tm := range c.managers {
			if got := len(tm.m.managerAddrs()); got != n {
				return fmt.Errorf("%s knows %d managers", tm.id, got)
			}
			if tm.m.raft.Leader() == "" {
				return fmt.Errorf("%s knows no leader", tm.id)
			}
		}
		return nil
	})
	return c
}

// addManager writes node and adds it as a voter through the current
// leader, trying again (until ctx ends) when leadership moves meanwhile.
func (c *testCluster) addManager(ctx context.Context, node *shoalv1.Node, id, raftAddr string) error {
	created := false
	for {
		var err error
		for _, tm := range c.managers[:len(c.managers)-1] {
			if !tm.m.raft.IsLeader() {
				continue
			}
			if !created {
				_, err = tm.m.raft.Propose(ctx, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{
					{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(node)},
				}})
				// A create whose answer was lost may have applied.
				created = err == nil || errdefs.Is(err, errdefs.ErrAlreadyExists) || errdefs.Is(err, errdefs.ErrConflict)
			}
			if created {
				if err = tm.m.raft.AddVoter(ctx, id, raftAddr); err == nil {
					return nil
				}
			}
			break
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor retries fn until it returns nil, failing the test after 15 s.
func (c *testCluster) waitFor(what string, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader waits for a ready leader and returns it.
func (c *testCluster) leader() *testManager {
	c.t.Helper()
	var out *testManager
	c.waitFor("a ready leader", func() error {
		for _, tm := range c.managers {
			if tm.raftUp && tm.m.IsReadyLeader() {
				out = tm
				return nil
			}
		}
		return fmt.Errorf("no ready leader")
	})
	return out
}

// followers lists the managers but one.
func (c *testCluster) others(not *testManager) []*testManager {
	var out []*testManager
	for _, tm := range c.managers {
		if tm != not {
			out = append(out, tm)
		}
	}
	return out
}

// stopRaft ends tm's Raft member while its gRPC server (behind its proxy)
// stays up: the other managers elect a new leader among themselves.
func (c *testCluster) stopRaft(tm *testManager) {
	c.t.Helper()
	if err := tm.m.raft.Shutdown(); err != nil {
		c.t.Fatalf("stop raft of %s: %v", tm.id, err)
	}
	tm.raftUp = false
}

// services counts the services named name in tm's store.
func (tm *testManager) services(name string) int {
	n := 0
	tm.m.store.View(func(r store.ReadTx) {
		for _, s := range store.List[*shoalv1.Service](r, store.TableService) {
			if s.GetSpec().GetName() == name {
				n++
			}
		}
	})
	return n
}

func (c *testCluster) close() {
	for _, tm := range c.managers {
		tm.proxy.heal()
		tm.conn.Close()
		tm.srv.Stop()
		tm.stop()
		<-tm.done
		tm.m.fwd.Close()
		if tm.raftUp {
			_ = tm.m.raft.Shutdown()
		}
		tm.proxy.close()
	}
}

// blackhole is a TCP proxy on loopback that can stop delivering bytes in
// either direction without closing anything: what an nftables drop rule
// does to an established connection. Held bytes are delivered on heal, as
// TCP retransmission would.
type blackhole struct {
	t       *testing.T
	address string
	target  string

	mu       sync.Mutex
	ln       net.Listener
	cond     *sync.Cond
	up, down bool // traffic towards the target / back from it is dropped
	held     int  // bytes waiting behind a drop towards the target
	closed   bool
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newBlackhole(t *testing.T, target string) *blackhole {
	b := &blackhole{t: t, ln: listenLoopback(t), target: target}
	b.address = b.ln.Addr().String()
	b.cond = sync.NewCond(&b.mu)
	b.wg.Add(1)
	go b.accept(b.ln)
	return b
}

func (b *blackhole) addr() string { return b.address }

// refuse closes the listener: new connections are refused, as by a host
// whose daemon is down. Established ones stay.
func (b *blackhole) refuse() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ln.Close()
}

// reopen listens again on the same address.
func (b *blackhole) reopen() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.address)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ln = ln
	b.wg.Add(1)
	go b.accept(ln)
}

func (b *blackhole) accept(ln net.Listener) {
	defer b.wg.Done()
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			in.Close()
			continue
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		b.wg.Add(2)
		go b.pipe(out, in, true)
		go b.pipe(in, out, false)
	}
}

// pipe copies src to dst, holding each chunk while its direction drops.
// Either side closing closes both, as a closed socket would end the
// connection.
func (b *blackhole) pipe(dst, src net.Conn, up bool) {
	defer b.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b.mu.Lock()
			for !b.closed && ((up && b.up) || (!up && b.down)) {
				if up {
					b.held += n
				}
				b.cond.Wait()
				if up {
					b.held -= n
				}
			}
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// drop starts dropping traffic towards the target (up) and back (down).
func (b *blackhole) drop(up, down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up, b.down = up, down
	b.cond.Broadcast()
}

func (b *blackhole) heal() { b.drop(false, false) }

// holding reports the bytes waiting behind a drop towards the target.
func (b *blackhole) holding() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

func (b *blackhole) close() {
	b.mu.Lock()
	b.closed = true
	for _, c := range b.conns {
		c.Close()
	}
	b.cond.Broadcast()
	b.ln.Close()
	b.mu.Unlock()
	b.wg.Wait()
}

// testDEK is a manager's data encryption key, made as the daemon makes it.
func testDEK(t *testing.T) []byte {
	t.Helper()
	m, err := keys.New()
	if err != nil {
		t.Fatal(err)
	}
	dek, err := m.DEK()
	if err != nil {
		t.Fatal(err)
	}
	return dek
}
