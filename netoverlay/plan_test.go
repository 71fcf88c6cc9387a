package netoverlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestNames(t *testing.T) {
	if got := ShortID("net1"); !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(got) || got != ShortID("net1") {
		t.Errorf("ShortID(net1) = %q; want 10 stable hex digits", got)
	}
	for _, name := range []string{bridgeName("x"), vxlanName("x"), vethName("x", "/proc/1/ns/net")} {
		if len(name) > 15 || !isOurs(name) {
			t.Errorf("device name %q: longer than 15 bytes or not recognised as ours", name)
		}
	}
	if vethName("a", "bc") == vethName("ab", "c") {
		t.Error("veth names of different (network, namespace) pairs collide")
	}
	m := bridgeMAC("net1", netip.MustParseAddr("192.168.77.1"))
	if m[0]&1 != 0 || m[0]&2 == 0 || m.String() == bridgeMAC("net1", netip.MustParseAddr("192.168.77.2")).String() {
		t.Errorf("bridge MAC %s: want a locally administered unicast address that differs per node", m)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{
		ID:          "n",
		VNI:         4200,
		Subnet:      netip.MustParsePrefix("10.0.1.0/24"),
		BridgeAddrs: []netip.Prefix{netip.MustParsePrefix("10.0.1.1/24")},
		Underlay:    netip.MustParseAddr("192.168.1.5"),
	}
	if err := good.validate(); err != nil {
		t.Fatalf("validate(%+v) = %v", good, err)
	}
	if got := good.overlayMTU(); got != 1450 {
		t.Errorf("overlay MTU with the default underlay = %d; want 1450", got)
	}
	v6 := good
	v6.Underlay = netip.MustParseAddr("fd00::5")
	if got := v6.overlayMTU(); got != 1430 {
		t.Errorf("overlay MTU over an IPv6 underlay = %d; want 1430", got)
	}
	own := good
	own.NetworkMTU = 1400
	if got := own.overlayMTU(); got != 1400 {
		t.Errorf("overlay MTU of a network with its own = %d; want 1400", got)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no ID", func(c *Config) { c.ID = "" }},
		{"VNI 0", func(c *Config) { c.VNI = 0 }},
		{"VNI too big", func(c *Config) { c.VNI = 1 << 24 }},
		{"subnet not masked", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.0.1.5/24") }},
		{"bridge address outside", func(c *Config) { c.BridgeAddrs = []netip.Prefix{netip.MustParsePrefix("10.0.2.1/24")} }},
		{"bridge address other length", func(c *Config) { c.BridgeAddrs = []netip.Prefix{netip.MustParsePrefix("10.0.1.1/16")} }},
		{"bridge address is the network", func(c *Config) { c.BridgeAddrs = []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")} }},
		{"no underlay", func(c *Config) { c.Underlay = netip.Addr{} }},
		{"unspecified underlay", func(c *Config) { c.Underlay = netip.IPv4Unspecified() }},
		{"MTU too small", func(c *Config) { c.MTU = 100 }},
		{"MTU negative", func(c *Config) { c.MTU = -1 }},
		{"IPv6 subnet, IPv4 minimum MTU", func(c *Config) {
			c.Subnet, c.BridgeAddrs, c.MTU = netip.MustParsePrefix("fd00:1::/64"), nil, 1300
		}},
	} {
		c := good
		tc.edit(&c)
		if err := c.validate(); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: validate(%+v) = %v; want ErrInvalid", tc.name, c, err)
		}
	}
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestRemotePeers(t *testing.T) {
	c := Config{ID: "n", VNI: 1, Subnet: netip.MustParsePrefix("10.0.1.0/24"), Underlay: netip.MustParseAddr("192.168.1.1")}
	b := netip.MustParseAddr("192.168.1.2")
	p2 := Peer{IP: netip.MustParseAddr("10.0.1.2"), MAC: mac("02:42:0a:00:01:02"), Host: b}
	self := Peer{IP: netip.MustParseAddr("10.0.1.3"), MAC: mac("02:42:0a:00:01:03"), Host: c.Underlay}
	got, err := c.remotePeers([]Peer{p2, self, p2})
	if err != nil || len(got) != 1 || got[0].String() != p2.String() {
		t.Errorf("remotePeers(p2, self, p2) = %v, %v; want [%v]", got, err, p2)
	}
	for _, tc := range []struct {
		name  string
		peers []Peer
	}{
		{"IP outside the subnet", []Peer{{IP: netip.MustParseAddr("10.0.2.2"), MAC: p2.MAC, Host: b}}},
		{"multicast MAC", []Peer{{IP: p2.IP, MAC: mac("01:00:5e:00:00:01"), Host: b}}},
		{"no MAC", []Peer{{IP: p2.IP, Host: b}}},
		{"IPv6 host on an IPv4 underlay", []Peer{{IP: p2.IP, MAC: p2.MAC, Host: netip.MustParseAddr("fd00::1")}}},
		{"no host", []Peer{{IP: p2.IP, MAC: p2.MAC}}},
		{"one IP, two MACs", []Peer{p2, {IP: p2.IP, MAC: mac("02:00:00:00:00:09"), Host: b}}},
		{"one MAC, two hosts", []Peer{p2, {IP: netip.MustParseAddr("10.0.1.9"), MAC: p2.MAC, Host: netip.MustParseAddr("192.168.1.9")}}},
	} {
		if _, err := c.remotePeers(tc.peers); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: remotePeers(%v) = %v; want ErrInvalid", tc.name, tc.peers, err)
		}
	}
}

// planString renders a plan as sorted lines, "+fdb MAC DST", "-neigh IP MAC".
func planString(pl peerPlan) string {
	var lines []string
	for _, e := range pl.addFDB {
		lines = append(lines, fmt.Sprintf("+fdb %s %s", e.MAC, e.Dst))
	}
	for _, e := range pl.delFDB {
		lines = append(lines, fmt.Sprintf("-fdb %s %s", e.MAC, e.Dst))
	}
	for _, e := range pl.addNeigh {
		lines = append(lines, fmt.Sprintf("+neigh %s %s", e.IP, e.MAC))
	}
	for _, e := range pl.delNeigh {
		lines = append(lines, fmt.Sprintf("-neigh %s %s", e.IP, e.MAC))
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

func TestPlanPeers(t *testing.T) {
	const (
		m2 = "02:42:0a:00:01:02"
		m3 = "02:42:0a:00:01:03"
	)
	ip2, ip3 := netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.1.3")
	hb, hc := netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.1.3")
	p2 := Peer{IP: ip2, MAC: mac(m2), Host: hb}
	p3 := Peer{IP: ip3, MAC: mac(m3), Host: hb}
	f := func(m string, d netip.Addr, perm bool) fdbEntry { return fdbEntry{MAC: m, Dst: d, Permanent: perm} }
	n := func(ip netip.Addr, m string, perm bool) neighEntry {
		return neighEntry{IP: ip, MAC: m, Permanent: perm}
	}
	for _, tc := range []struct {
		name  string
		peers []Peer
		fdb   []fdbEntry
		neigh []neighEntry
		want  string
	}{
		{name: "empty", want: ""},
		{name: "all new", peers: []Peer{p2, p3},
			want: "+fdb 02:42:0a:00:01:02 192.168.1.2; +fdb 02:42:0a:00:01:03 192.168.1.2; +neigh 10.0.1.2 02:42:0a:00:01:02; +neigh 10.0.1.3 02:42:0a:00:01:03"},
		{name: "all there", peers: []Peer{p2},
			fdb: []fdbEntry{f(m2, hb, true)}, neigh: []neighEntry{n(ip2, m2, true)}, want: ""},
		{name: "all stale", fdb: []fdbEntry{f(m2, hb, true)}, neigh: []neighEntry{n(ip2, m2, true)},
			want: "-fdb 02:42:0a:00:01:02 192.168.1.2; -neigh 10.0.1.2 02:42:0a:00:01:02"},
		{name: "moved host: replaced, old destination removed", peers: []Peer{{IP: ip2, MAC: mac(m2), Host: hc}},
			fdb: []fdbEntry{f(m2, hb, true)}, neigh: []neighEntry{n(ip2, m2, true)},
			want: "+fdb 02:42:0a:00:01:02 192.168.1.3; -fdb 02:42:0a:00:01:02 192.168.1.2"},
		{name: "new MAC for an IP: replaced in place, not removed", peers: []Peer{{IP: ip2, MAC: mac(m3), Host: hb}},
			fdb: []fdbEntry{f(m3, hb, true)}, neigh: []neighEntry{n(ip2, m2, true)},
			want: "+neigh 10.0.1.2 02:42:0a:00:01:03"},
		{name: "not permanent: made permanent, not removed", peers: []Peer{p2},
			fdb: []fdbEntry{f(m2, hb, false)}, neigh: []neighEntry{n(ip2, m2, false)},
			want: "+fdb 02:42:0a:00:01:02 192.168.1.2; +neigh 10.0.1.2 02:42:0a:00:01:02"},
		{name: "extra destination for a MAC", peers: []Peer{p2},
			fdb:   []fdbEntry{f(m2, hb, true), f(m2, hc, true)},
			neigh: []neighEntry{n(ip2, m2, true)},
			want:  "-fdb 02:42:0a:00:01:02 192.168.1.3"},
		{name: "flooding entry removed", peers: []Peer{p2},
			fdb:   []fdbEntry{f(m2, hb, true), f("00:00:00:00:00:00", hc, true)},
			neigh: []neighEntry{n(ip2, m2, true)},
			want:  "-fdb 00:00:00:00:00:00 192.168.1.3"},
	} {
		if got := planString(planPeers(tc.peers, tc.fdb, tc.neigh)); got != tc.want {
			t.Errorf("%s: planPeers(%v, %v, %v) = %q; want %q", tc.name, tc.peers, tc.fdb, tc.neigh, got, tc.want)
		}
	}
}
