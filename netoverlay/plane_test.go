package netoverlay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	net1 = "net1-0123456789abcdef"
	net2 = "net2-0123456789abcdef"
)

// Containers on two hosts talk over the overlay, and only while each host
// knows where the other's container is.
func TestCrossHost(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	a := l.A().container("cA", net1, "10.77.1.2")
	b := l.B().container("cB", net1, "10.77.1.3")
	a.echo(7000)
	b.echo(7000)

	// Before any peers: nothing crosses.
	if err := a.unreachable(b.addr(7000)); err != nil {
		t.Fatalf("without peers: %v", err)
	}

	l.setPeers(net1, a, b)
	// A megabyte each way travels as full-size (1450-byte) packets.
	must(t, a.reach(b.addr(7000), 1<<20))
	must(t, b.reach(a.addr(7000), 1<<20))

	// A's ARP for B was answered by A's VXLAN proxy with B's MAC.
	ch := nsHandle(t, a.ns)
	eth, err := ch.LinkByName("eth0")
	must(t, err)
	neigh, err := ch.NeighList(eth.Attrs().Index, unix.AF_INET)
	must(t, err)
	if i := slices.IndexFunc(neigh, func(n netlink.Neigh) bool { return addrOf(n.IP) == b.ip.Addr() }); i < 0 || neigh[i].HardwareAddr.String() != b.mac.String() {
		t.Errorf("container A's neighbours = %v; want %s at %s", neigh, b.ip.Addr(), b.mac)
	}

	// Take the peers away: connections time out, though A still has B's
	// MAC in its ARP cache.
	for _, h := range l.hosts {
		must(t, h.plane.SetPeers(net1, nil))
	}
	if err := a.unreachable(b.addr(7000)); err != nil {
		t.Errorf("after SetPeers(nil): %v", err)
	}
	if err := b.unreachable(a.addr(7000)); err != nil {
		t.Errorf("after SetPeers(nil): %v", err)
	}

	// And back.
	l.setPeers(net1, a, b)
	must(t, a.reach(b.addr(7000), 1000))
}

// Two containers on one host reach each other through the bridge alone.
func TestSameHost(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	a := l.A().container("cA", net1, "10.77.1.2")
	a2 := l.A().container("cA2", net1, "10.77.1.4")
	a2.echo(7000)
	a.echo(7000)
	must(t, a.reach(a2.addr(7000), 1<<20))
	must(t, a2.reach(a.addr(7000), 1000))
}

// Containers on different networks do not reach each other, on the same
// host or across hosts, while each network works.
func TestNetworksIsolated(t *testing.T) {
	l := newLab(t)
	// The nodes do not forward between interfaces (a new namespace's
	// default). With forwarding on, the networks' gateways would route
	// between them: keeping them apart at layer 3 then takes a forward
	// filter, which is not this package's.
	for _, h := range l.hosts {
		must(t, inNetns(h.ns, func() error {
			b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
			if err == nil && strings.TrimSpace(string(b)) != "0" {
				err = fmt.Errorf("%s forwards IPv4 (ip_forward=%s)", h.name, bytes.TrimSpace(b))
			}
			return err
		}))
	}
	l.ensure(net1, 4200, 1)
	l.ensure(net2, 4201, 2)
	a1 := l.A().container("cA1", net1, "10.77.1.2")
	b1 := l.B().container("cB1", net1, "10.77.1.3")
	a2 := l.A().container("cA2", net2, "10.77.2.2")
	b2 := l.B().container("cB2", net2, "10.77.2.3")
	l.setPeers(net1, a1, b1)
	l.setPeers(net2, a2, b2)
	for _, c := range []*ctr{a1, b1, a2, b2} {
		c.echo(7000)
	}
	must(t, a1.reach(b1.addr(7000), 1000))
	must(t, a2.reach(b2.addr(7000), 1000))
	for _, tc := range []struct{ from, to *ctr }{{a2, b1}, {a2, a1}, {b1, a2}, {a1, b2}} {
		if err := tc.from.unreachable(tc.to.addr(7000)); err != nil {
			t.Error(err)
		}
	}
}

