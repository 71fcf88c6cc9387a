package store

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

const (
	kCreate = shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE
	kUpdate = shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE
	kDelete = shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE
)

type wantEvent struct {
	kind    shoalv1.StoreActionKind
	id      string
	version uint64 // the event's version (the batch's index)
	objVer  uint64 // the carried object's meta.version
}

// drain reads exactly the events already queued. Apply publishes before it
// returns, so after Apply this is everything the batch produced.
func drain(ch <-chan *shoalv1.StoreEvent) []*shoalv1.StoreEvent {
	var out []*shoalv1.StoreEvent
	for n := len(ch); n > 0; n-- {
		ev, ok := <-ch
		if !ok {
			break
		}
		out = append(out, ev)
	}
	return out
}

func checkEvents(t *testing.T, got []*shoalv1.StoreEvent, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %v; want %d", len(got), got, len(want))
	}
	for i, w := range want {
		ev := got[i]
		_, obj, err := split(ev.GetObject())
		if err != nil {
			t.Fatalf("event %d carries no object: %v", i, err)
		}
		if ev.GetKind() != w.kind || obj.GetId() != w.id || ev.GetVersion() != w.version || obj.GetMeta().GetVersion() != w.objVer {
			t.Errorf("event %d = %v %s version %d (object version %d); want %v %s version %d (object version %d)",
				i, ev.GetKind(), obj.GetId(), ev.GetVersion(), obj.GetMeta().GetVersion(), w.kind, w.id, w.version, w.objVer)
		}
	}
}

func closed(ch <-chan *shoalv1.StoreEvent) bool {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		default:
			return false
		}
	}
}

func TestWatchOrderAndRefusals(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("old", "old")))

	events, cancel := s.Watch()
	defer cancel()
	if n := len(events); n != 0 {
		t.Fatalf("a new watch got %d events from before it started", n)
	}

	mustApply(t, s, 2, create(svc("s1", "web")), create(svc("s2", "api")))
	if err := s.Apply(batch(create(svc("s3", "db")), update(svc("s1", "web"), 1)), 3); err == nil {
		t.Fatal("stale batch accepted")
	}
	mustApply(t, s, 4, update(withLabel(svc("s1", "web"), "v", "2"), 2), del(svc("s2", ""), 2))
	mustApply(t, s, 5, del(svc("old", ""), 1))

	got := drain(events)
	checkEvents(t, got, []wantEvent{
		{kCreate, "s1", 2, 2},
		{kCreate, "s2", 2, 2},
		{kUpdate, "s1", 4, 4},
		// A delete carries the object as it was last written.
		{kDelete, "s2", 4, 2},
		{kDelete, "old", 5, 1},
	})
	if got[2].GetObject().GetService().GetSpec().GetLabels()["v"] != "2" {
		t.Errorf("update event carries %v; want the new object", got[2].GetObject().GetService())
	}
	if got[4].GetObject().GetService().GetSpec().GetName() != "old" {
		t.Errorf("delete event carries %v; want the deleted object", got[4].GetObject().GetService())
	}
}

func TestWatchEventMatchesStore(t *testing.T) {
	s := New()
	events, cancel := s.Watch()
	defer cancel()
	mustApply(t, s, 7, create(withLabel(svc("s1", "web"), "k", "v")))
	ev := <-events
	if stored := getSvc(s, "s1"); !proto.Equal(ev.GetObject().GetService(), stored) {
		t.Errorf("event object %v differs from stored %v", ev.GetObject().GetService(), stored)
	}
}

func TestWatchManyWatchers(t *testing.T) {
	s := New()
	a, cancelA := s.Watch()
	b, cancelB := s.Watch()
	defer cancelB()

	mustApply(t, s, 1, create(svc("s1", "web")))
	cancelA()
	if !closed(a) {
		t.Fatal("cancel did not close the channel")
	}
	cancelA() // twice is harmless
	mustApply(t, s, 2, create(svc("s2", "api")))

	checkEvents(t, drain(b), []wantEvent{{kCreate, "s1", 1, 1}, {kCreate, "s2", 2, 2}})

	// A watch opened now sees only what follows.
	c, cancelC := s.Watch()
	defer cancelC()
	mustApply(t, s, 3, update(svc("s1", "web"), 1))
	checkEvents(t, drain(c), []wantEvent{{kUpdate, "s1", 3, 3}})
	checkEvents(t, drain(b), []wantEvent{{kUpdate, "s1", 3, 3}})
}

func TestWatchSlowWatcherIsDropped(t *testing.T) {
	s := New()
	slow, cancelSlow := s.Watch()
	defer cancelSlow()
	fast, cancelFast := s.Watch()
	defer cancelFast()

	// One batch that exactly fills the buffers: nobody is dropped.
	var actions []*shoalv1.StoreAction
	for i := 0; i < watchBuffer; i++ {
		actions = append(actions, create(task(fmt.Sprintf("t%05d", i), "s", "")))
	}
	mustApply(t, s, 1, actions...)
	if n := len(slow); n != watchBuffer {
		t.Fatalf("slow watcher holds %d events; want %d", n, watchBuffer)
	}
	if got := drain(fast); len(got) != watchBuffer || closed(fast) {
		t.Fatalf("fast watcher got %d events (closed %v); want %d and still open", len(got), closed(fast), watchBuffer)
	}

	// Three more events in one batch: the slow watcher, which read
	// nothing, overflows on the first and is dropped (and the rest of the
	// batch must not be sent to its closed channel); the fast one, which
	// kept up, is not.
	mustApply(t, s, 2, create(task("last", "s", "")), create(task("last2", "s", "")), create(task("last3", "s", "")))
	if n := len(drain(slow)); n != watchBuffer {
		t.Errorf("dropped watcher got %d events; want %d", n, watchBuffer)
	}
	if !closed(slow) {
		t.Fatal("a watcher that fell behind was not dropped")
	}
	cancelSlow() // after being dropped: harmless
	checkEvents(t, drain(fast), []wantEvent{{kCreate, "last", 2, 2}, {kCreate, "last2", 2, 2}, {kCreate, "last3", 2, 2}})

	mustApply(t, s, 3, del(task("last", "", ""), 0))
	checkEvents(t, drain(fast), []wantEvent{{kDelete, "last", 3, 2}})
	if closed(fast) {
		t.Error("a watcher that kept up was dropped")
	}
}

func TestWatchClosedByRestore(t *testing.T) {
	s := New()
	mustApply(t, s, 1, create(svc("s1", "web")))
	events, cancel := s.Watch()
	snap := s.Snapshot()
	if err := s.Restore(snap, 1); err != nil {
		t.Fatal(err)
	}
	if !closed(events) {
		t.Fatal("restore did not close the watch")
	}
	cancel() // harmless after restore closed it

	// A new watch works after the restore.
	again, cancelAgain := s.Watch()
	defer cancelAgain()
	mustApply(t, s, 2, update(svc("s1", "web"), 1))
	checkEvents(t, drain(again), []wantEvent{{kUpdate, "s1", 2, 2}})
}
