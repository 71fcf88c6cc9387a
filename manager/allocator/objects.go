package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/manager/addrs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// InUse reports whether something in the store holds address a on a
// network (the leader asks its store's index: store.AddrInUse).
type InUse func(network string, a netip.Addr) bool

// AttachContainer gives a standalone container a fresh address on an
// attachable network (held in h). The container is known on the network
// by its name.
func AttachContainer(nw *shoalv1.Network, id, name string, used InUse, h *Held) (*shoalv1.ContainerAttachment, error) {
	if nw.GetSpec().GetIngress() {
		return nil, fmt.Errorf("network %q is the ingress network, which only the routing mesh uses; attach to an overlay network created with --attachable", nw.GetSpec().GetName())
	}
	if !nw.GetSpec().GetAttachable() {
		return nil, fmt.Errorf("network %q is not attachable: standalone containers join only networks created with shoal network create --attachable", nw.GetSpec().GetName())
	}
	addr, err := nextIn(nw, used, h)
	if err != nil {
		return nil, err
	}
	tn := &shoalv1.TaskNetwork{
		NetworkId: nw.GetId(), NetworkName: nw.GetSpec().GetName(), Vni: nw.GetAllocation().GetVni(),
		Addr: addr.String(), Gateway: nw.GetAllocation().GetGateway(), Mtu: MTU(nw),
	}
	if name != "" {
		tn.Aliases = []string{name}
	}
	return &shoalv1.ContainerAttachment{Id: id, ContainerName: name, Network: tn}, nil
}

// NodeIngress gives a node its own address on the ingress network (held
// in h), or returns nil when it already has one there.
func NodeIngress(node *shoalv1.Node, ingress *shoalv1.Network, used InUse, h *Held) (*shoalv1.NodeAttachment, error) {
	if a := node.GetIngress(); a.GetNetworkId() == ingress.GetId() && a.GetAddr() != "" {
		return nil, nil
	}
	addr, err := nextIn(ingress, used, h)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node.GetId(), err)
	}
	return &shoalv1.NodeAttachment{NetworkId: ingress.GetId(), Addr: addr.String()}, nil
}

// Publishes reports whether a spec publishes any port, through the
// routing mesh or on the hosts of its tasks: either way its tasks need an
// address on the ingress network for the node to forward to.
func Publishes(spec *shoalv1.ServiceSpec) bool {
	for _, p := range spec.GetEndpoint().GetPorts() {
		if p.GetPublishedPort() != 0 || p.GetPublishMode() != shoalv1.PublishMode_PUBLISH_MODE_HOST {
			return true
		}
	}
	return false
}

// publishesIngress reports whether a spec publishes a port through the
// routing mesh.
func publishesIngress(spec *shoalv1.ServiceSpec) bool {
	for _, p := range spec.GetEndpoint().GetPorts() {
		if p.GetPublishMode() != shoalv1.PublishMode_PUBLISH_MODE_HOST {
			return true
		}
	}
	return false
}

// Endpoint is the input of AllocateEndpoint.
type Endpoint struct {
	Spec     *shoalv1.ServiceSpec        // networks already resolved to IDs
	Current  *shoalv1.Service            // the service before this change; nil on create
	Networks map[string]*shoalv1.Network // by ID
	Ingress  *shoalv1.Network            // nil when the cluster has none
	Used     InUse
	// PortInUse reports whether another service holds a published port
	// ("30000/tcp").
	PortInUse func(key string) bool
}

