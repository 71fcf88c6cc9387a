package controlapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func jobSpec(name string, total, maxc int64) *shoalv1.ServiceSpec {
	s := minimalSpec(name)
	s.Mode = &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: total, MaxConcurrent: maxc}}
	return s
}

// TestJobRuns: a job is created in its run 0 (Swarm's first
// JobIteration) with the time it started; every change of its spec
// (--force's included) starts the next run; an update that changes
// nothing starts none. A job's default restart condition is on-failure.
func TestJobRuns(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	clk := s.Clock.(*clock.Fake)
	created := mustCreate(t, s, jobSpec("batch", 10, 3))
	if js := created.GetJobStatus(); js == nil || js.GetIteration() != 0 || !js.GetLastExecution().AsTime().Equal(testNow) {
		t.Fatalf("new job's status %v; want iteration 0 started %v", js, testNow)
	}
	if c := created.GetSpec().GetTask().GetRestart().GetCondition(); c != shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE {
		t.Fatalf("job's default restart condition %v; want ON_FAILURE", c)
	}
	cur := created
	for i, tc := range []struct {
		change func(*shoalv1.ServiceSpec)
		want   uint64
	}{
		{func(*shoalv1.ServiceSpec) {}, 0},
		{func(s *shoalv1.ServiceSpec) { s.Task.ForceUpdate++ }, 1},
		{func(s *shoalv1.ServiceSpec) { s.GetReplicatedJob().TotalCompletions = 4 }, 2},
		{func(s *shoalv1.ServiceSpec) { s.Task.Container.Env = []string{"A=1"} }, 3},
		{func(*shoalv1.ServiceSpec) {}, 3},
	} {
		clk.Advance(time.Minute)
		spec := proto.Clone(cur.GetSpec()).(*shoalv1.ServiceSpec)
		tc.change(spec)
		resp, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: spec})
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		js := getService(t, s, cur.GetId()).GetJobStatus()
		if js.GetIteration() != tc.want {
			t.Fatalf("update %d: iteration %d; want %d", i, js.GetIteration(), tc.want)
		}
		if changed := tc.want != cur.GetJobStatus().GetIteration(); changed != js.GetLastExecution().AsTime().Equal(clk.Now()) {
			t.Fatalf("update %d: last execution %v (now %v); want now exactly when a run started", i, js.GetLastExecution().AsTime(), clk.Now())
		}
		cur = resp.GetService()
	}
	// A service (not a job) has no job status.
	if js := mustCreate(t, s, minimalSpec("web")).GetJobStatus(); js != nil {
		t.Fatalf("a replicated service got job status %v", js)
	}
	g := minimalSpec("everywhere")
	g.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}
	if js := mustCreate(t, s, g).GetJobStatus(); js == nil {
		t.Fatal("a global job got no job status")
	}
}

// TestJobRefused: bad counts and mode changes are refused, field by field,
// and change nothing.
func TestJobRefused(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		spec *shoalv1.ServiceSpec
		text string
	}{
		{jobSpec("a", 3, -1), "service.replicated_job.max_concurrent: must be >= 0 (0: as many as total_completions), got -1"},
		{jobSpec("b", -2, 1), "service.replicated_job.total_completions: must be >= 0, got -2"},
	} {
		_, err := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: tc.spec})
		if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("CreateService(%v) = %v; want ErrInvalid with %q", tc.spec.GetMode(), err, tc.text)
		}
	}
	if n := r.proposalCount(); n != 0 {
		t.Fatalf("refused creates proposed %d entries", n)
	}
	job := mustCreate(t, s, jobSpec("batch", 2, 1))
	web := mustCreate(t, s, minimalSpec("web"))
	before := r.proposalCount()
	for _, tc := range []struct {
		svc  *shoalv1.Service
		mode func(*shoalv1.ServiceSpec)
		text string
	}{
		{job, func(s *shoalv1.ServiceSpec) {
			s.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 2}}
		}, "service.mode: a replicated-job service cannot become replicated; create a new service"},
		{web, func(s *shoalv1.ServiceSpec) { s.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}} },
			"service.mode: a replicated service cannot become global-job; create a new service"},
		{job, func(s *shoalv1.ServiceSpec) { s.GetReplicatedJob().MaxConcurrent = -3 }, "service.replicated_job.max_concurrent: must be >= 0"},
	} {
		spec := proto.Clone(tc.svc.GetSpec()).(*shoalv1.ServiceSpec)
		tc.mode(spec)
		_, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: tc.svc.GetId(), Version: tc.svc.GetMeta().GetVersion(), Spec: spec})
		if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("UpdateService(%s to %v) = %v; want ErrInvalid with %q", tc.svc.GetSpec().GetName(), spec.GetMode(), err, tc.text)
		}
	}
	if n := r.proposalCount(); n != before {
		t.Fatalf("refused updates proposed %d entries", n-before)
	}
}
