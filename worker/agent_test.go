package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/clock"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker/health"
)

// fakeExec is a controller whose containers exit when the test says.
type fakeExec struct {
	mu           sync.Mutex
	n            int
	exits        map[string]chan Exit
	running      map[string]string // container -> task
	exited       map[string]string // container -> task, not removed yet
	removed      []string
	pullErr      error
	pullProgress []string
	pullGate     chan struct{} // when set, Pull returns once it is closed, whatever its context
	startErr     error
	stopped      []string
	started      chan string
	// check is every container's health check, if set; Probe takes
	// each probe's exit code from probes.
	check  *health.Config
	probes chan int
	ready  map[string][]bool // task -> its Ready calls
	// files is the agent's store; onTmpfs, the tasks whose files were
	// prepared and not released; released, the tasks released.
	files      *Files
	onTmpfs    map[string]bool
	released   []string
	releasedCh chan string
}

func newFake() *fakeExec {
	return &fakeExec{exits: map[string]chan Exit{}, running: map[string]string{}, exited: map[string]string{}, started: make(chan string, 100),
		probes: make(chan int), ready: map[string][]bool{}, onTmpfs: map[string]bool{}, releasedCh: make(chan string, 100)}
}

func (f *fakeExec) Pull(ctx context.Context, t *shoalv1.Task, progress func(string)) error {
	for _, m := range f.pullProgress {
		progress(m)
	}
	if f.pullGate != nil {
		<-f.pullGate
	}
	return f.pullErr
}

func (f *fakeExec) Start(ctx context.Context, t *shoalv1.Task) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return "", f.startErr
	}
	f.n++
	id := fmt.Sprintf("c%d", f.n)
	f.exits[id] = make(chan Exit, 1)
	f.running[id] = t.GetId()
	f.started <- id
	return id, nil
}

func (f *fakeExec) Wait(ctx context.Context, id string) (Exit, error) {
	f.mu.Lock()
	ch := f.exits[id]
	f.mu.Unlock()
	select {
	case e := <-ch:
		f.mu.Lock()
		if task, ok := f.running[id]; ok {
			f.exited[id] = task
		}
		delete(f.running, id)
		f.mu.Unlock()
		return e, nil
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
}

func (f *fakeExec) Stop(ctx context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, id)
	if _, ok := f.running[id]; ok {
		select {
		case f.exits[id] <- Exit{Code: 143}: // SIGTERM ends it, as a real one
		default:
		}
	}
	delete(f.running, id)
	return nil
}

func (f *fakeExec) HealthCheck(*shoalv1.Task, string) (health.Config, bool) {
	if f.check == nil {
		return health.Config{}, false
	}
	return health.Effective(f.check, nil)
}

func (f *fakeExec) Probe(ctx context.Context, id string, c health.Config) (int, string, error) {
	select {
	case code := <-f.probes:
		return code, fmt.Sprintf("probe of %s: exit %d", id, code), nil
	case <-ctx.Done():
		return -1, "", ctx.Err()
	}
}

func (f *fakeExec) Ready(t *shoalv1.Task, ready bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready[t.GetId()] = append(f.ready[t.GetId()], ready)
}

func (f *fakeExec) readyCalls(task string) []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ready[task])
}

func (f *fakeExec) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.running, id)
	delete(f.exited, id)
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeExec) removedOnes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

func (f *fakeExec) Adopt(context.Context, *shoalv1.Task, string) error { return nil }

func (f *fakeExec) Prune([]*shoalv1.Task) {}

// PrepareFiles is the real executor's bookkeeping without the tmpfs: a
// task's files are found in the agent's store, or left from its earlier
// run until released.
func (f *fakeExec) PrepareFiles(t *shoalv1.Task) error {
	plan, err := PlanFiles(t)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range plan {
		get := f.files.Config
		if p.Kind == KindSecret {
			get = f.files.Secret
		}
		if _, ok := get(p.ID); !ok && !f.onTmpfs[t.GetId()] {
			return &MissingFileError{Kind: p.Kind, Name: p.Name}
		}
	}
	if len(plan) > 0 {
		f.onTmpfs[t.GetId()] = true
	}
	return nil
}