// AllocateEndpoint gives a service a VIP on each of its networks (in VIP
// mode; plus the ingress network when it publishes a port in ingress
// mode) and a number for each ingress port published without one,
// keeping what the current service already has, and holds the new ones.
func AllocateEndpoint(in Endpoint, h *Held) (*shoalv1.ServiceEndpoint, error) {
	ep := &shoalv1.ServiceEndpoint{}
	vip := in.Spec.GetEndpoint().GetMode() != shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
	have := map[string]string{}
	for _, v := range in.Current.GetEndpoint().GetVirtualIps() {
		have[v.GetNetworkId()] = v.GetAddr()
	}
	var ids []string
	for _, a := range in.Spec.GetNetworks() {
		ids = append(ids, a.GetTarget())
	}
	if publishesIngress(in.Spec) {
		if in.Ingress == nil {
			return nil, fmt.Errorf("service.publish: the cluster has no ingress network for the routing mesh; publish with mode=host, or create one with shoal network create --ingress")
		}
		if !vip {
			return nil, fmt.Errorf("service.publish: a port published in ingress mode needs the VIP endpoint mode, not dnsrr; use mode=host or --endpoint-mode vip")
		}
		ids = append(ids, in.Ingress.GetId())
	}
	if vip {
		for _, id := range ids {
			if cur, ok := have[id]; ok {
				ep.VirtualIps = append(ep.VirtualIps, &shoalv1.VirtualIP{NetworkId: id, Addr: cur})
				continue
			}
			nw := in.Networks[id]
			if nw == nil {
				return nil, fmt.Errorf("network %s does not exist", id)
			}
			a, err := nextIn(nw, in.Used, h)
			if err != nil {
				return nil, err
			}
			ep.VirtualIps = append(ep.VirtualIps, &shoalv1.VirtualIP{NetworkId: id, Addr: a.String()})
		}
	}
	resolved := map[string]uint32{}
	for _, p := range in.Current.GetEndpoint().GetPorts() {
		resolved[fmt.Sprintf("%d/%d/%d", p.GetTargetPort(), p.GetProtocol(), p.GetPublishMode())] = p.GetPublishedPort()
	}
	for _, p := range in.Spec.GetEndpoint().GetPorts() {
		q := &shoalv1.PortConfig{Name: p.GetName(), Protocol: p.GetProtocol(), TargetPort: p.GetTargetPort(), PublishedPort: p.GetPublishedPort(), PublishMode: p.GetPublishMode()}
		if q.PublishedPort == 0 && q.PublishMode != shoalv1.PublishMode_PUBLISH_MODE_HOST {
			if n, ok := resolved[fmt.Sprintf("%d/%d/%d", q.TargetPort, q.Protocol, q.PublishMode)]; ok && n != 0 {
				q.PublishedPort = n
			} else {
				used := map[uint32]bool{}
				for port := uint32(MinDynamicPort); port <= MaxDynamicPort; port++ {
					if k := addrs.PortKey(port, q.Protocol); (in.PortInUse != nil && in.PortInUse(k)) || h.PortHeld(k) {
						used[port] = true
					}
				}
				n, err := NextPort(used)
				if err != nil {
					return nil, err
				}
				q.PublishedPort = n
				h.Port(addrs.PortKey(n, q.Protocol))
			}
		}
		ep.Ports = append(ep.Ports, q)
	}
	return ep, nil
}

// nextIn takes the next free address of a network and holds it.
func nextIn(nw *shoalv1.Network, used InUse, h *Held) (netip.Prefix, error) {
	subnet, err := netip.ParsePrefix(nw.GetAllocation().GetSubnet())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q has no subnet allocated", nw.GetSpec().GetName())
	}
	gw, _ := netip.ParseAddr(nw.GetAllocation().GetGateway())
	id := nw.GetId()
	a, err := h.NextAddr(id, subnet, gw, func(a netip.Addr) bool { return used != nil && used(id, a) })
	if errors.Is(err, ErrExhausted) && nw.GetSpec().GetIngress() {
		return netip.Prefix{}, fmt.Errorf("network %q: %w (every service publishing in ingress mode takes a VIP there, every such task and every node an address); "+
			"replace it with a larger one once no service publishes: shoal network rm %[1]s, then shoal network create --ingress --subnet 10.128.0.0/16 %[1]s",
			nw.GetSpec().GetName(), err)
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q: %w (every VIP and task on it takes an address); create a network with a larger --subnet for more", nw.GetSpec().GetName(), err)
	}
	return netip.PrefixFrom(a, subnet.Bits()), nil
}

// TaskNetworks gives a new task of svc an interface on each of the
// service's networks (its own, then ingress), with a fresh address held
// in h.
func TaskNetworks(svc *shoalv1.Service, networks map[string]*shoalv1.Network, ingress *shoalv1.Network, used InUse, h *Held) ([]*shoalv1.TaskNetwork, error) {
	vips := map[string]string{}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		vips[v.GetNetworkId()] = v.GetAddr()
	}
	type att struct {
		id      string
		aliases []string
	}
	var atts []att
	for _, a := range svc.GetSpec().GetNetworks() {
		atts = append(atts, att{a.GetTarget(), a.GetAliases()})
	}
	if Publishes(svc.GetSpec()) {
		if ingress == nil {
			return nil, fmt.Errorf("service %q publishes ports, and the cluster has no ingress network to give its tasks an address on", svc.GetSpec().GetName())
		}
		atts = append(atts, att{id: ingress.GetId()})
	}
	var out []*shoalv1.TaskNetwork
	for _, a := range atts {
		nw := networks[a.id]
		if nw == nil {
			return nil, fmt.Errorf("service %q: network %s does not exist", svc.GetSpec().GetName(), a.id)
		}
		addr, err := nextIn(nw, used, h)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", svc.GetSpec().GetName(), err)
		}
		aliases := append([]string{}, a.aliases...)
		sort.Strings(aliases)
		tn := &shoalv1.TaskNetwork{
			NetworkId: nw.GetId(), NetworkName: nw.GetSpec().GetName(), Vni: nw.GetAllocation().GetVni(),
			Addr: addr.String(), Gateway: nw.GetAllocation().GetGateway(), Vip: vips[nw.GetId()],
			Aliases: aliases, Ingress: nw.GetSpec().GetIngress(), Mtu: MTU(nw),
		}
		if tn.Ingress {
			for _, p := range svc.GetEndpoint().GetPorts() {
				if p.GetPublishedPort() != 0 {
					tn.Ports = append(tn.Ports, proto.Clone(p).(*shoalv1.PortConfig))
				}
			}
		}
		out = append(out, tn)
	}
	return out, nil
}
