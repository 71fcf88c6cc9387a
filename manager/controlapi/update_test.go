package controlapi

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func updateSpec(t *testing.T, s *Server, cur *shoalv1.Service, edit func(*shoalv1.ServiceSpec)) *shoalv1.Service {
	t.Helper()
	spec := proto.Clone(cur.GetSpec()).(*shoalv1.ServiceSpec)
	edit(spec)
	resp, err := s.UpdateService(context.Background(), &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: spec})
	if err != nil {
		t.Fatalf("UpdateService = %v", err)
	}
	return resp.GetService()
}

func rollback(s *Server, cur *shoalv1.Service) (*shoalv1.Service, error) {
	resp, err := s.UpdateService(context.Background(), &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Rollback: true})
	return resp.GetService(), err
}

// The update status a change leaves, step by step as a service lives.
func TestUpdateServiceStatus(t *testing.T) {
	s, _ := newTestServer(t)
	fake := s.Clock.(*clock.Fake)
	created := mustCreate(t, s, minimalSpec("web"))
	if created.GetUpdateStatus() != nil {
		t.Fatalf("a new service has update status %v; want none", created.GetUpdateStatus())
	}
	if _, err := rollback(s, created); !errdefs.Is(err, errdefs.ErrFailedPrecond) || err.Error() != "service web has no previous spec to roll back to: failed precondition" {
		t.Fatalf("rollback of a new service = %v; want failed precondition, no previous spec", err)
	}
	if got := getService(t, s, created.GetId()); !proto.Equal(got, created) {
		t.Fatalf("the refused rollback changed the service: %v", got)
	}

	// Scaling changes no task: no update.
	scaled := updateSpec(t, s, created, func(sp *shoalv1.ServiceSpec) { sp.GetReplicated().Replicas = 3 })
	if scaled.GetUpdateStatus() != nil {
		t.Fatalf("after scaling: update status %v; want none", scaled.GetUpdateStatus())
	}
	fake.Advance(time.Second)
	v2 := updateSpec(t, s, scaled, func(sp *shoalv1.ServiceSpec) { sp.Task.Container.Image = "nginx:1.26" })
	want := func(svc *shoalv1.Service, state shoalv1.UpdateState, msg string) {
		t.Helper()
		st := svc.GetUpdateStatus()
		if st.GetState() != state || st.GetMessage() != msg || !st.GetStartedAt().AsTime().Equal(fake.Now()) || st.GetCompletedAt() != nil {
			t.Fatalf("update status %v; want %v %q started now (%v)", st, state, msg, fake.Now())
		}
		if stored := getService(t, s, svc.GetId()); !proto.Equal(stored.GetUpdateStatus(), st) {
			t.Fatalf("stored status %v; returned %v", stored.GetUpdateStatus(), st)
		}
	}
	want(v2, shoalv1.UpdateState_UPDATE_STATE_UPDATING, "update in progress")
	if v2.GetPreviousSpec().GetTask().GetContainer().GetImage() != "nginx:1.25" {
		t.Fatalf("previous spec %v; want the nginx:1.25 one", v2.GetPreviousSpec())
	}

	// --force: the same spec with force_update raised rolls every task.
	fake.Advance(time.Second)
	forced := updateSpec(t, s, v2, func(sp *shoalv1.ServiceSpec) { sp.Task.ForceUpdate++ })
	want(forced, shoalv1.UpdateState_UPDATE_STATE_UPDATING, "update in progress")

	// The orchestrator paused it; an update with no change resumes it,
	// and keeps the previous spec (nothing changed).
	paused := getService(t, s, forced.GetId())
	paused.UpdateStatus.State = shoalv1.UpdateState_UPDATE_STATE_PAUSED
	put(t, s, paused)
	paused = getService(t, s, forced.GetId())
	fake.Advance(time.Second)
	resumed := updateSpec(t, s, paused, func(*shoalv1.ServiceSpec) {})
	want(resumed, shoalv1.UpdateState_UPDATE_STATE_UPDATING, "update resumed")
	if !proto.Equal(resumed.GetPreviousSpec(), paused.GetPreviousSpec()) {
		t.Fatalf("resuming replaced the previous spec: %v", resumed.GetPreviousSpec())
	}

	// Rollback: the spec and previous spec swap.
	fake.Advance(time.Second)
	back, err := rollback(s, resumed)
	if err != nil {
		t.Fatalf("rollback = %v", err)
	}
	want(back, shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, "manually requested rollback")
	if !proto.Equal(back.GetSpec(), resumed.GetPreviousSpec()) || !proto.Equal(back.GetPreviousSpec(), resumed.GetSpec()) {
		t.Fatalf("rollback: spec %v previous %v; want them swapped", back.GetSpec(), back.GetPreviousSpec())
	}
	// A paused rollback resumes as a rollback.
	back.UpdateStatus.State = shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED
	put(t, s, back)
	back = getService(t, s, back.GetId())
	fake.Advance(time.Second)
	want(updateSpec(t, s, back, func(*shoalv1.ServiceSpec) {}), shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, "rollback resumed")
}

// An invalid update config is refused and changes nothing.
func TestUpdateServiceBadUpdateConfig(t *testing.T) {
	s, _ := newTestServer(t)
	created := mustCreate(t, s, minimalSpec("web"))
	spec := proto.Clone(created.GetSpec()).(*shoalv1.ServiceSpec)
	spec.Update = &shoalv1.UpdateConfig{MaxFailureRatio: 2}
	_, err := s.UpdateService(context.Background(), &shoalv1.UpdateServiceRequest{ServiceId: "web", Version: created.GetMeta().GetVersion(), Spec: spec})
	if !errdefs.Is(err, errdefs.ErrInvalid) || err.Error() != "service.update_max_failure_ratio: must be between 0 and 1, got 2: invalid argument" {
		t.Fatalf("UpdateService(ratio 2) = %v; want the field named", err)
	}
	if got := getService(t, s, created.GetId()); !proto.Equal(got, created) {
		t.Fatalf("the refused update changed the service: %v", got)
	}
}

// put writes a service as the orchestrator would (its update status).
func put(t *testing.T, s *Server, svc *shoalv1.Service) {
	t.Helper()
	if _, err := s.propose(context.Background(), update(svc, svc.GetMeta().GetVersion())); err != nil {
		t.Fatal(err)
	}
}
