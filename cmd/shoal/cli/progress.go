package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The convergence progress of `service create`, `update` and `scale`, as
// docker shows it (docker/cli cli/command/service/progress): this file is
// the pure part. A convergence is given each look at a service (its
// up-to-date tasks, the nodes that are down, the time) and answers the
// lines to show and whether the service has converged: every slot (or
// node) running a task of the current spec, through a verify window
// without a task replaced or restarted. progress_wait.go polls and prints.

const (
	// maxProgressBars: with more tasks than this, docker shows only the
	// overall line.
	maxProgressBars = 20
	// progressSteps is the length of the state scale of a bar.
	progressSteps = 9
)

// stateSteps places the states a task goes through on its way to running
// on docker's scale (which has allocated and ready steps we do not), so
// the bars look the same.
var stateSteps = map[shoalv1.TaskState]int{
	shoalv1.TaskState_TASK_STATE_NEW:       1,
	shoalv1.TaskState_TASK_STATE_PENDING:   3,
	shoalv1.TaskState_TASK_STATE_ASSIGNED:  4,
	shoalv1.TaskState_TASK_STATE_ACCEPTED:  5,
	shoalv1.TaskState_TASK_STATE_PREPARING: 6,
	shoalv1.TaskState_TASK_STATE_STARTING:  8,
	shoalv1.TaskState_TASK_STATE_RUNNING:   9,
}

// progressLine is one line of the display: "ID: text", with a bar of step
// out of progressSteps when step > 0. An empty text is a slot with no
// task yet.
type progressLine struct {
	id   string
	text string
	step int
}

// progressFrame is what one look at the service shows.
type progressFrame struct {
	lines     []progressLine
	converged bool
	// err ends the wait with a failure: the update or rollback paused.
	err error
}

// serviceLook is one look at a service.
type serviceLook struct {
	service *shoalv1.Service
	tasks   []*shoalv1.Task // its tasks made from the current spec
	// active are the nodes where any task of the service is meant to
	// run, of an older spec too: a global service's nodes while an
	// update rolls over them.
	active map[string]bool
	down   map[string]bool // IDs of nodes that are down
	now    time.Time
}

// taskMark is what must not change about a slot's task through the
// verify window: the same task, not restarted in place.
type taskMark struct {
	task     string
	restarts int32
}

// convergence follows one service towards convergence across looks.
type convergence struct {
	monitor time.Duration
	display map[uint64]int // replicated: slot -> its line number
	since   time.Time      // when the tasks were first seen converged (zero: not)
	marks   map[string]taskMark
	failed  bool // a converged state was lost
	// prior is the service's update status before the command changed
	// it: the same status seen again is not news of this change (a scale
	// that starts no update leaves the last update's COMPLETED there).
	prior    *shoalv1.UpdateStatus
	rollback bool // the tasks are being rolled back
	// rolling: the manager is still rolling the service (UPDATING,
	// ROLLBACK_STARTED). It has not converged whatever the tasks show: a
	// stop-first update leaves a slot or node without a task for a
	// moment.
	rolling  bool
	rollLine string // docker's "rollback: <message>", shown from the start of a rollback
	closing  string // shown after the service converged: a completed rollback's message
	allReady bool   // every slot was ready at the last look
}

func newConvergence(prior *shoalv1.UpdateStatus) *convergence {
	return &convergence{monitor: defaultMonitor, display: map[uint64]int{}, prior: prior}
}

// monitorOf is the verify window: the update config's monitor, or the
// rollback config's while rolling back (docker's default when unset).
func monitorOf(spec *shoalv1.ServiceSpec, rollback bool) time.Duration {
	cfg := spec.GetUpdate()
	if rollback {
		cfg = spec.GetRollback()
	}
	if m := cfg.GetMonitor(); m != nil && m.AsDuration() >= 0 {
		return m.AsDuration()
	}
	return defaultMonitor
}

// ready is whether a task counts as running: running and, when it has a
// health check (its worker reports health), healthy.
func ready(t *shoalv1.Task) bool {
	st := t.GetStatus()
	if t.GetDesiredState() != shoalv1.TaskState_TASK_STATE_RUNNING || st.GetState() != shoalv1.TaskState_TASK_STATE_RUNNING {
		return false
	}
	return st.GetHealth() == nil || st.GetHealth().GetState() == shoalv1.HealthState_HEALTH_STATE_HEALTHY
}

