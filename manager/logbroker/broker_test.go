package logbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 5 * time.Second

type harness struct {
	t      *testing.T
	st     *store.Store
	b      *Broker
	ctx    context.Context
	cancel context.CancelFunc
	idx    uint64
	n      int
	wg     sync.WaitGroup
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, st: store.New()}
	h.b = New(h.st, nil, func() string { h.n++; return fmt.Sprintf("sub%d", h.n) })
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.b.Run(h.ctx) }()
	t.Cleanup(func() { h.cancel(); h.wg.Wait() })
	// Run has started serving once Lead returns; call it here so that
	// the first Subscribe does not race Run's start.
	h.b.Lead()
	h.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, &shoalv1.Service{Id: "svc", Spec: &shoalv1.ServiceSpec{Name: "web"}})
	return h
}

func (h *harness) apply(kind shoalv1.StoreActionKind, o store.Object) {
	h.t.Helper()
	h.idx++
	if err := h.st.Apply(&shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{Kind: kind, Object: store.Wrap(o)}}}, h.idx); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) task(id, node string) *shoalv1.Task {
	t := &shoalv1.Task{Id: id, ServiceId: "svc", NodeId: node}
	h.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, t)
	return t
}

// node is a node listening to the broker.
type node struct {
	id   string
	subs chan *shoalv1.LogSubscription
	stop context.CancelFunc
	done chan error
}

func (h *harness) listen(id string) *node {
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{id: id, subs: make(chan *shoalv1.LogSubscription, 16), stop: cancel, done: make(chan error, 1)}
	go func() {
		n.done <- h.b.Listen(ctx, id, func(s *shoalv1.LogSubscription) error { n.subs <- s; return nil })
	}()
	h.t.Cleanup(func() { cancel(); <-n.done })
	return n
}

func (n *node) next(t *testing.T) *shoalv1.LogSubscription {
	t.Helper()
	select {
	case s := <-n.subs:
		return s
	case <-time.After(wait):
		t.Fatalf("node %s got no subscription", n.id)
		return nil
	}
}

func (n *node) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-n.subs:
		t.Fatalf("node %s got %v; want nothing", n.id, s)
	case <-time.After(50 * time.Millisecond):
	}
}

// publish sends msgs as node for sub, then io.EOF.
func (h *harness) publish(node, sub string, msgs ...*shoalv1.PublishLogsRequest) error {
	i := 0
	return h.b.Publish(h.ctx, node, func() (*shoalv1.PublishLogsRequest, error) {
		if i == len(msgs) {
			return nil, io.EOF
		}
		m := msgs[i]
		m.SubscriptionId = sub
		i++
		return m, nil
	})
}

func line(task, text string) *shoalv1.LogMessage {
	return &shoalv1.LogMessage{Context: &shoalv1.LogContext{ServiceId: "svc", TaskId: task}, Data: []byte(text)}
}

// subscriber runs Subscribe and collects what it sends.
type subscriber struct {
	mu    sync.Mutex
	got   []string
	warn  []string
	done  chan error
	stop  context.CancelFunc
	wrote chan struct{}
}

func (h *harness) subscribe(req *shoalv1.SubscribeLogsRequest) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{done: make(chan error, 1), stop: cancel, wrote: make(chan struct{}, 100)}
	go func() {
		s.done <- h.b.Subscribe(ctx, req, func(r *shoalv1.SubscribeLogsResponse) error {
			s.mu.Lock()
			for _, m := range r.GetMessages() {
				s.got = append(s.got, m.GetContext().GetNodeId()+":"+string(m.GetData()))
			}
			s.warn = append(s.warn, r.GetWarnings()...)
			s.mu.Unlock()
			s.wrote <- struct{}{}
			return nil
		})
	}()
	h.t.Cleanup(func() { cancel(); <-s.done })
	return s
}

