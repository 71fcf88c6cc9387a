package harness

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// EventType says what an Event records: the start of a client operation,
// one of its three possible outcomes, or a fault.
type EventType int

// The event types. A client operation is an EventInvoke followed by at most
// one of EventOk, EventFail or EventInfo; an operation that never completes
// (the client was killed, the test ended) has no completion event and its
// outcome is unknown, like EventInfo. An EventFault stands alone.
const (
	// EventInvoke is a client starting an operation.
	EventInvoke EventType = iota
	// EventOk is a definite success: the operation took effect.
	EventOk
	// EventFail is a definite failure: the operation did not and will
	// not take effect.
	EventFail
	// EventInfo is an unknown outcome: the operation may or may not have
	// taken effect, now or later.
	EventInfo
	// EventFault is an instantaneous nemesis event, such as killing a
	// node or partitioning the network.
	EventFault
)

// String is the lower-case name used in History.String, so an unknown
// value still prints as something recognisable.
func (t EventType) String() string {
	switch t {
	case EventInvoke:
		return "invoke"
	case EventOk:
		return "ok"
	case EventFail:
		return "fail"
	case EventInfo:
		return "info"
	case EventFault:
		return "fault"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one entry of a History. Events are numbered in the order they
// were recorded, and At never decreases with Index, so "recorded before"
// is the real-time order checkers rely on.
type Event struct {
	// Index is the event's position in the history, from 0.
	Index int
	// At is the time since the history began.
	At time.Duration
	// Process is who did it: a client such as "client1", or "nemesis"
	// for faults.
	Process string
	// Type is what happened.
	Type EventType
	// F is the operation ("append", "create", ...) or the fault ("kill",
	// "partition", "heal", ...).
	F string
	// Value is the operation's argument on invoke, its result on ok (the
	// invoked value unless Ok was given another), the invoked value on
	// fail and info, and the fault's target on faults. It may be nil.
	Value any
	// Err is the error text of a fail or info event, empty otherwise.
	Err string
	// Op is the Index of the invoke event a completion event completes,
	// and -1 for invoke and fault events.
	Op int
}

// NemesisProcess is the Process of fault events, so faults line up with
// client operations in History.String.
const NemesisProcess = "nemesis"

// History records every client operation (invoke, then ok / fail /
// info=unknown outcome) and every fault, with times since the history
// began, so invariants can be checked against it at the end and a failure
// says what happened when. It is safe for concurrent use: many client
// goroutines and a nemesis record into one History.
type History struct {
	now   func() time.Time // injectable so tests get exact times
	start time.Time

	mu     sync.Mutex
	events []Event
}

// Op is one invoked client operation, to be completed exactly once with
// Ok, Fail or Info. Completing an Op a second time panics: it is a bug in
// the test's client code, and silently keeping either outcome would make
// the history claim something that may not be true.
type Op struct {
	h     *History
	index int
	done  bool // guarded by h.mu
}

// NewHistory starts an empty history whose clock starts now. When the test
// ends, if it failed, the whole history is logged through t.Logf, so the
// failure comes with the sequence of operations and faults that led to it.
func NewHistory(t TB) *History {
	t.Helper()
	h := newHistory(time.Now)
	t.Cleanup(func() {
		if t.Failed() {
			h.mu.Lock()
			n := len(h.events)
			h.mu.Unlock()
			t.Logf("history (%d events):\n%s", n, h.String())
		}
	})
	return h
}

// newHistory is NewHistory without the test hook, with a clock of the
// caller's choosing; tests pass a fake clock for exact times.
func newHistory(now func() time.Time) *History {
	return &History{now: now, start: now()}
}

// record appends an event under the lock, taking its time under the lock
// too, so Index order and At order agree.
func (h *History) record(e Event) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.recordLocked(e)
}

func (h *History) recordLocked(e Event) int {
	e.Index = len(h.events)
	e.At = h.now().Sub(h.start)
	h.events = append(h.events, e)
	return e.Index
}

// Invoke records that process starts operation f with argument value, and
// returns the Op to complete when the outcome is known. Call it before
// sending the request, so the invoke time is a lower bound on when the
// operation could take effect.
func (h *History) Invoke(process, f string, value any) *Op {
	i := h.record(Event{Process: process, Type: EventInvoke, F: f, Value: value, Op: -1})
	return &Op{h: h, index: i}
}

// Ok records a definite success. A nil value keeps the invoked value, which
// is what most operations want; a non-nil value records the operation's
// result instead (for example what a read returned).
func (o *Op) Ok(value any) { o.complete(EventOk, value, nil) }

// Fail records a definite failure: the operation did not and will not take
// effect, as with a validation error. Use Info when in doubt, since a
// failure that did take effect is reported as a violation by checkers.
func (o *Op) Fail(err error) { o.complete(EventFail, nil, err) }

// Info records an unknown outcome, such as a timeout or a lost connection:
// the operation may or may not have taken effect, and may still take
// effect later.
func (o *Op) Info(err error) { o.complete(EventInfo, nil, err) }

func (o *Op) complete(typ EventType, value any, err error) {
	h := o.h
	h.mu.Lock()
	defer h.mu.Unlock()
	inv := h.events[o.index]
	if o.done {
		panic(fmt.Sprintf("harness: %s %s %v (event %d) completed twice; second outcome %s",
			inv.Process, inv.F, inv.Value, inv.Index, typ))
	}
	o.done = true
	if value == nil {
		value = inv.Value
	}
	e := Event{Process: inv.Process, Type: typ, F: inv.F, Value: value, Op: inv.Index}
	if err != nil {
		e.Err = err.Error()
	}
	h.recordLocked(e)
}

// Fault records an instantaneous nemesis event, such as Fault("kill",
// "manager1"), Fault("partition", "manager1 | manager2 manager3") or
// Fault("heal", nil). Faults that take time can be recorded as two faults
// ("start-partition", "heal") around it.
func (h *History) Fault(f string, value any) {
	h.record(Event{Process: NemesisProcess, Type: EventFault, F: f, Value: value, Op: -1})
}

// Events returns a copy of the events in the order they were recorded, so
// a checker can run while clients still record. Values are shared, not
// deep-copied.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// String formats the history one line per event, each indented by two
// spaces and with aligned columns, for reading in a test log:
//
//	+1.234s  client1  ok      append 5
//	+1.500s  client2  fail    append 7: invalid value
//	+2.000s  nemesis  fault   kill manager1
func (h *History) String() string {
	events := h.Events()
	timeW, procW := 0, 0
	for _, e := range events {
		timeW = max(timeW, len(fmtAt(e.At)))
		procW = max(procW, len(e.Process))
	}
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %*s  %-*s  %-6s  %s\n", timeW, fmtAt(e.At), procW, e.Process, e.Type, describe(e))
	}
	return b.String()
}

