package netoverlay

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// EnsureNetwork makes the node's devices of network c.ID match c, creating
// what is missing and correcting what differs:
//
//   - a bridge "shb-<ShortID>" with c.BridgeAddrs as its only addresses, the
//     overlay MTU, a fixed MAC address, spanning tree off and forward delay
//     zero, up;
//   - a VXLAN device "shv-<ShortID>" with c.VNI, UDP port VXLANPort, local
//     address c.Underlay, learning off, ARP/ND proxy on, no l2miss or l3miss
//     notifications, the overlay MTU, on the bridge, up. It has no lower
//     device and no remote or group: packets go where the node namespace's
//     routes send them, and only to hosts named by SetPeers.
//
// A VXLAN device whose VNI, local address or flags differ cannot be changed
// in place; it is replaced, and the peers last given to SetPeers are
// written to the new one. Calling EnsureNetwork again with the same c
// changes nothing.
func (p *Plane) EnsureNetwork(c Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	log := p.log.With(zap.String("network", c.ID))
	c.BridgeAddrs = slices.Clone(c.BridgeAddrs)

	br, err := p.ensureBridge(log, c)
	if err != nil {
		return fmt.Errorf("network %q: %w", c.ID, err)
	}
	n := p.nets[c.ID]
	if n == nil {
		n = &network{}
		p.nets[c.ID] = n
	}
	n.cfg = c
	recreated, err := p.ensureVXLAN(log, c, br)
	if err != nil {
		return fmt.Errorf("network %q: %w", c.ID, err)
	}
	if recreated && len(n.peers) > 0 {
		if err := p.syncPeers(log, c, n.peers); err != nil {
			return fmt.Errorf("network %q: restore peers on the new VXLAN device: %w", c.ID, err)
		}
	}
	return nil
}

// checkOwner fails when link, found under a name this package derives from
// id, is of another kind or belongs to another network (a ShortID
// collision). A device without an alias is adopted: the kernel takes no
// alias when it creates a device, so a daemon that died between creating
// and naming one leaves it so.
func (p *Plane) checkOwner(log *zap.Logger, link netlink.Link, id, kind string) error {
	a := link.Attrs()
	if link.Type() != kind {
		return fmt.Errorf("%s exists but is a %s device, not a %s; remove it: %w", a.Name, link.Type(), kind, errdefs.ErrConflict)
	}
	switch a.Alias {
	case id:
		return nil
	case "":
		log.Info("adopting a device that does not name its network", zap.String("device", a.Name))
		return p.setAlias(link, id)
	}
	return fmt.Errorf("%s %s exists but belongs to network %q; remove it or use another network ID: %w",
		kind, a.Name, a.Alias, errdefs.ErrConflict)
}

// setAlias records the network ID on a device (see Networks).
func (p *Plane) setAlias(link netlink.Link, id string) error {
	if err := p.h.LinkSetAlias(link, id); err != nil {
		return fmt.Errorf("name the network on %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// addLink creates link and records network id as its alias, removing it
// again if that fails, and returns the link as the kernel made it.
func (p *Plane) addLink(link netlink.Link, id string) (netlink.Link, error) {
	name := link.Attrs().Name
	if err := p.h.LinkAdd(link); err != nil {
		return nil, err
	}
	made, err := p.h.LinkByName(name)
	if err == nil {
		err = p.setAlias(made, id)
	}
	if err != nil {
		_ = p.h.LinkDel(link)
		return nil, err
	}
	made.Attrs().Alias = id
	return made, nil
}

func (p *Plane) ensureBridge(log *zap.Logger, c Config) (netlink.Link, error) {
	name := bridgeName(c.ID)
	mtu := c.overlayMTU()
	br, err := linkByName(p.h, name)
	if err != nil {
		return nil, err
	}
	if br == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = name, mtu
		attrs.HardwareAddr = bridgeMAC(c.ID, c.Underlay)
		if br, err = p.addLink(&netlink.Bridge{LinkAttrs: attrs}, c.ID); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		log.Info("created bridge", zap.String("device", name))
	} else if err := p.checkOwner(log, br, c.ID, "bridge"); err != nil {
		return nil, err
	}
	if err := ensureMTU(p.h, br, mtu); err != nil {
		return nil, err
	}
	if err := p.ensureBridgeNoSTP(br.Attrs().Index); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := syncAddrs(p.h, br, c.BridgeAddrs); err != nil {
		return nil, err
	}
	if err := ensureUp(p.h, br); err != nil {
		return nil, err
	}
	return br, nil
}

// vxlanDiff says why an existing VXLAN device cannot serve c, or "" when it
// can.
func vxlanDiff(v *netlink.Vxlan, c Config) string {
	var d []string
	if v.VxlanId != int(c.VNI) {
		d = append(d, fmt.Sprintf("VNI %d, want %d", v.VxlanId, c.VNI))
	}
	if addrOf(v.SrcAddr) != c.Underlay {
		d = append(d, fmt.Sprintf("local address %s, want %s", v.SrcAddr, c.Underlay))
	}
	if v.Port != VXLANPort {
		d = append(d, fmt.Sprintf("port %d, want %d", v.Port, VXLANPort))
	}
	if v.Learning || !v.Proxy || v.L2miss || v.L3miss || v.FlowBased {
		d = append(d, fmt.Sprintf("learning=%t proxy=%t l2miss=%t l3miss=%t external=%t, want proxy only",
			v.Learning, v.Proxy, v.L2miss, v.L3miss, v.FlowBased))
	}
	if v.VtepDevIndex != 0 || len(v.Group) != 0 && !v.Group.IsUnspecified() {
		d = append(d, "bound to a lower device or a remote/group address")
	}
	return strings.Join(d, "; ")
}

// ensureVXLAN makes the network's VXLAN device; it reports whether it
// created one (whose forwarding and neighbour entries are therefore empty).
func (p *Plane) ensureVXLAN(log *zap.Logger, c Config, br netlink.Link) (created bool, err error) {
	name := vxlanName(c.ID)
	mtu := c.overlayMTU()
	link, err := linkByName(p.h, name)
	if err != nil {
		return false, err
	}
	if link != nil {
		if err := p.checkOwner(log, link, c.ID, "vxlan"); err != nil {
			return false, err
		}
		if diff := vxlanDiff(link.(*netlink.Vxlan), c); diff != "" {
			log.Info("replacing VXLAN device", zap.String("device", name), zap.String("reason", diff))
			if err := p.h.LinkDel(link); err != nil {
				return false, fmt.Errorf("remove VXLAN device %s to replace it (%s): %w", name, diff, err)
			}
			link = nil
		}
	}
	if link == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = name, mtu
		v := &netlink.Vxlan{
			LinkAttrs: attrs,
			VxlanId:   int(c.VNI),
			SrcAddr:   ipOf(c.Underlay),
			Port:      VXLANPort,
			Learning:  false,
			Proxy:     true,
		}
		if link, err = p.addLink(v, c.ID); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return false, fmt.Errorf("create VXLAN device %s: another device already uses VNI %d on port %d: %w", name, c.VNI, VXLANPort, errdefs.ErrConflict)
			}
			return false, fmt.Errorf("create VXLAN device %s (VNI %d, local %s): %w", name, c.VNI, c.Underlay, err)
		}
		log.Info("created VXLAN device", zap.String("device", name), zap.Uint32("vni", c.VNI), zap.Stringer("local", c.Underlay))
		created = true
	}
	if err := ensureMTU(p.h, link, mtu); err != nil {
		return created, err
	}
	if err := ensureMaster(p.h, link, br); err != nil {
		return created, err
	}
	if err := ensureUp(p.h, link); err != nil {
		return created, err
	}
	return created, nil
}

