// Package feed keeps the last events of a kind and serves readers docker's
// events way: what was kept from a time in the past, then new events as
// they come, until a time or for ever. Recording never waits for a
// reader: one whose backlog is full is cut off and told so. The
// managers' event recorder and each node's container events are feeds.
package feed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
)

// ErrTooSlow ends a reader that fell behind the events.
var ErrTooSlow = errors.New("this reader fell behind the events and was cut off")

// replayBatch is how many kept events go in one send.
const replayBatch = 256

// Feed is a bounded history of events of type T and its readers.
type Feed[T any] struct {
	clock   clock.Clock
	at      func(T) time.Time
	history int
	backlog int

	mu   sync.Mutex
	ring []T
	subs map[*reader[T]]struct{}
}

type reader[T any] struct {
	ch  chan T
	cut chan struct{}
}

// New makes a feed that keeps the last history events and lets a reader
// fall backlog events behind; at tells an event's time.
func New[T any](clk clock.Clock, history, backlog int, at func(T) time.Time) *Feed[T] {
	if clk == nil {
		clk = clock.Real()
	}
	return &Feed[T]{clock: clk, at: at, history: history, backlog: backlog, subs: map[*reader[T]]struct{}{}}
}

// Record keeps e and hands it to the readers; a reader whose backlog is
// full is cut off. Events must be recorded in the order of their times.
func (f *Feed[T]) Record(e T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ring) == f.history {
		copy(f.ring, f.ring[1:])
		f.ring = f.ring[:f.history-1]
	}
	f.ring = append(f.ring, e)
	for s := range f.subs {
		select {
		case s.ch <- e:
		default:
			delete(f.subs, s)
			close(s.cut)
		}
	}
}

// Kept returns a copy of the events kept, oldest first.
func (f *Feed[T]) Kept() []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]T(nil), f.ring...)
}

// Readers is the number of readers subscribed.
func (f *Feed[T]) Readers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// Subscribe sends the kept events from since (unless since is zero),
// then new ones, each that match accepts, until ctx ends, or the first
// event after until (unless until is zero) or, once the time is past
// until, at once.
func (f *Feed[T]) Subscribe(ctx context.Context, since, until time.Time, match func(T) bool, send func([]T) error) error {
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return fmt.Errorf("--until (%s) is before --since (%s): %w", until, since, errdefs.ErrInvalid)
	}
	s := &reader[T]{ch: make(chan T, f.backlog), cut: make(chan struct{})}
	f.mu.Lock()
	var past []T
	if !since.IsZero() {
		for _, e := range f.ring {
			if t := f.at(e); !t.Before(since) && match(e) && (until.IsZero() || !t.After(until)) {
				past = append(past, e)
			}
		}
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
	}()
	for len(past) > 0 {
		n := min(len(past), replayBatch)
		if err := send(past[:n]); err != nil {
			return err
		}
		past = past[n:]
	}
	var end <-chan time.Time
	if !until.IsZero() {
		d := until.Sub(f.clock.Now())
		if d <= 0 {
			return nil
		}
		t := f.clock.NewTimer(d)
		defer t.Stop()
		end = t.Chan()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end:
			return nil
		case <-s.cut:
			return fmt.Errorf("%w: ask again with --since to replay what was kept: %w", ErrTooSlow, errdefs.ErrUnavailable)
		case e := <-s.ch:
			if !until.IsZero() && f.at(e).After(until) {
				return nil
			}
			if match(e) {
				if err := send([]T{e}); err != nil {
					return err
				}
			}
		}
	}
}
