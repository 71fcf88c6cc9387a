package deploy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// Result is what one scenario saw: how long it took, the load clients'
// final reports, how many /proc samples were taken, and every broken
// invariant (nil when none).
type Result struct {
	Took      time.Duration // the update call to its final state
	VIP, Mesh testimage.LoadReport
	Samples   int
	// Answered is who answered either client; NewTasks maps each
	// container of the new image seen (by hostname) to its task ID.
	Answered map[string]testimage.LoadAnswer
	NewTasks map[string]string
	Err      error
}

// Failed is the failed requests of both clients.
func (r Result) Failed() int { return r.VIP.Failed() + r.Mesh.Failed() }

// Requests is every request of both clients.
func (r Result) Requests() int { return r.Failed() + r.VIP.OK() + r.Mesh.OK() }

func (e *Env) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
	}
}

// RollUnderLoad updates the running service name (replicas tasks of image
// tag fromTag, healthy and answering) to image toImage (tag toTag) with
// order and parallelism (failure action pause, monitor 1 s), under the two
// load clients, and checks: the update completes; every replica is
// replaced (new containers, new task IDs, all answering requests since the
// update began); the order held in every /proc sample (start-first: an
// old container is gone only after its slot's replacement answered;
// stop-first: never two containers of a slot, never more than replicas,
// never fewer than replicas-parallelism); and no request failed.
func (e *Env) RollUnderLoad(name, fromTag, toImage, toTag string, replicas int, order shoalv1.UpdateOrder, parallelism uint64) Result {
	e.T.Helper()
	before := e.Containers(name)
	loads := e.StartLoads(name)
	w := e.Watch(name)
	start := e.UpdateSpec(name, func(s *shoalv1.ServiceSpec) {
		s.Task.Container.Image = toImage
		s.Update = Update(parallelism, order, shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, time.Second)
	})
	var errs []error
	var r Result
	if err := e.waitState(name, shoalv1.UpdateState_UPDATE_STATE_COMPLETED, 180*time.Second); err != nil {
		errs = append(errs, err)
	}
	r.Took = time.Since(start)
	if err := e.within(60*time.Second, func() error { return e.AllOn(name, replicas, toTag) }); err != nil {
		errs = append(errs, err)
	}
	after := e.Containers(name)
	if err := CheckReplaced(before, after, toTag); err != nil {
		errs = append(errs, err)
	}
	if err := e.within(20*time.Second, func() error {
		answered, err := loads.Answered()
		if err != nil {
			return err
		}
		return CheckAnswered(after, answered, start)
	}); err != nil {
		errs = append(errs, fmt.Errorf("after the update: %w", err))
	}
	w.Stop()
	samples := w.Samples()
	r.Samples = len(samples)
	answered, _ := loads.Answered()
	r.Answered, r.NewTasks = answered, tasksOf(samples, toTag)
	switch order {
	case shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST:
		if err := CheckStartFirst(samples, answered, fromTag, toTag, replicas); err != nil {
			errs = append(errs, err)
		}
	default:
		if err := CheckStopFirst(samples, replicas, int(parallelism)); err != nil {
			errs = append(errs, err)
		}
	}
	r.VIP, r.Mesh = loads.Stop()
	if err := loads.NoFailures(); err != nil {
		errs = append(errs, fmt.Errorf("%w\n%s%s", err, Nearby(append(r.VIP.Failures, r.Mesh.Failures...), samples), e.Explain(r.VIP)))
	}
	r.Err = errors.Join(errs...)
	e.logf("%s update %s → %s (parallelism %d): %s, %d requests, %d failed, %d samples", order, fromTag, toTag, parallelism, r.Took.Round(time.Millisecond), r.Requests(), r.Failed(), r.Samples)
	return r
}

