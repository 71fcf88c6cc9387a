package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// parseSpec applies service create's (or update's) flags to spec.
func parseSpec(t *testing.T, create bool, spec *shoalv1.ServiceSpec, args ...string) (*shoalv1.ServiceSpec, error) {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.register(fs, create)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if spec == nil {
		spec = &shoalv1.ServiceSpec{}
	}
	return spec, f.apply(fs, spec, create)
}

// Job flags as docker's: --mode replicated-job with --replicas (the
// completions) and --max-concurrent (default: --replicas); global-job
// takes neither; the restart condition of a job defaults to on-failure;
// update flags are refused for jobs; errors in docker's words.
func TestJobFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		mode, cond string
		err        string
	}{
		{args: []string{"--mode", "replicated-job"}, mode: "total:1 max:1", cond: "ON_FAILURE"},
		{args: []string{"--mode", "replicated-job", "--replicas", "10"}, mode: "total:10 max:10", cond: "ON_FAILURE"},
		{args: []string{"--mode", "replicated-job", "--replicas", "10", "--max-concurrent", "3"}, mode: "total:10 max:3", cond: "ON_FAILURE"},
		{args: []string{"--mode", "replicated-job", "--restart-condition", "any"}, mode: "total:1 max:1", cond: "ANY"},
		{args: []string{"--mode", "global-job"}, mode: "global job", cond: "ON_FAILURE"},
		{args: []string{"--mode", "replicated"}, mode: "replicas:1", cond: "ANY"},
		{args: []string{"--mode", "global-job", "--replicas", "2"}, err: "--replicas can only be used with replicated or replicated-job mode"},
		{args: []string{"--mode", "global-job", "--max-concurrent", "2"}, err: "--max-concurrent can only be used with replicated-job mode"},
		{args: []string{"--mode", "global", "--max-concurrent", "2"}, err: "--max-concurrent can only be used with replicated-job mode"},
		{args: []string{"--max-concurrent", "2"}, err: "--max-concurrent can only be used with replicated-job mode"},
		{args: []string{"--mode", "global-job", "--replicas-max-per-node", "1"}, err: "--replicas-max-per-node can only be used with replicated or replicated-job mode"},
		{args: []string{"--mode", "replicated-job", "--max-concurrent", "-1"}, err: "--max-concurrent -1: give a whole number of 0 or more"},
		{args: []string{"--mode", "replicated-job", "--update-parallelism", "2"}, err: "--update-parallelism: update and rollback configuration is not supported for jobs"},
		{args: []string{"--mode", "global-job", "--rollback-order", "start-first"}, err: "--rollback-order: update and rollback configuration is not supported for jobs"},
		{args: []string{"--mode", "job"}, err: `--mode "job": use replicated, global, replicated-job or global-job`},
	} {
		spec, err := parseSpec(t, true, nil, tc.args...)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("create %q: error %v; want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("create %q: %v", tc.args, err)
			continue
		}
		var mode string
		switch m := spec.GetMode().(type) {
		case *shoalv1.ServiceSpec_ReplicatedJob:
			mode = fmt.Sprintf("total:%d max:%d", m.ReplicatedJob.GetTotalCompletions(), m.ReplicatedJob.GetMaxConcurrent())
		case *shoalv1.ServiceSpec_GlobalJob:
			mode = "global job"
		case *shoalv1.ServiceSpec_Replicated:
			mode = fmt.Sprintf("replicas:%d", m.Replicated.GetReplicas())
		}
		cond := strings.TrimPrefix(spec.GetTask().GetRestart().GetCondition().String(), "RESTART_CONDITION_")
		if mode != tc.mode || cond != tc.cond {
			t.Errorf("create %q: mode %q, restart %s; want %q, %s", tc.args, mode, cond, tc.mode, tc.cond)
		}
	}
	// update: --replicas is a replicated job's completions, --max-concurrent
	// its concurrency; neither fits a global job.
	job := func() *shoalv1.ServiceSpec {
		return &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: 10, MaxConcurrent: 3}}}
	}
	spec, err := parseSpec(t, false, job(), "--replicas", "20", "--max-concurrent", "5")
	if j := spec.GetReplicatedJob(); err != nil || j.GetTotalCompletions() != 20 || j.GetMaxConcurrent() != 5 {
		t.Errorf("update --replicas 20 --max-concurrent 5: %v, %v", spec.GetMode(), err)
	}
	gj := &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}}
	if _, err := parseSpec(t, false, gj, "--replicas", "2"); err == nil || err.Error() != "--replicas can only be used with replicated or replicated-job mode" {
		t.Errorf("update a global job --replicas 2: %v", err)
	}
	repl := &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 2}}}
	if _, err := parseSpec(t, false, repl, "--max-concurrent", "2"); err == nil || err.Error() != "--max-concurrent can only be used with replicated-job mode" {
		t.Errorf("update a replicated service --max-concurrent 2: %v", err)
	}
	if _, err := parseSpec(t, false, job(), "--update-parallelism", "2"); err == nil || !strings.Contains(err.Error(), "not supported for jobs") {
		t.Errorf("update a job --update-parallelism 2: %v", err)
	}
}