func (s *subscriber) result(t *testing.T) ([]string, []string, error) {
	t.Helper()
	var err error
	select {
	case err = <-s.done:
		s.done <- err // for the cleanup
	case <-time.After(wait):
		t.Fatal("the subscription did not end")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	got := slices.Clone(s.got)
	sort.Strings(got)
	return got, slices.Clone(s.warn), err
}

func (s *subscriber) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := slices.Clone(s.got)
	sort.Strings(got)
	return got
}

func service(follow bool) *shoalv1.SubscribeLogsRequest {
	return &shoalv1.SubscribeLogsRequest{Selector: &shoalv1.LogSelector{ServiceIds: []string{"svc"}}, Options: &shoalv1.LogOptions{Follow: follow, Tail: -1}}
}

// Without follow: each node that runs a task gets the subscription, and
// the stream ends once every one has sent all it has.
func TestSubscribeGathersEveryNode(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	h.task("t2", "n2")
	h.task("t3", "n2")
	n1, n2, n3 := h.listen("n1"), h.listen("n2"), h.listen("n3")
	waitListening(t, h, "n1", "n2", "n3")
	s := h.subscribe(service(false))
	sub1, sub2 := n1.next(t), n2.next(t)
	n3.none(t)
	if sub1.GetId() != sub2.GetId() || sub1.GetSelector().GetServiceIds()[0] != "svc" {
		t.Fatalf("the nodes got %v and %v", sub1, sub2)
	}
	if err := h.publish("n1", sub1.GetId(), &shoalv1.PublishLogsRequest{Messages: []*shoalv1.LogMessage{line("t1", "a")}}, &shoalv1.PublishLogsRequest{Close: true}); err != nil {
		t.Fatal(err)
	}
	// A node publishes only its own lines: the node ID is the caller's.
	forged := line("t2", "b")
	forged.Context.NodeId = "n1"
	if err := h.publish("n2", sub1.GetId(), &shoalv1.PublishLogsRequest{Messages: []*shoalv1.LogMessage{forged, line("t3", "c")}, Close: true}); err != nil {
		t.Fatal(err)
	}
	got, warn, err := s.result(t)
	if err != nil || !slices.Equal(got, []string{"n1:a", "n2:b", "n2:c"}) || len(warn) != 0 {
		t.Fatalf("got %q, warnings %q, %v", got, warn, err)
	}
	// A node the subscription was not handed to cannot publish to it.
	if err := h.publish("n3", sub1.GetId(), &shoalv1.PublishLogsRequest{Messages: []*shoalv1.LogMessage{line("t1", "x")}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("publish to an ended subscription: %v", err)
	}
}

func TestPublishRefusesAStranger(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	n1 := h.listen("n1")
	h.listen("n3")
	waitListening(t, h, "n1", "n3")
	h.subscribe(service(false))
	sub := n1.next(t)
	err := h.publish("n3", sub.GetId(), &shoalv1.PublishLogsRequest{Messages: []*shoalv1.LogMessage{line("t1", "forged")}})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "not handed to node n3") {
		t.Fatalf("a stranger's publish: %v", err)
	}
}

// A node that is not connected is named, docker's way; the rest is sent.
func TestSubscribeNamesAMissingNode(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	h.task("t2", "n2")
	n1 := h.listen("n1")
	waitListening(t, h, "n1")
	s := h.subscribe(service(false))
	sub := n1.next(t)
	if err := h.publish("n1", sub.GetId(), &shoalv1.PublishLogsRequest{Messages: []*shoalv1.LogMessage{line("t1", "a")}, Close: true}); err != nil {
		t.Fatal(err)
	}
	got, warn, err := s.result(t)
	if err != nil || !slices.Equal(got, []string{"n1:a"}) || !slices.Equal(warn, []string{"node n2 is not available"}) {
		t.Fatalf("got %q, warnings %q, %v", got, warn, err)
	}
}

// A node that goes away before it sent all it had ends its part.
func TestSubscribeNodeLost(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	n1 := h.listen("n1")
	waitListening(t, h, "n1")
	s := h.subscribe(service(false))
	n1.next(t)
	n1.stop()
	_, warn, err := s.result(t)
	if err != nil || !slices.Equal(warn, []string{"node n1 is not available"}) {
		t.Fatalf("warnings %q, %v", warn, err)
	}
}

