package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// scaleServices is a control API holding services by name, counting the
// updates it is sent.
type scaleServices struct {
	shoalv1.UnimplementedControlServiceServer
	mu      sync.Mutex
	svcs    map[string]*shoalv1.Service
	updates []string
}

func (s *scaleServices) GetService(_ context.Context, req *shoalv1.GetServiceRequest) (*shoalv1.GetServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.svcs[req.GetServiceId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "service %q not found", req.GetServiceId())
	}
	return &shoalv1.GetServiceResponse{Service: proto.Clone(svc).(*shoalv1.Service)}, nil
}

func (s *scaleServices) UpdateService(_ context.Context, req *shoalv1.UpdateServiceRequest) (*shoalv1.UpdateServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.svcs[req.GetServiceId()]
	svc.Spec = req.GetSpec()
	s.updates = append(s.updates, req.GetServiceId())
	return &shoalv1.UpdateServiceResponse{Service: svc}, nil
}

// service scale checks every argument and every service before it
// changes any: a mistake anywhere on the command line changes nothing.
func TestServiceScaleRefusesBeforeChanging(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		wantErr     string // "" for success
		wantUpdates []string
	}{
		{[]string{"web=3", "db=1"}, "", []string{"web", "db"}},
		{[]string{"web=3", "db=x"}, `"db=x": invalid replicas value "x": give a whole number of 0 or more, e.g. db=5`, nil},
		{[]string{"web=3", "db=-1"}, `"db=-1": invalid replicas value "-1"`, nil},
		{[]string{"web=3", "db"}, `"db": use SERVICE=REPLICAS, e.g. web=5`, nil},
		{[]string{"web=3", "=2"}, `"=2": use SERVICE=REPLICAS`, nil},
		{[]string{"web=3", "agent=2"}, "service agent is global: scale can only be used with replicated or replicated-job mode", nil},
		{[]string{"web=3", "nosuch=2"}, `service "nosuch" not found`, nil},
	} {
		srv := &scaleServices{svcs: map[string]*shoalv1.Service{}}
		for _, name := range []string{"web", "db"} {
			srv.svcs[name] = &shoalv1.Service{Id: name, Meta: &shoalv1.Meta{Version: 1}, Spec: &shoalv1.ServiceSpec{
				Name: name, Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 1}}}}
		}
		srv.svcs["agent"] = &shoalv1.Service{Id: "agent", Meta: &shoalv1.Meta{Version: 1}, Spec: &shoalv1.ServiceSpec{
			Name: "agent", Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}}}
		host := serveControl(t, srv)
		var out, errOut bytes.Buffer
		err := Run(context.Background(), append([]string{"-H", host, "service", "scale", "-d"}, tc.args...), &out, &errOut)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("service scale %q = %v; want success", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(Message(err), tc.wantErr)):
			t.Errorf("service scale %q = %v; want an error containing %q", tc.args, err, tc.wantErr)
		}
		if strings.Join(srv.updates, ",") != strings.Join(tc.wantUpdates, ",") {
			t.Errorf("service scale %q updated %v; want %v", tc.args, srv.updates, tc.wantUpdates)
		}
		if tc.wantErr == "" && srv.svcs["web"].GetSpec().GetReplicated().GetReplicas() != 3 {
			t.Errorf("service scale %q: web has %d replicas; want 3", tc.args, srv.svcs["web"].GetSpec().GetReplicated().GetReplicas())
		}
	}
}

// Scaling a replicated job sets its completions (a new run of the job,
// as docker's scale does); a global job cannot be scaled, in docker's
// words.
func TestServiceScaleJobs(t *testing.T) {
	srv := &scaleServices{svcs: map[string]*shoalv1.Service{
		"batch": {Id: "batch", Meta: &shoalv1.Meta{Version: 1}, Spec: &shoalv1.ServiceSpec{Name: "batch",
			Mode: &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: 2, MaxConcurrent: 2}}}},
		"once": {Id: "once", Meta: &shoalv1.Meta{Version: 1}, Spec: &shoalv1.ServiceSpec{Name: "once",
			Mode: &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}}},
	}}
	host := serveControl(t, srv)
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"-H", host, "service", "scale", "-d", "batch=4"}, &out, &errOut); err != nil {
		t.Fatalf("service scale batch=4: %v", err)
	}
	if j := srv.svcs["batch"].GetSpec().GetReplicatedJob(); j.GetTotalCompletions() != 4 || j.GetMaxConcurrent() != 2 {
		t.Fatalf("after scale batch=4: %v; want 4 completions, still 2 at a time", j)
	}
	err := Run(context.Background(), []string{"-H", host, "service", "scale", "-d", "once=2"}, &out, &errOut)
	if want := "service once is a global job: scale can only be used with replicated or replicated-job mode"; err == nil || !strings.Contains(Message(err), want) {
		t.Fatalf("service scale once=2: %v; want %q", err, want)
	}
}