// updateStatus reads the service's update status as docker's progress
// does: a paused update or rollback ends the wait with an error, a
// rollback changes the overall line and is announced, an update the
// manager completed before every task ran ends the wait. Beyond docker,
// the verify window starts only once the manager has finished rolling.
func (c *convergence) updateStatus(st *shoalv1.UpdateStatus) (done bool, err error) {
	if st == nil || proto.Equal(st, c.prior) {
		return false, nil
	}
	msg := st.GetMessage()
	switch st.GetState() {
	case shoalv1.UpdateState_UPDATE_STATE_UPDATING:
		c.rollback, c.rolling = false, true
	case shoalv1.UpdateState_UPDATE_STATE_COMPLETED:
		c.rolling = false
		return !c.allReady, nil
	case shoalv1.UpdateState_UPDATE_STATE_PAUSED:
		return false, fmt.Errorf("service update paused: %s", msg)
	case shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED:
		if !c.rollback && msg != "" {
			c.rollLine = msg
		}
		c.rollback, c.rolling = true, true
	case shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED:
		return false, fmt.Errorf("service rollback paused: %s", msg)
	case shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED:
		if msg != "" {
			c.closing = msg
		}
		c.rollback, c.rolling = true, false
	}
	return false, nil
}

// progressSlot is one slot (replicated) or node (global) and the task
// that stands for it.
type progressSlot struct {
	key  string
	line string // the line's ID: "2/3" or a short node ID
	task *shoalv1.Task
}

// step takes one look and decides what to show.
func (c *convergence) step(l serviceLook) progressFrame {
	var (
		f       progressFrame
		slots   []progressSlot
		want    int
		extra   int // active slots beyond the replicas asked for
		waiting bool
	)
	l.tasks = sinceUpdate(l.tasks, l.service.GetUpdateStatus())
	if l.service.GetSpec().GetGlobal() != nil {
		slots = c.globalSlots(l)
		want = len(slots)
		waiting = want == 0
	} else {
		want = int(l.service.GetSpec().GetReplicated().GetReplicas())
		slots, extra = c.replicatedSlots(l, want)
	}
	done, err := c.updateStatus(l.service.GetUpdateStatus())
	if err != nil || done {
		f.err, f.converged = err, done
		return f
	}
	c.monitor = monitorOf(l.service.GetSpec(), c.rollback)
	running := 0
	marks := map[string]taskMark{}
	for _, s := range slots {
		if s.task != nil && ready(s.task) {
			running++
			marks[s.key] = taskMark{task: s.task.GetId(), restarts: s.task.GetStatus().GetRestarts()}
		}
	}
	if c.rollLine != "" {
		f.lines = append(f.lines, progressLine{id: "rollback", text: c.rollLine})
	}
	overall := progressLine{id: "overall progress", text: fmt.Sprintf("%d out of %d tasks", running, want)}
	switch {
	case waiting:
		overall.text = "waiting for new tasks"
	case c.rollback:
		overall.text = "rolling back update: " + overall.text
	}
	f.lines = append(f.lines, overall)
	if len(slots) <= maxProgressBars {
		for _, s := range slots {
			f.lines = append(f.lines, slotLine(s))
		}
	}
	c.allReady = !waiting && extra == 0 && running == want
	if v, ok := c.verify(c.allReady && !c.rolling, marks, l.now); ok {
		f.lines = append(f.lines, v)
	}
	f.converged = !c.since.IsZero() && l.now.Sub(c.since) >= c.monitor
	if f.converged && c.closing != "" {
		f.lines = append(f.lines, progressLine{id: "rollback", text: c.closing})
	}
	return f
}

// verify runs the verify window: the tasks must stay converged (the same
// tasks, not restarted) for the monitor period. It returns the verify
// line, if there is one to show.
func (c *convergence) verify(converged bool, marks map[string]taskMark, now time.Time) (progressLine, bool) {
	line := progressLine{id: "verify"}
	if !converged {
		if !c.since.IsZero() {
			c.failed = true
		}
		c.since, c.marks = time.Time{}, nil
		line.text = "Detected task failure"
		return line, c.failed
	}
	if !c.since.IsZero() && !sameMarks(marks, c.marks) {
		// Still all running, but a task was replaced or restarted in
		// place since the window began: it did not stay up.
		c.failed = true
		c.since, c.marks = now, marks
		line.text = "Detected task failure"
		return line, true
	}
	if c.since.IsZero() {
		c.since, c.marks = now, marks
	}
	if left := c.monitor - now.Sub(c.since); left > 0 {
		secs := int((left + time.Second - 1) / time.Second)
		line.text = fmt.Sprintf("Waiting %s to verify that tasks are stable...", plural(secs, "second"))
		return line, true
	}
	line.text = "Service converged"
	return line, true
}

