package worker

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRestartDecisions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		code   int
		want   bool
	}{
		{"any restarts a clean exit", Policy{Condition: OnAny}, 0, true},
		{"any restarts a failure", Policy{Condition: OnAny}, 1, true},
		{"on-failure keeps a clean exit", Policy{Condition: OnFailure}, 0, false},
		{"on-failure restarts a failure", Policy{Condition: OnFailure}, 2, true},
		{"never", Policy{Condition: Never}, 1, false},
	} {
		r := Restarts{Policy: tc.policy}
		if got, _ := r.Decide(tc.code, t0, t0.Add(time.Second)); got != tc.want {
			t.Errorf("%s: Decide(%d) = %v; want %v", tc.name, tc.code, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	r := Restarts{Policy: Policy{Condition: OnAny}}
	now := t0
	var delays []time.Duration
	for i := 0; i < 10; i++ {
		ok, d := r.Decide(1, now, now.Add(50*time.Millisecond))
		if !ok {
			t.Fatal("gave up without a limit")
		}
		delays = append(delays, d)
		now = now.Add(50*time.Millisecond + d)
	}
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("default back-off %v; want %v", delays, want)
		}
	}
	// A clean run of 10 s resets the streak: the next restart is immediate.
	if _, d := r.Decide(1, now, now.Add(ResetAfter)); d != 0 {
		t.Fatalf("after a long clean run the delay is %v; want 0", d)
	}
	if r.Count() != 11 {
		t.Fatalf("Count() = %d; want 11", r.Count())
	}
}

func TestConfiguredDelayAndMaxAttempts(t *testing.T) {
	r := Restarts{Policy: Policy{Condition: OnAny, Delay: time.Second, MaxAttempts: 3, Window: time.Minute}}
	now := t0
	var delays []time.Duration
	for i := 0; i < 3; i++ {
		ok, d := r.Decide(1, now, now.Add(time.Second))
		if !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		delays = append(delays, d)
		now = now.Add(time.Second + d)
	}
	if delays[0] != time.Second || delays[1] != 2*time.Second || delays[2] != 4*time.Second {
		t.Fatalf("delays with --restart-delay 1s: %v; want 1s, 2s, 4s", delays)
	}
	if ok, _ := r.Decide(1, now, now.Add(time.Second)); ok {
		t.Fatal("a 4th attempt within the window was allowed")
	}
	// Outside the window the attempts are forgotten.
	later := now.Add(2 * time.Minute)
	if ok, _ := r.Decide(1, later, later.Add(time.Second)); !ok {
		t.Fatal("attempts outside the window still counted")
	}
}

// TestMaxAttemptsCountTheSlot: the slot's earlier restarts (the task's
// restart_history) count with the task's own against MaxAttempts, in the
// same window; Times reports only the task's own.
func TestMaxAttemptsCountTheSlot(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name    string
		policy  Policy
		earlier []time.Time
		own     []time.Time
		count   int
		exits   []time.Duration // when the workload exits, after t0
		want    []bool          // restarted at each exit
		times   []time.Time     // Times() after the last exit
	}{
		{"no history: N restarts", Policy{MaxAttempts: 2}, nil, nil, 0,
			[]time.Duration{s, 2 * s, 3 * s}, []bool{true, true, false}, []time.Time{t0.Add(s), t0.Add(2 * s)}},
		{"one earlier restart of the slot leaves one", Policy{MaxAttempts: 2}, []time.Time{t0.Add(-time.Hour)}, nil, 0,
			[]time.Duration{s, 2 * s}, []bool{true, false}, []time.Time{t0.Add(s)}},
		{"history that used them all: none", Policy{MaxAttempts: 2}, []time.Time{t0.Add(-2 * time.Hour), t0.Add(-time.Hour)}, nil, 0,
			[]time.Duration{s}, []bool{false}, nil},
		{"history before the window is forgotten", Policy{MaxAttempts: 2, Window: time.Minute}, []time.Time{t0.Add(-2 * time.Minute), t0.Add(-time.Minute)}, nil, 0,
			[]time.Duration{s, 2 * s, 3 * s}, []bool{true, true, false}, []time.Time{t0.Add(s), t0.Add(2 * s)}},
		{"history leaves the window as time goes on", Policy{MaxAttempts: 1, Window: time.Minute}, []time.Time{t0.Add(-30 * s)}, nil, 0,
			[]time.Duration{s, 31 * s}, []bool{false, true}, []time.Time{t0.Add(31 * s)}},
		{"resumed after a daemon restart: own restarts still count", Policy{MaxAttempts: 2}, nil, []time.Time{t0.Add(-s)}, 1,
			[]time.Duration{s, 2 * s}, []bool{true, false}, []time.Time{t0.Add(-s), t0.Add(s)}},
		{"no max attempts: no times kept", Policy{}, []time.Time{t0.Add(-s)}, nil, 0,
			[]time.Duration{s, 2 * s}, []bool{true, true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Restarts{Policy: tc.policy}
			r.Resume(tc.earlier, tc.own, tc.count)
			restarts := tc.count
			for i, at := range tc.exits {
				got, _ := r.Decide(1, t0.Add(at-100*time.Millisecond), t0.Add(at))
				if got != tc.want[i] {
					t.Fatalf("Decide(exit at +%v) = %v; want %v", at, got, tc.want[i])
				}
				if got {
					restarts++
				}
			}
			if fmt.Sprint(r.Times()) != fmt.Sprint(tc.times) {
				t.Fatalf("Times() = %v; want %v", r.Times(), tc.times)
			}
			if r.Count() != restarts {
				t.Fatalf("Count() = %d; want %d", r.Count(), restarts)
			}
		})
	}
}

// TestResumeCopies: Decide never writes into the caller's slices.
func TestResumeCopies(t *testing.T) {
	earlier := []time.Time{t0.Add(-2 * time.Minute), t0}
	r := Restarts{Policy: Policy{MaxAttempts: 3, Window: time.Minute}}
	r.Resume(earlier, nil, 0)
	r.Decide(1, t0, t0.Add(time.Second))
	if !earlier[0].Equal(t0.Add(-2*time.Minute)) || !earlier[1].Equal(t0) {
		t.Fatalf("Resume's slice changed: %v", earlier)
	}
}
