package harness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand, so event times are exact. With
// a non-zero step it also moves by step on every reading, which gives each
// event its own time without any bookkeeping.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newFakeClock(step time.Duration) *fakeClock {
	return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), step: step}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// steppedHistory is a history whose first event is at +0.100s and each
// later one 100ms after the one before.
func steppedHistory() *History { return newHistory(newFakeClock(100 * time.Millisecond).now) }

// recordingTB is a TB that records what the code under test did with it,
// to check NewHistory's cleanup without failing a real test.
type recordingTB struct {
	failed   bool
	logs     []string
	cleanups []func()
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatal(args ...any) {
	r.failed = true
	r.logs = append(r.logs, fmt.Sprint(args...))
}

func (r *recordingTB) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }

func (r *recordingTB) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) TempDir() string  { return "" }
func (r *recordingTB) Failed() bool     { return r.failed }

// runCleanups runs the cleanups last first, as testing does.
func (r *recordingTB) runCleanups() {
	for _, f := range slices.Backward(r.cleanups) {
		f()
	}
}

func TestHistoryEventTypeString(t *testing.T) {
	for typ, want := range map[EventType]string{
		EventInvoke: "invoke", EventOk: "ok", EventFail: "fail", EventInfo: "info", EventFault: "fault",
		EventType(9): "EventType(9)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("EventType(%d).String() = %q, want %q", int(typ), got, want)
		}
	}
}

func TestHistoryEvents(t *testing.T) {
	h := steppedHistory()
	a := h.Invoke("client1", "append", 5)
	b := h.Invoke("client2", "read", nil)
	h.Fault("kill", "manager1")
	a.Ok(nil)
	b.Ok([]int{5})
	c := h.Invoke("client1", "append", 6)
	c.Info(errors.New("timeout"))
	d := h.Invoke("client1", "append", 7)
	d.Fail(nil)

	ms := func(n int) time.Duration { return time.Duration(n) * 100 * time.Millisecond }
	want := []Event{
		{Index: 0, At: ms(1), Process: "client1", Type: EventInvoke, F: "append", Value: 5, Op: -1},
		{Index: 1, At: ms(2), Process: "client2", Type: EventInvoke, F: "read", Op: -1},
		{Index: 2, At: ms(3), Process: "nemesis", Type: EventFault, F: "kill", Value: "manager1", Op: -1},
		{Index: 3, At: ms(4), Process: "client1", Type: EventOk, F: "append", Value: 5, Op: 0},
		{Index: 4, At: ms(5), Process: "client2", Type: EventOk, F: "read", Value: []int{5}, Op: 1},
		{Index: 5, At: ms(6), Process: "client1", Type: EventInvoke, F: "append", Value: 6, Op: -1},
		{Index: 6, At: ms(7), Process: "client1", Type: EventInfo, F: "append", Value: 6, Err: "timeout", Op: 5},
		{Index: 7, At: ms(8), Process: "client1", Type: EventInvoke, F: "append", Value: 7, Op: -1},
		{Index: 8, At: ms(9), Process: "client1", Type: EventFail, F: "append", Value: 7, Op: 7},
	}
	got := h.Events()
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("Events() =\n%+v\nwant\n%+v", got, want)
	}
	got[0].F = "changed"
	if h.Events()[0].F != "append" {
		t.Error("Events() returned the history's own slice, not a copy")
	}
}

func TestHistoryDoubleCompletePanics(t *testing.T) {
	for name, second := range map[string]func(*Op){
		"ok":   func(o *Op) { o.Ok(nil) },
		"fail": func(o *Op) { o.Fail(errors.New("late")) },
		"info": func(o *Op) { o.Info(errors.New("late")) },
	} {
		t.Run(name, func(t *testing.T) {
			h := steppedHistory()
			op := h.Invoke("client1", "append", 1)
			op.Ok(nil)
			func() {
				defer func() {
					r := recover()
					if r == nil || !strings.Contains(fmt.Sprint(r), "completed twice") {
						t.Errorf("second completion: recovered %v, want a panic saying completed twice", r)
					}
				}()
				second(op)
			}()
			if n := len(h.Events()); n != 2 {
				t.Errorf("history has %d events after a refused second completion, want 2", n)
			}
		})
	}
}

