package netoverlay

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// SetPeers makes network id's remote endpoints exactly peers. For each
// peer the VXLAN device gets
//
//   - a permanent forwarding (FDB) entry MAC → Host, so frames to the
//     container go to its host's underlay address, and
//   - a permanent neighbour entry IP → MAC, from which the device's proxy
//     answers the containers' ARP (or neighbour solicitation) for the peer
//     itself: with learning off and no all-zeros forwarding entry nothing
//     is flooded to other hosts, so the request would otherwise go
//     unanswered.
//
// Entries that are missing are added, stale ones removed and correct ones
// left untouched; an entry whose destination changed is replaced in place.
// Peers on this host (Host equal to the network's underlay address) are
// skipped: their containers are on the bridge. An empty list removes every
// entry, cutting the node off from the network's other hosts.
//
// EnsureNetwork must have set the network up first. The Plane remembers the
// list and writes it again should EnsureNetwork have to replace the VXLAN
// device.
func (p *Plane) SetPeers(id string, peers []Peer) error {
	if err := p.lock(); err != nil {
		return err
	}
	defer p.mu.Unlock()
	n := p.nets[id]
	if n == nil {
		return fmt.Errorf("set peers of network %q: the network is not set up on this node; call EnsureNetwork first: %w", id, errdefs.ErrFailedPrecond)
	}
	remote, err := n.cfg.remotePeers(peers)
	if err != nil {
		return fmt.Errorf("set peers of network %q: %w", id, err)
	}
	n.peers = remote
	if err := p.syncPeers(p.log.With(zap.String("network", id)), n.cfg, remote); err != nil {
		return fmt.Errorf("set peers of network %q: %w", id, err)
	}
	return nil
}

// remotePeers validates peers and returns those on other hosts. Two peers
// may not claim one IP with different MACs, nor one MAC on different hosts.
func (c Config) remotePeers(peers []Peer) ([]Peer, error) {
	var (
		out    []Peer
		macOf  = map[netip.Addr]string{}
		hostOf = map[string]netip.Addr{}
	)
	for _, pr := range peers {
		pr.IP, pr.Host = pr.IP.Unmap(), pr.Host.Unmap()
		if !c.Subnet.Contains(pr.IP) {
			return nil, fmt.Errorf("peer %s: IP is not in the network's subnet %s: %w", pr, c.Subnet, errdefs.ErrInvalid)
		}
		if err := validMAC(pr.MAC); err != nil {
			return nil, fmt.Errorf("peer %s: %w", pr, err)
		}
		if !pr.Host.IsValid() || pr.Host.IsUnspecified() || pr.Host.Is4() != c.Underlay.Is4() {
			return nil, fmt.Errorf("peer %s: host %s is not an underlay address like %s: %w", pr, pr.Host, c.Underlay, errdefs.ErrInvalid)
		}
		mac := pr.MAC.String()
		if m, ok := macOf[pr.IP]; ok && m != mac {
			return nil, fmt.Errorf("peers %s and %s share IP %s: %w", m, mac, pr.IP, errdefs.ErrInvalid)
		}
		if h, ok := hostOf[mac]; ok && h != pr.Host {
			return nil, fmt.Errorf("MAC %s is on two hosts, %s and %s: %w", mac, h, pr.Host, errdefs.ErrInvalid)
		}
		if _, dup := macOf[pr.IP]; dup {
			continue
		}
		macOf[pr.IP], hostOf[mac] = mac, pr.Host
		if pr.Host == c.Underlay {
			continue
		}
		out = append(out, Peer{IP: pr.IP, MAC: append(net.HardwareAddr(nil), pr.MAC...), Host: pr.Host})
	}
	return out, nil
}

// fdbEntry is one forwarding entry of a VXLAN device: frames to MAC go to
// the VTEP at Dst.
type fdbEntry struct {
	MAC       string
	Dst       netip.Addr
	Permanent bool
}

// neighEntry is one neighbour entry of a VXLAN device.
type neighEntry struct {
	IP        netip.Addr
	MAC       string
	Permanent bool
}

// peerPlan is what syncPeers changes. Additions replace an existing entry
// with the same key (MAC for the FDB, IP for neighbours), so they are made
// first and removals never hit an entry an addition is about to fix.
type peerPlan struct {
	addFDB, delFDB     []fdbEntry
	addNeigh, delNeigh []neighEntry
}

func (pl peerPlan) empty() bool {
	return len(pl.addFDB)+len(pl.delFDB)+len(pl.addNeigh)+len(pl.delNeigh) == 0
}

