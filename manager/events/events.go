// Package events turns this manager's replica of the store into docker's
// event stream: objects created, updated and removed, task state changes,
// nodes going down and up, and leadership changes. Every manager records
// its own from what it applies, so any manager answers and a leader
// change does not end a stream. The last History events are kept for
// readers that ask from a time in the past.
package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/feed"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Store is what the recorder reads.
type Store interface {
	View(fn func(store.ReadTx))
	Watch() (events <-chan *shoalv1.StoreEvent, cancel func())
}

// Raft tells the recorder who leads.
type Raft interface {
	Leader() string
	LeaderChanged() <-chan struct{}
}

// Bounds: the events kept, and a reader's backlog before it is cut off.
const (
	History   = 10000
	subBuffer = 4096
)

// Recorder records events and serves readers.
type Recorder struct {
	store Store
	raft  Raft
	clock clock.Clock

	feed *feed.Feed[*shoalv1.Event]

	mu     sync.Mutex
	last   map[string]seen
	leader string
}

// seen is what an object's next update is compared with.
type seen struct {
	state, desired, availability, role string
	name                               string
}

// New makes a recorder; Run feeds it.
func New(st Store, r Raft, clk clock.Clock) *Recorder {
	if clk == nil {
		clk = clock.Real()
	}
	return &Recorder{store: st, raft: r, clock: clk, last: map[string]seen{},
		feed: feed.New(clk, History, subBuffer, func(e *shoalv1.Event) time.Time { return e.GetTime().AsTime() })}
}

// Run records events until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if r.raft != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.followLeader(ctx) }()
	}
	defer wg.Wait()
	for ctx.Err() == nil {
		events, cancel := r.store.Watch()
		r.prime()
		r.follow(ctx, events)
		cancel()
	}
}

// prime notes every object's present state, so that the next update of
// each is told against it.
func (r *Recorder) prime() {
	r.store.View(func(tx store.ReadTx) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, t := range store.List[*shoalv1.Task](tx, store.TableTask) {
			r.last[t.GetId()] = taskSeen(t)
		}
		for _, n := range store.List[*shoalv1.Node](tx, store.TableNode) {
			r.last[n.GetId()] = nodeSeen(n)
		}
	})
}

func (r *Recorder) follow(ctx context.Context, events <-chan *shoalv1.StoreEvent) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return // fell behind the store: watch again
			}
			r.storeEvent(ev)
		}
	}
}

