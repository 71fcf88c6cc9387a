package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/clock"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// beats runs the heartbeat loop on a fake clock. Each heartbeat it sends
// shows up on sent (at the clock's time); the loop then waits until the
// test answers it on answer.
type beats struct {
	clk    *clock.Fake
	sent   chan time.Time
	answer chan beatAnswer
	stop   chan bool // what Answered reports
	done   chan struct{}
	cancel context.CancelFunc
}

type beatAnswer struct {
	resp *shoalv1.HeartbeatResponse
	err  error
}

func runBeats(t *testing.T, period time.Duration) *beats {
	t.Helper()
	b := &beats{clk: clock.NewFake(t0), sent: make(chan time.Time), answer: make(chan beatAnswer), stop: make(chan bool, 1), done: make(chan struct{})}
	s := New(Config{Clock: b.clk})
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	send := func(ctx context.Context) (*shoalv1.HeartbeatResponse, error) {
		select {
		case b.sent <- b.clk.Now():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case a := <-b.answer:
			return a.resp, a.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	answered := func(context.Context, *shoalv1.HeartbeatResponse) bool {
		select {
		case stop := <-b.stop:
			return stop
		default:
			return false
		}
	}
	go func() { defer close(b.done); s.heartbeatLoop(ctx, period, send, answered) }()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

// advance waits for the loop to park on its timer, then moves the clock
// by d.
func (b *beats) advance(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.clk.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the heartbeat loop never waited for its next beat: %v", err)
	}
	b.clk.Advance(d)
}

// none fails if a heartbeat went out. Only the timer sends one, so
// right after an advance that did not reach it there is none to wait for.
func (b *beats) none(t *testing.T, why string) {
	t.Helper()
	select {
	case at := <-b.sent:
		t.Fatalf("heartbeat sent at +%s %s", at.Sub(t0), why)
	default:
	}
}

// reply answers the heartbeat that went out.
func (b *beats) reply(t *testing.T, a beatAnswer) {
	t.Helper()
	select {
	case b.answer <- a:
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat waits for an answer")
	}
}

// sentAt waits for a heartbeat that the timer released.
func (b *beats) sentAt(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-b.sent:
		return at
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat sent")
		return time.Time{}
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHeartbeatsEveryPeriod(t *testing.T) {
	const period = 500 * time.Millisecond
	b := runBeats(t, period)
	if at := b.sentAt(t); !at.Equal(t0) {
		t.Fatalf("first heartbeat at %s; want at once (%s)", at, t0)
	}
	b.reply(t, beatAnswer{resp: &shoalv1.HeartbeatResponse{}})
	for i := 1; i <= 3; i++ {
		b.advance(t, period-time.Millisecond)
		b.none(t, "before its period")
		b.advance(t, time.Millisecond)
		if at, want := b.sentAt(t), t0.Add(time.Duration(i)*period); !at.Equal(want) {
			t.Fatalf("heartbeat %d at +%s; want +%s", i, at.Sub(t0), want.Sub(t0))
		}
		b.reply(t, beatAnswer{resp: &shoalv1.HeartbeatResponse{}})
	}
}

// The leader's answer sets the period; a slow answer does not push the
// next heartbeat back; a failed one keeps the period; an answer that
// says the node left ends the loop.
func TestHeartbeatPeriodFromTheLeader(t *testing.T) {
	b := runBeats(t, 500*time.Millisecond)
	b.sentAt(t)
	b.reply(t, beatAnswer{resp: &shoalv1.HeartbeatResponse{PeriodMs: 2000}})
	b.advance(t, 500*time.Millisecond)
	b.none(t, "at the old period after the leader named 2 s")
	b.advance(t, 1499*time.Millisecond)
	b.none(t, "short of the leader's period")
	b.advance(t, time.Millisecond)
	if at := b.sentAt(t); !at.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("heartbeat at +%s; want +2s", at.Sub(t0))
	}
	// This answer takes 300 ms and fails: the next heartbeat still leaves
	// 2 s after this one left.
	b.clk.Advance(300 * time.Millisecond)
	b.reply(t, beatAnswer{err: errors.New("manager 10.0.0.1:4242: unavailable")})
	b.advance(t, 1699*time.Millisecond)
	b.none(t, "before the period after a slow answer")
	b.advance(t, time.Millisecond)
	if at := b.sentAt(t); !at.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("heartbeat after a slow, failed one at +%s; want +4s (every 2 s)", at.Sub(t0))
	}
	b.stop <- true
	b.reply(t, beatAnswer{resp: &shoalv1.HeartbeatResponse{}})
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop goes on after the node left the cluster")
	}
}
