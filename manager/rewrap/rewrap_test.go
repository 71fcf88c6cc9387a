package rewrap

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWant(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      *shoalv1.Cluster
		want   string
		wantOK bool
	}{
		{"no cluster", nil, "", false},
		{"no encryption config", &shoalv1.Cluster{Spec: &shoalv1.ClusterSpec{}}, "", true},
		{"autolock off drops a stale key", &shoalv1.Cluster{Spec: &shoalv1.ClusterSpec{Encryption: &shoalv1.EncryptionConfig{}}, UnlockKey: "SHOALKEY-1-a"}, "", true},
		{"autolock on", &shoalv1.Cluster{Spec: &shoalv1.ClusterSpec{Encryption: &shoalv1.EncryptionConfig{AutoLockManagers: true}}, UnlockKey: "SHOALKEY-1-a"}, "SHOALKEY-1-a", true},
	} {
		if got, ok := Want(tc.c); got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: Want() = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

// material is a Material in memory that records its re-wraps and can be
// told to fail.
type material struct {
	mu      sync.Mutex
	key     string
	fail    int // how many Rewraps fail before one succeeds
	rewraps chan string
}

func newMaterial(key string) *material { return &material{key: key, rewraps: make(chan string, 16)} }

func (m *material) WrappedWith(k string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.key == k
}

func (m *material) Rewrap(k string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		m.rewraps <- "failed:" + k
		return errors.New("disk full")
	}
	m.key = k
	m.rewraps <- k
	return nil
}

type env struct {
	t    *testing.T
	st   *store.Store
	idx  uint64
	clk  *clock.Fake
	m    *material
	stop func()
	ctx  context.Context
}

func start(t *testing.T, m *material, c *shoalv1.Cluster) *env {
	return startCaughtUp(t, m, c, nil)
}

func startCaughtUp(t *testing.T, m *material, c *shoalv1.Cluster, caughtUp func() bool) *env {
	t.Helper()
	e := &env{t: t, st: store.New(), clk: clock.NewFake(time.Unix(1e9, 0)), m: m}
	if c != nil {
		e.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Store: e.st, Material: m, CaughtUp: caughtUp, Clock: e.clk, Log: zap.NewNop()})
	}()
	e.stop = func() { cancel(); <-done }
	t.Cleanup(e.stop)
	var tcancel context.CancelFunc
	e.ctx, tcancel = context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(tcancel)
	return e
}

func (e *env) apply(kind shoalv1.StoreActionKind, o store.Object) {
	e.t.Helper()
	e.idx++
	if err := e.st.Apply(&shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{Kind: kind, Object: store.Wrap(o)}}}, e.idx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setCluster(autolock bool, key string) {
	e.t.Helper()
	e.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, cluster(autolock, key))
}

func cluster(autolock bool, key string) *shoalv1.Cluster {
	return &shoalv1.Cluster{Id: "c1", Spec: &shoalv1.ClusterSpec{Name: "default", Encryption: &shoalv1.EncryptionConfig{AutoLockManagers: autolock}}, UnlockKey: key}
}

// next waits for the next re-wrap.
func (e *env) next(want string) {
	e.t.Helper()
	select {
	case got := <-e.m.rewraps:
		if got != want {
			e.t.Fatalf("re-wrap = %q; want %q", got, want)
		}
	case <-e.ctx.Done():
		e.t.Fatalf("no re-wrap; want %q", want)
	}
}

// none checks that nothing was re-wrapped by what came before: the loop
// handles events in order, so a barrier (a cluster asking for another
// key) must be the next re-wrap; then the cluster is put back.
func (e *env) none() {
	e.t.Helper()
	e.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, &shoalv1.Node{Id: store.NewID()})
	autolock, key := e.clusterNow()
	e.setCluster(true, "SHOALKEY-1-barrier")
	e.next("SHOALKEY-1-barrier")
	e.setCluster(autolock, key)
	e.next(key)
}

func (e *env) clusterNow() (bool, string) {
	var c *shoalv1.Cluster
	e.st.View(func(r store.ReadTx) { c = store.Get[*shoalv1.Cluster](r, store.TableCluster, "c1") })
	return c.GetSpec().GetEncryption().GetAutoLockManagers(), c.GetUnlockKey()
}

func TestRewrapFollowsTheCluster(t *testing.T) {
	e := start(t, newMaterial(""), cluster(true, "SHOALKEY-1-one"))
	e.next("SHOALKEY-1-one") // on start: the cluster asks for another key than the disk's
	e.setCluster(true, "SHOALKEY-1-two")
	e.next("SHOALKEY-1-two") // rotation
	e.setCluster(true, "SHOALKEY-1-two")
	e.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, &shoalv1.Service{Id: "s1", Spec: &shoalv1.ServiceSpec{Name: "web"}})
	e.setCluster(false, "")
	e.next("") // autolock off; the unchanged cluster and the service changed nothing before it
	e.setCluster(false, "SHOALKEY-1-stale")
	e.setCluster(true, "SHOALKEY-1-three")
	e.next("SHOALKEY-1-three") // a key left while autolock is off is not used
}

