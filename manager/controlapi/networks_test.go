package controlapi

import (
	"context"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestValidateNetworkSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *shoalv1.NetworkSpec
		want string // "" = valid
	}{
		{"minimal", &shoalv1.NetworkSpec{Name: "app"}, ""},
		{"full", &shoalv1.NetworkSpec{Name: "app", Driver: "overlay", Subnet: "10.5.0.0/16", Gateway: "10.5.0.254"}, ""},
		{"nil", nil, "a spec is required"},
		{"no name", &shoalv1.NetworkSpec{}, "network.name: is required"},
		{"bad driver", &shoalv1.NetworkSpec{Name: "a", Driver: "macvlan"}, `network.driver: "macvlan" is not supported`},
		{"not a cidr", &shoalv1.NetworkSpec{Name: "a", Subnet: "10.0.0.0"}, "not an IPv4 CIDR"},
		{"ipv6", &shoalv1.NetworkSpec{Name: "a", Subnet: "fd00::/64"}, "not an IPv4 CIDR"},
		{"host bits", &shoalv1.NetworkSpec{Name: "a", Subnet: "10.0.0.5/24"}, "did you mean 10.0.0.0/24"},
		{"too small", &shoalv1.NetworkSpec{Name: "a", Subnet: "10.0.0.0/30"}, "between /8 and /29"},
		{"gateway without subnet", &shoalv1.NetworkSpec{Name: "a", Gateway: "10.0.0.1"}, "needs a subnet"},
		{"gateway outside", &shoalv1.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.1.1"}, "not a host address"},
		{"gateway is the broadcast", &shoalv1.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.0.255"}, "not a host address"},
		{"gateway is the network", &shoalv1.NetworkSpec{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.0.0"}, "not a host address"},
		{"mtu", &shoalv1.NetworkSpec{Name: "a", Options: map[string]string{"com.docker.network.driver.mtu": "1400"}}, ""},
		{"mtu too small", &shoalv1.NetworkSpec{Name: "a", Options: map[string]string{"com.docker.network.driver.mtu": "100"}}, `network.options.com.docker.network.driver.mtu: "100" is not an MTU from 576 to 8950`},
		{"mtu not a number", &shoalv1.NetworkSpec{Name: "a", Options: map[string]string{"com.docker.network.driver.mtu": "big"}}, "is not an MTU"},
		{"encrypted", &shoalv1.NetworkSpec{Name: "a", Options: map[string]string{"encrypted": ""}}, "does not encrypt its traffic"},
		{"vxlan ids", &shoalv1.NetworkSpec{Name: "a", Options: map[string]string{"com.docker.network.driver.overlay.vxlanid_list": "4097"}}, "choose each network's VXLAN ID"},
		{"unknown option", &shoalv1.NetworkSpec{Name: "a", Options: map[string]string{"colour": "red"}}, "network.options.colour: unknown option"},
	} {
		err := ValidateNetworkSpec(tc.spec)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v; want an invalid-argument error with %q", tc.name, err, tc.want)
		}
	}
}

func createNetwork(t *testing.T, s *Server, spec *shoalv1.NetworkSpec) *shoalv1.Network {
	t.Helper()
	resp, err := s.CreateNetwork(context.Background(), &shoalv1.CreateNetworkRequest{Spec: spec})
	if err != nil {
		t.Fatalf("CreateNetwork(%v) = %v", spec, err)
	}
	return resp.GetNetwork()
}

func TestCreateNetworkAllocates(t *testing.T) {
	s, r := newTestServer(t)
	seed(t, r, testCluster())
	a := createNetwork(t, s, &shoalv1.NetworkSpec{Name: "a"})
	b := createNetwork(t, s, &shoalv1.NetworkSpec{Name: "b"})
	if a.GetAllocation().GetSubnet() != "10.0.1.0/24" || b.GetAllocation().GetSubnet() != "10.0.2.0/24" {
		t.Errorf("subnets %s, %s; want 10.0.1.0/24, 10.0.2.0/24 (10.0.0.0/24 is ingress)", a.GetAllocation().GetSubnet(), b.GetAllocation().GetSubnet())
	}
	if a.GetAllocation().GetVni() == b.GetAllocation().GetVni() || a.GetAllocation().GetVni() < 4096 {
		t.Errorf("VNIs %d, %d", a.GetAllocation().GetVni(), b.GetAllocation().GetVni())
	}
	before := r.proposalCount()
	_, err := s.CreateNetwork(context.Background(), &shoalv1.CreateNetworkRequest{Spec: &shoalv1.NetworkSpec{Name: "c", Subnet: "10.0.0.0/16"}})
	if err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("an overlapping subnet: %v", err)
	}
	if r.proposalCount() != before {
		t.Error("a refused network was proposed")
	}
	// The store refuses an overlap that slipped past the check.
	nw := &shoalv1.Network{Id: "x", Spec: &shoalv1.NetworkSpec{Name: "x"}, Allocation: &shoalv1.NetworkAllocation{Vni: 9999, Subnet: "10.0.1.128/25"}}
	if _, err := r.Propose(context.Background(), &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{create(nw)}}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("the store took an overlapping subnet: %v", err)
	}
}

