package netoverlay

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Attach joins the container whose network namespace is at containerNS (a
// path like /proc/PID/ns/net) to network id, which EnsureNetwork must have
// set up. It makes a veth pair: the host end, "shc-" plus a hash of
// containerNS and id, on the network's bridge; the other end in the
// container, named ifname ("eth0", "eth1"), with address addr (in the
// network's subnet, with its prefix length), MAC address mac and the
// overlay MTU, up. It also sets the container's loopback up, and when
// defaultRoute is true routes the container's default traffic through the
// network's gateway (its first bridge address).
//
// Attaching again with the same arguments changes nothing; with a changed
// address, MAC or route it corrects them in place. A veth left over from an
// earlier attach whose other end is no longer in the container is
// replaced. An interface named ifname in the container that is not this
// network's is a conflict.
func (p *Plane) Attach(id, containerNS string, ifname string, addr netip.Prefix, mac net.HardwareAddr, defaultRoute bool) error {
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	n := p.nets[id]
	if n == nil {
		return fmt.Errorf("attach to network %q: the network is not set up on this node; call EnsureNetwork first: %w", id, errdefs.ErrFailedPrecond)
	}
	if err := n.cfg.checkAttach(ifname, addr, mac, defaultRoute); err != nil {
		return fmt.Errorf("attach %s to network %q: %w", containerNS, id, err)
	}
	if err := p.attach(n.cfg, containerNS, ifname, addr, mac, defaultRoute); err != nil {
		return fmt.Errorf("attach %s to network %q as %s: %w", containerNS, id, ifname, err)
	}
	return nil
}

func (c Config) checkAttach(ifname string, addr netip.Prefix, mac net.HardwareAddr, defaultRoute bool) error {
	if ifname == "" || len(ifname) > unix.IFNAMSIZ-1 || strings.ContainsAny(ifname, "/: \t\n") || ifname == "." || ifname == ".." || ifname == "lo" {
		return fmt.Errorf("interface name %q is not a usable name (1 to %d characters, not lo): %w", ifname, unix.IFNAMSIZ-1, errdefs.ErrInvalid)
	}
	if err := inSubnet(c.Subnet, addr); err != nil {
		return fmt.Errorf("container address: %v: %w", err, errdefs.ErrInvalid)
	}
	if err := validMAC(mac); err != nil {
		return err
	}
	if defaultRoute {
		if _, ok := c.gateway(); !ok {
			return fmt.Errorf("a default route needs a gateway, and the network has no bridge address: %w", errdefs.ErrInvalid)
		}
	}
	return nil
}

func (p *Plane) attach(c Config, containerNS, ifname string, addr netip.Prefix, mac net.HardwareAddr, defaultRoute bool) error {
	log := p.log.With(zap.String("network", c.ID), zap.String("netns", containerNS))
	br, err := linkByName(p.h, bridgeName(c.ID))
	if err != nil {
		return err
	}
	if br == nil {
		return fmt.Errorf("bridge %s is missing; call EnsureNetwork again: %w", bridgeName(c.ID), errdefs.ErrFailedPrecond)
	}
	ns, err := netns.GetFromPath(containerNS)
	if err != nil {
		return fmt.Errorf("open the container's network namespace: %w", err)
	}
	defer ns.Close()
	ch, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in the container's network namespace: %w", err)
	}
	defer ch.Close()
	if err := ch.SetSocketTimeout(socketTimeout); err != nil {
		return err
	}

	hostName := vethName(c.ID, containerNS)
	host, err := linkByName(p.h, hostName)
	if err != nil {
		return err
	}
	peer, err := linkByName(ch, ifname)
	if err != nil {
		return err
	}
	if host != nil && !isPair(host, peer) {
		log.Info("replacing a veth whose other end is not in the container", zap.String("device", hostName))
		if err := p.h.LinkDel(host); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove stale veth %s: %w", hostName, err)
		}
		host = nil
		if peer, err = linkByName(ch, ifname); err != nil {
			return err
		}
	}
	mtu := c.overlayMTU()
	if host == nil {
		if peer != nil {
			return fmt.Errorf("the container already has an interface %s that is not this network's: %w", ifname, errdefs.ErrConflict)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = hostName, mtu
		v := &netlink.Veth{
			LinkAttrs:        attrs,
			PeerName:         ifname,
			PeerHardwareAddr: mac,
			PeerMTU:          uint32(mtu),
			PeerTxQLen:       -1,
			PeerNamespace:    netlink.NsFd(ns),
		}
		if host, err = p.addLink(v, c.ID); err != nil {
			return fmt.Errorf("create veth %s with peer %s in the container: %w", hostName, ifname, err)
		}
		log.Info("created veth", zap.String("device", hostName), zap.String("ifname", ifname))
		if peer, err = ch.LinkByName(ifname); err != nil {
			return fmt.Errorf("look up new veth end %s in the container: %w", ifname, err)
		}
	}

	if err := ensureMTU(p.h, host, mtu); err != nil {
		return err
	}
	if err := ensureMaster(p.h, host, br); err != nil {
		return err
	}
	if err := ensureUp(p.h, host); err != nil {
		return err
	}

	if !bytes.Equal(peer.Attrs().HardwareAddr, mac) {
		if err := ch.LinkSetHardwareAddr(peer, mac); err != nil {
			return fmt.Errorf("set MAC address of %s to %s: %w", ifname, mac, err)
		}
	}
	if err := ensureMTU(ch, peer, mtu); err != nil {
		return err
	}
	if err := syncAddrs(ch, peer, []netip.Prefix{addr}); err != nil {
		return err
	}
	if err := ensureUp(ch, peer); err != nil {
		return err
	}
	lo, err := ch.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("look up the container's loopback: %w", err)
	}
	if err := ensureUp(ch, lo); err != nil {
		return err
	}
	gw, _ := c.gateway()
	return syncDefaultRoute(ch, peer, addr.Addr(), gw, defaultRoute)
}

