package controlapi

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Jobs (replicated-job, global-job) as Swarm's: the orchestrator runs
// their tasks to completion. Each run of a job has a number
// (Service.job_status.iteration), 0 for the first, as Swarm's
// JobIteration; every change of the spec, service update --force and
// service scale included, starts the next run, whose tasks the
// orchestrator makes anew while those of earlier runs stay as history.

func isJob(spec *shoalv1.ServiceSpec) bool {
	return spec.GetReplicatedJob() != nil || spec.GetGlobalJob() != nil
}

// modeName is docker's name of a service's mode (its --mode).
func modeName(spec *shoalv1.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *shoalv1.ServiceSpec_Global:
		return "global"
	case *shoalv1.ServiceSpec_ReplicatedJob:
		return "replicated-job"
	case *shoalv1.ServiceSpec_GlobalJob:
		return "global-job"
	}
	return "replicated"
}

// jobDefaults fills a job's restart condition: on-failure, as docker's
// (a job's task that exits 0 is never restarted; ANY means the same for a
// job, but says it less plainly).
func jobDefaults(spec *shoalv1.ServiceSpec) {
	if isJob(spec) && spec.GetTask().GetRestart().GetCondition() == shoalv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED {
		spec.Task.Restart.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
	}
}

// validateJob checks a replicated job's counts.
func validateJob(f *fieldErrors, j *shoalv1.ReplicatedJob) {
	if n := j.GetMaxConcurrent(); n < 0 {
		f.add("service.replicated_job.max_concurrent", "must be >= 0 (0: as many as total_completions), got %d", n)
	}
	if n := j.GetTotalCompletions(); n < 0 {
		f.add("service.replicated_job.total_completions", "must be >= 0, got %d", n)
	}
}

// startJob gives a new job service its first run.
func startJob(svc *shoalv1.Service, now time.Time) {
	if isJob(svc.GetSpec()) {
		svc.JobStatus = &shoalv1.JobStatus{Iteration: 0, LastExecution: timestamppb.New(now)}
	}
}

// nextJobRun starts the next run of a job whose spec changed (--force
// changes it too); an update that changes nothing starts none.
func nextJobRun(next, cur *shoalv1.Service, now time.Time) {
	if !isJob(next.GetSpec()) || proto.Equal(cur.GetSpec(), next.GetSpec()) {
		return
	}
	next.JobStatus = &shoalv1.JobStatus{Iteration: cur.GetJobStatus().GetIteration() + 1, LastExecution: timestamppb.New(now)}
}