func TestHistoryString(t *testing.T) {
	clock := newFakeClock(0)
	h := newHistory(clock.now)
	start := clock.now()
	at := func(d time.Duration) { clock.advance(start.Add(d).Sub(clock.now())) }

	at(0)
	a := h.Invoke("client1", "append", 5)
	at(1234 * time.Millisecond)
	a.Ok(nil)
	at(1500 * time.Millisecond)
	b := h.Invoke("client2", "append", 7)
	at(1600 * time.Millisecond)
	b.Fail(errors.New("invalid value"))
	at(2 * time.Second)
	h.Fault("kill", "manager1")
	at(2500 * time.Millisecond)
	c := h.Invoke("client10", "read", nil)
	at(2600 * time.Millisecond)
	c.Ok([]int{5, 8})
	at(12345 * time.Millisecond)
	h.Fault("heal", nil)

	want := "" +
		"   +0.000s  client1   invoke  append 5\n" +
		"   +1.234s  client1   ok      append 5\n" +
		"   +1.500s  client2   invoke  append 7\n" +
		"   +1.600s  client2   fail    append 7: invalid value\n" +
		"   +2.000s  nemesis   fault   kill manager1\n" +
		"   +2.500s  client10  invoke  read\n" +
		"   +2.600s  client10  ok      read [5 8]\n" +
		"  +12.345s  nemesis   fault   heal\n"
	if got := h.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}

	// With short times and names the columns are those of the doc comment.
	at(0)
	h = newHistory(clock.now)
	at(1234 * time.Millisecond)
	h.Invoke("client1", "append", 5).Ok(nil)
	at(2 * time.Second)
	h.Fault("kill", "manager1")
	want = "" +
		"  +1.234s  client1  invoke  append 5\n" +
		"  +1.234s  client1  ok      append 5\n" +
		"  +2.000s  nemesis  fault   kill manager1\n"
	if got := h.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}

	if got := newHistory(clock.now).String(); got != "" {
		t.Errorf("empty history String() = %q, want empty", got)
	}
}

func TestNewHistoryLogsOnlyOnFailure(t *testing.T) {
	for _, failed := range []bool{false, true} {
		tb := &recordingTB{}
		h := NewHistory(tb)
		h.Invoke("client1", "append", 5).Ok(nil)
		h.Fault("kill", "manager1")
		tb.failed = failed
		tb.runCleanups()
		logs := strings.Join(tb.logs, "\n")
		if !failed {
			if logs != "" {
				t.Errorf("passing test logged %q, want nothing", logs)
			}
			continue
		}
		for _, want := range []string{"history (3 events)", "client1  ok      append 5", "nemesis  fault   kill manager1"} {
			if !strings.Contains(logs, want) {
				t.Errorf("failed test logged\n%s\nwant it to contain %q", logs, want)
			}
		}
	}
}

func TestHistoryConcurrentInvoke(t *testing.T) {
	const clients, opsEach, faults = 32, 100, 50
	h := newHistory(time.Now)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range opsEach {
				op := h.Invoke(fmt.Sprintf("client%d", c), "append", c*opsEach+i)
				if i%3 == 0 {
					op.Info(errors.New("timeout"))
				} else {
					op.Ok(nil)
				}
			}
		})
	}
	wg.Go(func() {
		for range faults {
			h.Fault("partition", nil)
		}
	})
	wg.Go(func() { // readers racing the writers
		for range 5 {
			_ = h.String()
			_ = CheckAppends(h.Events(), nil)
		}
	})
	wg.Wait()

	events := h.Events()
	if want := clients*opsEach*2 + faults; len(events) != want {
		t.Fatalf("%d events, want %d", len(events), want)
	}
	completed := map[int]bool{}
	for i, e := range events {
		if e.Index != i {
			t.Fatalf("event %d has Index %d", i, e.Index)
		}
		if i > 0 && e.At < events[i-1].At {
			t.Fatalf("event %d at %v is before event %d at %v", i, e.At, i-1, events[i-1].At)
		}
		if e.Type == EventOk || e.Type == EventInfo {
			if e.Op < 0 || e.Op >= i {
				t.Fatalf("event %+v completes event %d, not an earlier one", e, e.Op)
			}
			inv := events[e.Op]
			if inv.Type != EventInvoke || inv.Process != e.Process || inv.Value != e.Value || completed[e.Op] {
				t.Fatalf("event %+v does not complete a pending invoke (event %+v)", e, inv)
			}
			completed[e.Op] = true
		}
	}
	if len(completed) != clients*opsEach {
		t.Errorf("%d operations completed, want %d", len(completed), clients*opsEach)
	}
}

