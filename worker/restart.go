package worker

import (
	"time"
)

// Restart policy defaults. They heal fast without crash-looping hot: the
// first restart is immediate, the delay doubles with each further restart
// (from the policy's delay, or 100 ms) up to 10 s, and a task that ran
// cleanly for 10 s starts again from the beginning.
const (
	DefaultBackoffBase = 100 * time.Millisecond
	MaxBackoff         = 10 * time.Second
	ResetAfter         = 10 * time.Second
)

// Condition says when a task is restarted.
type Condition int

// Conditions.
const (
	OnAny Condition = iota
	OnFailure
	Never
)

// Policy is a task's restart policy.
type Policy struct {
	Condition   Condition
	Delay       time.Duration // 0: the defaults above
	MaxAttempts int           // 0: unlimited
	Window      time.Duration // 0: attempts count forever
}

// Restarts is the restart state of one task: a small state machine with
// one decision function.
type Restarts struct {
	Policy   Policy
	attempts []time.Time // restart times, for the window
	streak   int         // restarts since the last clean run
	count    int
}

// Count is how many times the task was restarted.
func (r *Restarts) Count() int { return r.count }

// Decide says, for a workload that exited with code after starting at
// started, whether to restart it and after what delay.
func (r *Restarts) Decide(code int, started, now time.Time) (restart bool, delay time.Duration) {
	switch r.Policy.Condition {
	case Never:
		return false, 0
	case OnFailure:
		if code == 0 {
			return false, 0
		}
	}
	if now.Sub(started) >= ResetAfter {
		r.streak = 0
	}
	if w := r.Policy.Window; w > 0 {
		kept := r.attempts[:0]
		for _, t := range r.attempts {
			if now.Sub(t) < w {
				kept = append(kept, t)
			}
		}
		r.attempts = kept
	}
	if m := r.Policy.MaxAttempts; m > 0 && len(r.attempts) >= m {
		return false, 0
	}
	delay = backoff(r.Policy.Delay, r.streak)
	r.streak++
	r.count++
	r.attempts = append(r.attempts, now)
	return true, delay
}

// backoff is the delay before restart number streak+1 since the last
// clean run: with a configured delay d, d, 2d, 4d…; without one, 0, then
// 100 ms, 200 ms…; capped at 10 s (or d if larger).
func backoff(d time.Duration, streak int) time.Duration {
	limit := MaxBackoff
	if d > limit {
		limit = d
	}
	var delay time.Duration
	switch {
	case d > 0:
		delay = d << uint(min(streak, 30))
	case streak == 0:
		return 0
	default:
		delay = DefaultBackoffBase << uint(min(streak-1, 30))
	}
	if delay > limit || delay <= 0 {
		delay = limit
	}
	return delay
}
