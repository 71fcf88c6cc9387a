package netoverlay

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Config is one overlay network on this node: what EnsureNetwork makes the
// node's bridge and VXLAN device look like.
type Config struct {
	// ID is the network's ID. Device names derive from ShortID(ID), and the
	// devices carry the whole ID as their alias so Networks can report it.
	ID string
	// VNI is the VXLAN network identifier (1 to 2^24-1); it is what keeps
	// the traffic of different networks apart on the underlay.
	VNI uint32
	// Subnet is the network's address range, e.g. 10.0.1.0/24. Container
	// and bridge addresses must lie in it, with its prefix length.
	Subnet netip.Prefix
	// BridgeAddrs are the addresses of this node's bridge: usually the
	// gateway (10.0.1.1/24), for the ingress network the node's own address
	// on it. The first is the gateway of containers attached with a
	// default route. It may be empty for a network without a gateway.
	BridgeAddrs []netip.Prefix
	// Underlay is this host's address that VXLAN packets leave from (the
	// node's advertise address). Packets to remote hosts are routed by the
	// node namespace's own routing table.
	Underlay netip.Addr
	// MTU is the underlay MTU; zero means DefaultMTU. The bridge, the VXLAN
	// device and the container interfaces get MTU-Overhead (MTU-Overhead6
	// over an IPv6 underlay).
	MTU int
	// NetworkMTU, when not zero, is the MTU of the network's devices and
	// interfaces, the network's option, in place of the one MTU gives.
	NetworkMTU int
}

// Peer is a remote endpoint of a network: a container's IP and MAC
// address, and the underlay address of the host it runs on.
type Peer struct {
	IP   netip.Addr
	MAC  net.HardwareAddr
	Host netip.Addr
}

// String formats a peer for logs and errors.
func (p Peer) String() string { return fmt.Sprintf("%s/%s@%s", p.IP, p.MAC, p.Host) }

// overlayMTU is the MTU of the overlay's devices.
func (c Config) overlayMTU() int {
	if c.NetworkMTU > 0 {
		return c.NetworkMTU
	}
	mtu := c.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if c.Underlay.Is6() {
		return mtu - Overhead6
	}
	return mtu - Overhead
}

// gateway is the first bridge address, the containers' default gateway.
func (c Config) gateway() (netip.Addr, bool) {
	if len(c.BridgeAddrs) == 0 {
		return netip.Addr{}, false
	}
	return c.BridgeAddrs[0].Addr(), true
}

const maxVNI = 1<<24 - 1

// minMTU is the smallest overlay MTU IPv4 allows, and minMTU6 IPv6's.
const (
	minMTU  = 68
	minMTU6 = 1280
)

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("network %q: %s: %w", c.ID, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
	}
	if c.ID == "" {
		return fmt.Errorf("network ID is empty: %w", errdefs.ErrInvalid)
	}
	if c.VNI == 0 || c.VNI > maxVNI {
		return bad("VNI %d is outside 1-%d", c.VNI, maxVNI)
	}
	if !c.Subnet.IsValid() || c.Subnet != c.Subnet.Masked() {
		return bad("subnet %s is not a network prefix (like 10.0.1.0/24)", c.Subnet)
	}
	for _, a := range c.BridgeAddrs {
		if err := inSubnet(c.Subnet, a); err != nil {
			return bad("bridge address: %v", err)
		}
	}
	if !c.Underlay.IsValid() || c.Underlay.IsUnspecified() || c.Underlay.Is4In6() {
		return bad("underlay address %s is not a usable address of this host", c.Underlay)
	}
	min := minMTU
	if c.Subnet.Addr().Is6() {
		min = minMTU6
	}
	if c.MTU < 0 || c.MTU > 65535 || c.overlayMTU() < min {
		return bad("underlay MTU %d leaves less than %d bytes for the overlay's packets after %d bytes of VXLAN headers",
			c.MTU, min, c.MTU-c.overlayMTU())
	}
	return nil
}

// inSubnet checks that a is an address of subnet with subnet's prefix
// length, like 10.0.1.5/24 in 10.0.1.0/24.
func inSubnet(subnet, a netip.Prefix) error {
	if !a.IsValid() || !subnet.Contains(a.Addr()) || a.Bits() != subnet.Bits() {
		return fmt.Errorf("%s is not an address of %s", a, subnet)
	}
	if a.Addr() == subnet.Addr() {
		return fmt.Errorf("%s is the network address of %s", a, subnet)
	}
	return nil
}

// validMAC checks that mac is a unicast Ethernet address.
func validMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 || mac[0]&0x01 != 0 || bytes.Equal(mac, make([]byte, 6)) {
		return fmt.Errorf("MAC address %q is not a unicast Ethernet address: %w", mac, errdefs.ErrInvalid)
	}
	return nil
}
