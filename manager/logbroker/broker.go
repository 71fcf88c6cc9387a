// Package logbroker is the leader's log broker: a client subscribes to
// the output of a service's or tasks' containers; the broker hands the
// subscription to every node that runs one of them (each node listens
// for its subscriptions over its session) and relays what the nodes
// publish back to the client.
//
// Nothing is buffered without bound. A subscription holds a few batches;
// when its reader is slow, a node's publish call waits, which holds back
// only that node's reading of its log files for this subscription:
// containers write to their files whatever any reader does. Lines a node
// could not read before its files rotated them away are reported to the
// client as warnings.
package logbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Store is what the broker reads of the store: where the selected tasks
// run, and (following) where new ones go and whether their services
// still exist.
type Store interface {
	View(fn func(store.ReadTx))
	Watch() (events <-chan *shoalv1.StoreEvent, cancel func())
}

// queued is how many batches a subscription holds for its reader before
// publishers wait.
const queued = 64

var errNotLeading = fmt.Errorf("this manager no longer leads; ask again: %w", errdefs.ErrUnavailable)

// Broker relays log subscriptions between clients and nodes. It serves
// only while Run runs (the leadership).
type Broker struct {
	store Store
	log   *zap.Logger
	newID func() string

	mu      sync.Mutex
	running bool
	subs    map[string]*subscription
	nodes   map[string]*listener
}

// New makes a broker.
func New(st Store, log *zap.Logger, newID func() string) *Broker {
	if log == nil {
		log = zap.NewNop()
	}
	return &Broker{store: st, log: log, newID: newID, subs: map[string]*subscription{}, nodes: map[string]*listener{}}
}

// Lead starts serving, before the leadership is announced; Run follows.
func (b *Broker) Lead() {
	b.mu.Lock()
	b.running = true
	b.mu.Unlock()
}

// Run serves subscriptions until ctx ends (the leadership ends): then
// every subscription and node listener ends, Unavailable.
func (b *Broker) Run(ctx context.Context) {
	b.Lead()
	<-ctx.Done()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = false
	for id, s := range b.subs {
		s.end(errNotLeading)
		delete(b.subs, id)
	}
	for id, l := range b.nodes {
		l.end()
		delete(b.nodes, id)
	}
}

// subscription is one client's.
type subscription struct {
	msg *shoalv1.LogSubscription
	out chan *shoalv1.SubscribeLogsResponse
	// gone is closed when the subscription ends, err says why (nil: it
	// ended well).
	gone chan struct{}
	once sync.Once
	err  error

	mu      sync.Mutex
	nodes   map[string]bool // nodes it was handed to
	closed  map[string]bool // nodes that sent all they had
	changed chan struct{}   // closed and replaced when closed grows
}

func (s *subscription) end(err error) {
	s.once.Do(func() { s.err = err; close(s.gone) })
}

// finished reports whether every node it was handed to is done, and a
// channel closed when that may have changed.
func (s *subscription) finished() (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.nodes {
		if !s.closed[n] {
			return false, s.changed
		}
	}
	return true, s.changed
}

func (s *subscription) markClosed(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed[node] = true
	close(s.changed)
	s.changed = make(chan struct{})
}

// listener is one node's subscription stream.
type listener struct {
	mu    sync.Mutex
	queue []*shoalv1.LogSubscription
	kick  chan struct{}
	gone  chan struct{}
	once  sync.Once
}

func newListener() *listener {
	return &listener{kick: make(chan struct{}, 1), gone: make(chan struct{})}
}

func (l *listener) push(m *shoalv1.LogSubscription) {
	l.mu.Lock()
	l.queue = append(l.queue, m)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *listener) take() []*shoalv1.LogSubscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queue
	l.queue = nil
	return q
}

func (l *listener) end() { l.once.Do(func() { close(l.gone) }) }

// selected reports whether t is one of sel's tasks.
func selected(sel *shoalv1.LogSelector, t *shoalv1.Task) bool {
	return slices.Contains(sel.GetServiceIds(), t.GetServiceId()) || slices.Contains(sel.GetTaskIds(), t.GetId())
}

