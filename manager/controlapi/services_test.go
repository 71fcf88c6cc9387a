package controlapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func tcp(published, target uint32) *shoalv1.PortConfig {
	return &shoalv1.PortConfig{TargetPort: target, PublishedPort: published}
}

// minimalSpec is what `shoal service create` sends at least: a name and an
// image; everything else is left for the defaults.
func minimalSpec(name string, ports ...*shoalv1.PortConfig) *shoalv1.ServiceSpec {
	s := &shoalv1.ServiceSpec{Name: name, Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx:1.25"}}}
	if len(ports) > 0 {
		s.Endpoint = &shoalv1.EndpointSpec{Ports: ports}
	}
	return s
}

func mustCreate(t *testing.T, s *Server, spec *shoalv1.ServiceSpec) *shoalv1.Service {
	t.Helper()
	resp, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatalf("CreateService(%v) = %v", spec, err)
	}
	return resp.GetService()
}

func TestCreateServiceAppliesDefaults(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	req := &shoalv1.CreateServiceRequest{Spec: minimalSpec("web", tcp(8080, 80), &shoalv1.PortConfig{
		TargetPort: 53, PublishedPort: 53, Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_UDP, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_HOST,
	})}
	sent := proto.Clone(req)

	resp, err := s.CreateService(ctx, req)
	if err != nil {
		t.Fatalf("CreateService(%v) = %v; want success", req, err)
	}
	if !proto.Equal(req, sent) {
		t.Errorf("CreateService changed the caller's request: %v; want %v", req, sent)
	}
	svc := resp.GetService()
	spec := svc.GetSpec()
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"replicas", spec.GetReplicated().GetReplicas(), int64(1)},
		{"restart condition", spec.GetTask().GetRestart().GetCondition(), shoalv1.RestartCondition_RESTART_CONDITION_ANY},
		{"endpoint mode", spec.GetEndpoint().GetMode(), shoalv1.EndpointMode_ENDPOINT_MODE_VIP},
		{"port 0 protocol", spec.GetEndpoint().GetPorts()[0].GetProtocol(), shoalv1.PortProtocol_PORT_PROTOCOL_TCP},
		{"port 0 mode", spec.GetEndpoint().GetPorts()[0].GetPublishMode(), shoalv1.PublishMode_PUBLISH_MODE_INGRESS},
		{"port 1 protocol kept", spec.GetEndpoint().GetPorts()[1].GetProtocol(), shoalv1.PortProtocol_PORT_PROTOCOL_UDP},
		{"port 1 mode kept", spec.GetEndpoint().GetPorts()[1].GetPublishMode(), shoalv1.PublishMode_PUBLISH_MODE_HOST},
		{"created at", svc.GetMeta().GetCreatedAt().AsTime(), testNow},
		{"updated at", svc.GetMeta().GetUpdatedAt().AsTime(), testNow},
		{"id length", len(svc.GetId()), 25},
	} {
		if c.got != c.want {
			t.Errorf("CreateService(web): %s = %v; want %v", c.what, c.got, c.want)
		}
	}

	stored := getService(t, s, svc.GetId())
	if stored == nil {
		t.Fatalf("service %s is not in the store", svc.GetId())
	}
	if v := svc.GetMeta().GetVersion(); v == 0 || v != stored.GetMeta().GetVersion() || v != s.Store.Index() || v != r.index {
		t.Errorf("CreateService version = %d; want the stored version %d (store index %d)", v, stored.GetMeta().GetVersion(), s.Store.Index())
	}
	if !proto.Equal(stored, svc) {
		t.Errorf("CreateService returned %v; the store holds %v", svc, stored)
	}
}

