package shoalv1

// Runnable reports whether a task with this desired state is meant to run
// on its node: RUNNING for a service's task (kept running), COMPLETE for a
// job's (run until it exits 0, as Swarm's job tasks). Every other desired
// state means stop (SHUTDOWN) or stop and delete (REMOVE). Hand-written,
// beside the schema it reads.
func Runnable(desired TaskState) bool {
	return desired == TaskState_TASK_STATE_RUNNING || desired == TaskState_TASK_STATE_COMPLETE
}