// RemoveNetwork removes network id's devices from the node: the bridge,
// the VXLAN device and the host ends of veths still on the bridge (their
// container ends go with them). It returns nil when there is nothing to
// remove, and forgets the network's configuration and peers.
func (p *Plane) RemoveNetwork(id string) error {
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	delete(p.nets, id)
	log := p.log.With(zap.String("network", id))

	links, err := dump(p.h.LinkList)
	if err != nil {
		return fmt.Errorf("network %q: list links: %w", id, err)
	}
	short := ShortID(id)
	if orphan, ok := strings.CutPrefix(id, bridgePrefix); ok && isOurs(id) {
		short = orphan // a device name from Networks
	}
	brName, vxName := bridgePrefix+short, vxlanPrefix+short
	brIndex := -1
	for _, l := range links {
		if l.Attrs().Name == brName {
			brIndex = l.Attrs().Index
		}
	}
	// Ports first, so that no container is left on a half-removed network,
	// then the bridge. A veth of this network that lost its bridge is
	// found by its alias.
	var errs []error
	var br netlink.Link
	for _, l := range links {
		a := l.Attrs()
		switch {
		case a.Name == brName:
			br = l
			continue
		case a.Name == vxName,
			brIndex > 0 && a.MasterIndex == brIndex,
			strings.HasPrefix(a.Name, vethPrefix) && a.Alias == id:
		default:
			continue
		}
		if err := p.h.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", a.Name, err))
			continue
		}
		log.Info("removed device", zap.String("device", a.Name))
	}
	if br != nil {
		if err := p.h.LinkDel(br); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", brName, err))
		} else {
			log.Info("removed device", zap.String("device", brName))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network %q: %w", id, err)
	}
	return nil
}

// Networks returns the networks whose bridge or VXLAN device exists in the
// node namespace, sorted, so a restarted daemon can remove the ones it no
// longer needs with RemoveNetwork. A network is reported by its ID, which
// its devices carry as their alias. A device that carries none (its daemon
// died between creating and naming it) is reported by its bridge's device
// name, "shb-" plus the short ID, which RemoveNetwork also accepts;
// EnsureNetwork of its network adopts it.
func (p *Plane) Networks() ([]string, error) {
	if err := p.lock(); err != nil {
		return nil, err
	}
	defer p.mu.Unlock()
	links, err := dump(p.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var ids []string
	for _, l := range links {
		a := l.Attrs()
		if !isOurs(a.Name) || strings.HasPrefix(a.Name, vethPrefix) {
			continue
		}
		short := a.Name[len(bridgePrefix):]
		switch {
		case a.Alias == "":
			ids = append(ids, bridgePrefix+short)
		case ShortID(a.Alias) == short:
			ids = append(ids, a.Alias)
		default:
			p.log.Warn("ignoring a device named like an overlay device whose alias names another network",
				zap.String("device", a.Name), zap.String("alias", a.Alias))
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// isNotFound reports whether a netlink error says the object (link,
// address, route, neighbour) is already gone.
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
}