func (f *fakeExec) ReleaseFiles(taskID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onTmpfs[taskID] {
		f.released = append(f.released, taskID)
		f.releasedCh <- taskID
	}
	delete(f.onTmpfs, taskID)
}

func (f *fakeExec) releasedOnes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.released)
}

func (f *fakeExec) Containers() map[string]Existing {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Existing{}
	for c, t := range f.exited {
		out[t] = Existing{ID: c}
	}
	for c, t := range f.running {
		out[t] = Existing{ID: c, Running: true}
	}
	return out
}

func (f *fakeExec) exit(id string, code int) { f.exits[id] <- Exit{Code: code} }

// reports collects statuses per task, in order.
type reports struct {
	mu  sync.Mutex
	all map[string][]*shoalv1.TaskStatus
	ch  chan struct{}
}

func newReports() *reports {
	return &reports{all: map[string][]*shoalv1.TaskStatus{}, ch: make(chan struct{}, 1000)}
}

func (r *reports) report(id string, st *shoalv1.TaskStatus) {
	r.mu.Lock()
	r.all[id] = append(r.all[id], st)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *reports) last(id string) *shoalv1.TaskStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.all[id]
	if len(l) == 0 {
		return nil
	}
	return l[len(l)-1]
}

func (r *reports) waitFor(t *testing.T, id string, state shoalv1.TaskState, restarts int32) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if l := r.last(id); l != nil && l.GetState() == state && l.GetRestarts() == restarts {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("task %s never reached %v (restarts %d); last %v", id, state, restarts, r.last(id))
		}
	}
}

func task(id string, desired shoalv1.TaskState, cond shoalv1.RestartCondition) *shoalv1.Task {
	return &shoalv1.Task{Id: id, ServiceName: "web", Slot: 1, DesiredState: desired,
		Spec:   &shoalv1.TaskSpec{Restart: &shoalv1.RestartPolicy{Condition: cond, Delay: durationpb.New(time.Millisecond), MaxAttempts: 2}},
		Status: &shoalv1.TaskStatus{State: shoalv1.TaskState_TASK_STATE_ASSIGNED}}
}

func newAgent(t *testing.T) (*Agent, *fakeExec, *reports, func()) {
	a, f, r, _, stop := newAgentClock(t)
	return a, f, r, stop
}

// newAgentClock is newAgent with the fake clock the agent's timers run on.
func newAgentClock(t *testing.T) (*Agent, *fakeExec, *reports, *clock.Fake, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	f, r, clk := newFake(), newReports(), clock.NewFake(t0)
	a := NewAgent(ctx, clk, f, r.report, zap.NewNop())
	f.files = a.Files()
	return a, f, r, clk, func() { cancel(); a.Wait() }
}

// afterBackoff waits until the runner waits out a restart delay, then
// moves the clock past it.
func afterBackoff(t *testing.T, clk *clock.Fake, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clk.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the runner never waited for its restart delay: %v", err)
	}
	clk.Advance(d)
}

func TestTaskRunsRestartsAndGivesUp(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	// The states went forward one step at a time.
	var states []shoalv1.TaskState
	for _, s := range r.all["t1"] {
		states = append(states, s.GetState())
	}
	if fmt.Sprint(states) != "[TASK_STATE_ACCEPTED TASK_STATE_PREPARING TASK_STATE_STARTING TASK_STATE_RUNNING]" {
		t.Fatalf("states %v", states)
	}
	f.exit(<-f.started, 1)
	afterBackoff(t, clk, time.Millisecond) // the policy's delay
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 1)
	f.exit(<-f.started, 1)
	afterBackoff(t, clk, 2*time.Millisecond) // doubled
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 2)
	f.exit(<-f.started, 3)
	// Max attempts 2: the policy gives up; the manager replaces it.
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_FAILED, 2)
	if got := r.last("t1"); got.GetExitCode() != 3 || got.GetErr() != "task: non-zero exit (3)" {
		t.Fatalf("final status %v", got)
	}
}

