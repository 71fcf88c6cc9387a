package worker

import (
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
