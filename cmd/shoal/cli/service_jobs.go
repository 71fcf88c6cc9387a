package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Jobs (--mode replicated-job, global-job), as docker's: a replicated
// job's --replicas is the number of completions it needs, --max-concurrent
// how many run at once (default: --replicas); a global job runs one task
// to completion on every node. service ls shows a job's progress as
// docker does, "2/3 (5/10 completed)"; the wait after create or update
// follows the job until it completes ("job complete").

func isJobSpec(s *shoalv1.ServiceSpec) bool {
	return s.GetReplicatedJob() != nil || s.GetGlobalJob() != nil
}

// applyMode sets the spec's mode from --mode, --replicas and
// --max-concurrent on create; on update it changes the counts given.
func (f *specFlags) applyMode(fs *pflag.FlagSet, spec *shoalv1.ServiceSpec, create bool) error {
	replicas, maxc := fs.Changed("replicas"), fs.Changed("max-concurrent")
	if f.maxConcurrent < 0 {
		return fmt.Errorf("--max-concurrent %d: give a whole number of 0 or more", f.maxConcurrent)
	}
	if !create {
		switch {
		case spec.GetReplicated() != nil:
			if maxc {
				return errors.New("--max-concurrent can only be used with replicated-job mode")
			}
			if replicas {
				spec.GetReplicated().Replicas = f.replicas
			}
		case spec.GetReplicatedJob() != nil:
			if replicas {
				spec.GetReplicatedJob().TotalCompletions = f.replicas
			}
			if maxc {
				spec.GetReplicatedJob().MaxConcurrent = f.maxConcurrent
			}
		default:
			if replicas {
				return errors.New("--replicas can only be used with replicated or replicated-job mode")
			}
			if maxc {
				return errors.New("--max-concurrent can only be used with replicated-job mode")
			}
		}
		return nil
	}
	switch f.mode {
	case "replicated":
		if maxc {
			return errors.New("--max-concurrent can only be used with replicated-job mode")
		}
		spec.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: f.replicas}}
		return nil
	case "replicated-job":
		concurrent := f.replicas
		if maxc {
			concurrent = f.maxConcurrent
		}
		spec.Mode = &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: f.replicas, MaxConcurrent: concurrent}}
		return nil
	case "global", "global-job":
	default:
		return fmt.Errorf("--mode %q: use replicated, global, replicated-job or global-job", f.mode)
	}
	switch {
	case replicas:
		return errors.New("--replicas can only be used with replicated or replicated-job mode")
	case maxc:
		return errors.New("--max-concurrent can only be used with replicated-job mode")
	case fs.Changed("replicas-max-per-node"):
		return errors.New("--replicas-max-per-node can only be used with replicated or replicated-job mode")
	}
	if f.mode == "global" {
		spec.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
	} else {
		spec.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}
	}
	return nil
}

