package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

var progressT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	tsRunning   = shoalv1.TaskState_TASK_STATE_RUNNING
	tsNew       = shoalv1.TaskState_TASK_STATE_NEW
	tsPending   = shoalv1.TaskState_TASK_STATE_PENDING
	tsPreparing = shoalv1.TaskState_TASK_STATE_PREPARING
	tsStarting  = shoalv1.TaskState_TASK_STATE_STARTING
	tsRejected  = shoalv1.TaskState_TASK_STATE_REJECTED
	tsComplete  = shoalv1.TaskState_TASK_STATE_COMPLETE
	tsShutdown  = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	tsRemove    = shoalv1.TaskState_TASK_STATE_REMOVE
)

// tk is a task of slot (or, with slot 0, of a global service on node),
// made at second age of the test's clock, in state with desired state
// running unless told.
type tk struct {
	id       string
	slot     uint64
	node     string
	state    shoalv1.TaskState
	desired  shoalv1.TaskState
	err      string
	restarts int32
	made     int
}

func (k tk) task() *shoalv1.Task {
	d := k.desired
	if d == 0 {
		d = tsRunning
	}
	return &shoalv1.Task{
		Id: k.id, Slot: k.slot, NodeId: k.node, DesiredState: d,
		Meta:   &shoalv1.Meta{CreatedAt: timestamppb.New(progressT0.Add(time.Duration(k.made) * time.Second))},
		Status: &shoalv1.TaskStatus{State: k.state, Err: k.err, Restarts: k.restarts},
	}
}

func replicatedSvc(n int64) *shoalv1.Service {
	return &shoalv1.Service{Id: "svc1", Spec: &shoalv1.ServiceSpec{Name: "web", Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: n}}}}
}

func updating(s *shoalv1.Service) *shoalv1.Service {
	s.UpdateStatus = &shoalv1.UpdateStatus{State: shoalv1.UpdateState_UPDATE_STATE_UPDATING}
	return s
}

func globalSvc() *shoalv1.Service {
	return &shoalv1.Service{Id: "svc1", Spec: &shoalv1.ServiceSpec{Name: "agent", Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}}}
}

// look is one look of a scenario: at ms milliseconds, these tasks, and
// what it must show.
type look struct {
	ms        int
	tasks     []tk
	active    []string // nodes meant to run a task of an older spec
	down      []string
	want      []string // "ID: text", with " (step)" for a bar
	converged bool
}

func showLine(l progressLine) string {
	s := l.id + ": " + l.text
	if l.step > 0 {
		s += fmt.Sprintf(" (%d)", l.step)
	}
	return s
}

func running3(made int) []tk {
	return []tk{{id: "a", slot: 1, state: tsRunning, made: made}, {id: "b", slot: 2, state: tsRunning, made: made}, {id: "c", slot: 3, state: tsRunning, made: made}}
}