// A replacement task whose slot already restarted once (its
// restart_history) has one of its 2 attempts left: it restarts in place
// once, reports when, and then fails.
func TestReplacementSpendsTheSlotsAttempts(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	t2 := task("t2", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)
	t2.RestartHistory = shoalv1.Timestamps([]time.Time{t0.Add(-time.Minute)})
	a.Update(true, []*shoalv1.Task{t2}, nil)
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	f.exit(<-f.started, 1)
	restartedAt := clk.Now()
	afterBackoff(t, clk, time.Millisecond)
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_RUNNING, 1)
	if got := shoalv1.Times(r.last("t2").GetRestartTimes()); fmt.Sprint(got) != fmt.Sprint([]time.Time{restartedAt}) {
		t.Fatalf("reported restart times %v; want [%v]", got, restartedAt)
	}
	f.exit(<-f.started, 1)
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_FAILED, 1)
}

// A failed task starts again only once its back-off delay has passed on
// the agent's clock, and the delay doubles with each restart.
func TestRestartWaitsOutTheBackoff(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	t1 := task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)
	t1.Spec.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ANY, Delay: durationpb.New(time.Second)}
	a.Update(true, []*shoalv1.Task{t1}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	for i, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		f.exit(<-f.started, 1)
		afterBackoff(t, clk, delay-time.Millisecond)
		select {
		case id := <-f.started:
			t.Fatalf("restart %d: container %s started %s into a %s delay", i+1, id, delay-time.Millisecond, delay)
		default:
		}
		before := clk.Now()
		clk.Advance(time.Millisecond)
		r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, int32(i+1))
		if got := r.last("t1").GetTimestamp().AsTime(); !got.After(before) {
			t.Fatalf("restart %d reported at %s; want after the delay ended (%s)", i+1, got, before)
		}
	}
}

func TestRestartConditionNone(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_NONE)}, nil)
	f.exit(<-f.started, 0)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_COMPLETE, 0)
}

func TestRejectedWhenThePullFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	f.pullErr = fmt.Errorf(`image "x" not found in registry y`)
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_REJECTED, 0)
	if r.last("t1").GetErr() != `image "x" not found in registry y` {
		t.Fatalf("error %q", r.last("t1").GetErr())
	}
}

// The pull's progress reaches the manager as a preparing status, spaced
// so a burst of layer events is one report.
func TestPullProgressReported(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	f.pullProgress = []string{"pulling image: 0 of 2 layers, 1.0 of 9.0 MB", "pulling image: 1 of 2 layers, 5.0 of 9.0 MB"}
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	var got []string
	for _, s := range r.all["t1"] {
		if s.GetState() == shoalv1.TaskState_TASK_STATE_PREPARING {
			got = append(got, s.GetMessage())
		}
	}
	if want := []string{"preparing", "pulling image: 0 of 2 layers, 1.0 of 9.0 MB"}; !slices.Equal(got, want) {
		t.Errorf("preparing reports %q; want %q", got, want)
	}
}

func TestShutdownAndResync(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	a.Update(true, []*shoalv1.Task{
		task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
		task("t2", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY),
	}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	// The leader says t1 must stop.
	a.Update(false, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, 0)
	// After a reconnect the full set no longer has t2 (replaced while we
	// were away): it is stopped.
	a.Update(true, nil, nil)
	r.waitFor(t, "t2", shoalv1.TaskState_TASK_STATE_SHUTDOWN, 0)
	if len(f.Containers()) != 0 {
		t.Fatalf("containers left running: %v", f.Containers())
	}
}

// A task shut down while its image is still pulling ends shut down, even
// when the pull then completes and the runner goes on to start it: no
// report from the runner may come after (and so replace) its final one.
func TestShutdownDuringPullStaysShutDown(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	f.pullGate = make(chan struct{})
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_PREPARING, 0)
	a.Update(false, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, 0)
	close(f.pullGate)
	stop() // the runner's goroutines have ended
	if got := r.last("t1"); got.GetState() != shoalv1.TaskState_TASK_STATE_SHUTDOWN {
		var states []shoalv1.TaskState
		for _, s := range r.all["t1"] {
			states = append(states, s.GetState())
		}
		t.Fatalf("last report %v (all: %v); want shut down", got.GetState(), states)
	}
	if len(f.Containers()) != 0 {
		t.Fatalf("containers left running: %v", f.Containers())
	}
}