func TestCreateServiceKeepsExplicitMode(t *testing.T) {
	s, _ := newTestServer(t)
	spec := minimalSpec("agents")
	spec.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
	spec.Task.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_NONE}
	spec.Endpoint = &shoalv1.EndpointSpec{Mode: shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR}
	got := mustCreate(t, s, spec).GetSpec()
	if got.GetGlobal() == nil || got.GetTask().GetRestart().GetCondition() != shoalv1.RestartCondition_RESTART_CONDITION_NONE ||
		got.GetEndpoint().GetMode() != shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR {
		t.Errorf("CreateService(global, none, dnsrr) stored %v; want the given mode, condition and endpoint", got)
	}
}

func TestCreateServiceInvalid(t *testing.T) {
	s, r := newTestServer(t)
	for _, spec := range []*shoalv1.ServiceSpec{nil, minimalSpec(""), minimalSpec("web", tcp(8080, 0))} {
		_, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: spec})
		if !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("CreateService(%v) = %v; want ErrInvalid", spec, err)
		}
	}
	if n := r.proposalCount(); n != 0 {
		t.Errorf("invalid creates proposed %d entries; want 0", n)
	}
}

func TestCreateServiceDuplicateName(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	first := mustCreate(t, s, minimalSpec("web"))
	before := s.Store.Snapshot()

	_, err := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: minimalSpec("web", tcp(9000, 80))})
	if !errdefs.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), `"web"`) {
		t.Errorf("CreateService(duplicate web) = %v; want ErrAlreadyExists naming web", err)
	}
	if after := s.Store.Snapshot(); !proto.Equal(after, before) {
		t.Errorf("a refused create changed the store: %v; want %v", after, before)
	}
	list, _ := s.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if len(list.GetServices()) != 1 || list.GetServices()[0].GetId() != first.GetId() {
		t.Errorf("ListServices = %v; want only %s", list.GetServices(), first.GetId())
	}
}

func TestCreateServicePortConflicts(t *testing.T) {
	host := func(published, target uint32) *shoalv1.PortConfig {
		return &shoalv1.PortConfig{TargetPort: target, PublishedPort: published, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_HOST}
	}
	udp := func(published, target uint32) *shoalv1.PortConfig {
		return &shoalv1.PortConfig{TargetPort: target, PublishedPort: published, Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_UDP}
	}
	for _, tc := range []struct {
		name     string
		existing *shoalv1.PortConfig
		next     *shoalv1.PortConfig
		conflict bool
	}{
		{"same ingress port", tcp(8080, 80), tcp(8080, 81), true},
		{"ingress over host", host(8080, 80), tcp(8080, 80), true},
		{"host over ingress", tcp(8080, 80), host(8080, 80), true},
		{"host and host", host(8080, 80), host(8080, 80), false},
		{"other protocol", tcp(53, 53), udp(53, 53), false},
		{"other port", tcp(8080, 80), tcp(8081, 80), false},
		{"unpublished", tcp(0, 80), tcp(0, 80), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t)
			mustCreate(t, s, minimalSpec("first", tc.existing))
			before := s.Store.Snapshot()
			_, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: minimalSpec("second", tc.next)})
			if !tc.conflict {
				if err != nil {
					t.Errorf("CreateService(%v beside %v) = %v; want success", tc.next, tc.existing, err)
				}
				return
			}
			if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), `service.publish[0]: port 8080/tcp is already published by service "first"`) {
				t.Errorf("CreateService(%v beside %v) = %v; want ErrInvalid naming the port and service first", tc.next, tc.existing, err)
			}
			if after := s.Store.Snapshot(); !proto.Equal(after, before) {
				t.Errorf("a refused create changed the store")
			}
		})
	}
}