// describe is an event's operation, value and error, as in "append 5:
// timeout".
func describe(e Event) string {
	s := e.F
	if e.Value != nil {
		s += " " + fmt.Sprint(e.Value)
	}
	if e.Err != "" {
		s += ": " + e.Err
	}
	return s
}

// fmtAt formats a time since the history began to the millisecond.
func fmtAt(d time.Duration) string { return fmt.Sprintf("+%.3fs", d.Seconds()) }

// appendOp is one append operation as CheckAppends sees it.
type appendOp struct {
	invoke Event
	value  int
	valid  bool   // invoked with an int value
	done   *Event // the completion event, nil if it never completed
}

// outcome is the op's completion type, or EventInfo if it never completed:
// both mean the outcome is unknown.
func (o *appendOp) outcome() EventType {
	if o.done == nil {
		return EventInfo
	}
	return o.done.Type
}

// String names the op with its process and times, so a violation says
// what happened when.
func (o *appendOp) String() string {
	s := fmt.Sprintf("append %d by %s (invoked %s", o.value, o.invoke.Process, fmtAt(o.invoke.At))
	switch {
	case o.done == nil:
		s += ", never completed"
	case o.done.Err != "":
		s += fmt.Sprintf(", %s %s: %s", o.done.Type, fmtAt(o.done.At), o.done.Err)
	default:
		s += fmt.Sprintf(", %s %s", o.done.Type, fmtAt(o.done.At))
	}
	return s + ")"
}