func jobTask(id string, it, slot uint64, node string, desired, state shoalv1.TaskState, created int, err string) *shoalv1.Task {
	return &shoalv1.Task{Id: id, ServiceId: "j", Slot: slot, NodeId: node, JobIteration: it, DesiredState: desired,
		Meta:   &shoalv1.Meta{CreatedAt: timestamppb.New(time.Unix(int64(created), 0))},
		Status: &shoalv1.TaskStatus{State: state, Err: err}}
}

const (
	dComplete = shoalv1.TaskState_TASK_STATE_COMPLETE
	dShutdown = shoalv1.TaskState_TASK_STATE_SHUTDOWN
	sRunning  = shoalv1.TaskState_TASK_STATE_RUNNING
	sFailed   = shoalv1.TaskState_TASK_STATE_FAILED
	sPending  = shoalv1.TaskState_TASK_STATE_PENDING
)

// service ls shows a job as docker does: "replicated job" with
// running/max-concurrent (completed/total completed), "global job" with
// running/to-complete (completed/all completed); only the current run
// counts.
func TestJobColumns(t *testing.T) {
	rj := &shoalv1.Service{Id: "j", Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: 10, MaxConcurrent: 3}}},
		JobStatus: &shoalv1.JobStatus{Iteration: 2}}
	gj := &shoalv1.Service{Id: "j", Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}},
		JobStatus: &shoalv1.JobStatus{Iteration: 2}}
	var run []*shoalv1.Task
	for i := 1; i <= 5; i++ {
		run = append(run, jobTask(fmt.Sprint("c", i), 2, uint64(i), "n1", dComplete, dComplete, 1, ""))
	}
	run = append(run,
		jobTask("r1", 2, 6, "n1", dComplete, sRunning, 1, ""), jobTask("r2", 2, 7, "n2", dComplete, sRunning, 1, ""),
		jobTask("p", 2, 8, "", dComplete, sPending, 1, ""),
		jobTask("old", 1, 1, "n1", dComplete, dComplete, 0, ""), jobTask("oldr", 1, 2, "n1", dShutdown, sRunning, 0, ""),
		jobTask("gone", 2, 9, "n1", dShutdown, sFailed, 1, "max restart attempts (2) reached"))
	for _, tc := range []struct {
		svc        *shoalv1.Service
		mode, reps string
	}{
		{rj, "replicated job", "2/3 (5/10 completed)"},
		{gj, "global job", "2/3 (5/8 completed)"},
	} {
		counts := jobCounts([]*shoalv1.Service{tc.svc}, run)
		if mode, reps := replicasColumn(tc.svc, nil, counts); mode != tc.mode || reps != tc.reps {
			t.Errorf("%s: %q %q; want %q %q", tc.mode, mode, reps, tc.mode, tc.reps)
		}
	}
	// A finished replicated job: 0/3 (10/10 completed).
	var done []*shoalv1.Task
	for i := 1; i <= 10; i++ {
		done = append(done, jobTask(fmt.Sprint("c", i), 2, uint64(i), "n1", dComplete, dComplete, 1, ""))
	}
	if _, reps := replicasColumn(rj, nil, jobCounts([]*shoalv1.Service{rj}, done)); reps != "0/3 (10/10 completed)" {
		t.Errorf("finished job: %q; want 0/3 (10/10 completed)", reps)
	}
}

func frameText(f progressFrame) string {
	var b strings.Builder
	for _, l := range f.lines {
		fmt.Fprintf(&b, "%s: %s|", l.id, l.text)
	}
	return b.String()
}

