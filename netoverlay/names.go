package netoverlay

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"

	"github.com/shoal-run/shoal/internal/defaults"
)

// VXLANPort is the UDP port VXLAN packets are sent to and received on (the
// IANA port, as Docker Swarm uses).
const VXLANPort = defaults.VXLANPort

// Overhead is what VXLAN encapsulation adds to each frame over IPv4: the
// outer IP (20), UDP (8), VXLAN (8) and inner Ethernet (14) headers. The
// overlay's devices get the underlay MTU minus Overhead so that an
// encapsulated full-size packet still fits the underlay unfragmented.
const Overhead = 50

// Overhead6 is the encapsulation overhead over an IPv6 underlay, whose
// header is 20 bytes longer.
const Overhead6 = Overhead + 20

// DefaultMTU is the underlay MTU assumed when Config.MTU is zero.
const DefaultMTU = 1500

// Device name prefixes. Linux limits interface names to 15 bytes, so each
// name is a four-byte prefix plus shortLen hex digits of a hash.
const (
	bridgePrefix = "shb-" // a network's bridge
	vxlanPrefix  = "shv-" // a network's VXLAN device
	vethPrefix   = "shc-" // the host end of a container's veth
	shortLen     = 10
)

// ShortID is the short hash of a network ID that its device names carry:
// the first 10 hex digits of its SHA-256. It is stable across restarts and
// nodes, so the same network has the same device names everywhere.
func ShortID(id string) string { return hash(id) }

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:shortLen]
}

func bridgeName(id string) string { return bridgePrefix + ShortID(id) }
func vxlanName(id string) string  { return vxlanPrefix + ShortID(id) }

// vethName is the host end of the veth that joins the container whose
// network namespace is at containerNS to network id. The NUL separator
// keeps ("a", "bc") and ("ab", "c") apart.
func vethName(id, containerNS string) string {
	return vethPrefix + hash(containerNS+"\x00"+id)
}

// isOurs reports whether name has one of the package's prefixes.
func isOurs(name string) bool {
	for _, p := range []string{bridgePrefix, vxlanPrefix, vethPrefix} {
		if strings.HasPrefix(name, p) && len(name) == len(p)+shortLen {
			return true
		}
	}
	return false
}

// BridgeMAC is the MAC address of network id's bridge on the node whose
// underlay address is underlay (see bridgeMAC).
func BridgeMAC(id string, underlay netip.Addr) net.HardwareAddr { return bridgeMAC(id, underlay) }

// bridgeMAC is the fixed MAC address of a network's bridge on this node: a
// locally administered unicast address derived from the network and the
// node's underlay address. Without a fixed address a bridge takes the
// lowest MAC of its ports and changes it as containers come and go, which
// leaves the containers' ARP entries for the gateway stale.
func bridgeMAC(id string, underlay netip.Addr) net.HardwareAddr {
	sum := sha256.Sum256([]byte("bridge\x00" + id + "\x00" + underlay.String()))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	return mac
}
