package allocator

import (
	"fmt"
	"net/netip"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Networks: the subnet, gateway and VNI a network gets when it is made.

// DriverOverlay is the only network driver: a VXLAN overlay.
const DriverOverlay = "overlay"

// OptionMTU is docker's driver option for the MTU of a network's
// interfaces; MinMTU and MaxMTU bound it (IPv4's least, a jumbo frame
// less the VXLAN overhead).
const (
	OptionMTU = "com.docker.network.driver.mtu"
	MinMTU    = 576
	MaxMTU    = 9000 - 50
)

// MTU is a network's MTU option, 0 when it has none (its validity was
// checked when the network was made).
func MTU(nw *shoalv1.Network) uint32 {
	v, err := strconv.ParseUint(nw.GetSpec().GetOptions()[OptionMTU], 10, 32)
	if err != nil {
		return 0
	}
	return uint32(v)
}

// IngressName is the routing mesh's network, made at swarm init.
const IngressName = "ingress"

// ClusterPools reads the cluster's default address pools.
func ClusterPools(c *shoalv1.Cluster) (Pools, error) {
	return ParsePools(c.GetSpec().GetDefaultAddrPools(), int(c.GetSpec().GetSubnetSize()))
}

// AllocateNetwork gives a network its subnet (the spec's, or the next
// free one of the pools), gateway and VNI, given the networks that exist
// and what h holds, and holds them.
func AllocateNetwork(spec *shoalv1.NetworkSpec, p Pools, existing []*shoalv1.Network, h *Held) (*shoalv1.NetworkAllocation, error) {
	used := h.Subnets()
	vnis := map[uint32]bool{}
	h.AddVNIs(vnis)
	names := map[netip.Prefix]string{}
	for _, n := range existing {
		if s, err := netip.ParsePrefix(n.GetAllocation().GetSubnet()); err == nil {
			used = append(used, s)
			names[s] = n.GetSpec().GetName()
		}
		vnis[n.GetAllocation().GetVni()] = true
	}
	var subnet netip.Prefix
	if c := spec.GetSubnet(); c != "" {
		subnet = netip.MustParsePrefix(c) // validated
		if o, ok := Overlapping(subnet, used); ok {
			if name, ok := names[o]; ok {
				return nil, fmt.Errorf("network.subnet: %s overlaps %s of network %q; choose another subnet: %w", subnet, o, name, errdefs.ErrInvalid)
			}
			return nil, fmt.Errorf("network.subnet: %s overlaps %s, which a network being created takes; choose another subnet: %w", subnet, o, errdefs.ErrConflict)
		}
	} else {
		var err error
		if subnet, err = p.NextSubnet(used); err != nil {
			return nil, fmt.Errorf("network.subnet: %v; give one with --subnet or widen the pools at swarm init: %w", err, errdefs.ErrFailedPrecond)
		}
	}
	gw := Gateway(subnet)
	if g := spec.GetGateway(); g != "" {
		gw = netip.MustParseAddr(g)
	}
	vni, err := NextVNI(vnis)
	if err != nil {
		return nil, fmt.Errorf("network: %v: %w", err, errdefs.ErrFailedPrecond)
	}
	h.Subnet(subnet)
	h.VNI(vni)
	return &shoalv1.NetworkAllocation{Vni: vni, Subnet: subnet.String(), Gateway: gw.String()}, nil
}

// IngressNetwork is the ingress network a new cluster starts with: the
// first subnet of its pools, named id.
func IngressNetwork(c *shoalv1.Cluster, id string, now *timestamppb.Timestamp) (*shoalv1.Network, error) {
	p, err := ClusterPools(c)
	if err != nil {
		return nil, err
	}
	spec := &shoalv1.NetworkSpec{Name: IngressName, Driver: DriverOverlay, Ingress: true}
	var alloc *shoalv1.NetworkAllocation
	var b Book
	release, err := b.Do(func(h *Held) (err error) {
		alloc, err = AllocateNetwork(spec, p, nil, h)
		return err
	})
	release()
	if err != nil {
		return nil, err
	}
	return &shoalv1.Network{Id: id, Meta: &shoalv1.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec, Allocation: alloc}, nil
}
