package feed

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

type event struct {
	n  int
	at time.Time
}

func newFeed(clk clock.Clock, history, backlog int) *Feed[event] {
	return New(clk, history, backlog, func(e event) time.Time { return e.at })
}

func all(event) bool { return true }

func collect(t *testing.T, f *Feed[event], since, until time.Time, match func(event) bool) []int {
	t.Helper()
	var got []int
	if err := f.Subscribe(context.Background(), since, until, match, func(evs []event) error {
		for _, e := range evs {
			got = append(got, e.n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// since replays what was kept, within until and what match accepts; the
// history is bounded.
func TestReplay(t *testing.T) {
	clk := clock.NewFake(t0)
	f := newFeed(clk, 100, 10)
	for i := 0; i < 105; i++ {
		f.Record(event{i, clk.Now()})
		clk.Advance(time.Millisecond)
	}
	if n := len(f.Kept()); n != 100 {
		t.Fatalf("kept %d events; want 100", n)
	}
	for _, tc := range []struct {
		name         string
		since, until time.Time
		match        func(event) bool
		first, count int
	}{
		{"all kept (the oldest 5 are gone)", t0, clk.Now().Add(-time.Nanosecond), all, 5, 100},
		{"from the 50th", t0.Add(50 * time.Millisecond), clk.Now().Add(-time.Nanosecond), all, 50, 55},
		{"a window", t0.Add(10 * time.Millisecond), t0.Add(19 * time.Millisecond), all, 10, 10},
		{"even ones", t0, clk.Now().Add(-time.Nanosecond), func(e event) bool { return e.n%2 == 0 }, 6, 50},
		{"more than a batch", t0, clk.Now().Add(-time.Nanosecond), all, 5, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(t, f, tc.since, tc.until, tc.match)
			if len(got) != tc.count || got[0] != tc.first {
				t.Fatalf("got %d events from %v; want %d from %d", len(got), got[:min(len(got), 1)], tc.count, tc.first)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("out of order: %v", got)
				}
			}
		})
	}
	if err := f.Subscribe(context.Background(), clk.Now(), t0, all, func([]event) error { return nil }); err == nil {
		t.Fatal("until before since was taken")
	}
}

// Replays go in batches of replayBatch.
func TestReplayBatches(t *testing.T) {
	clk := clock.NewFake(t0)
	f := newFeed(clk, 1000, 10)
	for i := 0; i < 600; i++ {
		f.Record(event{i, clk.Now()})
	}
	var sizes []int
	_ = f.Subscribe(context.Background(), t0, t0, all, func(evs []event) error { sizes = append(sizes, len(evs)); return nil })
	if len(sizes) != 3 || sizes[0] != replayBatch || sizes[2] != 600-2*replayBatch {
		t.Fatalf("batches %v", sizes)
	}
}

func waitReaders(t *testing.T, f *Feed[event], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.Readers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d readers; want %d", f.Readers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Live events reach a reader until the first after until, or until the
// time passes until.
func TestLive(t *testing.T) {
	clk := clock.NewFake(t0)
	f := newFeed(clk, 100, 10)
	got := make(chan []int)
	go func() {
		var ns []int
		_ = f.Subscribe(context.Background(), time.Time{}, t0.Add(time.Second), all, func(evs []event) error {
			ns = append(ns, evs[0].n)
			return nil
		})
		got <- ns
	}()
	waitReaders(t, f, 1)
	f.Record(event{1, t0})
	f.Record(event{2, t0.Add(time.Second)})
	f.Record(event{3, t0.Add(2 * time.Second)})
	if ns := <-got; len(ns) != 2 || ns[0] != 1 || ns[1] != 2 {
		t.Fatalf("got %v; want [1 2]", ns)
	}

	done := make(chan error)
	go func() {
		done <- f.Subscribe(context.Background(), time.Time{}, t0.Add(time.Second), all, func([]event) error { return nil })
	}()
	waitReaders(t, f, 1)
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatalf("the end of the window: %v", err)
	}
}

// A reader that does not keep up is cut off and told so; the others go
// on.
func TestSlowReaderCutOff(t *testing.T) {
	f := newFeed(clock.NewFake(t0), 100, 4)
	block := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- f.Subscribe(context.Background(), time.Time{}, time.Time{}, all, func([]event) error { <-block; return nil })
	}()
	ctx, cancel := context.WithCancel(context.Background())
	fast, seen := make(chan int), make(chan struct{})
	go func() {
		n := 0
		_ = f.Subscribe(ctx, time.Time{}, time.Time{}, all, func([]event) error { n++; seen <- struct{}{}; return nil })
		fast <- n
	}()
	waitReaders(t, f, 2)
	for i := 0; i < 4+2; i++ {
		f.Record(event{i, t0})
		<-seen // the fast reader keeps up
	}
	close(block)
	if err := <-done; !errors.Is(err, ErrTooSlow) {
		t.Fatalf("a reader that fell behind: %v", err)
	}
	if f.Readers() != 1 {
		t.Fatalf("%d readers left; want the fast one", f.Readers())
	}
	cancel()
	if n := <-fast; n != 6 {
		t.Fatalf("the fast reader got %d events; want 6", n)
	}
}