func TestCheckAppends(t *testing.T) {
	timeout := errors.New("timeout")
	// sequential appends the given values, each acknowledged.
	sequential := func(values ...int) func(*History) {
		return func(h *History) {
			for _, v := range values {
				h.Invoke("client1", "append", v).Ok(nil)
			}
		}
	}
	// overlapping has client1 and client2 append 1 and 2 concurrently.
	overlapping := func(h *History) {
		a := h.Invoke("client1", "append", 1)
		b := h.Invoke("client2", "append", 2)
		a.Ok(nil)
		b.Ok(nil)
	}
	for _, tc := range []struct {
		name  string
		build func(*History)
		final []int
		want  []string // substrings of the error, in order; none means no error
	}{
		{name: "clean", build: sequential(1, 2, 3), final: []int{1, 2, 3}},
		{name: "empty", build: func(*History) {}, final: nil},
		{
			name: "faults and other operations are ignored",
			build: func(h *History) {
				h.Fault("kill", "manager1")
				h.Invoke("client2", "read", nil).Ok([]int{1})
				h.Invoke("client1", "append", 1).Ok(nil)
				h.Invoke("client2", "create", "web").Fail(errors.New("exists"))
				h.Fault("heal", nil)
			},
			final: []int{1},
		},
		{
			name:  "lost acknowledged write",
			build: sequential(1, 2),
			final: []int{1},
			want:  []string{"1 append violation(s)", "acknowledged append 2 by client1 (invoked +0.300s, ok +0.400s) is missing from the final list"},
		},
		{
			name: "failed write appears",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Ok(nil)
				h.Invoke("client1", "append", 2).Fail(errors.New("invalid"))
			},
			final: []int{1, 2},
			want:  []string{"failed append 2 by client1 (invoked +0.300s, fail +0.400s: invalid) is in the final list at position 1"},
		},
		{
			name: "failed write absent",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Ok(nil)
				h.Invoke("client1", "append", 2).Fail(errors.New("invalid"))
			},
			final: []int{1},
		},
		{
			name:  "duplicate",
			build: sequential(1, 2),
			final: []int{1, 2, 1},
			want:  []string{"1 append violation(s)", "value 1 appears more than once in the final list, at positions 0 and 2"},
		},
		{
			name:  "value never invoked",
			build: sequential(1, 2),
			final: []int{1, 99, 2},
			want:  []string{"1 append violation(s)", "value 99 at position 1 of the final list was never invoked"},
		},
		{
			name:  "real-time order violated",
			build: sequential(1, 2),
			final: []int{2, 1},
			want: []string{"1 append violation(s)", "real-time order: append 1 by client1 (invoked +0.100s, ok +0.200s) was acknowledged " +
				"before append 2 by client1 (invoked +0.300s, ok +0.400s) was invoked, but is at position 1, after it at 0"},
		},
		{
			name: "real-time order violated by a later unknown append",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Ok(nil)
				h.Invoke("client2", "append", 2).Info(timeout)
			},
			final: []int{2, 1},
			want:  []string{"real-time order: append 1 by client1", "before append 2 by client2 (invoked +0.300s, info +0.400s: timeout) was invoked"},
		},
		{
			name: "real-time order violated by a later append that never completed",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Ok(nil)
				h.Invoke("client2", "append", 2)
			},
			final: []int{2, 1},
			want:  []string{"before append 2 by client2 (invoked +0.300s, never completed) was invoked"},
		},
		{
			name: "unknown outcomes appear",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Info(timeout)
				h.Invoke("client2", "append", 2)
				h.Invoke("client1", "append", 3).Ok(nil)
			},
			final: []int{1, 2, 3},
		},
		{
			name: "unknown outcomes absent",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Info(timeout)
				h.Invoke("client2", "append", 2)
				h.Invoke("client1", "append", 3).Ok(nil)
			},
			final: []int{3},
		},
		{
			name: "unknown outcome takes effect late",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Info(timeout)
				h.Invoke("client1", "append", 2).Ok(nil)
			},
			final: []int{2, 1},
		},
		{name: "concurrent appends in invoke order", build: overlapping, final: []int{1, 2}},
		{name: "concurrent appends in reverse order", build: overlapping, final: []int{2, 1}},
		{
			name: "concurrent appends, one acknowledged before a third",
			build: func(h *History) {
				a := h.Invoke("client1", "append", 1)
				b := h.Invoke("client2", "append", 2)
				b.Ok(nil)
				c := h.Invoke("client2", "append", 3)
				a.Ok(nil)
				c.Ok(nil)
			},
			final: []int{2, 3, 1},
		},
		{
			name: "non-int value",
			build: func(h *History) {
				h.Invoke("client1", "append", "x").Ok(nil)
				h.Invoke("client1", "append", 2).Ok(nil)
			},
			final: []int{2},
			want:  []string{"1 append violation(s)", "append by client1 invoked at +0.100s with non-int value x (string)"},
		},
		{
			name:  "value appended twice",
			build: sequential(1, 1),
			final: []int{1},
			want:  []string{"value 1 appended twice"},
		},
		{
			name: "every violation listed",
			build: func(h *History) {
				h.Invoke("client1", "append", 1).Ok(nil)
				h.Invoke("client1", "append", 2).Ok(nil)
				h.Invoke("client1", "append", 3).Fail(errors.New("invalid"))
				h.Invoke("client1", "append", 4).Ok(nil)
			},
			final: []int{4, 3, 1, 1, 5},
			want: []string{
				"5 append violation(s)",
				"value 1 appears more than once",
				"value 5 at position 4 of the final list was never invoked",
				"acknowledged append 2",
				"failed append 3",
				"real-time order: append 1 by client1 (invoked +0.100s, ok +0.200s) was acknowledged before append 4",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := steppedHistory()
			tc.build(h)
			err := CheckAppends(h.Events(), tc.final)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("CheckAppends(%v) = %v, want nil; history:\n%s", tc.final, err, h)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckAppends(%v) = nil, want an error; history:\n%s", tc.final, h)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("CheckAppends(%v) =\n%s\nwant it to contain, in order, %q", tc.final, msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestCheckAppendsMalformed feeds histories History would never produce,
// as hand-built or filtered event lists might be.
func TestCheckAppendsMalformed(t *testing.T) {
	inv := Event{Index: 0, Process: "client1", Type: EventInvoke, F: "append", Value: 1, Op: -1}
	ok := Event{Index: 1, At: time.Second, Process: "client1", Type: EventOk, F: "append", Value: 1, Op: 0}
	orphan := Event{Index: 2, At: 2 * time.Second, Process: "client2", Type: EventOk, F: "append", Value: 2, Op: 7}
	again := Event{Index: 3, At: 3 * time.Second, Process: "client1", Type: EventFail, F: "append", Value: 1, Op: 0}
	err := CheckAppends([]Event{inv, ok, orphan, again}, []int{1})
	if err == nil {
		t.Fatal("CheckAppends of a malformed history = nil, want an error")
	}
	for _, want := range []string{
		"ok event 2 at +2.000s completes event 7, which is no append invocation",
		"append 1 by client1 (event 0) completed twice: ok at +1.000s and fail at +3.000s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckAppends =\n%v\nwant it to contain %q", err, want)
		}
	}
}

