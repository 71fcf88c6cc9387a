package worker

import (
	"slices"
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
//
// MaxAttempts bounds the restarts of the task's slot, not of this task
// alone: the manager hands a replacement task the times of the slot's
// earlier restarts (its replacements and the in-place restarts of the
// tasks before), and they count here with this task's own, in the same
// window. So a slot restarts at most MaxAttempts times in any window,
// whether the restarts happen here, in place (fast: the first is
// immediate), or as new tasks from the manager (after a task failed in a
// way a restart here cannot help, such as a start the runtime refused).
type Restarts struct {
	Policy  Policy
	earlier []time.Time // the slot's restarts before this task, in the window
	own     []time.Time // this task's restarts, in the window
	streak  int         // restarts since the last clean run
	count   int
}

// Resume gives the state what is known from before this runner: the
// slot's earlier restarts (the task's restart_history) and, for a task
// taken over after a daemon restart, its own reported restarts (count
// and times), so neither the count nor the budget starts over.
func (r *Restarts) Resume(earlier, own []time.Time, count int) {
	r.earlier = slices.Clone(earlier)
	r.own = slices.Clone(own)
	r.count = count
}

// Count is how many times the task was restarted.
func (r *Restarts) Count() int { return r.count }

// Times are when this task restarted, those that count against
// MaxAttempts (within the window as of the last decision); none without
// MaxAttempts. The worker reports them so that the manager can add them to
// the slot's history.
func (r *Restarts) Times() []time.Time { return slices.Clone(r.own) }

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
	if m := r.Policy.MaxAttempts; m > 0 {
		r.earlier = r.inWindow(r.earlier, now)
		r.own = r.inWindow(r.own, now)
		if len(r.earlier)+len(r.own) >= m {
			return false, 0
		}
		r.own = append(r.own, now)
	}
	delay = backoff(r.Policy.Delay, r.streak)
	r.streak++
	r.count++
	return true, delay
}

// inWindow keeps the times within the policy's window before now (all of
// them when the window is 0).
func (r *Restarts) inWindow(times []time.Time, now time.Time) []time.Time {
	w := r.Policy.Window
	if w <= 0 {
		return times
	}
	return slices.DeleteFunc(times, func(t time.Time) bool { return now.Sub(t) >= w })
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
