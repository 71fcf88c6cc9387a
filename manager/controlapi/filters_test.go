package controlapi

import (
	"context"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/manager/auth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func fl(kv ...string) []*shoalv1.Filter {
	var out []*shoalv1.Filter
	for _, x := range kv {
		k, v, _ := strings.Cut(x, "=")
		out = append(out, &shoalv1.Filter{Key: k, Values: []string{v}})
	}
	return out
}

func TestParseFiltersRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   []*shoalv1.Filter
		keys []filterKey
		want string
	}{
		{fl("bogus=1"), serviceFilters, "invalid filter 'bogus': use id, label, mode, name"},
		{fl("mode=both"), serviceFilters, "invalid filter 'mode=both': use replicated, global, replicated-job, global-job"},
		{fl("role=boss"), nodeFilters, "invalid filter 'role=boss'"},
		{fl("desired-state=dead"), taskFilters, "invalid filter 'desired-state=dead'"},
		{fl("type=weird"), networkFilters, "invalid filter 'type=weird'"},
		{fl("mode=global"), fileFilters, "invalid filter 'mode'"},
	} {
		if _, err := parseFilters(tc.in, tc.keys...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want %q", tc.in, err, tc.want)
		}
	}
}

func TestFilterMatches(t *testing.T) {
	web := &shoalv1.Service{Id: "abc123", Spec: &shoalv1.ServiceSpec{Name: "web", Labels: map[string]string{"tier": "front"},
		Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{}}}}
	agent := &shoalv1.Service{Id: "def456", Spec: &shoalv1.ServiceSpec{Name: "agent", Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}}}
	n1 := &shoalv1.Node{Id: "n1aaaaa", Role: shoalv1.NodeRole_NODE_ROLE_MANAGER, Spec: &shoalv1.NodeSpec{Labels: map[string]string{"zone": "a"}},
		Description: &shoalv1.NodeDescription{Hostname: "host1", EngineLabels: map[string]string{"ssd": "true"}}}
	n2 := &shoalv1.Node{Id: "n2bbbbb", Role: shoalv1.NodeRole_NODE_ROLE_WORKER, Description: &shoalv1.NodeDescription{Hostname: "host2"}}
	ingress := &shoalv1.Network{Id: "ing", Spec: &shoalv1.NetworkSpec{Name: "ingress", Ingress: true}}
	appnet := &shoalv1.Network{Id: "appnetid", Spec: &shoalv1.NetworkSpec{Name: "appnet", Labels: map[string]string{"team": "x"}}}
	running := &shoalv1.Task{Id: "t1", ServiceName: "web", ServiceId: "abc123", Slot: 2, NodeId: "n1aaaaa", DesiredState: shoalv1.TaskState_TASK_STATE_RUNNING}
	old := &shoalv1.Task{Id: "t2", ServiceName: "web", ServiceId: "abc123", Slot: 2, NodeId: "n2bbbbb", DesiredState: shoalv1.TaskState_TASK_STATE_SHUTDOWN}
	hosts := map[string]string{"n1aaaaa": "host1", "n2bbbbb": "host2"}
	for _, tc := range []struct {
		name    string
		filters []*shoalv1.Filter
		keys    []filterKey
		match   func(filters) bool
		want    bool
	}{
		{"no filter", nil, serviceFilters, func(f filters) bool { return f.service(web) }, true},
		{"service name prefix", fl("name=we"), serviceFilters, func(f filters) bool { return f.service(web) }, true},
		{"service name other", fl("name=ag"), serviceFilters, func(f filters) bool { return f.service(web) }, false},
		{"service id prefix", fl("id=abc"), serviceFilters, func(f filters) bool { return f.service(web) }, true},
		{"service label key", fl("label=tier"), serviceFilters, func(f filters) bool { return f.service(web) }, true},
		{"service label key=value", fl("label=tier=back"), serviceFilters, func(f filters) bool { return f.service(web) }, false},
		{"service mode", fl("mode=global"), serviceFilters, func(f filters) bool { return f.service(agent) }, true},
		{"service mode other", fl("mode=global"), serviceFilters, func(f filters) bool { return f.service(web) }, false},
		{"two values of a key: either", []*shoalv1.Filter{{Key: "name", Values: []string{"agent", "web"}}}, serviceFilters, func(f filters) bool { return f.service(web) }, true},
		{"two keys: both", fl("name=web", "mode=global"), serviceFilters, func(f filters) bool { return f.service(web) }, false},
		{"node role", fl("role=manager"), nodeFilters, func(f filters) bool { return f.node(n1) }, true},
		{"node role other", fl("role=manager"), nodeFilters, func(f filters) bool { return f.node(n2) }, false},
		{"node name", fl("name=host2"), nodeFilters, func(f filters) bool { return f.node(n2) }, true},
		{"node.label", fl("node.label=zone=a"), nodeFilters, func(f filters) bool { return f.node(n1) }, true},
		{"engine label", fl("label=ssd"), nodeFilters, func(f filters) bool { return f.node(n2) }, false},
		{"membership", fl("membership=pending"), nodeFilters, func(f filters) bool { return f.node(n1) }, false},
		{"network type builtin", fl("type=builtin"), networkFilters, func(f filters) bool { return f.network(ingress) }, true},
		{"network type custom", fl("type=custom"), networkFilters, func(f filters) bool { return f.network(ingress) }, false},
		{"network name part", fl("name=pne"), networkFilters, func(f filters) bool { return f.network(appnet) }, true},
		{"network driver", fl("driver=overlay"), networkFilters, func(f filters) bool { return f.network(appnet) }, true},
		{"network scope", fl("scope=local"), networkFilters, func(f filters) bool { return f.network(appnet) }, false},
		{"task desired running", fl("desired-state=running"), taskFilters, func(f filters) bool { return f.task(running, func(id string) string { return hosts[id] }) }, true},
		{"task desired shutdown", fl("desired-state=running"), taskFilters, func(f filters) bool { return f.task(old, func(id string) string { return hosts[id] }) }, false},
		{"task node by hostname", fl("node=host2"), taskFilters, func(f filters) bool { return f.task(old, func(id string) string { return hosts[id] }) }, true},
		{"task node by ID", fl("node=n1aaaaa"), taskFilters, func(f filters) bool { return f.task(old, func(id string) string { return hosts[id] }) }, false},
		{"task name", fl("name=web.2"), taskFilters, func(f filters) bool { return f.task(old, func(id string) string { return hosts[id] }) }, true},
		{"file label", fl("label=a=b"), fileFilters, func(f filters) bool { return f.file("s1", "db", map[string]string{"a": "b"}) }, true},
	} {
		f, err := parseFilters(tc.filters, tc.keys...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := tc.match(f); got != tc.want {
			t.Errorf("%s: match = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestListServicesFiltered(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	for _, spec := range []*shoalv1.ServiceSpec{
		{Name: "web", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx"}}},
		{Name: "agent", Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}, Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx"}}},
	} {
		if _, err := s.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.ListServices(ctx, &shoalv1.ListServicesRequest{Filters: fl("mode=global")})
	if err != nil || len(resp.GetServices()) != 1 || resp.GetServices()[0].GetSpec().GetName() != "agent" {
		t.Fatalf("ListServices mode=global = %v, %v", resp, err)
	}
	if _, err := s.ListServices(ctx, &shoalv1.ListServicesRequest{Filters: fl("colour=red")}); err == nil {
		t.Fatal("an unknown filter was taken")
	}
	sec, err := s.ListSecrets(ctx, &shoalv1.ListSecretsRequest{Filters: fl("name=x")})
	if err != nil || len(sec.GetSecrets()) != 0 {
		t.Fatalf("ListSecrets = %v, %v", sec, err)
	}
}

func TestSelfRef(t *testing.T) {
	ctx := auth.With(context.Background(), auth.Caller{NodeID: "node1"})
	if got := selfRef(ctx, "self"); got != "node1" {
		t.Errorf("self = %q", got)
	}
	if got := selfRef(ctx, "host2"); got != "host2" {
		t.Errorf("another ref changed: %q", got)
	}
	if got := selfRef(context.Background(), "self"); got != "self" {
		t.Errorf("self without a caller = %q", got)
	}
}
