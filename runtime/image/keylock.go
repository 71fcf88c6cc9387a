package image

import (
	"context"
	"sync"
)

// keyLocks is a set of mutexes by key (a layer's diffID), so that one
// goroutine fetches a layer while others wanting it wait and then reuse
// the result. Waiting ends early when the waiter's context does.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

// lock takes key's lock; waiting is called once if it is held by another.
func (k *keyLocks) lock(ctx context.Context, key string, waiting func()) (unlock func(), err error) {
	for {
		k.mu.Lock()
		if k.held == nil {
			k.held = map[string]chan struct{}{}
		}
		ch, busy := k.held[key]
		if !busy {
			ch = make(chan struct{})
			k.held[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		if waiting != nil {
			waiting()
			waiting = nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
