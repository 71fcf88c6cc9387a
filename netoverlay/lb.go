package netoverlay

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LBTable is the nftables table (family ip) the node keeps in each
// overlay container's namespace: service VIPs balanced over their tasks.
const LBTable = "shoal_lb"

// VIP is one service's virtual IP and the addresses of its running tasks.
type VIP struct {
	Addr     netip.Addr
	Backends []netip.Addr
}

// lbKey renders VIPs in a canonical form, to tell whether the rules must
// change.
func lbKey(vips []VIP) string {
	var b strings.Builder
	for _, v := range vips {
		fmt.Fprintf(&b, "%s>", v.Addr)
		for _, be := range v.Backends {
			fmt.Fprintf(&b, "%s,", be)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// sortVIPs orders VIPs and their backends, so the same set renders the
// same rules.
func sortVIPs(vips []VIP) {
	for i := range vips {
		sort.Slice(vips[i].Backends, func(a, b int) bool { return vips[i].Backends[a].Less(vips[i].Backends[b]) })
	}
	sort.Slice(vips, func(a, b int) bool { return vips[a].Addr.Less(vips[b].Addr) })
}

// SetVIPs makes the load balancer in the namespace at ns exactly vips:
// connections the container opens to a VIP are DNATed to one of its
// backends, chosen uniformly at random per connection (a cascade of
// "numgen random mod k" rules: the first of k remaining backends with
// probability 1/k). The table is replaced in one transaction, so
// established connections, which conntrack has already translated, keep
// their backend; a removed backend only stops getting new ones. A VIP
// without backends gets no rule (its connections time out, as in Swarm).
func SetVIPs(ns string, vips []VIP) error {
	f, err := os.Open(ns)
	if err != nil {
		return fmt.Errorf("load balancer: namespace %s: %w", ns, err)
	}
	defer f.Close()
	if f.Fd() == 0 {
		return fmt.Errorf("load balancer: namespace %s: unusable descriptor", ns)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("load balancer: nftables in %s: %w", ns, err)
	}
	defer c.CloseLasting()
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: LBTable}
	// Replace atomically: add (so the delete cannot fail), delete, add.
	c.AddTable(table)
	c.DelTable(table)
	if len(vips) == 0 {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("load balancer: remove the table in %s: %w", ns, err)
		}
		return nil
	}
	c.AddTable(table)
	chain := c.AddChain(&nftables.Chain{
		Name: "output", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	for _, v := range vips {
		for i, be := range v.Backends {
			left := uint32(len(v.Backends) - i)
			exprs := []expr.Any{
				// ip daddr == VIP
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: v.Addr.AsSlice()},
			}
			exprs = append(exprs, oneIn(left)...)
			exprs = append(exprs,
				&expr.Immediate{Register: 1, Data: be.AsSlice()},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1},
			)
			c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("load balancer: rules in %s: %w", ns, err)
	}
	if err := forgetUntranslated(ns, vips); err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	return nil
}

// forgetUntranslated deletes, in the namespace at ns, the conntrack
// entries of connections to a VIP of vips that has backends which were
// not translated: opened while the VIP had no rule here (no backend yet,
// its service not yet known on the node), they went to the VIP itself and
// failed, but the entry stays (SYN_SENT: 2 minutes). A later connection
// that reuses the source port would match it and go out untranslated too,
// to an address nobody answers (no route to host after 3 s of ARP): a
// request lost during a rolling update, about 1 in 20,000 under load.
// Translated entries (established connections to a backend) are left
// alone.
func forgetUntranslated(ns string, vips []VIP) error {
	var filters []netlink.CustomConntrackFilter
	for _, v := range vips {
		if len(v.Backends) == 0 {
			continue
		}
		f := &netlink.ConntrackFilter{}
		ip := net.IP(v.Addr.Unmap().AsSlice())
		if err := f.AddIP(netlink.ConntrackOrigDstIP, ip); err != nil {
			return err
		}
		// Untranslated: the answer would come from the VIP itself.
		if err := f.AddIP(netlink.ConntrackReplySrcIP, ip); err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if len(filters) == 0 {
		return nil
	}
	h, err := netns.GetFromPath(ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("conntrack in %s: %w", ns, err)
	}
	defer nl.Close()
	if _, err := nl.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("forget untranslated connections to VIPs in %s: %w", ns, err)
	}
	return nil
}

// oneIn matches with probability 1/k (always when k is 1): the rule of
// the first of k remaining backends in a uniform cascade, so each of n
// backends gets 1/n of the new connections.
func oneIn(k uint32) []expr.Any {
	if k <= 1 {
		return nil
	}
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: k, Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(0)},
	}
}