// isPair reports whether host and peer are the two ends of one veth.
// Each end's IFLA_LINK is the other's index in the other's namespace.
func isPair(host, peer netlink.Link) bool {
	if host == nil || peer == nil || host.Type() != "veth" || peer.Type() != "veth" {
		return false
	}
	return host.Attrs().ParentIndex == peer.Attrs().Index && peer.Attrs().ParentIndex == host.Attrs().Index
}

// syncDefaultRoute makes the container's default route (of addr's family)
// go through gw on link when want is true; when want is false it removes
// default routes through link that an earlier Attach added.
func syncDefaultRoute(h *netlink.Handle, link netlink.Link, addr, gw netip.Addr, want bool) error {
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list the container's routes: %w", err)
	}
	for _, r := range routes {
		if !isDefault(r) {
			continue
		}
		if want && r.LinkIndex == link.Attrs().Index && addrOf(r.Gw) == gw && len(r.MultiPath) == 0 {
			return nil
		}
		if !want && r.LinkIndex == link.Attrs().Index {
			if err := h.RouteDel(&r); err != nil && !isNotFound(err) {
				return fmt.Errorf("remove default route via %s: %w", link.Attrs().Name, err)
			}
		}
	}
	if !want {
		return nil
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Gw:        ipOf(gw),
		Dst:       defaultDst(family),
		Table:     unix.RT_TABLE_MAIN,
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("set default route via %s on %s: %w", gw, link.Attrs().Name, err)
	}
	return nil
}

// isDefault reports whether r is a default route.
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

func defaultDst(family int) *net.IPNet {
	if family == netlink.FAMILY_V6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// Detach removes the veth that joins the container at containerNS to
// network id; its end in the container goes with it. It returns nil when
// there is no such veth.
func (p *Plane) Detach(id, containerNS string) error {
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	name := vethName(id, containerNS)
	link, err := linkByName(p.h, name)
	if err != nil {
		return fmt.Errorf("detach %s from network %q: %w", containerNS, id, err)
	}
	if link == nil {
		return nil
	}
	if err := p.h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("detach %s from network %q: remove %s: %w", containerNS, id, name, err)
	}
	p.log.Info("removed veth", zap.String("network", id), zap.String("netns", containerNS), zap.String("device", name))
	return nil
}