// A task that ended here stays ended: an assignment that still shows it
// running (sent before the manager had its final report) must not run it
// again. Its second container would clash with the first one's name and
// the task would end rejected instead of complete.
func TestEndedTaskNotRunAgain(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	t1 := task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_NONE)
	a.Update(true, []*shoalv1.Task{t1}, nil)
	f.exit(<-f.started, 0)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_COMPLETE, 0)
	// Once its runner is gone (its goroutine is the only one), the stale
	// assignment arrives.
	a.Wait()
	stale := task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_NONE)
	stale.Status.State = shoalv1.TaskState_TASK_STATE_RUNNING
	a.Update(false, []*shoalv1.Task{stale}, nil)
	a.mu.Lock()
	again := a.runners["t1"] != nil
	a.mu.Unlock()
	if again {
		t.Fatal("a stale assignment runs the ended task again")
	}
	if got := r.last("t1").GetState(); got != shoalv1.TaskState_TASK_STATE_COMPLETE {
		t.Fatalf("last report %v; want complete", got)
	}
}

// A task that completed keeps its exited container (its logs and exit
// code) and its complete state when the manager then sets its desired
// state to shutdown; the container goes when the task is removed.
func TestEndedTaskKeepsItsContainerUntilRemoved(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, stop := newAgent(t)
	defer stop()
	a.Update(true, []*shoalv1.Task{task("t1", shoalv1.TaskState_TASK_STATE_RUNNING, shoalv1.RestartCondition_RESTART_CONDITION_NONE)}, nil)
	c := <-f.started
	f.exit(c, 0)
	r.waitFor(t, "t1", shoalv1.TaskState_TASK_STATE_COMPLETE, 0)
	a.Wait() // the runner's goroutine has ended
	ended := task("t1", shoalv1.TaskState_TASK_STATE_SHUTDOWN, shoalv1.RestartCondition_RESTART_CONDITION_NONE)
	ended.Status.State = shoalv1.TaskState_TASK_STATE_COMPLETE
	a.Update(false, []*shoalv1.Task{ended}, nil)
	a.Wait() // and whatever stop it started
	if got := f.removedOnes(); len(got) != 0 {
		t.Fatalf("containers removed %v once the task was told to shut down; want its exited container kept", got)
	}
	if got := r.last("t1").GetState(); got != shoalv1.TaskState_TASK_STATE_COMPLETE {
		t.Fatalf("last report %v; want complete kept", got)
	}
	a.Update(false, nil, []string{"t1"})
	deadline := time.After(5 * time.Second)
	for !slices.Contains(f.removedOnes(), c) {
		select {
		case <-deadline:
			t.Fatalf("container %s not removed with its task (removed %v)", c, f.removedOnes())
		case <-time.After(time.Millisecond):
		}
	}
}

// A job's task (desired COMPLETE) runs like a service's; exiting 0 is its
// end even under restart condition ANY (Swarm's jobs), and a failure is
// restarted in place as for a service.
func TestJobTaskRunsToCompletion(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, f, r, clk, stop := newAgentClock(t)
	defer stop()
	a.Update(true, []*shoalv1.Task{task("j1", shoalv1.TaskState_TASK_STATE_COMPLETE, shoalv1.RestartCondition_RESTART_CONDITION_ANY)}, nil)
	r.waitFor(t, "j1", shoalv1.TaskState_TASK_STATE_RUNNING, 0)
	f.exit(<-f.started, 1)
	afterBackoff(t, clk, time.Millisecond)
	r.waitFor(t, "j1", shoalv1.TaskState_TASK_STATE_RUNNING, 1)
	f.exit(<-f.started, 0)
	r.waitFor(t, "j1", shoalv1.TaskState_TASK_STATE_COMPLETE, 1)
	// The assignment set keeps it (finished history): it is not run again.
	runners := func() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.runners) }
	for deadline := time.Now().Add(5 * time.Second); runners() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the completed task's runner never ended")
		}
	}
	done := task("j1", shoalv1.TaskState_TASK_STATE_COMPLETE, shoalv1.RestartCondition_RESTART_CONDITION_ANY)
	done.Status = r.last("j1")
	a.Update(true, []*shoalv1.Task{done}, nil)
	if n := runners(); n != 0 {
		t.Fatalf("%d runners after the completed job task came back; want none (it is not run again)", n)
	}
}