// listService simulates a correct list service with one or more clients:
// each append takes effect at one instant between its invoke and its
// completion, or, when its outcome is unknown, possibly at any later
// instant or never. It returns the history and the final list.
func listService(r *rand.Rand) (*History, []int) {
	clock := newFakeClock(0)
	h := newHistory(clock.now)
	type client struct {
		op      *Op
		value   int
		busy    bool
		applied bool
	}
	nproc := 1 // sequential a third of the time
	if r.IntN(3) > 0 {
		nproc = 2 + r.IntN(4)
	}
	clients := make([]client, nproc)
	var list, late []int // late: unknown appends that have not taken effect
	next := 0
	for range 5 + r.IntN(80) {
		clock.advance(time.Duration(1+r.IntN(50)) * time.Millisecond)
		i := r.IntN(nproc)
		c := &clients[i]
		switch {
		case !c.busy:
			next++
			*c = client{op: h.Invoke(fmt.Sprintf("client%d", i+1), "append", next), value: next, busy: true}
		case !c.applied && r.IntN(3) == 0:
			if r.IntN(2) == 0 {
				c.op.Fail(errors.New("rejected"))
			} else {
				c.op.Info(errors.New("timeout"))
				late = append(late, c.value)
			}
			c.busy = false
		case !c.applied:
			list = append(list, c.value)
			c.applied = true
		default:
			if r.IntN(5) == 0 {
				c.op.Info(errors.New("connection lost"))
			} else {
				c.op.Ok(nil)
			}
			c.busy = false
		}
		if len(late) > 0 && r.IntN(4) == 0 {
			j := r.IntN(len(late))
			if r.IntN(3) > 0 { // else it never takes effect
				list = append(list, late[j])
			}
			late = slices.Delete(late, j, j+1)
		}
	}
	// Appends still in flight never complete; some of them took effect.
	for _, c := range clients {
		if c.busy && !c.applied && r.IntN(2) == 0 {
			list = append(list, c.value)
		}
	}
	return h, list
}

