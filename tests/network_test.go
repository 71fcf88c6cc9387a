package tests

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
)

// Networks through the CLI: swarm init makes the ingress network; a
// created network gets the next free subnet and VNI; bad and overlapping
// subnets are refused with clear errors; a service on a network gets a
// VIP there (and on ingress for a published port), its tasks distinct
// addresses; a network in use cannot be removed, and can once its service
// is gone.
func TestNetworkAPI(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 0)
	img := struct{ Ref string }{e.Image}
	m := e.C.Managers[0]
	ls := func() map[string]faults.NetworkJSON {
		var nets []faults.NetworkJSON
		if err := json.Unmarshal([]byte(m.MustCLI("network", "ls", "--format", "json")), &nets); err != nil {
			t.Fatal(err)
		}
		out := map[string]faults.NetworkJSON{}
		for _, n := range nets {
			out[n.Spec.Name] = n
		}
		return out
	}
	nets := ls()
	if in := nets["ingress"]; in.Allocation.Subnet != "10.0.0.0/24" || in.Allocation.Vni != 4096 {
		t.Fatalf("ingress network = %+v; want 10.0.0.0/24, VNI 4096", in)
	}
	m.MustCLI("network", "create", "app")
	app := ls()["app"]
	if app.Allocation.Subnet != "10.0.1.0/24" || app.Allocation.Gateway != "10.0.1.1" || app.Allocation.Vni != 4097 {
		t.Fatalf("app = %+v; want 10.0.1.0/24 via 10.0.1.1, VNI 4097", app)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "app"}, `network name "app" is already in use`},
		{[]string{"network", "create", "--subnet", "10.0.1.128/25", "other"}, `overlaps 10.0.1.0/24 of network "app"`},
		{[]string{"network", "create", "--subnet", "10.9.0.1/24", "other"}, "did you mean 10.9.0.0/24"},
		{[]string{"network", "create", "--subnet", "10.9.0.0/24", "--gateway", "10.8.0.1", "other"}, "not a host address of the subnet"},
		{[]string{"network", "create", "--driver", "bridge", "other"}, `"bridge" is not supported`},
		{[]string{"network", "create", "--ingress", "other"}, "already the ingress network"},
		{[]string{"service", "create", "--name", "bad", "--network", "nosuch", img.Ref}, `network "nosuch" not found`},
		{[]string{"service", "create", "--name", "bad", "--network", "ingress", img.Ref}, "joined by publishing a port"},
	} {
		if _, err := m.CLI(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("shoal %s = %v; want an error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if got := len(ls()); got != 2 {
		t.Fatalf("%d networks after the refused creates; want 2", got)
	}
	m.MustCLI("network", "create", "--subnet", "192.168.50.0/24", "custom")
	if got := ls()["custom"].Allocation; got.Subnet != "192.168.50.0/24" || got.Gateway != "192.168.50.1" {
		t.Errorf("custom = %+v", got)
	}

	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "3", "--network", "app", "-p", "8080:80", img.Ref)
	var svcs []struct {
		Spec struct {
			Networks []struct{ Target string } `json:"networks"`
		} `json:"spec"`
		Endpoint struct {
			VirtualIps []struct {
				NetworkID string `json:"network_id"`
				Addr      string `json:"addr"`
			} `json:"virtual_ips"`
		} `json:"endpoint"`
	}
	if err := json.Unmarshal([]byte(m.MustCLI("service", "inspect", "web")), &svcs); err != nil || len(svcs) != 1 {
		t.Fatalf("inspect web: %v", err)
	}
	if tg := svcs[0].Spec.Networks; len(tg) != 1 || tg[0].Target != app.ID {
		t.Errorf("the spec's network %v was not resolved to app's ID %s", tg, app.ID)
	}
	vips := map[string]string{}
	for _, v := range svcs[0].Endpoint.VirtualIps {
		vips[v.NetworkID] = v.Addr
	}
	// On ingress, the node has its own address for the routing mesh,
	// distinct from the VIP.
	var nodeIngress string
	harness.Eventually(t, 10*time.Second, func() error {
		var nodes []struct {
			Ingress struct{ Addr string } `json:"ingress"`
		}
		if err := json.Unmarshal([]byte(m.MustCLI("node", "ls", "--format", "json")), &nodes); err != nil || len(nodes) != 1 {
			return fmt.Errorf("node ls: %v", err)
		}
		if nodeIngress = nodes[0].Ingress.Addr; nodeIngress == "" {
			return fmt.Errorf("the node has no ingress address yet")
		}
		return nil
	})
	iv := vips[nets["ingress"].ID]
	if vips[app.ID] != "10.0.1.2/24" || !strings.HasPrefix(iv, "10.0.0.") || iv == "10.0.0.1/24" || iv == nodeIngress {
		t.Fatalf("VIPs = %v (node's ingress address %s); want 10.0.1.2/24 on app and another address of 10.0.0.0/24 on ingress:\n%s", vips, nodeIngress, m.MustCLI("service", "inspect", "web"))
	}
	var tasks []struct {
		ID           string `json:"id"`
		DesiredState string `json:"desired_state"`
		Networks     []struct {
			NetworkID string `json:"network_id"`
			Addr      string `json:"addr"`
			Vip       string `json:"vip"`
		} `json:"networks"`
	}
	harness.Eventually(t, 10*time.Second, func() error {
		if err := json.Unmarshal([]byte(m.MustCLI("service", "ps", "--format", "json", "web")), &tasks); err != nil {
			return err
		}
		if len(tasks) != 3 {
			return fmt.Errorf("%d tasks", len(tasks))
		}
		return nil
	})
	seen := map[string]bool{}
	for _, tk := range tasks {
		if len(tk.Networks) != 2 {
			t.Fatalf("task %s has %d interfaces; want app and ingress", tk.ID, len(tk.Networks))
		}
		for _, n := range tk.Networks {
			p := netip.MustParsePrefix(n.Addr)
			key := n.NetworkID + "/" + p.Addr().String()
			if seen[key] || n.Addr == vips[n.NetworkID] || p.Addr().String() == "10.0.1.1" || p.Addr().String() == "10.0.0.1" || n.Addr == nodeIngress {
				t.Errorf("task %s got %s on %s: taken, the VIP or the gateway", tk.ID, n.Addr, n.NetworkID)
			}
			seen[key] = true
			if n.Vip != vips[n.NetworkID] {
				t.Errorf("task %s carries VIP %s on %s; the service has %s", tk.ID, n.Vip, n.NetworkID, vips[n.NetworkID])
			}
		}
	}

	if _, err := m.CLI("network", "rm", "app"); err == nil || !strings.Contains(err.Error(), "in use by service web") {
		t.Errorf("network rm app while web uses it = %v", err)
	}
	m.MustCLI("service", "rm", "web")
	harness.Eventually(t, 30*time.Second, func() error {
		_, err := m.CLI("network", "rm", "app")
		return err
	})
	if _, ok := ls()["app"]; ok {
		t.Error("app still listed after network rm")
	}
}