// BadImage updates the running service name (replicas tasks of tag
// fromTag) to the image whose health check never passes, parallelism 1,
// with failure action onFailure (PAUSE or ROLLBACK) and order, under the
// two load clients. With PAUSE it checks that the update pauses (PAUSED)
// after the first task, that for hold afterwards no other slot is tried,
// the old tasks keep answering and at most one of them is down; with
// ROLLBACK that the service returns to its old spec by itself
// (ROLLBACK_COMPLETED, every container of fromTag again, the spec's image
// the old one). Either way no request may fail.
func (e *Env) BadImage(name, fromTag string, replicas int, order shoalv1.UpdateOrder, onFailure shoalv1.UpdateFailureAction, hold time.Duration) Result {
	e.T.Helper()
	old, err := e.Service(name)
	if err != nil {
		e.T.Fatalf("%v", err)
	}
	oldImage := old.GetSpec().GetTask().GetContainer().GetImage()
	loads := e.StartLoads(name)
	w := e.Watch(name)
	start := e.UpdateSpec(name, func(s *shoalv1.ServiceSpec) {
		s.Task.Container.Image = e.Bad
		s.Update = Update(1, order, onFailure, 2*time.Second)
	})
	var errs []error
	var r Result
	switch onFailure {
	case shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE:
		if err := e.waitState(name, shoalv1.UpdateState_UPDATE_STATE_PAUSED, 120*time.Second); err != nil {
			errs = append(errs, err)
			break
		}
		r.Took = time.Since(start)
		pausedAt := time.Now()
		time.Sleep(hold) // the absence of further replacements, for a bounded time
		s, err := e.Service(name)
		if err != nil {
			errs = append(errs, err)
		} else if st := s.GetUpdateStatus(); st.GetState() != shoalv1.UpdateState_UPDATE_STATE_PAUSED {
			errs = append(errs, fmt.Errorf("%s after pausing: update status %s (%q); want it to stay paused", hold, st.GetState(), st.GetMessage()))
		} else {
			e.logf("paused: %q", st.GetMessage())
		}
		samples := w.Samples()
		if slots := SlotsOf(samples, "bad"); len(slots) > 1 {
			errs = append(errs, fmt.Errorf("the bad image ran in slots %v; want the update paused after the first", slots))
		}
		if n := MinAlive(samples, fromTag); n < replicas-1 {
			errs = append(errs, fmt.Errorf("only %d containers of image %s were alive at one point; want at least %d (one slot tried)", n, fromTag, replicas-1))
		}
		var stillOld []harness.Container
		for _, c := range e.Containers(name) {
			if Tag(c) == fromTag {
				stillOld = append(stillOld, c)
			}
		}
		if err := e.within(20*time.Second, func() error {
			answered, err := loads.Answered()
			if err != nil {
				return err
			}
			return CheckAnswered(stillOld, answered, pausedAt)
		}); err != nil {
			errs = append(errs, fmt.Errorf("while paused, the old tasks: %w", err))
		}
	case shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK:
		if err := e.waitState(name, shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, 180*time.Second); err != nil {
			errs = append(errs, err)
		}
		r.Took = time.Since(start)
		if err := e.within(60*time.Second, func() error { return e.AllOn(name, replicas, fromTag) }); err != nil {
			errs = append(errs, err)
		}
		if s, err := e.Service(name); err != nil {
			errs = append(errs, err)
		} else if img := s.GetSpec().GetTask().GetContainer().GetImage(); img != oldImage {
			errs = append(errs, fmt.Errorf("after the automatic rollback the spec's image is %s; want the old %s", img, oldImage))
		}
		if slots := SlotsOf(w.Samples(), "bad"); len(slots) > 1 {
			errs = append(errs, fmt.Errorf("the bad image ran in slots %v; want the rollback after the first (parallelism 1)", slots))
		}
	default:
		e.T.Fatalf("BadImage: failure action %s", onFailure)
	}
	w.Stop()
	samples := w.Samples()
	r.Samples = len(samples)
	// A task whose check never passed never joined a load balancer.
	answered, _ := loads.Answered()
	bad := map[string]string{} // hostname → task, of the bad image's containers
	for _, s := range samples {
		for _, c := range s.Containers {
			if Tag(c) == "bad" {
				bad[Hostname(c)] = c.Task
			}
		}
	}
	for host, task := range bad {
		if n := answered[host].N; n > 0 {
			errs = append(errs, fmt.Errorf("container %s of task %s (the image whose health check never passes) answered %d requests; want none", host, task, n))
		}
	}
	r.VIP, r.Mesh = loads.Stop()
	if err := loads.NoFailures(); err != nil {
		errs = append(errs, fmt.Errorf("%w\n%s%s", err, Nearby(append(r.VIP.Failures, r.Mesh.Failures...), samples), e.Explain(r.VIP)))
	}
	r.Err = errors.Join(errs...)
	e.logf("bad image, %s, %s: %s, %d requests, %d failed", onFailure, order, r.Took.Round(time.Millisecond), r.Requests(), r.Failed())
	return r
}