// The devices have the overlay MTU and the VXLAN settings the data plane
// depends on.
func TestDevices(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	a := l.A().container("cA", net1, "10.77.1.2")
	hh := nsHandle(t, l.A().ns)

	br, err := hh.LinkByName(bridgeName(net1))
	must(t, err)
	vx, err := hh.LinkByName(vxlanName(net1))
	must(t, err)
	veth, err := hh.LinkByName(vethName(net1, a.ns))
	must(t, err)
	ch := nsHandle(t, a.ns)
	eth, err := ch.LinkByName("eth0")
	must(t, err)
	for _, link := range []netlink.Link{br, vx, veth, eth} {
		if got := link.Attrs().MTU; got != 1450 {
			t.Errorf("%s MTU = %d; want 1450 (1500 - %d)", link.Attrs().Name, got, Overhead)
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is down", link.Attrs().Name)
		}
	}
	for _, n := range []string{br.Attrs().Name, vx.Attrs().Name, veth.Attrs().Name} {
		if len(n) > 15 {
			t.Errorf("device name %q is longer than 15 bytes", n)
		}
	}

	v := vx.(*netlink.Vxlan)
	if v.VxlanId != 4200 || v.Port != VXLANPort || addrOf(v.SrcAddr) != l.A().ip || v.VtepDevIndex != 0 {
		t.Errorf("vxlan id %d port %d local %s dev %d; want 4200, %d, %s, none", v.VxlanId, v.Port, v.SrcAddr, v.VtepDevIndex, VXLANPort, l.A().ip)
	}
	if v.Learning || !v.Proxy || v.L2miss || v.L3miss {
		t.Errorf("vxlan learning=%t proxy=%t l2miss=%t l3miss=%t; want learning off, proxy on, no miss notifications", v.Learning, v.Proxy, v.L2miss, v.L3miss)
	}
	if vx.Attrs().MasterIndex != br.Attrs().Index || veth.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("vxlan master %d, veth master %d; want the bridge %d", vx.Attrs().MasterIndex, veth.Attrs().MasterIndex, br.Attrs().Index)
	}
	st, err := l.A().plane.getBridgeSTP(br.Attrs().Index)
	must(t, err)
	if st != (bridgeSTP{}) {
		t.Errorf("bridge STP state %d, forward delay %d; want 0, 0", st.stp, st.forwardDelay)
	}
	addrs, err := hh.AddrList(br, unix.AF_INET)
	must(t, err)
	if len(addrs) != 1 || prefixOf(addrs[0]) != netip.MustParsePrefix("10.77.1.1/24") {
		t.Errorf("bridge addresses = %v; want 10.77.1.1/24", addrs)
	}
	// The bridge keeps its own MAC address as ports come and go.
	if want := bridgeMAC(net1, l.A().ip).String(); br.Attrs().HardwareAddr.String() != want {
		t.Errorf("bridge MAC = %s; want %s", br.Attrs().HardwareAddr, want)
	}

	if eth.Attrs().HardwareAddr.String() != a.mac.String() {
		t.Errorf("container MAC = %s; want %s", eth.Attrs().HardwareAddr, a.mac)
	}
	caddrs, err := ch.AddrList(eth, unix.AF_INET)
	must(t, err)
	if len(caddrs) != 1 || prefixOf(caddrs[0]) != a.ip {
		t.Errorf("container addresses = %v; want %s", caddrs, a.ip)
	}
	routes, err := ch.RouteList(nil, unix.AF_INET)
	must(t, err)
	if i := slices.IndexFunc(routes, isDefault); i < 0 || addrOf(routes[i].Gw) != netip.MustParseAddr("10.77.1.1") || routes[i].LinkIndex != eth.Attrs().Index {
		t.Errorf("container routes = %v; want a default route via 10.77.1.1 dev eth0", routes)
	}
	lo, err := ch.LinkByName("lo")
	must(t, err)
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("container loopback is down")
	}

	// A network with jumbo frames on the underlay.
	jumbo := l.A().config(net2, 4201, 2)
	jumbo.MTU = 9000
	must(t, l.A().plane.EnsureNetwork(jumbo))
	for _, name := range []string{bridgeName(net2), vxlanName(net2)} {
		link, err := hh.LinkByName(name)
		must(t, err)
		if link.Attrs().MTU != 8950 {
			t.Errorf("%s MTU = %d; want 8950", name, link.Attrs().MTU)
		}
	}
}

