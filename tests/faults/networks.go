package faults

import (
	"encoding/json"
	"net/netip"
)

// NetworkJSON is what `network inspect` prints of a network that the
// tests read.
type NetworkJSON struct {
	ID         string                `json:"id"`
	Spec       struct{ Name string } `json:"spec"`
	Allocation struct {
		Vni     uint32 `json:"vni"`
		Subnet  string `json:"subnet"`
		Gateway string `json:"gateway"`
	} `json:"allocation"`
}

// Network is a network as `network inspect` shows it, by name or ID.
func (e *Env) Network(name string) NetworkJSON {
	e.T.Helper()
	var nets []NetworkJSON
	if err := json.Unmarshal([]byte(e.C.Managers[0].MustCLI("network", "inspect", name)), &nets); err != nil || len(nets) != 1 {
		e.T.Fatalf("network inspect %s: %v", name, err)
	}
	return nets[0]
}

// ServiceVIP is a service's VIP on a network (by the network's name).
func (e *Env) ServiceVIP(svc, network string) netip.Addr {
	e.T.Helper()
	id := e.Network(network).ID
	var svcs []struct {
		Endpoint struct {
			VirtualIps []struct {
				NetworkID string `json:"network_id"`
				Addr      string `json:"addr"`
			} `json:"virtual_ips"`
		} `json:"endpoint"`
	}
	if err := json.Unmarshal([]byte(e.C.Managers[0].MustCLI("service", "inspect", svc)), &svcs); err != nil || len(svcs) != 1 {
		e.T.Fatalf("service inspect %s: %v", svc, err)
	}
	for _, v := range svcs[0].Endpoint.VirtualIps {
		if p, err := netip.ParsePrefix(v.Addr); err == nil && v.NetworkID == id {
			return p.Addr()
		}
	}
	e.T.Fatalf("%s has no VIP on %s", svc, network)
	return netip.Addr{}
}
