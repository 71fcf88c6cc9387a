package controlapi

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// fakeRaft commits every proposal at once: it applies the batch to the
// store at the next index, as the FSM would, so versions and conflicts
// behave as with Raft. Members, leader and reachability are set by the
// test; RemoveServer calls are recorded.
type fakeRaft struct {
	st *store.Store

	mu          sync.Mutex
	index       uint64
	leader      string
	members     []string
	unreachable map[string]bool
	removed     []string
	removeErr   error
	proposals   int
	// beforePropose, when set, runs at the start of Propose (once, then it
	// is cleared), to interleave another call with this one.
	beforePropose func()
}

var _ Raft = (*fakeRaft)(nil)

func (f *fakeRaft) Propose(ctx context.Context, b *shoalv1.StoreBatch) (uint64, error) {
	f.mu.Lock()
	hook := f.beforePropose
	f.beforePropose = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	// Round-trip the batch the way it goes through the Raft log, so the
	// store never shares memory with the caller.
	data, err := proto.Marshal(b)
	if err != nil {
		return 0, err
	}
	var copied shoalv1.StoreBatch
	if err := proto.Unmarshal(data, &copied); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposals++
	f.index++ // a refused entry still takes its log index
	if err := f.st.Apply(&copied, f.index); err != nil {
		return 0, err
	}
	return f.index, nil
}

func (f *fakeRaft) Leader() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeRaft) Reachable(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.unreachable[id]
}

func (f *fakeRaft) MemberIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.members...)
}

func (f *fakeRaft) RemoveServer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removeErr != nil {
		return f.removeErr
	}
	f.removed = append(f.removed, id)
	var rest []string
	for _, m := range f.members {
		if m != id {
			rest = append(rest, m)
		}
	}
	f.members = rest
	return nil
}

func (f *fakeRaft) removedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

func (f *fakeRaft) proposalCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proposals
}

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestServer returns a server over an empty store with a fake Raft whose
// only member and leader is "m1".
func newTestServer(t *testing.T) (*Server, *fakeRaft) {
	t.Helper()
	st := store.New()
	r := &fakeRaft{st: st, leader: "m1", members: []string{"m1"}, unreachable: map[string]bool{}}
	tokens := 0
	s := &Server{
		Store: st,
		Raft:  r,
		Clock: clock.NewFake(testNow),
		NewToken: func(digest string) string {
			tokens++
			return fmt.Sprintf("SWMTKN-1-%s-new%d", digest, tokens)
		},
	}
	unlockKeys := 0
	s.NewUnlockKey = func() (string, error) {
		unlockKeys++
		return fmt.Sprintf("SHOALKEY-1-test%d", unlockKeys), nil
	}
	// Every cluster has its ingress network from swarm init on.
	if err := st.Apply(&shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{create(testIngress())}}, 1); err != nil {
		t.Fatal(err)
	}
	r.index = 1
	return s, r
}

func testIngress() *shoalv1.Network {
	return &shoalv1.Network{Id: "ingress1", Spec: &shoalv1.NetworkSpec{Name: allocator.IngressName, Driver: allocator.DriverOverlay, Ingress: true},
		Allocation: &shoalv1.NetworkAllocation{Vni: 4096, Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"}}
}

// seed writes objects as one committed entry.
func seed(t *testing.T, r *fakeRaft, objs ...store.Object) {
	t.Helper()
	var b shoalv1.StoreBatch
	for _, o := range objs {
		b.Actions = append(b.Actions, create(o))
	}
	if _, err := r.Propose(context.Background(), &b); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func getService(t *testing.T, s *Server, ref string) *shoalv1.Service {
	t.Helper()
	var svc *shoalv1.Service
	s.Store.View(func(r store.ReadTx) { svc, _ = store.Find[*shoalv1.Service](r, store.TableService, ref, "service") })
	return svc
}

func getNode(t *testing.T, s *Server, id string) *shoalv1.Node {
	t.Helper()
	var n *shoalv1.Node
	s.Store.View(func(r store.ReadTx) { n = store.Get[*shoalv1.Node](r, store.TableNode, id) })
	return n
}