// Addresses survive a leader change without reuse: a service created
// after the leader died gets a VIP and task addresses no other holds.
func TestNetworkAllocationAcrossLeaderChange(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 3, 0)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "one", "--replicas", "2", "--network", "app", e.Image)
	e.Eventually(60*time.Second, func() error { return e.Converged("one", 2) })
	leader := e.C.Leader(10 * time.Second)
	leader.Kill()
	var other *harness.Node
	for _, n := range e.C.Managers {
		if n != leader {
			other = n
			break
		}
	}
	harness.Eventually(t, 20*time.Second, func() error {
		_, err := other.CLI("service", "create", "-d", "--name", "two", "--replicas", "2", "--network", "app", e.Image)
		return err
	})
	e.Eventually(60*time.Second, func() error { return e.Converged("two", 2) })
	seen := map[string]string{}
	for _, svc := range []string{"one", "two"} {
		var got []struct {
			Endpoint struct {
				VirtualIps []struct{ Addr string } `json:"virtual_ips"`
			} `json:"endpoint"`
		}
		if err := json.Unmarshal([]byte(other.MustCLI("service", "inspect", svc)), &got); err != nil || len(got) != 1 {
			t.Fatalf("inspect %s: %v", svc, err)
		}
		addrs := []string{got[0].Endpoint.VirtualIps[0].Addr}
		var tasks []struct {
			DesiredState string                  `json:"desired_state"`
			Networks     []struct{ Addr string } `json:"networks"`
		}
		if err := json.Unmarshal([]byte(other.MustCLI("service", "ps", "--format", "json", svc)), &tasks); err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			if tk.DesiredState == "TASK_STATE_RUNNING" {
				addrs = append(addrs, tk.Networks[0].Addr)
			}
		}
		for _, a := range addrs {
			if prev, ok := seen[a]; ok {
				t.Errorf("%s is held by %s and %s", a, prev, svc)
			}
			seen[a] = svc
		}
	}
	if len(seen) != 6 {
		t.Errorf("%d distinct addresses for 2 VIPs and 4 tasks: %v", len(seen), seen)
	}
}
