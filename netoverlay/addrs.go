package netoverlay

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// ipOf converts an address to the net.IP netlink takes (4 bytes for IPv4).
func ipOf(a netip.Addr) net.IP { return net.IP(a.Unmap().AsSlice()) }

// addrOf converts a net.IP from netlink, which may be 4 or 16 bytes long.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// nlAddr converts a prefix to a netlink address (address plus mask).
func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: ipOf(p.Addr()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// prefixOf converts a netlink address back to an address plus length.
func prefixOf(a netlink.Addr) netip.Prefix {
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(addrOf(a.IP), ones)
}

// syncAddrs makes the global addresses of link exactly want: it adds the
// missing and removes the others, leaving the IPv6 link-local addresses the
// kernel manages alone.
func syncAddrs(h *netlink.Handle, link netlink.Link, want []netip.Prefix) error {
	have, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	var present []netip.Prefix
	for _, a := range have {
		p := prefixOf(a)
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if slices.Contains(want, p) {
			present = append(present, p)
			continue
		}
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove address %s from %s: %w", p, link.Attrs().Name, err)
		}
	}
	for _, p := range want {
		if slices.Contains(present, p) {
			continue
		}
		if err := h.AddrAdd(link, nlAddr(p)); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, link.Attrs().Name, err)
		}
	}
	return nil
}

// ensureUp sets link up unless it is.
func ensureUp(h *netlink.Handle, link netlink.Link) error {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// ensureMTU sets link's MTU unless it has it.
func ensureMTU(h *netlink.Handle, link netlink.Link, mtu int) error {
	if link.Attrs().MTU == mtu {
		return nil
	}
	if err := h.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set MTU of %s to %d: %w", link.Attrs().Name, mtu, err)
	}
	return nil
}

// ensureMaster enslaves link to the bridge unless it is already.
func ensureMaster(h *netlink.Handle, link, bridge netlink.Link) error {
	if link.Attrs().MasterIndex == bridge.Attrs().Index {
		return nil
	}
	if err := h.LinkSetMaster(link, bridge); err != nil {
		return fmt.Errorf("put %s on bridge %s: %w", link.Attrs().Name, bridge.Attrs().Name, err)
	}
	return nil
}