func (r *Recorder) followLeader(ctx context.Context) {
	for {
		changed := r.raft.LeaderChanged()
		r.leaderIs(r.raft.Leader())
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// leaderIs records a leadership change: the old leader's and the new
// one's node, docker's node update with leader.old and leader.new.
func (r *Recorder) leaderIs(id string) {
	r.mu.Lock()
	old := r.leader
	if id == old || id == "" {
		r.mu.Unlock()
		return
	}
	r.leader = id
	r.mu.Unlock()
	if old != "" {
		r.record(&shoalv1.Event{Type: "node", Action: "update", ActorId: old, Attributes: map[string]string{"name": r.nodeName(old), "leader.old": "true", "leader.new": "false"}})
	}
	r.record(&shoalv1.Event{Type: "node", Action: "update", ActorId: id, Attributes: map[string]string{"name": r.nodeName(id), "leader.old": "false", "leader.new": "true"}})
}

func (r *Recorder) nodeName(id string) string {
	name := ""
	r.store.View(func(tx store.ReadTx) {
		if n := store.Get[*shoalv1.Node](tx, store.TableNode, id); n != nil {
			name = n.GetDescription().GetHostname()
		}
	})
	return name
}

func taskSeen(t *shoalv1.Task) seen {
	return seen{state: state(t.GetStatus().GetState().String(), "TASK_STATE_"), desired: state(t.GetDesiredState().String(), "TASK_STATE_")}
}

func nodeSeen(n *shoalv1.Node) seen {
	return seen{state: state(n.GetStatus().GetState().String(), "NODE_STATE_"), availability: state(n.GetSpec().GetAvailability().String(), "NODE_AVAILABILITY_"),
		role: state(n.GetRole().String(), "NODE_ROLE_"), name: n.GetDescription().GetHostname()}
}

// state is an enum's name as docker writes it: lower case, no prefix.
func state(s, prefix string) string {
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		s = s[len(prefix):]
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

var actions = map[shoalv1.StoreActionKind]string{
	shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE: "create",
	shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE: "update",
	shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE: "remove",
}

// storeEvent records what a change of the store means, if anything: an
// update that changes nothing an operator follows (a heartbeat's write,
// a task's status message) is not an event.
func (r *Recorder) storeEvent(ev *shoalv1.StoreEvent) {
	action, ok := actions[ev.GetKind()]
	if !ok {
		return
	}
	e := &shoalv1.Event{Action: action, Attributes: map[string]string{}}
	switch o := ev.GetObject().GetObject().(type) {
	case *shoalv1.StoreObject_Service:
		e.Type, e.ActorId = "service", o.Service.GetId()
		e.Attributes["name"] = o.Service.GetSpec().GetName()
	case *shoalv1.StoreObject_Network:
		e.Type, e.ActorId = "network", o.Network.GetId()
		e.Attributes["name"] = o.Network.GetSpec().GetName()
	case *shoalv1.StoreObject_Secret:
		e.Type, e.ActorId = "secret", o.Secret.GetId()
		e.Attributes["name"] = o.Secret.GetSpec().GetName()
	case *shoalv1.StoreObject_Config:
		e.Type, e.ActorId = "config", o.Config.GetId()
		e.Attributes["name"] = o.Config.GetSpec().GetName()
	case *shoalv1.StoreObject_Task:
		t := o.Task
		e.Type, e.ActorId = "task", t.GetId()
		e.Attributes["service.id"], e.Attributes["service.name"], e.Attributes["node.id"] = t.GetServiceId(), t.GetServiceName(), t.GetNodeId()
		if t.GetSlot() > 0 {
			e.Attributes["name"] = fmt.Sprintf("%s.%d", t.GetServiceName(), t.GetSlot())
		} else {
			e.Attributes["name"] = t.GetServiceName() + "." + t.GetNodeId()
		}
		now := taskSeen(t)
		if !r.changed(t.GetId(), action, now, e.Attributes, func(a, b seen) [][3]string {
			return [][3]string{{"state", a.state, b.state}, {"desired-state", a.desired, b.desired}}
		}) {
			return
		}
	case *shoalv1.StoreObject_Node:
		n := o.Node
		e.Type, e.ActorId = "node", n.GetId()
		e.Attributes["name"] = n.GetDescription().GetHostname()
		now := nodeSeen(n)
		if !r.changed(n.GetId(), action, now, e.Attributes, func(a, b seen) [][3]string {
			return [][3]string{{"state", a.state, b.state}, {"availability", a.availability, b.availability}, {"role", a.role, b.role}, {"name", a.name, b.name}}
		}) {
			return
		}
	default:
		return // the cluster object: not an event in docker's stream
	}
	r.record(e)
}

// changed notes an object's state and, for an update, adds what changed
// to attrs as docker's key.old/key.new; it reports whether there is an
// event to record.
func (r *Recorder) changed(id, action string, now seen, attrs map[string]string, fields func(a, b seen) [][3]string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, had := r.last[id]
	if action == "remove" {
		delete(r.last, id)
		return true
	}
	r.last[id] = now
	if action == "create" || !had {
		return true
	}
	any := false
	for _, f := range fields(prev, now) {
		if f[1] != f[2] {
			attrs[f[0]+".old"], attrs[f[0]+".new"] = f[1], f[2]
			any = true
		}
	}
	return any
}

// record stamps e and puts it in the feed.
func (r *Recorder) record(e *shoalv1.Event) {
	e.Time = timestamppb.New(r.clock.Now())
	r.feed.Record(e)
}

// Subscribe sends the kept events from since (unless since is zero),
// then new ones, each that match accepts, until ctx ends, or the first
// event after until (unless until is zero) or, once the time is past
// until, at once (feed.Feed's Subscribe).
func (r *Recorder) Subscribe(ctx context.Context, since, until time.Time, match func(*shoalv1.Event) bool, send func([]*shoalv1.Event) error) error {
	return r.feed.Subscribe(ctx, since, until, match, send)
}