// planPeers compares the entries a VXLAN device has with the ones peers
// need. It is pure, so the tricky cases (a MAC that moved host, an entry
// that is not permanent, several destinations for one MAC) are tested
// without a kernel.
func planPeers(peers []Peer, fdb []fdbEntry, neigh []neighEntry) peerPlan {
	wantDst := map[string]netip.Addr{}
	wantMAC := map[netip.Addr]string{}
	var order []Peer
	for _, p := range peers {
		mac := p.MAC.String()
		if _, dup := wantMAC[p.IP]; dup {
			continue
		}
		wantMAC[p.IP] = mac
		if _, dup := wantDst[mac]; !dup {
			order = append(order, p)
		}
		wantDst[mac] = p.Host
	}
	var pl peerPlan

	okFDB := map[string]bool{}
	for _, e := range fdb {
		want, ok := wantDst[e.MAC]
		switch {
		case ok && want == e.Dst && e.Permanent && !okFDB[e.MAC]:
			okFDB[e.MAC] = true
		case ok && want == e.Dst:
			// Not permanent, or a duplicate: the addition below
			// replaces it in place.
		default:
			pl.delFDB = append(pl.delFDB, e)
		}
	}
	for _, p := range order {
		if mac := p.MAC.String(); !okFDB[mac] {
			pl.addFDB = append(pl.addFDB, fdbEntry{MAC: mac, Dst: wantDst[mac], Permanent: true})
		}
	}

	okNeigh := map[netip.Addr]bool{}
	for _, e := range neigh {
		want, ok := wantMAC[e.IP]
		switch {
		case ok && want == e.MAC && e.Permanent:
			okNeigh[e.IP] = true
		case ok:
			// Replaced in place by the addition below.
		default:
			pl.delNeigh = append(pl.delNeigh, e)
		}
	}
	for _, p := range peers {
		if !okNeigh[p.IP] {
			okNeigh[p.IP] = true
			pl.addNeigh = append(pl.addNeigh, neighEntry{IP: p.IP, MAC: wantMAC[p.IP], Permanent: true})
		}
	}
	return pl
}

// syncPeers writes peers (already validated, remote only) to the network's
// VXLAN device.
func (p *Plane) syncPeers(log *zap.Logger, c Config, peers []Peer) error {
	name := vxlanName(c.ID)
	vx, err := linkByName(p.h, name)
	if err != nil {
		return err
	}
	if vx == nil {
		return fmt.Errorf("VXLAN device %s is missing; call EnsureNetwork again: %w", name, errdefs.ErrFailedPrecond)
	}
	index := vx.Attrs().Index
	fdb, neigh, err := p.vxlanEntries(index)
	if err != nil {
		return fmt.Errorf("read entries of %s: %w", name, err)
	}
	pl := planPeers(peers, fdb, neigh)
	if pl.empty() {
		return nil
	}
	for _, e := range pl.addFDB {
		if err := p.h.NeighSet(fdbNeigh(index, e)); err != nil {
			return fmt.Errorf("add forwarding entry %s → %s to %s: %w", e.MAC, e.Dst, name, err)
		}
	}
	for _, e := range pl.addNeigh {
		if err := p.h.NeighSet(neighOf(index, e)); err != nil {
			return fmt.Errorf("add neighbour entry %s → %s to %s: %w", e.IP, e.MAC, name, err)
		}
	}
	for _, e := range pl.delNeigh {
		if err := p.h.NeighDel(neighOf(index, e)); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove neighbour entry %s → %s from %s: %w", e.IP, e.MAC, name, err)
		}
	}
	for _, e := range pl.delFDB {
		if err := p.h.NeighDel(fdbNeigh(index, e)); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove forwarding entry %s → %s from %s: %w", e.MAC, e.Dst, name, err)
		}
	}
	log.Info("updated peers", zap.Int("peers", len(peers)),
		zap.Int("fdb_added", len(pl.addFDB)), zap.Int("fdb_removed", len(pl.delFDB)),
		zap.Int("neigh_added", len(pl.addNeigh)), zap.Int("neigh_removed", len(pl.delNeigh)))
	return nil
}

// vxlanEntries reads the VXLAN device's own forwarding entries (not the
// bridge's entries for its port) and its unicast neighbour entries.
func (p *Plane) vxlanEntries(index int) ([]fdbEntry, []neighEntry, error) {
	raw, err := dump(func() ([]netlink.Neigh, error) { return p.h.NeighList(index, unix.AF_BRIDGE) })
	if err != nil {
		return nil, nil, err
	}
	var fdb []fdbEntry
	for _, n := range raw {
		if n.LinkIndex != index || n.Flags&netlink.NTF_SELF == 0 || n.Flags&netlink.NTF_MASTER != 0 || n.MasterIndex != 0 || n.IP == nil {
			continue
		}
		fdb = append(fdb, fdbEntry{MAC: n.HardwareAddr.String(), Dst: addrOf(n.IP), Permanent: n.State&netlink.NUD_PERMANENT != 0})
	}
	var neigh []neighEntry
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		raw, err := dump(func() ([]netlink.Neigh, error) { return p.h.NeighList(index, family) })
		if err != nil {
			return nil, nil, err
		}
		for _, n := range raw {
			// NOARP entries are the kernel's own (multicast and
			// broadcast); the proxy never answers for them.
			if n.LinkIndex != index || n.State&netlink.NUD_NOARP != 0 || n.IP == nil {
				continue
			}
			neigh = append(neigh, neighEntry{IP: addrOf(n.IP), MAC: n.HardwareAddr.String(), Permanent: n.State&netlink.NUD_PERMANENT != 0})
		}
	}
	return fdb, neigh, nil
}

func fdbNeigh(index int, e fdbEntry) *netlink.Neigh {
	mac, _ := net.ParseMAC(e.MAC)
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           ipOf(e.Dst),
		HardwareAddr: mac,
	}
}

func neighOf(index int, e neighEntry) *netlink.Neigh {
	family := unix.AF_INET
	if e.IP.Is6() {
		family = unix.AF_INET6
	}
	mac, _ := net.ParseMAC(e.MAC)
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       family,
		State:        netlink.NUD_PERMANENT,
		IP:           ipOf(e.IP),
		HardwareAddr: mac,
	}
}