func TestServiceEndpointAllocation(t *testing.T) {
	s, r := newTestServer(t)
	seed(t, r, testCluster())
	app := createNetwork(t, s, &shoalv1.NetworkSpec{Name: "app"})
	spec := &shoalv1.ServiceSpec{
		Name: "web", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx:1.25"}},
		Networks: []*shoalv1.NetworkAttachment{{Target: "app"}},
		Endpoint: &shoalv1.EndpointSpec{Ports: []*shoalv1.PortConfig{{TargetPort: 80}}},
	}
	resp, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	svc := resp.GetService()
	if got := svc.GetSpec().GetNetworks()[0].GetTarget(); got != app.GetId() {
		t.Errorf("network target %q not resolved to %s", got, app.GetId())
	}
	vips := map[string]string{}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		vips[v.GetNetworkId()] = v.GetAddr()
	}
	if vips[app.GetId()] != "10.0.1.2/24" || vips["ingress1"] != "10.0.0.2/24" {
		t.Errorf("VIPs %v", vips)
	}
	if p := svc.GetEndpoint().GetPorts(); len(p) != 1 || p[0].GetPublishedPort() != 30000 {
		t.Errorf("ports %v; want the target published on 30000", p)
	}
	// A second service gets other VIPs and another port.
	spec2 := clone(spec)
	spec2.Name = "api"
	resp2, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: spec2})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp2.GetService().GetEndpoint().GetVirtualIps()[0].GetAddr(); v != "10.0.1.3/24" {
		t.Errorf("second VIP %s; want 10.0.1.3/24", v)
	}
	if p := resp2.GetService().GetEndpoint().GetPorts()[0].GetPublishedPort(); p != 30001 {
		t.Errorf("second port %d; want 30001", p)
	}
	// An update keeps the VIPs and the port.
	cur := getService(t, s, "web")
	next := clone(cur.GetSpec())
	next.GetTask().GetContainer().Image = "nginx:1.26"
	up, err := s.UpdateService(context.Background(), &shoalv1.UpdateServiceRequest{ServiceId: cur.GetId(), Version: cur.GetMeta().GetVersion(), Spec: next})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := up.GetService().GetEndpoint().String(), cur.GetEndpoint().String(); a != b {
		t.Errorf("the update changed the endpoint:\n%s\n%s", b, a)
	}
	// DNS round-robin cannot publish through the mesh.
	bad := clone(spec)
	bad.Name = "rr"
	bad.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
	if _, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: bad}); err == nil || !strings.Contains(err.Error(), "dnsrr") {
		t.Errorf("dnsrr with an ingress port: %v", err)
	}
}

func TestRemoveNetworkInUse(t *testing.T) {
	s, r := newTestServer(t)
	seed(t, r, testCluster())
	createNetwork(t, s, &shoalv1.NetworkSpec{Name: "app"})
	if _, err := s.CreateService(context.Background(), &shoalv1.CreateServiceRequest{Spec: &shoalv1.ServiceSpec{
		Name: "web", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx"}},
		Networks: []*shoalv1.NetworkAttachment{{Target: "app"}},
	}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.RemoveNetwork(context.Background(), &shoalv1.RemoveNetworkRequest{NetworkId: "app"})
	if err == nil || !strings.Contains(err.Error(), "in use by service web") || !errdefs.Is(err, errdefs.ErrFailedPrecond) {
		t.Fatalf("RemoveNetwork in use = %v", err)
	}
	if _, err := s.RemoveService(context.Background(), &shoalv1.RemoveServiceRequest{ServiceId: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveNetwork(context.Background(), &shoalv1.RemoveNetworkRequest{NetworkId: "app"}); err != nil {
		t.Fatalf("RemoveNetwork once unused = %v", err)
	}
	s.Store.View(func(rt store.ReadTx) {
		if n := store.List[*shoalv1.Network](rt, store.TableNetwork); len(n) != 1 {
			t.Errorf("%d networks left; want ingress only", len(n))
		}
	})
}

func TestRemoveNetworkWithContainers(t *testing.T) {
	s, r := newTestServer(t)
	seed(t, r, testCluster())
	app := createNetwork(t, s, &shoalv1.NetworkSpec{Name: "app", Attachable: true})
	seed(t, r, &shoalv1.Node{Id: "n1", Description: &shoalv1.NodeDescription{Hostname: "host1"},
		Attachments: []*shoalv1.ContainerAttachment{{Id: "a1", ContainerName: "debug", Network: &shoalv1.TaskNetwork{NetworkId: app.GetId(), Addr: "10.0.1.2/24"}}}})
	_, err := s.RemoveNetwork(context.Background(), &shoalv1.RemoveNetworkRequest{NetworkId: "app"})
	if err == nil || !strings.Contains(err.Error(), "in use by container debug on host1") || !errdefs.Is(err, errdefs.ErrFailedPrecond) {
		t.Fatalf("RemoveNetwork with a container on it = %v", err)
	}
	s.Store.View(func(rt store.ReadTx) {
		if store.Get[*shoalv1.Network](rt, store.TableNetwork, app.GetId()) == nil {
			t.Error("the refused removal removed the network")
		}
	})
}