func TestConvergence(t *testing.T) {
	many := make([]tk, 25)
	for i := range many {
		many[i] = tk{id: fmt.Sprint("t", i), slot: uint64(i + 1), state: tsRunning}
	}
	for _, c := range []struct {
		name  string
		svc   *shoalv1.Service
		looks []look
	}{
		{"create: tasks advance, then stay running through the verify window", replicatedSvc(3), []look{
			{ms: 0, want: []string{"overall progress: 0 out of 3 tasks", "1/3: ", "2/3: ", "3/3: "}},
			{ms: 300, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsPreparing}, {id: "c", slot: 3, state: tsStarting}},
				want: []string{"overall progress: 1 out of 3 tasks", "1/3: running (9)", "2/3: preparing (6)", "3/3: starting (8)"}},
			{ms: 1000, tasks: running3(0), want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
				"verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 3500, tasks: running3(0), want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
				"verify: Waiting 3 seconds to verify that tasks are stable..."}},
			{ms: 5900, tasks: running3(0), want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
				"verify: Waiting 1 second to verify that tasks are stable..."}},
			{ms: 6000, tasks: running3(0), want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
				"verify: Service converged"}, converged: true},
		}},
		{"a task that stops running in the window restarts the window", replicatedSvc(3), []look{
			{ms: 0, tasks: running3(0), want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
				"verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 2000, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsRejected, err: "task: exit status 1"}, {id: "c", slot: 3, state: tsRunning}},
				want: []string{"overall progress: 2 out of 3 tasks", "1/3: running (9)", "2/3: task: exit status 1", "3/3: running (9)", "verify: Detected task failure"}},
			{ms: 3000, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsRejected, desired: tsShutdown, err: "task: exit status 1"}, {id: "b2", slot: 2, state: tsRunning, made: 3}, {id: "c", slot: 3, state: tsRunning}},
				want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
					"verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 7999, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b2", slot: 2, state: tsRunning, made: 3}, {id: "c", slot: 3, state: tsRunning}},
				want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)",
					"verify: Waiting 1 second to verify that tasks are stable..."}},
			{ms: 8000, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b2", slot: 2, state: tsRunning, made: 3}, {id: "c", slot: 3, state: tsRunning}},
				want: []string{"overall progress: 3 out of 3 tasks", "1/3: running (9)", "2/3: running (9)", "3/3: running (9)", "verify: Service converged"}, converged: true},
		}},
		{"a task restarted in place between looks is a failure, though it runs again", replicatedSvc(1), []look{
			{ms: 0, tasks: []tk{{id: "a", slot: 1, state: tsRunning}}, want: []string{"overall progress: 1 out of 1 tasks", "1/1: running (9)",
				"verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 4000, tasks: []tk{{id: "a", slot: 1, state: tsRunning, restarts: 1}}, want: []string{"overall progress: 1 out of 1 tasks", "1/1: running (9)",
				"verify: Detected task failure"}},
			{ms: 8000, tasks: []tk{{id: "a", slot: 1, state: tsRunning, restarts: 1}}, want: []string{"overall progress: 1 out of 1 tasks", "1/1: running (9)",
				"verify: Waiting 1 second to verify that tasks are stable..."}},
			{ms: 9000, tasks: []tk{{id: "a", slot: 1, state: tsRunning, restarts: 1}}, want: []string{"overall progress: 1 out of 1 tasks", "1/1: running (9)",
				"verify: Service converged"}, converged: true},
		}},
		{"an image that does not exist: the error on its slot's line, and no convergence", replicatedSvc(2), []look{
			{ms: 0, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsRejected, err: "image \"nosuch:1\" not found\nin registry"}},
				want: []string{"overall progress: 1 out of 2 tasks", "1/2: running (9)", `2/2: image "nosuch:1" not found in registry`}},
			// Its replacement, newer, stands for the slot once it exists.
			{ms: 60000, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsRejected, desired: tsShutdown, err: "not found"}, {id: "b2", slot: 2, state: tsPending, made: 50}},
				want: []string{"overall progress: 1 out of 2 tasks", "1/2: running (9)", "2/2: pending (3)"}},
		}},
		{"scale down: not converged while a surplus slot is active", replicatedSvc(2), []look{
			{ms: 0, tasks: running3(0), want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)"}},
			{ms: 100, tasks: []tk{{id: "a", slot: 1, state: tsRunning}, {id: "b", slot: 2, state: tsRunning, desired: tsRemove}, {id: "c", slot: 3, state: tsRunning}},
				want: []string{"overall progress: 2 out of 2 tasks", "1/2: running (9)", "2/2: running (9)", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
		}},
		{"scale up: slots keep their lines", replicatedSvc(3), []look{
			{ms: 0, tasks: []tk{{id: "a", slot: 2, state: tsRunning}, {id: "c", slot: 5, state: tsNew}},
				want: []string{"overall progress: 1 out of 3 tasks", "1/3: running (9)", "2/3: new (1)", "3/3: "}},
			{ms: 100, tasks: []tk{{id: "x", slot: 1, state: tsPending}, {id: "a", slot: 2, state: tsRunning}, {id: "c", slot: 5, state: tsNew}},
				want: []string{"overall progress: 1 out of 3 tasks", "1/3: running (9)", "2/3: new (1)", "3/3: pending (3)"}},
		}},
		{"tasks on a node that is down do not count", replicatedSvc(2), []look{
			{ms: 0, tasks: []tk{{id: "a", slot: 1, node: "n1", state: tsRunning}, {id: "b", slot: 2, node: "n2", state: tsRunning}}, down: []string{"n2"},
				want: []string{"overall progress: 1 out of 2 tasks", "1/2: running (9)", "2/2: "}},
		}},
		{"a task that ended for good shows its state, without a bar", replicatedSvc(1), []look{
			{ms: 0, tasks: []tk{{id: "a", slot: 1, state: tsComplete, desired: tsShutdown}},
				want: []string{"overall progress: 0 out of 1 tasks", "1/1: complete"}},
		}},
		{"zero replicas converge after the window", replicatedSvc(0), []look{
			{ms: 0, want: []string{"overall progress: 0 out of 0 tasks", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 5000, want: []string{"overall progress: 0 out of 0 tasks", "verify: Service converged"}, converged: true},
		}},
		{"more than 20 tasks: the overall line only", replicatedSvc(25), []look{
			{ms: 0, tasks: many, want: []string{"overall progress: 25 out of 25 tasks", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
		}},
		{"global: waiting for tasks, then a line per node", globalSvc(), []look{
			{ms: 0, want: []string{"overall progress: waiting for new tasks"}},
			{ms: 200, tasks: []tk{{id: "a", node: "bbbbbbbbbbbbbbbbbbbbbbbbb", state: tsRunning}, {id: "b", node: "aaaaaaaaaaaaaaaaaaaaaaaaa", state: tsPreparing}},
				want: []string{"overall progress: 1 out of 2 tasks", "aaaaaaaaaaaa: preparing (6)", "bbbbbbbbbbbb: running (9)"}},
			{ms: 400, tasks: []tk{{id: "a", node: "bbbbbbbbbbbbbbbbbbbbbbbbb", state: tsRunning}, {id: "b", node: "aaaaaaaaaaaaaaaaaaaaaaaaa", state: tsRunning},
				{id: "c", node: "ccccccccccccccccccccccccc", state: tsRunning, desired: tsRemove}, {id: "d", node: "ddd", state: tsRunning}}, down: []string{"ddd"},
				want: []string{"overall progress: 2 out of 2 tasks", "aaaaaaaaaaaa: running (9)", "bbbbbbbbbbbb: running (9)", "verify: Waiting 5 seconds to verify that tasks are stable..."}},
			{ms: 5400, tasks: []tk{{id: "a", node: "bbbbbbbbbbbbbbbbbbbbbbbbb", state: tsRunning}, {id: "b", node: "aaaaaaaaaaaaaaaaaaaaaaaaa", state: tsRunning}},
				want: []string{"overall progress: 2 out of 2 tasks", "aaaaaaaaaaaa: running (9)", "bbbbbbbbbbbb: running (9)", "verify: Service converged"}, converged: true},
		}},
		{"global update: the nodes it has not reached yet count", globalSvc(), []look{
			{ms: 0, active: []string{"aaa", "bbb"}, want: []string{"overall progress: 0 out of 2 tasks", "aaa: ", "bbb: "}},
			{ms: 200, tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}}, active: []string{"aaa", "bbb"},
				want: []string{"overall progress: 1 out of 2 tasks", "aaa: running (9)", "bbb: "}},
			{ms: 5400, tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}}, active: []string{"aaa", "bbb"},
				want: []string{"overall progress: 1 out of 2 tasks", "aaa: running (9)", "bbb: "}},
			{ms: 5600, tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}, {id: "b2", node: "bbb", state: tsStarting}}, active: []string{"aaa", "bbb"},
				want: []string{"overall progress: 1 out of 2 tasks", "aaa: running (9)", "bbb: starting (8)"}},
		}},
		{"global stop-first update: all nodes running is not converged while the update is in progress", updating(globalSvc()), []look{
			{ms: 0, tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}, {id: "b2", node: "bbb", state: tsRunning}},
				want: []string{"overall progress: 2 out of 2 tasks", "aaa: running (9)", "bbb: running (9)"}},
			{ms: 5400, tasks: []tk{{id: "a2", node: "aaa", state: tsRunning}, {id: "b2", node: "bbb", state: tsRunning}},
				want: []string{"overall progress: 2 out of 2 tasks", "aaa: running (9)", "bbb: running (9)"}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conv := newConvergence(nil)
			for i, l := range c.looks {
				var tasks []*shoalv1.Task
				for _, k := range l.tasks {
					tasks = append(tasks, k.task())
				}
				down, active := map[string]bool{}, map[string]bool{}
				for _, n := range l.down {
					down[n] = true
				}
				for _, n := range l.active {
					active[n] = true
				}
				f := conv.step(serviceLook{service: c.svc, tasks: tasks, active: active, down: down, now: progressT0.Add(time.Duration(l.ms) * time.Millisecond)})
				var got []string
				for _, line := range f.lines {
					got = append(got, showLine(line))
				}
				if !slices.Equal(got, l.want) || f.converged != l.converged {
					t.Errorf("look %d (at %d ms) = %q, converged %v;\nwant %q, converged %v", i, l.ms, got, f.converged, l.want, l.converged)
				}
			}
		})
	}
}

