package netoverlay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// MeshTable is the nftables table (family ip) of the routing mesh in the
// node's namespace.
const MeshTable = "shoal_mesh"

// MeshPort is one published port of the routing mesh and the tasks (on
// the ingress network, at their target port) it is balanced over,
// cluster-wide.
type MeshPort struct {
	UDP      bool
	Port     uint16
	Backends []netip.AddrPort
}

// Mesh is the routing mesh of one node.
type Mesh struct {
	// Bridge is the ingress network's bridge on this node; NodeAddr the
	// node's own address on it, which forwarded connections come from
	// so that the tasks' answers come back through this node.
	Bridge   string
	NodeAddr netip.Addr
	Ports    []MeshPort
	// Bridges are every overlay bridge on the node: forwarding between two
	// different ones is dropped, so networks stay apart with IP
	// forwarding on.
	Bridges []string
	// Masquerade are the subnets of the local overlay networks whose
	// containers reach outside the cluster through the node's address.
	Masquerade []netip.Prefix
}

func (m Mesh) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%v|%v|", m.Bridge, m.NodeAddr, m.Bridges, m.Masquerade)
	for _, p := range m.Ports {
		fmt.Fprintf(&b, "%v/%d>%v;", p.UDP, p.Port, p.Backends)
	}
	return b.String()
}

func (m *Mesh) sort() {
	sort.Strings(m.Bridges)
	sort.Slice(m.Masquerade, func(i, j int) bool { return m.Masquerade[i].Addr().Less(m.Masquerade[j].Addr()) })
	sort.Slice(m.Ports, func(i, j int) bool {
		if m.Ports[i].Port != m.Ports[j].Port {
			return m.Ports[i].Port < m.Ports[j].Port
		}
		return !m.Ports[i].UDP && m.Ports[j].UDP
	})
	for _, p := range m.Ports {
		sort.Slice(p.Backends, func(a, b int) bool { return p.Backends[a].Compare(p.Backends[b]) < 0 })
	}
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit: the connection was
// DNATed (by the mesh).
const ipsDstNAT = 1 << 5

func u32(v uint32) []byte  { return binary.NativeEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func ifname(s string) []byte { b := make([]byte, unix.IFNAMSIZ); copy(b, s); return b }

// SetMesh makes the node's routing mesh exactly m, in the namespace at ns
// ("" for the caller's): a connection to any local address on a
// published port is DNATed to one of the port's backends (uniformly at
// random, as SetVIPs does), and SNATed to the node's ingress address as it
// leaves on the ingress bridge. The table is replaced in one transaction,
// so established connections keep their backends. IP forwarding is
// turned on in the namespace when there are ports to forward.
func SetMesh(ns string, m Mesh) error {
	var opts []nftables.ConnOption
	if ns != "" {
		f, err := os.Open(ns)
		if err != nil {
			return fmt.Errorf("routing mesh: namespace %s: %w", ns, err)
		}
		defer f.Close()
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("routing mesh: nftables: %w", err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: MeshTable}
	c.AddTable(table)
	c.DelTable(table)
	if len(m.Ports) == 0 && len(m.Bridges) < 2 && len(m.Masquerade) == 0 {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("routing mesh: remove the table: %w", err)
		}
		return nil
	}
	c.AddTable(table)
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	for _, p := range m.Ports {
		proto := byte(unix.IPPROTO_TCP)
		if p.UDP {
			proto = unix.IPPROTO_UDP
		}
		for i, be := range p.Backends {
			left := uint32(len(p.Backends) - i)
			exprs := []expr.Any{
				// fib daddr type local
				&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(unix.RTN_LOCAL)},
				// meta l4proto tcp|udp, th dport PORT
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(p.Port)},
			}
			exprs = append(exprs, oneIn(left)...)
			exprs = append(exprs,
				&expr.Immediate{Register: 1, Data: be.Addr().AsSlice()},
				&expr.Immediate{Register: 2, Data: be16(be.Port())},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true})
			c.AddRule(&nftables.Rule{Table: table, Chain: pre, Exprs: exprs})
			c.AddRule(&nftables.Rule{Table: table, Chain: out, Exprs: exprs})
		}
	}
	if m.Bridge != "" && m.NodeAddr.IsValid() {
		// oifname BRIDGE ct status dnat snat to NODEADDR
		c.AddRule(&nftables.Rule{Table: table, Chain: post, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(m.Bridge)},
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(ipsDstNAT), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)},
			&expr.Immediate{Register: 1, Data: m.NodeAddr.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1},
		}})
	}
	// ip saddr SUBNET oifname != "shb-*" masquerade: out of the
	// cluster through the node's own address.
	for _, p := range m.Masquerade {
		mask := net4Mask(p.Bits())
		c.AddRule(&nftables.Rule{Table: table, Chain: post, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(bridgePrefix)},
			&expr.Masq{},
		}})
	}
	// iifname A oifname "shb-*" oifname != A drop, per bridge A.
	for _, br := range m.Bridges {
		c.AddRule(&nftables.Rule{Table: table, Chain: fwd, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(br)},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(bridgePrefix)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(br)},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("routing mesh: rules: %w", err)
	}
	if len(m.Ports) > 0 || len(m.Masquerade) > 0 {
		if err := enableForwarding(ns); err != nil {
			return err
		}
	}
	return nil
}

func net4Mask(bits int) []byte {
	m := uint32(0xffffffff) << (32 - bits)
	return []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

// enableForwarding turns IPv4 forwarding on in the namespace at ns ("" for
// the caller's): the mesh forwards from the node's interfaces to the
// ingress bridge.
func enableForwarding(ns string) error {
	write := func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	}
	var err error
	if ns == "" {
		err = write()
	} else {
		err = InNetns(ns, write)
	}
	if err != nil {
		return fmt.Errorf("routing mesh: turn on IP forwarding: %w", err)
	}
	return nil
}