// The peers' entries are exactly what SetPeers was given, and survive a
// VXLAN device that EnsureNetwork had to replace.
func TestSetPeersEntries(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	p := l.A().plane
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	b := netip.MustParseAddr("192.168.77.2")
	c := netip.MustParseAddr("192.168.77.3")
	peers := []Peer{
		{IP: netip.MustParseAddr("10.77.1.3"), MAC: mac("02:42:0a:4d:01:03"), Host: b},
		{IP: netip.MustParseAddr("10.77.1.4"), MAC: mac("02:42:0a:4d:01:04"), Host: c},
		{IP: netip.MustParseAddr("10.77.1.2"), MAC: mac("02:42:0a:4d:01:02"), Host: l.A().ip}, // this host: skipped
	}
	check := func(want ...string) {
		t.Helper()
		vx, err := p.h.LinkByName(vxlanName(net1))
		must(t, err)
		fdb, neigh, err := p.vxlanEntries(vx.Attrs().Index)
		must(t, err)
		var got []string
		for _, e := range fdb {
			got = append(got, "fdb "+e.MAC+" "+e.Dst.String()+map[bool]string{true: "", false: " temp"}[e.Permanent])
		}
		for _, e := range neigh {
			got = append(got, "neigh "+e.IP.String()+" "+e.MAC+map[bool]string{true: "", false: " temp"}[e.Permanent])
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	must(t, p.SetPeers(net1, peers))
	full := []string{
		"fdb 02:42:0a:4d:01:03 192.168.77.2", "fdb 02:42:0a:4d:01:04 192.168.77.3",
		"neigh 10.77.1.3 02:42:0a:4d:01:03", "neigh 10.77.1.4 02:42:0a:4d:01:04",
	}
	check(full...)

	// A container moved to another host, one left, one came.
	moved := []Peer{
		{IP: netip.MustParseAddr("10.77.1.3"), MAC: mac("02:42:0a:4d:01:03"), Host: c},
		{IP: netip.MustParseAddr("10.77.1.5"), MAC: mac("02:42:0a:4d:01:05"), Host: b},
	}
	must(t, p.SetPeers(net1, moved))
	check("fdb 02:42:0a:4d:01:03 192.168.77.3", "fdb 02:42:0a:4d:01:05 192.168.77.2",
		"neigh 10.77.1.3 02:42:0a:4d:01:03", "neigh 10.77.1.5 02:42:0a:4d:01:05")

	// A changed VNI replaces the VXLAN device; the peers come back on it.
	changed := l.A().config(net1, 4300, 1)
	must(t, p.EnsureNetwork(changed))
	vx, err := p.h.LinkByName(vxlanName(net1))
	must(t, err)
	if id := vx.(*netlink.Vxlan).VxlanId; id != 4300 {
		t.Errorf("VNI after the change = %d; want 4300", id)
	}
	check("fdb 02:42:0a:4d:01:03 192.168.77.3", "fdb 02:42:0a:4d:01:05 192.168.77.2",
		"neigh 10.77.1.3 02:42:0a:4d:01:03", "neigh 10.77.1.5 02:42:0a:4d:01:05")

	must(t, p.SetPeers(net1, nil))
	check()

	if err := p.SetPeers(net1, []Peer{{IP: netip.MustParseAddr("10.9.9.9"), MAC: mac("02:00:00:00:00:01"), Host: b}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("SetPeers with an IP outside the subnet = %v; want ErrInvalid", err)
	}
	if err := p.SetPeers("nope", nil); !errors.Is(err, errdefs.ErrFailedPrecond) {
		t.Errorf("SetPeers of an unknown network = %v; want ErrFailedPrecond", err)
	}
}

// A changed configuration is corrected in place, not duplicated.
func TestEnsureNetworkCorrects(t *testing.T) {
	l := newLab(t)
	h := l.A()
	c := h.config(net1, 4200, 1)
	must(t, h.plane.EnsureNetwork(c))
	c.BridgeAddrs = []netip.Prefix{netip.MustParsePrefix("10.77.1.254/24")}
	c.MTU = 1400
	must(t, h.plane.EnsureNetwork(c))
	hh := nsHandle(t, h.ns)
	br, err := hh.LinkByName(bridgeName(net1))
	must(t, err)
	addrs, err := hh.AddrList(br, unix.AF_INET)
	must(t, err)
	if len(addrs) != 1 || prefixOf(addrs[0]) != c.BridgeAddrs[0] {
		t.Errorf("bridge addresses = %v; want only %s", addrs, c.BridgeAddrs[0])
	}
	if br.Attrs().MTU != 1350 {
		t.Errorf("bridge MTU = %d; want 1350", br.Attrs().MTU)
	}
	links, err := hh.LinkList()
	must(t, err)
	var ours []string
	for _, link := range links {
		if isOurs(link.Attrs().Name) {
			ours = append(ours, link.Attrs().Name)
		}
	}
	slices.Sort(ours)
	if want := []string{bridgeName(net1), vxlanName(net1)}; !slices.Equal(ours, want) {
		t.Errorf("devices = %v; want %v", ours, want)
	}
	if got, err := h.plane.Networks(); err != nil || !slices.Equal(got, []string{net1}) {
		t.Errorf("Networks() = %v, %v; want [%s]", got, err, net1)
	}
}

// Doing everything a second time returns nil and changes nothing: not a
// link, an address, a route or a neighbour entry, in the host or the
// container.
func TestIdempotent(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	a := l.A().container("cA", net1, "10.77.1.2")
	b := l.B().container("cB", net1, "10.77.1.3")
	l.setPeers(net1, a, b)
	b.echo(7000)
	must(t, a.reach(b.addr(7000), 1000))

	hostMon := newMonitor(t, l.A().ns)
	ctrMon := newMonitor(t, a.ns)
	waitSettled(t, l.A().ns, a.ns)
	hostMon.drain()
	ctrMon.drain()
	before := snapshot(t, l.A().ns) + snapshot(t, a.ns)

	h := l.A()
	must(t, h.plane.EnsureNetwork(h.config(net1, 4200, 1)))
	must(t, h.plane.Attach(net1, a.ns, "eth0", a.ip, a.mac, true))
	must(t, h.plane.SetPeers(net1, []Peer{a.peer(), b.peer()}))

	if ev := hostMon.drain(); len(ev) > 0 {
		t.Errorf("the second round changed the host namespace:\n%s", strings.Join(ev, "\n"))
	}
	if ev := ctrMon.drain(); len(ev) > 0 {
		t.Errorf("the second round changed the container namespace:\n%s", strings.Join(ev, "\n"))
	}
	if after := snapshot(t, l.A().ns) + snapshot(t, a.ns); after != before {
		t.Errorf("state before the second round:\n%s\nafter:\n%s", before, after)
	}
	must(t, a.reach(b.addr(7000), 1000))
}

// Detach removes a container's veth, RemoveNetwork everything of the
// network, and both succeed when there is nothing left to remove.
func TestRemove(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	l.ensure(net2, 4201, 2)
	h := l.A()
	a := h.container("cA", net1, "10.77.1.2")
	a2 := h.container("cA2", net1, "10.77.1.4")
	o := h.container("cO", net2, "10.77.2.2")
	hh := nsHandle(t, h.ns)

	if got, err := h.plane.Networks(); err != nil || !slices.Equal(got, []string{net1, net2}) {
		t.Errorf("Networks() = %v, %v; want [%s %s]", got, err, net1, net2)
	}

	must(t, h.plane.Detach(net1, a.ns))
	if _, err := hh.LinkByName(vethName(net1, a.ns)); err == nil {
		t.Errorf("veth %s still exists after Detach", vethName(net1, a.ns))
	}
	if _, err := nsHandle(t, a.ns).LinkByName("eth0"); err == nil {
		t.Error("the container's eth0 still exists after Detach")
	}
	must(t, h.plane.Detach(net1, a.ns))

	must(t, h.plane.RemoveNetwork(net1))
	links, err := hh.LinkList()
	must(t, err)
	for _, link := range links {
		name := link.Attrs().Name
		if name == bridgeName(net1) || name == vxlanName(net1) || name == vethName(net1, a2.ns) || link.Attrs().Alias == net1 {
			t.Errorf("device %s of the removed network is still there", name)
		}
	}
	if _, err := nsHandle(t, a2.ns).LinkByName("eth0"); err == nil {
		t.Error("the container's eth0 is still there after RemoveNetwork")
	}
	// The other network is untouched.
	for _, name := range []string{bridgeName(net2), vxlanName(net2), vethName(net2, o.ns)} {
		if _, err := hh.LinkByName(name); err != nil {
			t.Errorf("device %s of the other network: %v", name, err)
		}
	}
	if got, err := h.plane.Networks(); err != nil || !slices.Equal(got, []string{net2}) {
		t.Errorf("Networks() = %v, %v; want [%s]", got, err, net2)
	}
	must(t, h.plane.RemoveNetwork(net1))
	if err := h.plane.Attach(net1, a.ns, "eth0", a.ip, a.mac, true); !errors.Is(err, errdefs.ErrFailedPrecond) {
		t.Errorf("Attach to a removed network = %v; want ErrFailedPrecond", err)
	}
}

// Attach refuses a name the container already uses, and replaces a veth
// whose container end is gone.
func TestAttachConflicts(t *testing.T) {
	l := newLab(t)
	l.ensure(net1, 4200, 1)
	l.ensure(net2, 4201, 2)
	h := l.A()
	a := h.container("cA", net1, "10.77.1.2")
	err := h.plane.Attach(net2, a.ns, "eth0", netip.MustParsePrefix("10.77.2.2/24"), net.HardwareAddr{2, 0, 0, 0, 0, 9}, false)
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("a second eth0 = %v; want ErrConflict", err)
	}
	must(t, h.plane.Attach(net2, a.ns, "eth1", netip.MustParsePrefix("10.77.2.2/24"), net.HardwareAddr{2, 0, 0, 0, 0, 9}, false))

	// The container end disappears (moved away by someone); Attach makes a
	// new pair.
	ch := nsHandle(t, a.ns)
	eth1, err := ch.LinkByName("eth1")
	must(t, err)
	must(t, ch.LinkSetName(eth1, "gone"))
	must(t, h.plane.Attach(net2, a.ns, "eth1", netip.MustParsePrefix("10.77.2.2/24"), net.HardwareAddr{2, 0, 0, 0, 0, 9}, false))
	if _, err := ch.LinkByName("gone"); err == nil {
		t.Error("the old pair's container end survived the replacement")
	}
	if _, err := ch.LinkByName("eth1"); err != nil {
		t.Errorf("eth1 after the replacement: %v", err)
	}
	for _, bad := range []netip.Prefix{netip.MustParsePrefix("10.77.9.2/24"), netip.MustParsePrefix("10.77.2.2/16")} {
		if err := h.plane.Attach(net2, a.ns, "eth2", bad, net.HardwareAddr{2, 0, 0, 0, 0, 8}, false); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Attach with address %s = %v; want ErrInvalid", bad, err)
		}
	}
}

// Devices a daemon created but did not get to name (it died in between)
// are reported by device name, removable by it, and adopted by
// EnsureNetwork.
func TestUnnamedDevices(t *testing.T) {
	l := newLab(t)
	h := l.A()
	hh := nsHandle(t, h.ns)
	for _, id := range []string{net1, net2} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = bridgeName(id)
		must(t, hh.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}))
	}
	got, err := h.plane.Networks()
	must(t, err)
	want := []string{bridgeName(net1), bridgeName(net2)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Networks() = %v; want %v", got, want)
	}
	must(t, h.plane.RemoveNetwork(bridgeName(net1)))
	must(t, h.plane.EnsureNetwork(h.config(net2, 4201, 2)))
	if got, err := h.plane.Networks(); err != nil || !slices.Equal(got, []string{net2}) {
		t.Errorf("Networks() = %v, %v; want [%s]", got, err, net2)
	}

	// A device of another network under this network's name is a
	// conflict, not adopted.
	other := netlink.NewLinkAttrs()
	other.Name = bridgeName(net1)
	must(t, hh.LinkAdd(&netlink.Bridge{LinkAttrs: other}))
	br, err := hh.LinkByName(other.Name)
	must(t, err)
	must(t, hh.LinkSetAlias(br, "someone-else"))
	if err := h.plane.EnsureNetwork(h.config(net1, 4200, 1)); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("EnsureNetwork over another network's bridge = %v; want ErrConflict", err)
	}
}
