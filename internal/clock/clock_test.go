package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/clock"
)

// A timer on the fake clock fires when the clock is advanced past it,
// and not before.
func TestFakeTimer(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := clock.NewFake(start)
	var _ clock.Clock = c
	tm := c.NewTimer(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-tm.Chan():
		t.Fatal("timer fired before its time")
	default:
	}
	c.Advance(time.Millisecond)
	select {
	case got := <-tm.Chan():
		if !got.Equal(start.Add(time.Second)) {
			t.Errorf("fired at %v; want %v", got, start.Add(time.Second))
		}
	case <-ctx.Done():
		t.Fatal("timer did not fire once the clock passed it")
	}
	if c.Since(start) != time.Second {
		t.Errorf("Since(start) = %v; want 1s", c.Since(start))
	}
}