func sameMarks(a, b map[string]taskMark) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// slotLine shows a slot's task: its error if it has one (a rejected
// image, a failed start), else its state, with a bar while it is on its
// way to running.
func slotLine(s progressSlot) progressLine {
	line := progressLine{id: s.line}
	if s.task == nil {
		return line
	}
	st := s.task.GetStatus()
	if e := st.GetErr(); e != "" {
		line.text = strings.Join(strings.Fields(e), " ")
		return line
	}
	line.text = enumName(st.GetState().String(), "TASK_STATE_")
	if s.task.GetDesiredState() == shoalv1.TaskState_TASK_STATE_RUNNING {
		line.step = stateSteps[st.GetState()]
	}
	if st.GetState() == shoalv1.TaskState_TASK_STATE_RUNNING && !ready(s.task) && st.GetHealth() != nil {
		// Running, but not yet (or no longer) healthy: a step short.
		switch st.GetHealth().GetState() {
		case shoalv1.HealthState_HEALTH_STATE_UNHEALTHY:
			line.text += " (unhealthy)"
		default:
			line.text += " (health: starting)"
		}
		line.step = stateSteps[shoalv1.TaskState_TASK_STATE_STARTING]
	}
	return line
}

// sinceUpdate leaves out the tasks an update or rollback has already
// stopped: tasks of the current spec made before it started and no longer
// meant to run. After a rollback those are the tasks the update replaced,
// whose spec is current again; they are history, not the rollback's
// progress.
func sinceUpdate(tasks []*shoalv1.Task, st *shoalv1.UpdateStatus) []*shoalv1.Task {
	if st.GetStartedAt() == nil {
		return tasks
	}
	started := st.GetStartedAt().AsTime()
	out := tasks[:0:0]
	for _, t := range tasks {
		if t.GetDesiredState() > shoalv1.TaskState_TASK_STATE_RUNNING && t.GetMeta().GetCreatedAt().AsTime().Before(started) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// current picks the task that stands for a slot or node: as docker's,
// the one with the lowest desired state (a task meant to run before one
// being shut down: a rollback's slots hold shut-down tasks of the spec
// rolled back to), then the newest (the orchestrator replaces a slot's
// task with a newer one), leaving out tasks on nodes that are down and
// tasks being removed (scaled down, drained).
func current(tasks []*shoalv1.Task, down map[string]bool) *shoalv1.Task {
	var best *shoalv1.Task
	for _, t := range tasks {
		if down[t.GetNodeId()] && t.GetNodeId() != "" {
			continue
		}
		switch {
		case best == nil, t.GetDesiredState() < best.GetDesiredState():
			best = t
		case t.GetDesiredState() == best.GetDesiredState() && newerTask(t, best):
			best = t
		}
	}
	if best == nil || best.GetDesiredState() == shoalv1.TaskState_TASK_STATE_REMOVE {
		return nil
	}
	return best
}

func newerTask(a, b *shoalv1.Task) bool {
	ca, cb := a.GetMeta().GetCreatedAt().AsTime(), b.GetMeta().GetCreatedAt().AsTime()
	if !ca.Equal(cb) {
		return ca.After(cb)
	}
	return a.GetId() > b.GetId()
}

// replicatedSlots lists want lines "i/want", filled by the service's
// slots in slot order; a slot keeps its line across looks. extra counts
// the active slots that found no line (a scale-down under way).
func (c *convergence) replicatedSlots(l serviceLook, want int) (slots []progressSlot, extra int) {
	bySlot := map[uint64][]*shoalv1.Task{}
	for _, t := range l.tasks {
		bySlot[t.GetSlot()] = append(bySlot[t.GetSlot()], t)
	}
	nums := make([]uint64, 0, len(bySlot))
	for n := range bySlot {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	out := make([]progressSlot, want)
	for i := range out {
		out[i] = progressSlot{key: fmt.Sprintf("%d/%d", i+1, want), line: fmt.Sprintf("%d/%d", i+1, want)}
	}
	used := map[int]bool{}
	var fresh []*shoalv1.Task
	for _, n := range nums {
		t := current(bySlot[n], l.down)
		if t == nil {
			continue
		}
		if d, ok := c.display[n]; ok && d <= want && !used[d] {
			used[d] = true
			out[d-1].task = t
			continue
		}
		fresh = append(fresh, t)
	}
	for _, t := range fresh {
		d := 1
		for d <= want && used[d] {
			d++
		}
		if d > want {
			extra++
			continue
		}
		used[d] = true
		c.display[t.GetSlot()] = d
		out[d-1].task = t
	}
	return out, extra
}

// globalSlots lists a line per node, by node ID, that has a task of the
// current spec or is meant to run one of an older spec (an update has
// not reached it yet): the orchestrator makes the tasks of every eligible
// node at once, so these are the nodes the service runs on.
func (c *convergence) globalSlots(l serviceLook) []progressSlot {
	byNode := map[string][]*shoalv1.Task{}
	for _, t := range l.tasks {
		byNode[t.GetNodeId()] = append(byNode[t.GetNodeId()], t)
	}
	for node := range l.active {
		if _, ok := byNode[node]; !ok {
			byNode[node] = nil
		}
	}
	var out []progressSlot
	for node, ts := range byNode {
		if node == "" || l.down[node] {
			continue
		}
		if t := current(ts, l.down); t != nil || l.active[node] {
			out = append(out, progressSlot{key: "node " + node, line: shortID(node), task: t})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}
