package netoverlay

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// monitor records the rtnetlink notifications of one namespace, so a test
// can prove a call changed nothing. A change to the loopback's alias marks
// a point in the stream: the kernel notifies in the order changes happen,
// so what arrives before the mark happened before it.
type monitor struct {
	t    *testing.T
	s    *nl.NetlinkSocket
	h    *netlink.Handle
	lo   netlink.Link
	mark int
}

func newMonitor(t *testing.T, path string) *monitor {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	must(t, err)
	defer ns.Close()
	s, err := nl.SubscribeAt(ns, netns.None(), unix.NETLINK_ROUTE,
		unix.RTNLGRP_LINK, unix.RTNLGRP_NEIGH, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV4_ROUTE,
		unix.RTNLGRP_IPV6_IFADDR, unix.RTNLGRP_IPV6_ROUTE)
	must(t, err)
	t.Cleanup(s.Close)
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	must(t, s.SetReceiveTimeout(&tv))
	h := nsHandle(t, path)
	lo, err := h.LinkByName("lo")
	must(t, err)
	return &monitor{t: t, s: s, h: h, lo: lo}
}

// drain sets a mark and returns the notifications that came before it,
// leaving out those of the kernel's own bookkeeping: neighbour entries it
// learns and ages (only permanent ones are ours) and IPv6 link-local
// addresses and routes.
func (m *monitor) drain() []string {
	m.t.Helper()
	m.mark++
	mark := fmt.Sprintf("mark-%d", m.mark)
	must(m.t, m.h.LinkSetAlias(m.lo, mark))
	var events []string
	for {
		msgs, _, err := m.s.Receive()
		if err != nil {
			m.t.Fatalf("waiting for the mark %s: %v", mark, err)
		}
		for _, msg := range msgs {
			ev, done := describe(msg.Header.Type, msg.Data, m.lo.Attrs().Index, mark)
			if done {
				return events
			}
			if ev != "" {
				events = append(events, ev)
			}
		}
	}
}

var msgNames = map[uint16]string{
	unix.RTM_NEWLINK: "new link", unix.RTM_DELLINK: "del link",
	unix.RTM_NEWADDR: "new addr", unix.RTM_DELADDR: "del addr",
	unix.RTM_NEWROUTE: "new route", unix.RTM_DELROUTE: "del route",
	unix.RTM_NEWNEIGH: "new neigh", unix.RTM_DELNEIGH: "del neigh",
}

// describe turns a notification into a line, or "" for one to ignore;
// done is true for the mark.
func describe(typ uint16, data []byte, loIndex int, mark string) (ev string, done bool) {
	name := msgNames[typ]
	switch typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		link, err := netlink.LinkDeserialize(nil, data)
		if err != nil {
			return fmt.Sprintf("%s: %v", name, err), false
		}
		a := link.Attrs()
		if a.Index == loIndex {
			if a.Alias == mark {
				return "", true
			}
			if strings.HasPrefix(a.Alias, "mark-") {
				return "", false // an earlier mark
			}
		}
		return fmt.Sprintf("%s %s mtu %d flags %v oper %v master %d", name, a.Name, a.MTU, a.Flags, a.OperState, a.MasterIndex), false
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		n, err := netlink.NeighDeserialize(data)
		if err != nil {
			return fmt.Sprintf("%s: %v", name, err), false
		}
		if n.State&netlink.NUD_PERMANENT == 0 {
			return "", false
		}
		return fmt.Sprintf("%s dev %d family %d %s %s", name, n.LinkIndex, n.Family, n.IP, n.HardwareAddr), false
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		msg := nl.DeserializeIfAddrmsg(data)
		attrs, _ := nl.ParseRouteAttr(data[unix.SizeofIfAddrmsg:])
		for _, a := range attrs {
			if a.Attr.Type == unix.IFA_ADDRESS {
				ip := net.IP(a.Value)
				if ip.IsLinkLocalUnicast() {
					return "", false
				}
				return fmt.Sprintf("%s dev %d %s/%d", name, msg.Index, ip, msg.Prefixlen), false
			}
		}
		return fmt.Sprintf("%s dev %d", name, msg.Index), false
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		msg := nl.DeserializeRtMsg(data)
		if msg.Family == unix.AF_INET6 {
			// Link-local and multicast routes the kernel adds as
			// interfaces come up; the package makes no IPv6 routes
			// on IPv4 networks.
			return "", false
		}
		return fmt.Sprintf("%s family %d dst len %d table %d", name, msg.Family, msg.Dst_len, msg.Table), false
	}
	return fmt.Sprintf("message type %d", typ), false
}

// waitSettled waits until every interface that is up in the namespaces is
// operationally up too: the kernel reports carrier changes some time after
// a link is set up, and those reports must not count as changes of a later
// call.
func waitSettled(t *testing.T, paths ...string) {
	t.Helper()
	for _, path := range paths {
		h := nsHandle(t, path)
		waitFor(t, "links in "+path+" operationally up", func() error {
			links, err := h.LinkList()
			if err != nil {
				return err
			}
			for _, l := range links {
				a := l.Attrs()
				if a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
					return fmt.Errorf("%s is %v", a.Name, a.OperState)
				}
			}
			return nil
		})
	}
}

// snapshot describes what the package manages in a namespace: links,
// addresses, routes, and permanent neighbour and forwarding entries.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	h := nsHandle(t, path)
	links, err := h.LinkList()
	must(t, err)
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		alias := a.Alias
		if strings.HasPrefix(alias, "mark-") {
			alias = "(a monitor's mark)"
		}
		lines = append(lines, fmt.Sprintf("link %d %s %s mtu %d up %t master %d mac %s alias %q", a.Index, a.Name, l.Type(), a.MTU, a.Flags&net.FlagUp != 0, a.MasterIndex, a.HardwareAddr, alias))
		if v, ok := l.(*netlink.Vxlan); ok {
			lines = append(lines, fmt.Sprintf("vxlan %s id %d local %s port %d learning %t proxy %t", a.Name, v.VxlanId, v.SrcAddr, v.Port, v.Learning, v.Proxy))
		}
		addrs, err := h.AddrList(l, unix.AF_UNSPEC)
		must(t, err)
		for _, ad := range addrs {
			if !ad.IP.IsLinkLocalUnicast() {
				lines = append(lines, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
			}
		}
		for _, family := range []int{unix.AF_INET, unix.AF_INET6, unix.AF_BRIDGE} {
			neigh, err := h.NeighList(a.Index, family)
			must(t, err)
			for _, n := range neigh {
				if n.State&netlink.NUD_PERMANENT != 0 && n.LinkIndex == a.Index {
					lines = append(lines, fmt.Sprintf("neigh %s family %d %s %s flags %#x master %d", a.Name, family, n.IP, n.HardwareAddr, n.Flags, n.MasterIndex))
				}
			}
		}
	}
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	must(t, err)
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table %d dst %v gw %v dev %d src %v", r.Table, r.Dst, r.Gw, r.LinkIndex, r.Src))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}