// TestCreateServicePortConflictRace interleaves two creates the way two
// concurrent API calls can: both check the published ports against the
// store before either write is committed.
func TestCreateServicePortConflictRace(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	var second error
	r.beforePropose = func() {
		// The first create has passed its checks and is being committed.
		_, second = s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: minimalSpec("b", tcp(8080, 80))})
	}
	_, first := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: minimalSpec("a", tcp(8080, 80))})

	published := 0
	list, _ := s.ListServices(ctx, &shoalv1.ListServicesRequest{})
	for _, svc := range list.GetServices() {
		for _, p := range svc.GetSpec().GetEndpoint().GetPorts() {
			if p.GetPublishedPort() == 8080 {
				published++
			}
		}
	}
	if published != 1 {
		t.Errorf("two concurrent creates of ingress port 8080 returned %v and %v; %d services publish 8080; want 1", first, second, published)
	}
}

func TestUpdateService(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	created := mustCreate(t, s, minimalSpec("web", tcp(8080, 80)))

	next := proto.Clone(created.GetSpec()).(*shoalv1.ServiceSpec)
	next.GetReplicated().Replicas = 5
	next.Task.Container.Image = "nginx:1.26"
	resp, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: "web", Version: created.GetMeta().GetVersion(), Spec: next})
	if err != nil {
		t.Fatalf("UpdateService(web, v%d) = %v; want success", created.GetMeta().GetVersion(), err)
	}
	got := resp.GetService()
	stored := getService(t, s, created.GetId())
	if !proto.Equal(got, stored) {
		t.Errorf("UpdateService returned %v; the store holds %v", got, stored)
	}
	if got.GetMeta().GetVersion() <= created.GetMeta().GetVersion() {
		t.Errorf("UpdateService version = %d; want > %d", got.GetMeta().GetVersion(), created.GetMeta().GetVersion())
	}
	if !proto.Equal(stored.GetPreviousSpec(), created.GetSpec()) {
		t.Errorf("previous_spec = %v; want the spec before the update %v", stored.GetPreviousSpec(), created.GetSpec())
	}
	if stored.GetSpec().GetReplicated().GetReplicas() != 5 || stored.GetSpec().GetTask().GetContainer().GetImage() != "nginx:1.26" {
		t.Errorf("stored spec = %v; want 5 replicas of nginx:1.26", stored.GetSpec())
	}
	if !stored.GetMeta().GetCreatedAt().AsTime().Equal(created.GetMeta().GetCreatedAt().AsTime()) {
		t.Errorf("created_at moved from %v to %v", created.GetMeta().GetCreatedAt(), stored.GetMeta().GetCreatedAt())
	}

	// A second update records the first update's spec as previous.
	third := proto.Clone(stored.GetSpec()).(*shoalv1.ServiceSpec)
	third.GetReplicated().Replicas = 1
	resp, err = s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: created.GetId(), Version: stored.GetMeta().GetVersion(), Spec: third})
	if err != nil {
		t.Fatalf("second UpdateService = %v", err)
	}
	if !proto.Equal(resp.GetService().GetPreviousSpec(), stored.GetSpec()) {
		t.Errorf("previous_spec after two updates = %v; want %v", resp.GetService().GetPreviousSpec(), stored.GetSpec())
	}
}