// checkJobFlags refuses what a job does not take: docker's jobs have no
// rolling update, so no --update-* or --rollback-* flag. On create, a
// job's restart condition is on-failure unless given: a job's task that
// exits 0 is done.
func checkJobFlags(fs *pflag.FlagSet, spec *shoalv1.ServiceSpec, create bool) error {
	if !isJobSpec(spec) {
		return nil
	}
	var bad []string
	fs.Visit(func(fl *pflag.Flag) {
		if strings.HasPrefix(fl.Name, "update-") || strings.HasPrefix(fl.Name, "rollback-") {
			bad = append(bad, "--"+fl.Name)
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("%s: update and rollback configuration is not supported for jobs", strings.Join(bad, ", "))
	}
	if create && !fs.Changed("restart-condition") {
		spec.Task.Restart.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
	}
	return nil
}

// jobCount is what service ls shows of a job's current run.
type jobCount struct {
	running, desired, completed int
}

// jobCounts counts, per job service, the tasks of its current run:
// running, completed, and (for a global job) still to complete, as
// Swarm's service status does.
func jobCounts(svcs []*shoalv1.Service, tasks []*shoalv1.Task) map[string]jobCount {
	runs := map[string]*shoalv1.Service{}
	for _, s := range svcs {
		if isJobSpec(s.GetSpec()) {
			runs[s.GetId()] = s
		}
	}
	out := map[string]jobCount{}
	for _, t := range tasks {
		s, ok := runs[t.GetServiceId()]
		if !ok || t.GetJobIteration() != s.GetJobStatus().GetIteration() {
			continue
		}
		c := out[s.GetId()]
		switch st := t.GetStatus().GetState(); {
		case st == shoalv1.TaskState_TASK_STATE_COMPLETE:
			c.completed++
		case st == shoalv1.TaskState_TASK_STATE_RUNNING:
			c.running++
			fallthrough
		default:
			if t.GetDesiredState() == shoalv1.TaskState_TASK_STATE_COMPLETE {
				c.desired++ // a global job's: to complete still
			}
		}
		out[s.GetId()] = c
	}
	return out
}

// jobColumn is docker's MODE and REPLICAS of a job: a replicated job's
// running/max-concurrent (completed/total completed), a global job's
// running/to-complete (completed/to-complete+completed completed).
func jobColumn(s *shoalv1.Service, c jobCount) (mode, replicas string) {
	if j := s.GetSpec().GetReplicatedJob(); j != nil {
		concurrent := j.GetMaxConcurrent()
		if concurrent == 0 {
			concurrent = j.GetTotalCompletions()
		}
		return "replicated job", fmt.Sprintf("%d/%d (%d/%d completed)", c.running, concurrent, c.completed, j.GetTotalCompletions())
	}
	return "global job", fmt.Sprintf("%d/%d (%d/%d completed)", c.running, c.desired, c.completed, c.desired+c.completed)
}

// jobSlots picks, from a job's tasks, those of its current run and the
// newest of each slot (a replicated job's completion number, or a global
// job's node).
func jobSlots(svc *shoalv1.Service, tasks []*shoalv1.Task) map[string]*shoalv1.Task {
	out := map[string]*shoalv1.Task{}
	for _, t := range tasks {
		if t.GetJobIteration() != svc.GetJobStatus().GetIteration() {
			continue
		}
		key := t.GetNodeId()
		if svc.GetSpec().GetReplicatedJob() != nil {
			key = strconv.FormatUint(t.GetSlot(), 10)
		}
		if cur, ok := out[key]; !ok || newerTask(t, cur) {
			out[key] = t
		}
	}
	return out
}

// gaveUp reports whether a job's task failed for good: stopped by the
// manager after it ended without completing (its restart policy used up).
func gaveUp(t *shoalv1.Task) bool {
	st := t.GetStatus().GetState()
	return !shoalv1.Runnable(t.GetDesiredState()) && (st == shoalv1.TaskState_TASK_STATE_FAILED || st == shoalv1.TaskState_TASK_STATE_REJECTED)
}

// jobFrame is one look at a job's run, as docker's job progress shows it:
// the completions so far, the active tasks, a line per completion (or
// node). done says the run ended; failed, when it ended with tasks that
// failed for good, says so.
func jobFrame(svc *shoalv1.Service, tasks []*shoalv1.Task) (f progressFrame, done bool, failed string) {
	slots := jobSlots(svc, tasks)
	keys := make([]string, 0, len(slots))
	for k := range slots {
		keys = append(keys, k)
	}
	total, concurrent := len(slots), len(slots)
	if j := svc.GetSpec().GetReplicatedJob(); j != nil {
		total = int(j.GetTotalCompletions())
		concurrent = int(j.GetMaxConcurrent())
		if concurrent == 0 {
			concurrent = total
		}
	} else {
		sort.Strings(keys)
		if total == 0 {
			f.lines = append(f.lines, progressLine{id: "job progress", text: "waiting for tasks"})
			return f, false, ""
		}
	}
	if svc.GetSpec().GetReplicatedJob() != nil {
		keys = keys[:0]
		for i := 1; i <= total; i++ {
			keys = append(keys, strconv.Itoa(i))
		}
	}
	active, completed, lost := 0, 0, 0
	var firstErr string
	var lines []progressLine
	for i, k := range keys {
		t := slots[k]
		if t == nil {
			lines = append(lines, progressLine{id: fmt.Sprintf("%d/%d", i+1, total)})
			continue
		}
		st := t.GetStatus().GetState()
		switch {
		case st == shoalv1.TaskState_TASK_STATE_COMPLETE:
			completed++
		case gaveUp(t):
			lost++
			if firstErr == "" {
				firstErr = t.GetStatus().GetErr()
			}
		default:
			active++
		}
		id := shortID(t.GetNodeId())
		if svc.GetSpec().GetReplicatedJob() != nil {
			id = fmt.Sprintf("%d/%d", t.GetSlot(), total)
		}
		line := progressLine{id: id, text: enumName(st.String(), "TASK_STATE_")}
		switch step, ok := stateSteps[st]; {
		case t.GetStatus().GetErr() != "":
			line.text = strings.Join(strings.Fields(t.GetStatus().GetErr()), " ")
		case st == shoalv1.TaskState_TASK_STATE_COMPLETE:
			line.step = progressSteps
		case ok:
			line.step = step
		}
		lines = append(lines, line)
	}
	overall := progressLine{id: "job progress", text: fmt.Sprintf("%*d out of %d complete", len(strconv.Itoa(total)), completed, total)}
	if total > 0 {
		overall.step = completed * progressSteps / total
	}
	f.lines = append(f.lines, overall)
	if svc.GetSpec().GetReplicatedJob() != nil {
		width := len(strconv.Itoa(concurrent))
		f.lines = append(f.lines, progressLine{id: "active tasks", text: fmt.Sprintf("%*d out of %*d tasks", width, active, width, min(total-completed, concurrent))})
	}
	if total <= maxProgressBars {
		f.lines = append(f.lines, lines...)
	}
	switch {
	case completed == total:
		return f, true, ""
	case lost > 0 && completed+lost == total && active == 0:
		msg := fmt.Sprintf("job did not complete: %s of %d failed and will not be restarted", plural(lost, "task"), total)
		if firstErr != "" {
			msg += " (" + firstErr + ")"
		}
		return f, true, msg
	}
	return f, false, ""
}

// waitJob follows a job's run after create or update until it ends:
// "job complete", or an error when tasks failed for good. It reports
// false when ref is not a job (the caller waits for convergence).
func (g *globals) waitJob(ctx context.Context, c shoalv1.ControlServiceClient, ref string, quiet bool) (bool, error) {
	resp, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: ref})
	if err != nil || !isJobSpec(resp.GetService().GetSpec()) {
		return false, nil
	}
	out := newProgressOutput(g.out, quiet)
	tick := time.NewTicker(progressPoll)
	defer tick.Stop()
	for {
		svc, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: ref})
		var tasks *shoalv1.ListTasksResponse
		if err == nil {
			tasks, err = c.ListTasks(ctx, &shoalv1.ListTasksRequest{ServiceId: svc.GetService().GetId()})
		}
		switch {
		case ctx.Err() != nil:
			out.note("Operation continuing in background.")
			out.note(fmt.Sprintf("Use `shoal service ps %s` to check progress.", ref))
			return true, nil
		case err != nil:
			return true, err
		}
		f, done, failed := jobFrame(svc.GetService(), tasks.GetTasks())
		out.show(f)
		if done {
			if failed != "" {
				return true, errors.New(failed)
			}
			out.note("job complete")
			return true, nil
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// prettyMode is the mode block of service inspect --pretty: docker's
// "Service Mode:" lines for replicated and global services, and for jobs
// (which docker's template leaves blank) the mode, its counts and the
// current run. Lines are tab-separated as docker's template writes them.
func prettyMode(svc *shoalv1.Service) string {
	var b strings.Builder
	spec := svc.GetSpec()
	switch {
	case spec.GetGlobal() != nil:
		b.WriteString("Service Mode:\tGlobal\n")
	case spec.GetReplicatedJob() != nil:
		j := spec.GetReplicatedJob()
		concurrent := j.GetMaxConcurrent()
		if concurrent == 0 {
			concurrent = j.GetTotalCompletions()
		}
		fmt.Fprintf(&b, "Service Mode:\tReplicated Job\n Max Concurrent:\t%d\n Total Completions:\t%d\n", concurrent, j.GetTotalCompletions())
	case spec.GetGlobalJob() != nil:
		b.WriteString("Service Mode:\tGlobal Job\n")
	default:
		fmt.Fprintf(&b, "Service Mode:\tReplicated\n Replicas:\t%d\n", spec.GetReplicated().GetReplicas())
	}
	if js := svc.GetJobStatus(); js != nil {
		fmt.Fprintf(&b, "Job Status:\n Iteration:\t%d\n", js.GetIteration())
		if js.GetLastExecution() != nil {
			fmt.Fprintf(&b, " Last Execution:\t%s\n", js.GetLastExecution().AsTime().UTC().Format(time.RFC3339Nano))
		}
	}
	return b.String()
}