// Following: a task placed on another node later brings that node in;
// the service's removal ends the stream cleanly and tells the nodes.
func TestFollowNewNodesAndRemoval(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	n1, n2 := h.listen("n1"), h.listen("n2")
	waitListening(t, h, "n1", "n2")
	req := service(true)
	req.Options.Tail = 0 // new lines only
	s := h.subscribe(req)
	sub := n1.next(t)
	n2.none(t)
	h.task("t2", "n2")
	// n2's containers of it are all new since: it reads them whole.
	if got := n2.next(t); got.GetId() != sub.GetId() || got.GetOptions().GetTail() != -1 || sub.GetOptions().GetTail() != 0 {
		t.Fatalf("n2 got %v (n1 %v); want the subscription, with every line", got, sub)
	}
	for _, n := range []string{"n1", "n2"} {
		go func() {
			_ = h.publish(n, sub.GetId(), &shoalv1.PublishLogsRequest{Messages: []*shoalv1.LogMessage{line("t", "live")}})
		}()
	}
	deadline := time.After(wait)
	for !slices.Equal(s.lines(), []string{"n1:live", "n2:live"}) {
		select {
		case <-s.wrote:
		case <-deadline:
			t.Fatalf("got %q", s.lines())
		}
	}
	h.apply(shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE, &shoalv1.Service{Id: "svc"})
	if _, _, err := s.result(t); err != nil {
		t.Fatalf("the stream ended with %v after the service's removal", err)
	}
	for _, n := range []*node{n1, n2} {
		if got := n.next(t); got.GetId() != sub.GetId() || !got.GetClose() {
			t.Fatalf("node %s got %v; want the subscription closed", n.id, got)
		}
	}
}

// A node that listens again (its session moved) is handed the follow
// subscriptions it has a part in.
func TestFollowNodeListensAgain(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	s := h.subscribe(service(true))
	// n1 was not listening: it is named, then handed the subscription.
	deadline := time.After(wait)
	for len(s.warnings()) == 0 {
		select {
		case <-s.wrote:
		case <-deadline:
			t.Fatal("no warning for a node not listening")
		}
	}
	n1 := h.listen("n1")
	first := n1.next(t)
	n1.stop()
	again := h.listen("n1")
	if got := again.next(t); got.GetId() != first.GetId() {
		t.Fatalf("listening again got %v; want %v", got, first)
	}
}

func (s *subscriber) warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.warn)
}

// The leadership's end ends every stream, Unavailable.
func TestLeadershipEnds(t *testing.T) {
	h := newHarness(t)
	h.task("t1", "n1")
	n1 := h.listen("n1")
	waitListening(t, h, "n1")
	s := h.subscribe(service(true))
	n1.next(t)
	h.cancel()
	if _, _, err := s.result(t); !IsNotLeading(err) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("subscription after the leadership: %v", err)
	}
	select {
	case err := <-n1.done:
		n1.done <- err
		if !IsNotLeading(err) {
			t.Fatalf("listener after the leadership: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("the listener did not end")
	}
	if err := h.b.Subscribe(context.Background(), service(false), func(*shoalv1.SubscribeLogsResponse) error { return nil }); !IsNotLeading(err) {
		t.Fatalf("subscribe on a broker that does not lead: %v", err)
	}
}

func TestSubscribeNeedsASelection(t *testing.T) {
	h := newHarness(t)
	err := h.b.Subscribe(h.ctx, &shoalv1.SubscribeLogsRequest{}, func(*shoalv1.SubscribeLogsResponse) error { return nil })
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("an empty selection: %v", err)
	}
}

// waitListening waits until the nodes' listeners are registered.
func waitListening(t *testing.T, h *harness, nodes ...string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		h.b.mu.Lock()
		n := 0
		for _, id := range nodes {
			if h.b.nodes[id] != nil {
				n++
			}
		}
		h.b.mu.Unlock()
		if n == len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %v are not listening", nodes)
		}
		time.Sleep(time.Millisecond)
	}
}