func TestUpdateServiceRefused(t *testing.T) {
	global := minimalSpec("agents")
	global.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}

	for _, tc := range []struct {
		name    string
		initial *shoalv1.ServiceSpec
		ref     string // service to update; "" means the created one's ID
		version func(created *shoalv1.Service) uint64
		change  func(*shoalv1.ServiceSpec) *shoalv1.ServiceSpec
		cat     error
		text    string
	}{
		{
			name: "stale version", initial: minimalSpec("web"),
			version: func(c *shoalv1.Service) uint64 { return c.GetMeta().GetVersion() - 1 },
			change:  func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec { s.GetReplicated().Replicas = 3; return s },
			cat:     errdefs.ErrConflict, text: "was changed by someone else",
		},
		{
			name: "future version", initial: minimalSpec("web"),
			version: func(c *shoalv1.Service) uint64 { return c.GetMeta().GetVersion() + 7 },
			change:  func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec { s.GetReplicated().Replicas = 3; return s },
			cat:     errdefs.ErrConflict, text: "read it again",
		},
		{
			name: "version 0", initial: minimalSpec("web"),
			version: func(*shoalv1.Service) uint64 { return 0 },
			change:  func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec { s.GetReplicated().Replicas = 3; return s },
			cat:     errdefs.ErrInvalid, text: "service.version: is required",
		},
		{
			name: "rename", initial: minimalSpec("web"),
			change: func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec { s.Name = "www"; return s },
			cat:    errdefs.ErrInvalid, text: `renaming a service is not supported ("web" to "www")`,
		},
		{
			name: "replicated to global", initial: minimalSpec("web"),
			change: func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec {
				s.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
				return s
			},
			cat: errdefs.ErrInvalid, text: "service.mode: a service cannot change between replicated and global",
		},
		{
			name: "global to replicated", initial: global,
			change: func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec {
				s.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 2}}
				return s
			},
			cat: errdefs.ErrInvalid, text: "cannot change between replicated and global",
		},
		{
			name: "invalid spec", initial: minimalSpec("web"),
			change: func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec { s.GetReplicated().Replicas = -1; return s },
			cat:    errdefs.ErrInvalid, text: "service.replicas: must be >= 0, got -1",
		},
		{
			name: "no spec", initial: minimalSpec("web"),
			change: func(*shoalv1.ServiceSpec) *shoalv1.ServiceSpec { return nil },
			cat:    errdefs.ErrInvalid, text: "service.spec: is required",
		},
		{
			name: "port of another service", initial: minimalSpec("web"),
			change: func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec {
				s.Endpoint.Ports = []*shoalv1.PortConfig{tcp(9999, 80)}
				return s
			},
			cat: errdefs.ErrInvalid, text: `port 9999/tcp is already published by service "other"`,
		},
		{
			name: "unknown service", initial: minimalSpec("web"), ref: "nope",
			change: func(s *shoalv1.ServiceSpec) *shoalv1.ServiceSpec { return s },
			cat:    errdefs.ErrNotFound, text: `service "nope"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t)
			ctx := context.Background()
			mustCreate(t, s, minimalSpec("other", tcp(9999, 80)))
			created := mustCreate(t, s, tc.initial)
			// Move the version on once so that "stale" has a real older
			// version to send.
			bump := proto.Clone(created.GetSpec()).(*shoalv1.ServiceSpec)
			bump.Labels = map[string]string{"bumped": "1"}
			up, err := s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: created.GetId(), Version: created.GetMeta().GetVersion(), Spec: bump})
			if err != nil {
				t.Fatalf("UpdateService(bump) = %v", err)
			}
			created = up.GetService()
			before := s.Store.Snapshot()

			version := created.GetMeta().GetVersion()
			if tc.version != nil {
				version = tc.version(created)
			}
			ref := tc.ref
			if ref == "" {
				ref = created.GetId()
			}
			spec := tc.change(proto.Clone(created.GetSpec()).(*shoalv1.ServiceSpec))
			_, err = s.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: ref, Version: version, Spec: spec})
			if !errdefs.Is(err, tc.cat) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("UpdateService(%s) = %v; want %v containing %q", tc.name, err, tc.cat, tc.text)
			}
			if after := s.Store.Snapshot(); !proto.Equal(after, before) {
				t.Errorf("UpdateService(%s) was refused but changed the store:\n%v\nwant\n%v", tc.name, after, before)
			}
		})
	}
}

func TestUpdateServiceKeepsOwnPort(t *testing.T) {
	s, _ := newTestServer(t)
	created := mustCreate(t, s, minimalSpec("web", tcp(8080, 80)))
	spec := proto.Clone(created.GetSpec()).(*shoalv1.ServiceSpec)
	spec.GetReplicated().Replicas = 4
	if _, err := s.UpdateService(context.Background(), &shoalv1.UpdateServiceRequest{ServiceId: "web", Version: created.GetMeta().GetVersion(), Spec: spec}); err != nil {
		t.Errorf("UpdateService(web keeping its own port 8080) = %v; want success", err)
	}
}

func TestRemoveService(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	web := mustCreate(t, s, minimalSpec("web"))
	db := mustCreate(t, s, minimalSpec("db"))

	if _, err := s.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "web"}); err != nil {
		t.Fatalf("RemoveService(web) = %v", err)
	}
	if _, err := s.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: web.GetId()}); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetService(removed web) = %v; want ErrNotFound", err)
	}
	if getService(t, s, db.GetId()) == nil {
		t.Errorf("RemoveService(web) also removed db")
	}
	if _, err := s.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "web"}); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("RemoveService(web) twice = %v; want ErrNotFound", err)
	}
	// The name is free again.
	mustCreate(t, s, minimalSpec("web"))
}

func TestGetServiceFind(t *testing.T) {
	s, r := newTestServer(t)
	ctx := context.Background()
	svc := func(id, name string) *shoalv1.Service {
		return &shoalv1.Service{Id: id, Spec: minimalSpec(name)}
	}
	seed(t, r, svc("abc111", "web"), svc("abc222", "db"), svc("xyz999", "cache"), svc("q1", "abc111x"))

	for _, tc := range []struct {
		ref    string
		wantID string
		cat    error
	}{
		{ref: "abc111", wantID: "abc111"},
		{ref: "web", wantID: "abc111"},
		{ref: "cache", wantID: "xyz999"},
		{ref: "abc2", wantID: "abc222"},
		{ref: "x", wantID: "xyz999"},
		{ref: "abc111x", wantID: "q1"}, // a name, not a prefix
		{ref: "abc", cat: errdefs.ErrInvalid},
		{ref: "", cat: errdefs.ErrInvalid},
		{ref: "nope", cat: errdefs.ErrNotFound},
	} {
		resp, err := s.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: tc.ref})
		if tc.cat != nil {
			if !errdefs.Is(err, tc.cat) {
				t.Errorf("GetService(%q) = %v, %v; want %v", tc.ref, resp.GetService().GetId(), err, tc.cat)
			}
			continue
		}
		if err != nil || resp.GetService().GetId() != tc.wantID {
			t.Errorf("GetService(%q) = %q, %v; want %q", tc.ref, resp.GetService().GetId(), err, tc.wantID)
		}
	}

	list, err := s.ListServices(ctx, &shoalv1.ListServicesRequest{})
	if err != nil || len(list.GetServices()) != 4 {
		t.Errorf("ListServices() = %d services, %v; want 4", len(list.GetServices()), err)
	}
}

// ValidateService refuses what CreateService refuses in the spec itself,
// takes a spec naming objects that do not exist yet, and writes nothing.
func TestValidateService(t *testing.T) {
	s, r := newTestServer(t)
	for _, spec := range []*shoalv1.ServiceSpec{nil, minimalSpec(""), minimalSpec("web", tcp(8080, 0))} {
		if _, err := s.ValidateService(context.Background(), &shoalv1.ValidateServiceRequest{Spec: spec}); !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ValidateService(%v) = %v; want ErrInvalid", spec, err)
		}
	}
	ok := minimalSpec("app_web", tcp(8080, 80))
	ok.Networks = []*shoalv1.NetworkAttachment{{Target: "app_default"}}
	ok.Task.Container.Secrets = []*shoalv1.SecretReference{{SecretName: "app_db"}}
	if _, err := s.ValidateService(context.Background(), &shoalv1.ValidateServiceRequest{Spec: ok}); err != nil {
		t.Errorf("a spec naming a network and a secret still to create: %v", err)
	}
	if n := r.proposalCount(); n != 0 {
		t.Errorf("validation proposed %d entries; want 0", n)
	}
	if ok.GetTask().GetRestart() != nil {
		t.Error("validation changed the caller's spec")
	}
}
