package controlapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/regauth"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestPinImage(t *testing.T) {
	d := "sha256:" + strings.Repeat("b", 64)
	for _, tc := range []struct{ in, want string }{
		{"nginx:1.25", "nginx:1.25@" + d},
		{"nginx", "nginx:latest@" + d},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest@" + d},
		{"127.0.0.1:5000/team/app:v2", "127.0.0.1:5000/team/app:v2@" + d},
		{"app:v1@sha256:" + strings.Repeat("c", 64), "app:v1@" + d},
	} {
		if got := PinImage(tc.in, d); got != tc.want {
			t.Errorf("PinImage(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

type fakeResolver struct {
	digest, auth string
	err          error
}

func (f *fakeResolver) Resolve(_ context.Context, ref, auth string) (string, error) {
	f.auth = auth
	return f.digest, f.err
}

func TestResolveImage(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	if _, err := s.ResolveImage(ctx, &shoalv1.ResolveImageRequest{Image: "app:v1"}); err == nil {
		t.Error("a manager without a resolver answered")
	}
	r := &fakeResolver{digest: "sha256:" + strings.Repeat("d", 64)}
	s.ResolveDigest = r.Resolve
	resp, err := s.ResolveImage(ctx, &shoalv1.ResolveImageRequest{Image: "reg.local:5000/app:v1", RegistryAuth: "e30="})
	if err != nil || resp.GetImage() != "reg.local:5000/app:v1@"+r.digest || resp.GetDigest() != r.digest || r.auth != "e30=" {
		t.Fatalf("ResolveImage = %v, %v (auth passed %q)", resp, err, r.auth)
	}
	if _, err := s.ResolveImage(ctx, &shoalv1.ResolveImageRequest{Image: "Not A Ref"}); err == nil {
		t.Error("a bad reference was resolved")
	}
	r.err = errors.New("registry down")
	if _, err := s.ResolveImage(ctx, &shoalv1.ResolveImageRequest{Image: "app:v1"}); err == nil {
		t.Error("a registry error was not returned")
	}
}

// Registry credentials reach the store (for the nodes) and no answer of
// the control API; an update without them keeps them.
func TestRegistryAuthNeverReturned(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	auth, err := regauth.Encode(regauth.Config{Username: "alice", Password: "hunter2-marker"})
	if err != nil {
		t.Fatal(err)
	}
	spec := &shoalv1.ServiceSpec{Name: "web", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{
		Image: "reg.local:5000/app:v1", PullOptions: &shoalv1.PullOptions{RegistryAuth: auth}}}}
	created, err := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() *shoalv1.Service {
		var svc *shoalv1.Service
		s.Store.View(func(r store.ReadTx) {
			svc = store.Get[*shoalv1.Service](r, store.TableService, created.GetService().GetId())
		})
		return svc
	}
	if stored().GetSpec().GetTask().GetContainer().GetPullOptions().GetRegistryAuth() != auth {
		t.Fatal("the store lacks the credentials")
	}
	answers := []*shoalv1.Service{created.GetService()}
	got, err := s.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: "web"})
	if err != nil {
		t.Fatal(err)
	}
	answers = append(answers, got.GetService())
	list, err := s.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	answers = append(answers, list.GetServices()...)
	// An update from what a client read (no credentials) keeps them.
	next := got.GetService().GetSpec()
	next.Task.Container.Env = []string{"A=1"}
	up, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: "web", Version: got.GetService().GetMeta().GetVersion(), Spec: next})
	if err != nil {
		t.Fatal(err)
	}
	answers = append(answers, up.GetService())
	for i, a := range answers {
		if a.GetSpec().GetTask().GetContainer().GetPullOptions() != nil || a.GetPreviousSpec().GetTask().GetContainer().GetPullOptions() != nil {
			t.Errorf("answer %d carries the registry credentials", i)
		}
	}
	if stored().GetSpec().GetTask().GetContainer().GetPullOptions().GetRegistryAuth() != auth {
		t.Fatal("an update without credentials dropped the stored ones")
	}
	// Tasks made from the service carry them to their node, and no task
	// answer shows them.
	task := &shoalv1.Task{Id: "t1", ServiceId: created.GetService().GetId(), Spec: stored().GetSpec().GetTask()}
	if err := s.Store.Apply(&shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{create(task)}}, 100); err != nil {
		t.Fatal(err)
	}
	tl, err := s.ListTasks(ctx, &shoalv1.ListTasksRequest{})
	if err != nil || len(tl.GetTasks()) != 1 {
		t.Fatalf("ListTasks = %v, %v", tl, err)
	}
	gt, err := s.GetTask(ctx, &shoalv1.GetTaskRequest{TaskId: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range []*shoalv1.Task{tl.GetTasks()[0], gt.GetTask()} {
		if tk.GetSpec().GetContainer().GetPullOptions() != nil {
			t.Error("a task answer carries the registry credentials")
		}
	}
	// A malformed one is refused without its value in the error.
	bad := &shoalv1.ServiceSpec{Name: "bad", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{
		Image: "app", PullOptions: &shoalv1.PullOptions{RegistryAuth: "!!hunter2-marker"}}}}
	if _, err := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: bad}); err == nil || !strings.Contains(err.Error(), "service.registry_auth") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a malformed registry auth: %v", err)
	}
}