// RollbackUnderLoad is `service rollback` of name (replicas tasks of tag
// fromTag, whose previous spec runs toTag) under the two load clients: it
// measures the time from the call to every container running toTag,
// converged, and checks that the rollback completes with the previous
// spec's image in the spec and that no request fails.
func (e *Env) RollbackUnderLoad(name, toTag string, replicas int) Result {
	e.T.Helper()
	before, err := e.Service(name)
	if err != nil {
		e.T.Fatalf("%v", err)
	}
	want := before.GetPreviousSpec().GetTask().GetContainer().GetImage()
	loads := e.StartLoads(name)
	w := e.Watch(name)
	start := e.Rollback(name)
	var errs []error
	var r Result
	if err := e.within(180*time.Second, func() error { return e.AllOn(name, replicas, toTag) }); err != nil {
		errs = append(errs, err)
	}
	r.Took = time.Since(start)
	if err := e.waitState(name, shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, 60*time.Second); err != nil {
		errs = append(errs, err)
	}
	if s, err := e.Service(name); err != nil {
		errs = append(errs, err)
	} else if img := s.GetSpec().GetTask().GetContainer().GetImage(); img != want {
		errs = append(errs, fmt.Errorf("after service rollback the spec's image is %s; want the previous spec's %s", img, want))
	}
	w.Stop()
	r.Samples = len(w.Samples())
	r.VIP, r.Mesh = loads.Stop()
	if err := loads.NoFailures(); err != nil {
		errs = append(errs, fmt.Errorf("%w\n%s", err, Nearby(append(r.VIP.Failures, r.Mesh.Failures...), w.Samples())))
	}
	r.Err = errors.Join(errs...)
	e.logf("rollback to %s: %s, %d requests, %d failed", toTag, r.Took.Round(time.Millisecond), r.Requests(), r.Failed())
	return r
}

// LeaderKillResult is what LeaderKillMidUpdate saw.
type LeaderKillResult struct {
	Killed  string
	Done    int // slots of the new image running when the leader was killed
	Took    time.Duration
	Samples int
	Err     error
}

// LeaderKillMidUpdate updates name (replicas tasks of fromTag) to toImage
// stop-first, parallelism 1, and kills the leader (SIGKILL, its daemon
// only) once two slots run the new image. The next leader must finish
// the update from the store: COMPLETED, exactly replicas containers
// alive, each of toTag on the node its task is assigned to
// (Cluster.Converged), every one new; and in no /proc sample two
// containers of one slot, or more than replicas. The killed daemon is
// started again once the update completed, and nothing changes.
func (e *Env) LeaderKillMidUpdate(name, fromTag, toImage, toTag string, replicas int) LeaderKillResult {
	e.T.Helper()
	before := e.Containers(name)
	w := e.Watch(name)
	start := e.UpdateSpec(name, func(s *shoalv1.ServiceSpec) {
		s.Task.Container.Image = toImage
		s.Update = Update(1, shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST, shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, time.Second)
	})
	var r LeaderKillResult
	var errs []error
	e.Eventually(120*time.Second, func() error {
		r.Done = 0
		for _, c := range e.Containers(name) {
			if Tag(c) == toTag {
				r.Done++
			}
		}
		if r.Done < 2 {
			return fmt.Errorf("%d slots run %s; waiting for 2 before killing the leader", r.Done, toTag)
		}
		return nil
	})
	leader := e.C.Leader(20 * time.Second)
	r.Killed = leader.Name
	leader.Kill()
	e.logf("killed the leader %s with %d of %d slots updated", leader.Name, r.Done, replicas)
	if err := e.waitState(name, shoalv1.UpdateState_UPDATE_STATE_COMPLETED, 180*time.Second); err != nil {
		errs = append(errs, err)
	}
	r.Took = time.Since(start)
	if err := e.within(60*time.Second, func() error { return e.AllOn(name, replicas, toTag) }); err != nil {
		errs = append(errs, err)
	}
	if err := CheckReplaced(before, e.Containers(name), toTag); err != nil {
		errs = append(errs, err)
	}
	leader.Start()
	e.AllReady(60 * time.Second)
	if err := e.within(30*time.Second, func() error { return e.AllOn(name, replicas, toTag) }); err != nil {
		errs = append(errs, fmt.Errorf("after %s restarted: %w", leader.Name, err))
	}
	w.Stop()
	samples := w.Samples()
	r.Samples = len(samples)
	if err := CheckStopFirst(samples, replicas, 1); err != nil {
		errs = append(errs, err)
	}
	r.Err = errors.Join(errs...)
	return r
}

// tasksOf maps the hostname of every container of image tag seen to its
// task ID.
func tasksOf(samples []Sample, tag string) map[string]string {
	out := map[string]string{}
	for _, s := range samples {
		for _, c := range s.Containers {
			if Tag(c) == tag {
				out[Hostname(c)] = c.Task
			}
		}
	}
	return out
}