// Subscribe hands req to the nodes that run its tasks and calls send with
// what they publish, until every node has sent all it has (without
// follow), the selected services and tasks are gone (follow), ctx ends,
// or the leadership does.
func (b *Broker) Subscribe(ctx context.Context, req *shoalv1.SubscribeLogsRequest, send func(*shoalv1.SubscribeLogsResponse) error) error {
	sel := req.GetSelector()
	if len(sel.GetServiceIds()) == 0 && len(sel.GetTaskIds()) == 0 {
		return fmt.Errorf("a log subscription needs a service or a task: %w", errdefs.ErrInvalid)
	}
	follow := req.GetOptions().GetFollow()
	var events <-chan *shoalv1.StoreEvent
	unwatch := func() {}
	if follow {
		events, unwatch = b.store.Watch()
	}
	defer func() { unwatch() }()
	s := &subscription{
		msg: &shoalv1.LogSubscription{Id: b.newID(), Selector: sel, Options: req.GetOptions()},
		out: make(chan *shoalv1.SubscribeLogsResponse, queued), gone: make(chan struct{}),
		nodes: map[string]bool{}, closed: map[string]bool{}, changed: make(chan struct{}),
	}
	var nodes []string
	b.store.View(func(r store.ReadTx) {
		for _, id := range sel.GetServiceIds() {
			for _, t := range store.ListBy[*shoalv1.Task](r, store.TableTask, "service", id) {
				nodes = append(nodes, t.GetNodeId())
			}
		}
		for _, id := range sel.GetTaskIds() {
			if t := store.Get[*shoalv1.Task](r, store.TableTask, id); t != nil {
				nodes = append(nodes, t.GetNodeId())
			}
		}
	})
	b.mu.Lock()
	if !b.running {
		b.mu.Unlock()
		return errNotLeading
	}
	b.subs[s.msg.GetId()] = s
	b.mu.Unlock()
	defer b.unsubscribe(s)

	var missing []string
	for _, n := range nodes {
		if n != "" && !b.handTo(s, n) && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		// docker's words for a node that cannot be asked.
		w := &shoalv1.SubscribeLogsResponse{}
		for _, n := range missing {
			w.Warnings = append(w.Warnings, fmt.Sprintf("node %s is not available", n))
		}
		if err := send(w); err != nil {
			return err
		}
	}
	for {
		done, changed := s.finished()
		if done && !follow {
			// Every node sent all it had before it closed: drain.
			for {
				select {
				case m := <-s.out:
					if err := send(m); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.gone:
			return s.err
		case m := <-s.out:
			if err := send(m); err != nil {
				return err
			}
		case <-changed:
		case ev, ok := <-events:
			if !ok {
				// The watch fell behind: look again, watch again.
				unwatch()
				events, unwatch = b.store.Watch()
				if b.gone(sel) {
					return nil
				}
				b.refresh(s)
				continue
			}
			if end := b.follow(s, ev); end {
				return nil
			}
		}
	}
}

// follow hands s to the node of a selected task that appeared, and
// reports whether s is over: its services and tasks are all gone.
func (b *Broker) follow(s *subscription, ev *shoalv1.StoreEvent) (end bool) {
	sel := s.msg.GetSelector()
	switch o := ev.GetObject().GetObject().(type) {
	case *shoalv1.StoreObject_Task:
		t := o.Task
		if !selected(sel, t) {
			return false
		}
		if ev.GetKind() == shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE {
			return len(sel.GetServiceIds()) == 0 && b.gone(sel)
		}
		if n := t.GetNodeId(); n != "" {
			b.handLate(s, n)
		}
	case *shoalv1.StoreObject_Service:
		if ev.GetKind() == shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE && slices.Contains(sel.GetServiceIds(), o.Service.GetId()) {
			return b.gone(sel)
		}
	}
	return false
}

// refresh hands s to the nodes of every selected task, after a missed
// stretch of store events.
func (b *Broker) refresh(s *subscription) {
	var nodes []string
	b.store.View(func(r store.ReadTx) {
		for _, t := range store.List[*shoalv1.Task](r, store.TableTask) {
			if selected(s.msg.GetSelector(), t) && t.GetNodeId() != "" {
				nodes = append(nodes, t.GetNodeId())
			}
		}
	})
	for _, n := range nodes {
		b.handTo(s, n)
	}
}

// gone reports whether none of sel's services and tasks is left.
func (b *Broker) gone(sel *shoalv1.LogSelector) bool {
	left := false
	b.store.View(func(r store.ReadTx) {
		for _, id := range sel.GetServiceIds() {
			if store.Get[*shoalv1.Service](r, store.TableService, id) != nil {
				left = true
			}
		}
		for _, id := range sel.GetTaskIds() {
			if store.Get[*shoalv1.Task](r, store.TableTask, id) != nil {
				left = true
			}
		}
	})
	return !left
}

// handTo hands s to node once, and reports whether node is listening.
// A node that is not listening gets it when it listens, if s follows.
func (b *Broker) handTo(s *subscription, node string) bool {
	// b.mu, then s.mu, as Listen: a node that starts listening now
	// either finds s among the subscriptions or is found here.
	b.mu.Lock()
	l := b.nodes[node]
	s.mu.Lock()
	already := s.nodes[node]
	if l != nil || s.msg.GetOptions().GetFollow() {
		s.nodes[node] = true
	}
	s.mu.Unlock()
	b.mu.Unlock()
	if l != nil && !already {
		l.push(s.msg)
	}
	return l != nil
}

// handLate hands s to a node a task of it went to after it began: that
// node's containers of it are all new, so it reads them whole.
func (b *Broker) handLate(s *subscription, node string) {
	b.mu.Lock()
	l := b.nodes[node]
	s.mu.Lock()
	already := s.nodes[node]
	s.nodes[node] = true
	s.mu.Unlock()
	b.mu.Unlock()
	if l != nil && !already {
		late := proto.CloneOf(s.msg)
		if late.Options == nil {
			late.Options = &shoalv1.LogOptions{}
		}
		late.Options.Tail = -1
		l.push(late)
	}
}

func (b *Broker) unsubscribe(s *subscription) {
	s.end(nil)
	b.mu.Lock()
	delete(b.subs, s.msg.GetId())
	var ls []*listener
	s.mu.Lock()
	for n := range s.nodes {
		if l := b.nodes[n]; l != nil && !s.closed[n] {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	b.mu.Unlock()
	stop := &shoalv1.LogSubscription{Id: s.msg.GetId(), Close: true}
	for _, l := range ls {
		l.push(stop)
	}
}

// Listen sends node its subscriptions, those under way first, until ctx
// ends, the node listens again elsewhere, or the leadership ends.
func (b *Broker) Listen(ctx context.Context, node string, send func(*shoalv1.LogSubscription) error) error {
	l := newListener()
	b.mu.Lock()
	if !b.running {
		b.mu.Unlock()
		return errNotLeading
	}
	if old := b.nodes[node]; old != nil {
		old.end()
	}
	b.nodes[node] = l
	for _, s := range b.subs {
		s.mu.Lock()
		// A follower subscription waits for the nodes it names; one
		// handed to this node's last stream is handed again.
		if s.nodes[node] && !s.closed[node] {
			l.queue = append(l.queue, s.msg)
		}
		s.mu.Unlock()
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		var lost []*subscription
		if b.nodes[node] == l {
			delete(b.nodes, node)
			for _, s := range b.subs {
				s.mu.Lock()
				if s.nodes[node] && !s.closed[node] && !s.msg.GetOptions().GetFollow() {
					lost = append(lost, s)
				}
				s.mu.Unlock()
			}
		}
		b.mu.Unlock()
		// A reader waiting for this node's lines would wait for ever.
		for _, s := range lost {
			select {
			case s.out <- &shoalv1.SubscribeLogsResponse{Warnings: []string{fmt.Sprintf("node %s is not available", node)}}:
			default:
			}
			s.markClosed(node)
		}
	}()
	for {
		for _, m := range l.take() {
			if err := send(m); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.gone:
			b.mu.Lock()
			running := b.running
			b.mu.Unlock()
			if !running {
				return errNotLeading
			}
			return nil
		case <-l.kick:
		}
	}
}

// Publish relays one publish stream of node: recv returns its messages
// until io.EOF. A node publishes only for subscriptions handed to it,
// and only its own lines.
func (b *Broker) Publish(ctx context.Context, node string, recv func() (*shoalv1.PublishLogsRequest, error)) error {
	var s *subscription
	for {
		m, err := recv()
		if err != nil {
			return err
		}
		if s == nil {
			b.mu.Lock()
			s = b.subs[m.GetSubscriptionId()]
			b.mu.Unlock()
			if s == nil {
				return fmt.Errorf("log subscription %s is over: %w", m.GetSubscriptionId(), errdefs.ErrNotFound)
			}
			s.mu.Lock()
			ok := s.nodes[node]
			s.mu.Unlock()
			if !ok {
				return fmt.Errorf("log subscription %s was not handed to node %s: %w", m.GetSubscriptionId(), node, errdefs.ErrPermissionDenied)
			}
		} else if m.GetSubscriptionId() != s.msg.GetId() {
			return fmt.Errorf("a publish stream carries one subscription (%s), not %s: %w", s.msg.GetId(), m.GetSubscriptionId(), errdefs.ErrInvalid)
		}
		if len(m.GetMessages()) > 0 || len(m.GetWarnings()) > 0 {
			out := &shoalv1.SubscribeLogsResponse{Messages: m.GetMessages(), Warnings: m.GetWarnings()}
			for i, msg := range out.Messages {
				if msg.GetContext().GetNodeId() != node {
					msg = proto.CloneOf(msg)
					if msg.Context == nil {
						msg.Context = &shoalv1.LogContext{}
					}
					msg.Context.NodeId = node
					out.Messages[i] = msg
				}
			}
			select {
			case s.out <- out:
			case <-s.gone:
				return nil // the reader left; the node is told to stop
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if m.GetClose() {
			s.markClosed(node)
			return nil
		}
	}
}

// IsNotLeading reports whether err is the broker's "no longer leads".
func IsNotLeading(err error) bool { return errors.Is(err, errNotLeading) }