func frame(lines ...progressLine) progressFrame { return progressFrame{lines: lines} }

// Off a terminal: a plain line when a line's text changes, nothing else.
func TestPlainProgress(t *testing.T) {
	var b strings.Builder
	p := newProgressOutput(&b, false)
	for _, f := range []progressFrame{
		frame(progressLine{id: "overall progress", text: "0 out of 2 tasks"}, progressLine{id: "1/2"}, progressLine{id: "2/2"}),
		frame(progressLine{id: "overall progress", text: "0 out of 2 tasks"}, progressLine{id: "1/2", text: "preparing", step: 6}, progressLine{id: "2/2"}),
		frame(progressLine{id: "overall progress", text: "0 out of 2 tasks"}, progressLine{id: "1/2", text: "preparing", step: 6}, progressLine{id: "2/2"}),
		frame(progressLine{id: "overall progress", text: "1 out of 2 tasks"}, progressLine{id: "1/2", text: "running", step: 9}, progressLine{id: "2/2", text: "no such image"}),
	} {
		p.show(f)
	}
	p.note("Operation continuing in background.")
	want := "overall progress: 0 out of 2 tasks\n1/2: preparing\noverall progress: 1 out of 2 tasks\n1/2: running\n2/2: no such image\nOperation continuing in background.\n"
	if b.String() != want {
		t.Errorf("plain progress wrote %q; want %q", b.String(), want)
	}
}