func TestRewrapNothingToDo(t *testing.T) {
	e := start(t, newMaterial("SHOALKEY-1-one"), cluster(true, "SHOALKEY-1-one"))
	e.none()
}

// A manager that joins sees the cluster object only once it has the
// log: it re-wraps then.
func TestRewrapWhenTheClusterArrives(t *testing.T) {
	e := start(t, newMaterial(""), nil)
	e.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, &shoalv1.Node{Id: "n1"})
	e.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, cluster(true, "SHOALKEY-1-one"))
	e.next("SHOALKEY-1-one")
}

func TestRewrapRetriesWithBackoff(t *testing.T) {
	m := newMaterial("")
	m.fail = 3
	e := start(t, m, cluster(true, "SHOALKEY-1-one"))
	for i, wait := range []time.Duration{MinRetry, 2 * MinRetry, 4 * MinRetry} {
		e.next("failed:SHOALKEY-1-one")
		if err := e.clk.BlockUntilContext(e.ctx, 1); err != nil {
			t.Fatalf("attempt %d: no retry timer: %v", i+1, err)
		}
		e.clk.Advance(wait - time.Millisecond)
		select {
		case got := <-m.rewraps:
			t.Fatalf("attempt %d: re-wrapped (%q) before %s", i+1, got, wait)
		default:
		}
		e.clk.Advance(time.Millisecond)
	}
	e.next("SHOALKEY-1-one")
	// Success resets the back-off: the next failure waits MinRetry again.
	m.mu.Lock()
	m.fail = 1
	m.mu.Unlock()
	e.setCluster(true, "SHOALKEY-1-two")
	e.next("failed:SHOALKEY-1-two")
	if err := e.clk.BlockUntilContext(e.ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(MinRetry)
	e.next("SHOALKEY-1-two")
}

func TestRewrapBackoffIsBounded(t *testing.T) {
	m := newMaterial("")
	m.fail = 1 << 30
	e := start(t, m, cluster(true, "SHOALKEY-1-one"))
	wait := MinRetry
	for i := 0; i < 8; i++ {
		e.next("failed:SHOALKEY-1-one")
		if err := e.clk.BlockUntilContext(e.ctx, 1); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(wait)
		wait = min(2*wait, MaxRetry)
	}
	if wait != MaxRetry {
		t.Fatalf("back-off after 8 failures = %s; want the bound %s", wait, MaxRetry)
	}
	e.next("failed:SHOALKEY-1-one")
}

// A store restored from a snapshot drops its watchers: the loop reads
// the cluster again and watches anew.
func TestRewrapAfterRestore(t *testing.T) {
	e := start(t, newMaterial("SHOALKEY-1-one"), cluster(true, "SHOALKEY-1-one"))
	e.none()
	e.idx += 10
	if err := e.st.Restore(&shoalv1.StoreSnapshot{Clusters: []*shoalv1.Cluster{cluster(true, "SHOALKEY-1-two")}}, e.idx); err != nil {
		t.Fatal(err)
	}
	e.next("SHOALKEY-1-two")
	e.setCluster(false, "")
	e.next("")
}

// A store replaying its log (or catching up after the manager was down)
// passes through old cluster objects: nothing is wrapped with those, only
// with the present one once the store has caught up.
func TestRewrapWaitsUntilCaughtUp(t *testing.T) {
	var caughtUp atomic.Bool
	e := startCaughtUp(t, newMaterial(""), cluster(true, "SHOALKEY-1-old"), caughtUp.Load)
	if err := e.clk.BlockUntilContext(e.ctx, 1); err != nil {
		t.Fatalf("no catch-up poll: %v", err)
	}
	e.setCluster(true, "SHOALKEY-1-older")
	e.setCluster(false, "")
	e.setCluster(true, "SHOALKEY-1-now")
	for i := 0; i < 3; i++ {
		e.clk.Advance(CatchUpPoll)
		if err := e.clk.BlockUntilContext(e.ctx, 1); err != nil {
			t.Fatalf("poll %d: no next catch-up poll: %v", i, err)
		}
	}
	select {
	case got := <-e.m.rewraps:
		t.Fatalf("re-wrapped with %q before the store caught up", got)
	default:
	}
	caughtUp.Store(true)
	e.clk.Advance(CatchUpPoll)
	e.next("SHOALKEY-1-now")
	e.none()
}