// The wait after create follows a job's current run as docker's job
// progress does, ends with the last completion, and ends with an error
// when the tasks left failed for good.
func TestJobFrame(t *testing.T) {
	rj := &shoalv1.Service{Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: 3, MaxConcurrent: 2}}},
		JobStatus: &shoalv1.JobStatus{Iteration: 1}}
	for _, tc := range []struct {
		name   string
		tasks  []*shoalv1.Task
		text   string
		done   bool
		failed string
	}{
		{name: "starting", tasks: []*shoalv1.Task{jobTask("a", 1, 1, "n1", dComplete, sRunning, 1, ""), jobTask("b", 1, 2, "", dComplete, sPending, 1, "")},
			text: "job progress: 0 out of 3 complete|active tasks: 2 out of 2 tasks|1/3: running|2/3: pending|3/3: |"},
		{name: "a retry stands for its slot; an older run does not count",
			tasks: []*shoalv1.Task{
				jobTask("a", 1, 1, "n1", dShutdown, sFailed, 1, "task: non-zero exit (1)"), jobTask("a2", 1, 1, "n1", dComplete, sRunning, 2, ""),
				jobTask("b", 1, 2, "n1", dComplete, dComplete, 1, ""), jobTask("old", 0, 3, "n1", dComplete, dComplete, 0, "")},
			text: "job progress: 1 out of 3 complete|active tasks: 1 out of 2 tasks|1/3: running|2/3: complete|3/3: |"},
		{name: "all complete", done: true,
			tasks: []*shoalv1.Task{jobTask("a", 1, 1, "n1", dComplete, dComplete, 1, ""), jobTask("b", 1, 2, "n1", dComplete, dComplete, 1, ""),
				jobTask("c", 1, 3, "n1", dComplete, dComplete, 1, "")},
			text: "job progress: 3 out of 3 complete|active tasks: 0 out of 0 tasks|1/3: complete|2/3: complete|3/3: complete|"},
		{name: "the rest failed for good", done: true, failed: "job did not complete: 1 task of 3 failed and will not be restarted (max restart attempts (2) reached: task: non-zero exit (1))",
			tasks: []*shoalv1.Task{jobTask("a", 1, 1, "n1", dComplete, dComplete, 1, ""), jobTask("b", 1, 2, "n1", dComplete, dComplete, 1, ""),
				jobTask("c", 1, 3, "n1", dShutdown, sFailed, 1, "max restart attempts (2) reached: task: non-zero exit (1)")},
			text: "job progress: 2 out of 3 complete|active tasks: 0 out of 1 tasks|1/3: complete|2/3: complete|3/3: max restart attempts (2) reached: task: non-zero exit (1)|"},
	} {
		f, done, failed := jobFrame(rj, tc.tasks)
		if got := frameText(f); got != tc.text || done != tc.done || failed != tc.failed {
			t.Errorf("%s:\n got %q done %v failed %q\nwant %q done %v failed %q", tc.name, got, done, failed, tc.text, tc.done, tc.failed)
		}
	}
	gj := &shoalv1.Service{Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}}, JobStatus: &shoalv1.JobStatus{}}
	if f, done, _ := jobFrame(gj, nil); frameText(f) != "job progress: waiting for tasks|" || done {
		t.Errorf("global job with no tasks yet: %q done %v", frameText(f), done)
	}
	f, done, _ := jobFrame(gj, []*shoalv1.Task{jobTask("a", 0, 0, "node1", dComplete, dComplete, 1, ""), jobTask("b", 0, 0, "node2", dComplete, sRunning, 1, "")})
	if frameText(f) != "job progress: 1 out of 2 complete|node1: complete|node2: running|" || done {
		t.Errorf("global job half done: %q done %v", frameText(f), done)
	}
}

// service inspect --pretty's mode block: docker's for services, and for
// jobs their counts and current run.
func TestPrettyMode(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		svc  *shoalv1.Service
		want string
	}{
		{&shoalv1.Service{Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 3}}}},
			"Service Mode:\tReplicated\n Replicas:\t3\n"},
		{&shoalv1.Service{Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}}}, "Service Mode:\tGlobal\n"},
		{&shoalv1.Service{Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: 10, MaxConcurrent: 3}}},
			JobStatus: &shoalv1.JobStatus{Iteration: 2, LastExecution: timestamppb.New(at)}},
			"Service Mode:\tReplicated Job\n Max Concurrent:\t3\n Total Completions:\t10\nJob Status:\n Iteration:\t2\n Last Execution:\t2026-12-02T14:00:00Z\n"},
		{&shoalv1.Service{Spec: &shoalv1.ServiceSpec{Mode: &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}}, JobStatus: &shoalv1.JobStatus{}},
			"Service Mode:\tGlobal Job\nJob Status:\n Iteration:\t0\n"},
	} {
		if got := prettyMode(tc.svc); got != tc.want {
			t.Errorf("prettyMode(%v) = %q; want %q", tc.svc.GetSpec().GetMode(), got, tc.want)
		}
	}
}
