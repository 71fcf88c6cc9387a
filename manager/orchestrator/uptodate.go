package orchestrator

import shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"

// UpToDate reports whether a task was made from its service's current
// spec (task, endpoint and networks), by the same test the rolling update
// uses to pick the tasks it replaces: the tasks an update converges to.
func UpToDate(svc *shoalv1.Service, t *shoalv1.Task) bool { return specCurrent(svc, t) }
