// Package allocator hands out the network resources of a cluster: subnets
// from the default address pools and VXLAN network identifiers for
// networks, addresses in a network's subnet for service VIPs and task
// interfaces, and published ports. Every function here is pure: what is in
// use comes in (read from the store by the caller), the next free value
// comes out, so the leader can allocate in the same Raft entry that
// creates the object, and a new leader recomputes the same picture from
// the store: nothing in use is ever handed out twice.
package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// ErrExhausted means nothing is free in the range asked for.
var ErrExhausted = errors.New("exhausted")

// Defaults of the address pools (Docker Swarm's): /24s carved out of
// 10.0.0.0/8.
const (
	DefaultPool       = "10.0.0.0/8"
	DefaultSubnetBits = 24
)

// VNIs are 24 bits; the low ones are left to other users of VXLAN on the
// host, as Docker does.
const (
	MinVNI = 4096
	MaxVNI = 1<<24 - 1
)

// Published ports without an explicit number come from this range, as in
// Docker Swarm.
const (
	MinDynamicPort = 30000
	MaxDynamicPort = 32767
)

// Pools is where network subnets come from.
type Pools struct {
	Prefixes   []netip.Prefix
	SubnetBits int
}

// ParsePools reads address pools ("10.0.0.0/8") and the size of the
// subnets carved from them.
func ParsePools(cidrs []string, subnetBits int) (Pools, error) {
	if len(cidrs) == 0 {
		cidrs = []string{DefaultPool}
	}
	if subnetBits == 0 {
		subnetBits = DefaultSubnetBits
	}
	p := Pools{SubnetBits: subnetBits}
	if subnetBits < 8 || subnetBits > 29 {
		return p, fmt.Errorf("subnet size /%d: must be between /8 and /29", subnetBits)
	}
	for _, c := range cidrs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil || !pfx.Addr().Is4() {
			return p, fmt.Errorf("address pool %q: not an IPv4 CIDR such as 10.0.0.0/8", c)
		}
		if pfx.Masked() != pfx {
			return p, fmt.Errorf("address pool %q: host bits set; did you mean %s?", c, pfx.Masked())
		}
		if pfx.Bits() > subnetBits {
			return p, fmt.Errorf("address pool %s is smaller than the subnets (/%d) carved from it", c, subnetBits)
		}
		p.Prefixes = append(p.Prefixes, pfx)
	}
	return p, nil
}

// NextSubnet is the first subnet of the pools overlapping none of used.
func (p Pools) NextSubnet(used []netip.Prefix) (netip.Prefix, error) {
	for _, pool := range p.Prefixes {
		size := uint64(1) << (32 - p.SubnetBits)
		count := uint64(1) << (p.SubnetBits - pool.Bits())
		base := v4(pool.Addr())
		for i := uint64(0); i < count; i++ {
			cand := netip.PrefixFrom(fromV4(uint32(uint64(base)+i*size)), p.SubnetBits)
			if !overlapsAny(cand, used) {
				return cand, nil
			}
			// Skip past whatever overlapped, not one subnet at a time,
			// so a large used prefix costs one step.
			for _, u := range used {
				if u.Overlaps(cand) && u.Bits() < p.SubnetBits {
					end := uint64(v4(u.Masked().Addr())) + (uint64(1) << (32 - u.Bits()))
					i = (end-uint64(base))/size - 1
					break
				}
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /%d subnet left in the address pools %v: %w", p.SubnetBits, p.Prefixes, ErrExhausted)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// Overlapping returns the first of used that overlaps p.
func Overlapping(p netip.Prefix, used []netip.Prefix) (netip.Prefix, bool) {
	for _, u := range used {
		if u.Overlaps(p) {
			return u, true
		}
	}
	return netip.Prefix{}, false
}

// NextVNI is the lowest free VXLAN network identifier.
func NextVNI(used map[uint32]bool) (uint32, error) {
	for v := uint32(MinVNI); v <= MaxVNI; v++ {
		if !used[v] {
			return v, nil
		}
	}
	return 0, fmt.Errorf("no VXLAN network identifier left: %w", ErrExhausted)
}

// Gateway is a subnet's default gateway: its first address.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// nextAddrAfter is the first address of subnet after after (from the
// start when after is not in it), going round to the start, that is not
// the network address, the broadcast address, the gateway or taken.
func nextAddrAfter(subnet netip.Prefix, gateway, after netip.Addr, taken func(netip.Addr) bool) (netip.Addr, error) {
	subnet = subnet.Masked()
	first := v4(subnet.Addr())
	last := first + uint32(uint64(1)<<(32-subnet.Bits())-1)
	start := first + 1
	if after.Is4() && subnet.Contains(after) && v4(after)+1 < last {
		start = v4(after) + 1
	}
	n := last - first - 1 // the usable addresses
	for i := uint32(0); i < n; i++ {
		a := start + i
		if a >= last {
			a -= n
		}
		addr := fromV4(a)
		if addr != gateway && !taken(addr) {
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no address left in %s: %w", subnet, ErrExhausted)
}

// NextPort is the lowest free port of the dynamic range.
func NextPort(used map[uint32]bool) (uint32, error) {
	for p := uint32(MinDynamicPort); p <= MaxDynamicPort; p++ {
		if !used[p] {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no published port left in %d-%d: %w", MinDynamicPort, MaxDynamicPort, ErrExhausted)
}

func v4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromV4(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}

// SortPrefixes orders prefixes by address then length, for stable output.
func SortPrefixes(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}