// TestCheckAppendsProperty checks that CheckAppends accepts every history
// of a correct list service, and rejects the final list once an
// acknowledged value is dropped, two acknowledged appends that did not
// overlap are swapped, a failed value is added, or a value is duplicated.
func TestCheckAppendsProperty(t *testing.T) {
	const cases = 200
	var dropped, swapped, failedAdded, duplicated int
	for seed := range uint64(cases) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		h, final := listService(r)
		events := h.Events()
		fatalf := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\nfinal list %v\nhistory:\n%s", seed, fmt.Sprintf(format, args...), final, h)
		}
		if err := CheckAppends(events, final); err != nil {
			fatalf("CheckAppends of a correct history = %v", err)
		}
		mutated := func(what, want string, list []int) {
			t.Helper()
			err := CheckAppends(events, list)
			if err == nil || !strings.Contains(err.Error(), want) {
				fatalf("after %s, CheckAppends(%v) = %v, want an error containing %q", what, list, err, want)
			}
		}

		var acked, failed []int    // values
		okAt := map[int]int{}      // value -> index of its ok event
		invokedAt := map[int]int{} // value -> index of its invoke event
		for _, e := range events {
			switch e.Type {
			case EventInvoke:
				invokedAt[e.Value.(int)] = e.Index
			case EventOk:
				acked = append(acked, e.Value.(int))
				okAt[e.Value.(int)] = e.Index
			case EventFail:
				failed = append(failed, e.Value.(int))
			}
		}

		if len(acked) > 0 {
			v := acked[r.IntN(len(acked))]
			list := slices.DeleteFunc(slices.Clone(final), func(x int) bool { return x == v })
			mutated(fmt.Sprintf("dropping acknowledged %d", v), fmt.Sprintf("acknowledged append %d ", v), list)
			dropped++
		}

		var pairs [][2]int // a acknowledged before b was invoked, both acknowledged
		for _, a := range acked {
			for _, b := range acked {
				if okAt[a] < invokedAt[b] {
					pairs = append(pairs, [2]int{a, b})
				}
			}
		}
		if len(pairs) > 0 {
			p := pairs[r.IntN(len(pairs))]
			list := slices.Clone(final)
			i, j := slices.Index(list, p[0]), slices.Index(list, p[1])
			list[i], list[j] = list[j], list[i]
			mutated(fmt.Sprintf("swapping %d and %d", p[0], p[1]), fmt.Sprintf("real-time order: append %d ", p[0]), list)
			swapped++
		}

		if len(failed) > 0 {
			v := failed[r.IntN(len(failed))]
			list := slices.Clone(final)
			list = slices.Insert(list, r.IntN(len(list)+1), v)
			mutated(fmt.Sprintf("adding failed %d", v), fmt.Sprintf("failed append %d ", v), list)
			failedAdded++
		}

		if len(final) > 0 {
			v := final[r.IntN(len(final))]
			list := slices.Insert(slices.Clone(final), r.IntN(len(final)+1), v)
			mutated(fmt.Sprintf("duplicating %d", v), fmt.Sprintf("value %d appears more than once", v), list)
			duplicated++
		}
	}
	t.Logf("%d histories: dropped %d, swapped %d, added failed %d, duplicated %d", cases, dropped, swapped, failedAdded, duplicated)
	// Guard against a generator that stops producing interesting histories.
	if dropped < cases*3/4 || swapped < cases/2 || failedAdded < cases/4 || duplicated < cases*3/4 {
		t.Errorf("too few mutations exercised")
	}
}