// Nearby describes, for each failed request, the containers that
// appeared or were gone within 3 s of it, from the samples: which task's
// start or stop it came with, if any.
func Nearby(failures []testimage.LoadFail, samples []Sample) string {
	type change struct {
		at   time.Time
		what string
	}
	var changes []change
	for i := 1; i < len(samples); i++ {
		prev, cur := map[string]harness.Container{}, map[string]harness.Container{}
		for _, c := range samples[i-1].Containers {
			prev[c.ID] = c
		}
		for _, c := range samples[i].Containers {
			cur[c.ID] = c
		}
		for id, c := range cur {
			if _, ok := prev[id]; !ok {
				changes = append(changes, change{samples[i].At, fmt.Sprintf("%s (slot %d, image %s) appeared", Hostname(c), Slot(c), Tag(c))})
			}
		}
		for id, c := range prev {
			if _, ok := cur[id]; !ok {
				changes = append(changes, change{samples[i].At, fmt.Sprintf("%s (slot %d, image %s) gone", Hostname(c), Slot(c), Tag(c))})
			}
		}
	}
	var b strings.Builder
	for _, f := range failures {
		fmt.Fprintf(&b, "  failure at %s (%s):", f.Time.Format("15:04:05.000"), f.Target)
		n := 0
		for _, ch := range changes {
			if d := ch.at.Sub(f.Time); d > -3*time.Second && d < 3*time.Second {
				fmt.Fprintf(&b, " %s at %+dms;", ch.what, d.Milliseconds())
				n++
			}
		}
		if n == 0 {
			b.WriteString(" no container appeared or went within 3 s")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// waitState is WaitUpdateState returning an error instead of failing. A
// status still unset 30 s after the call is an error at once: nothing
// is tracking the update.
func (e *Env) waitState(name string, state shoalv1.UpdateState, timeout time.Duration) error {
	var last string
	begun := time.Now()
	err := e.within(timeout, func() error {
		s, err := e.Service(name)
		if err != nil {
			return err
		}
		st := s.GetUpdateStatus()
		last = fmt.Sprintf("%s (%q)", st.GetState(), st.GetMessage())
		if st.GetState() != state {
			if st.GetState() == shoalv1.UpdateState_UPDATE_STATE_UNSPECIFIED && time.Since(begun) > 30*time.Second {
				return errUnset
			}
			return fmt.Errorf("update status of %s is %s; want %s", name, last, state)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; its tasks:\n%s", err, e.TaskSummary(name))
	}
	return nil
}

var errUnset = errors.New("the service's update status is still unset 30s after the update: nothing tracks the update")

// TaskSummary is one line per task of name, as the cluster reports them:
// slot, ID, desired and observed state, health, image, and any error.
func (e *Env) TaskSummary(name string) string {
	tasks, err := e.Tasks(name)
	if err != nil {
		return "  (tasks: " + err.Error() + ")"
	}
	sort.Slice(tasks, func(i, j int) bool {
		if tasks[i].GetSlot() != tasks[j].GetSlot() {
			return tasks[i].GetSlot() < tasks[j].GetSlot()
		}
		return tasks[i].GetMeta().GetCreatedAt().AsTime().Before(tasks[j].GetMeta().GetCreatedAt().AsTime())
	})
	var b strings.Builder
	for _, t := range tasks {
		st := t.GetStatus()
		h := "no health"
		if hh := st.GetHealth(); hh != nil {
			h = fmt.Sprintf("%s since %s streak %d", hh.GetState(), hh.GetSince().AsTime().Format("15:04:05.000"), hh.GetFailingStreak())
		}
		img := t.GetSpec().GetContainer().GetImage()
		if i := strings.LastIndex(img, ":"); i >= 0 {
			img = img[i+1:]
		}
		fmt.Fprintf(&b, "  slot %d %s desired %s state %s (%s) %s image %s restarts %d %s\n", t.GetSlot(), t.GetId(),
			strings.TrimPrefix(t.GetDesiredState().String(), "TASK_STATE_"), strings.TrimPrefix(st.GetState().String(), "TASK_STATE_"),
			st.GetTimestamp().AsTime().Format("15:04:05.000"), h, img, st.GetRestarts(), st.GetErr())
	}
	return b.String()
}

// within retries fn until nil or timeout; the last error if it never is.
func (e *Env) within(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if errors.Is(err, errUnset) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Indent prefixes every line of an error for a report.
func Indent(err error) string {
	if err == nil {
		return ""
	}
	return "  " + strings.ReplaceAll(err.Error(), "\n", "\n  ")
}