// CheckAppends checks a history of "append" operations (int values) against
// the final list read after the cluster converged: the list has no
// duplicates; every value it holds was invoked; every acknowledged (ok)
// append is in it; no definitely failed append is in it; and real-time
// order holds: if append a was acknowledged before append b was invoked, a
// comes before b in the list. It returns nil or an error listing every
// violation with the times of the operations involved.
//
// Appends whose outcome is unknown (info, or invoked but never completed)
// may or may not appear. Values identify operations, so each append must
// use a distinct int: an append invoked with a non-int value, or with a
// value another append already used, is itself reported as a violation.
// Events other than appends (faults, reads) are ignored. "Before" is the
// order events were recorded in (their Index), which History keeps
// consistent with their times.
func CheckAppends(events []Event, final []int) error {
	var violations []string
	report := func(format string, args ...any) {
		violations = append(violations, fmt.Sprintf(format, args...))
	}

	// Gather the append operations by the index of their invoke event.
	ops := map[int]*appendOp{}
	byValue := map[int]*appendOp{}
	var order []*appendOp // valid ops in invoke order
	for i := range events {
		e := &events[i]
		switch e.Type {
		case EventInvoke:
			if e.F != "append" {
				continue
			}
			op := &appendOp{invoke: *e}
			ops[e.Index] = op
			v, ok := e.Value.(int)
			if !ok {
				report("append by %s invoked at %s with non-int value %v (%T)",
					e.Process, fmtAt(e.At), e.Value, e.Value)
				continue
			}
			op.value, op.valid = v, true
			if prev := byValue[v]; prev != nil {
				report("value %d appended twice, so the list cannot tell them apart: %s and %s", v, prev, op)
				continue
			}
			byValue[v] = op
			order = append(order, op)
		case EventOk, EventFail, EventInfo:
			op := ops[e.Op]
			if op == nil {
				if e.F == "append" {
					report("%s event %d at %s completes event %d, which is no append invocation",
						e.Type, e.Index, fmtAt(e.At), e.Op)
				}
				continue
			}
			if op.done != nil {
				report("append %v by %s (event %d) completed twice: %s at %s and %s at %s",
					op.invoke.Value, op.invoke.Process, op.invoke.Index,
					op.done.Type, fmtAt(op.done.At), e.Type, fmtAt(e.At))
				continue
			}
			op.done = e
		}
	}

	// Where each value sits in the final list, and whether it belongs.
	pos := map[int]int{}
	for i, v := range final {
		if first, dup := pos[v]; dup {
			report("value %d appears more than once in the final list, at positions %d and %d", v, first, i)
			continue
		}
		pos[v] = i
		if byValue[v] == nil {
			report("value %d at position %d of the final list was never invoked", v, i)
		}
	}

	var present []*appendOp // ops in the list that did not fail, by invoke order
	for _, op := range order {
		p, in := pos[op.value]
		switch op.outcome() {
		case EventOk:
			if !in {
				report("acknowledged %s is missing from the final list", op)
			}
		case EventFail:
			if in {
				report("failed %s is in the final list at position %d", op, p)
			}
		}
		if in && op.outcome() != EventFail {
			present = append(present, op)
		}
	}

	// Real-time order: an append acknowledged before another was invoked
	// must come first. Only acknowledged appends bound when an append took
	// effect, and the later one only needs to be in the list.
	for _, a := range present {
		if a.outcome() != EventOk {
			continue
		}
		for _, b := range present {
			if a.done.Index < b.invoke.Index && pos[a.value] > pos[b.value] {
				report("real-time order: %s was acknowledged before %s was invoked, but is at position %d, after it at %d",
					a, b, pos[a.value], pos[b.value])
			}
		}
	}

	if len(violations) == 0 {
		return nil
	}
	return fmt.Errorf("%d append violation(s) in a history of %d appends and a final list of %d values:\n  %s",
		len(violations), len(ops), len(final), strings.Join(violations, "\n  "))
}