// On a terminal: the block is redrawn in place when it changes, with bars.
func TestTTYProgress(t *testing.T) {
	var b strings.Builder
	p := &ttyProgress{w: &b}
	first := frame(progressLine{id: "overall progress", text: "1 out of 3 tasks"},
		progressLine{id: "1/3", text: "running", step: 9}, progressLine{id: "2/3", text: "preparing", step: 6},
		progressLine{id: "3/3", text: "starting", step: 8})
	p.show(first)
	want := "\r\x1b[2Koverall progress: 1 out of 3 tasks\n" +
		"\r\x1b[2K1/3: running   [==================================================>]\n" +
		"\r\x1b[2K2/3: preparing [=================================>                 ]\n" +
		"\r\x1b[2K3/3: starting  [============================================>      ]\n"
	if b.String() != want {
		t.Fatalf("first frame: %q; want %q", b.String(), want)
	}
	b.Reset()
	p.show(first)
	if b.Len() != 0 {
		t.Fatalf("an unchanged frame wrote %q; want nothing", b.String())
	}
	long := strings.Repeat("x", 100)
	p.show(frame(progressLine{id: "overall progress", text: "1 out of 3 tasks"}, progressLine{id: "1/3", text: long}))
	want = "\x1b[4A" + "\r\x1b[2Koverall progress: 1 out of 3 tasks\n" + "\r\x1b[2K1/3: " + strings.Repeat("x", 74) + "…\n" + "\r\x1b[2K\n" + "\r\x1b[2K\n"
	if b.String() != want {
		t.Fatalf("redraw: %q; want %q", b.String(), want)
	}
}

// -q shows nothing.
func TestQuietProgress(t *testing.T) {
	var b strings.Builder
	p := newProgressOutput(&b, true)
	p.show(frame(progressLine{id: "overall progress", text: "0 out of 1 tasks"}))
	p.note("Operation continuing in background.")
	if b.Len() != 0 {
		t.Errorf("quiet progress wrote %q", b.String())
	}
}
