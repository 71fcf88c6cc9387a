package deploy

import (
	"fmt"
	"os"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// HealthyToTraffic is, for every task of the new image of r's update that
// its worker reported healthy and that answered one of r's load clients, the time from
// the health state's since (when it turned healthy) to the first request
// it answered. A task that answered before it was healthy gives a
// negative figure.
func (e *Env) HealthyToTraffic(name string, r Result) ([]time.Duration, error) {
	tasks, err := e.Tasks(name)
	if err != nil {
		return nil, err
	}
	healthy := map[string]time.Time{}
	for _, t := range tasks {
		if h := t.GetStatus().GetHealth(); h.GetState() == shoalv1.HealthState_HEALTH_STATE_HEALTHY && h.GetSince() != nil {
			healthy[t.GetId()] = h.GetSince().AsTime()
		}
	}
	var out []time.Duration
	for host, task := range r.NewTasks {
		since, ok := healthy[task]
		a, answered := r.Answered[host]
		if ok && answered && a.N > 0 {
			out = append(out, a.First.Sub(since))
		}
	}
	return out, nil
}

// UnhealthyTimes makes c's health check fail (creates /tmp/unhealthy in
// its container) while loads run, and measures until it receives no
// more requests: the time from its worker reporting it unhealthy, and
// from the file's creation, to the last request it answered (nothing more
// answered for 3 s after it). Then it waits until the service is back to
// replicas containers, all answering.
func (e *Env) UnhealthyTimes(name string, loads *Loads, c harness.Container, replicas int) (fromUnhealthy, fromFile time.Duration, err error) {
	e.T.Helper()
	file := fmt.Sprintf("/proc/%d/root/tmp/unhealthy", c.Pid)
	made := time.Now()
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		return 0, 0, err
	}
	var unhealthy time.Time
	var last time.Time
	err = e.within(60*time.Second, func() error {
		if unhealthy.IsZero() {
			tasks, err := e.Tasks(name)
			if err != nil {
				return err
			}
			for _, t := range tasks {
				if h := t.GetStatus().GetHealth(); t.GetId() == c.Task && h.GetState() == shoalv1.HealthState_HEALTH_STATE_UNHEALTHY {
					unhealthy = h.GetSince().AsTime()
				}
			}
			if unhealthy.IsZero() {
				return fmt.Errorf("task %s not reported unhealthy yet", c.Task)
			}
		}
		answered, err := loads.Answered()
		if err != nil {
			return err
		}
		last = answered[Hostname(c)].Last
		if time.Since(last) < 3*time.Second {
			return fmt.Errorf("%s still answered at %s", Hostname(c), last.Format("15:04:05.000"))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if err := e.within(90*time.Second, func() error { return e.Converged(name, replicas) }); err != nil {
		return 0, 0, err
	}
	e.WaitAnswering(name, 60*time.Second)
	return last.Sub(unhealthy), last.Sub(made), nil
}
