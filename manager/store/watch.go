package store

import (
	"sync"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// watchBuffer is how many events a watcher may fall behind before it is
// dropped; a dropped watcher's channel is closed and it must re-read the
// store and watch again.
const watchBuffer = 4096

type watchers struct {
	mu   sync.Mutex
	next int
	subs map[int]chan *shoalv1.StoreEvent
}

func newWatchers() *watchers {
	return &watchers{subs: map[int]chan *shoalv1.StoreEvent{}}
}

// Watch streams every change committed after the call. The channel is
// closed when cancel is called, when the watcher falls too far behind, or
// when the store is restored from a snapshot.
func (s *Store) Watch() (events <-chan *shoalv1.StoreEvent, cancel func()) {
	w := s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	id := w.next
	w.next++
	ch := make(chan *shoalv1.StoreEvent, watchBuffer)
	w.subs[id] = ch
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if c, ok := w.subs[id]; ok {
			close(c)
			delete(w.subs, id)
		}
	}
}

func (w *watchers) publish(events []*shoalv1.StoreEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, ch := range w.subs {
		for _, ev := range events {
			select {
			case ch <- ev:
			default:
				close(ch)
				delete(w.subs, id)
			}
			if _, ok := w.subs[id]; !ok {
				break
			}
		}
	}
}

func (w *watchers) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, ch := range w.subs {
		close(ch)
		delete(w.subs, id)
	}
}
