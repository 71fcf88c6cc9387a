package worker

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/image"
	"github.com/shoal-run/shoal/worker/health"
)

// LabelHealthCheck marks a task container that has a health check: its
// endpoints join the load balancers only once it is healthy, so a daemon
// that restarts does not announce it before probing it again.
const LabelHealthCheck = "shoal.healthcheck"

// TaskHealthCheck is a task's own health check; nil when it sets none.
func TaskHealthCheck(t *shoalv1.Task) *health.Config {
	h := t.GetSpec().GetContainer().GetHealthcheck()
	if h == nil {
		return nil
	}
	return &health.Config{
		Test: h.GetTest(), Interval: h.GetInterval().AsDuration(), Timeout: h.GetTimeout().AsDuration(),
		StartPeriod: h.GetStartPeriod().AsDuration(), StartInterval: h.GetStartInterval().AsDuration(),
		Retries: int(h.GetRetries()), HTTP: h.GetHttp(), TCPPort: h.GetTcpPort(),
	}
}

// imageHealthCheck is an image's HEALTHCHECK (which a container keeps
// from its image); nil when it has none.
func imageHealthCheck(h *image.Healthcheck) *health.Config {
	if h == nil {
		return nil
	}
	return &health.Config{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, Retries: h.Retries}
}

// taskHealth is a check's status as the task reports it.
func taskHealth(s health.Status) *shoalv1.TaskHealth {
	th := &shoalv1.TaskHealth{FailingStreak: int32(s.FailingStreak), Output: s.Output, ExitCode: int32(s.ExitCode)}
	if !s.Since.IsZero() {
		th.Since = timestamppb.New(s.Since)
	}
	switch s.State {
	case health.Starting:
		th.State = shoalv1.HealthState_HEALTH_STATE_STARTING
	case health.Healthy:
		th.State = shoalv1.HealthState_HEALTH_STATE_HEALTHY
	case health.Unhealthy:
		th.State = shoalv1.HealthState_HEALTH_STATE_UNHEALTHY
	}
	return th
}

// unhealthyError is the error of a task stopped for failing its check,
// with the last probe's output.
func unhealthyError(output string) string {
	out := strings.TrimSpace(output)
	if len(out) > 200 {
		out = strings.ToValidUTF8(out[:200], "") + "…"
	}
	if out == "" {
		return "container is unhealthy"
	}
	return "container is unhealthy: " + strings.Join(strings.Fields(out), " ")
}

// DefaultDrainDelay is how long a stopping task with network endpoints
// stays out of the load balancers before its workload gets the stop
// signal: long enough for the other nodes to learn through gossip that it
// takes no new connections.
const DefaultDrainDelay = time.Second
