package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// partitionTable is the nftables table (family inet) that Partition owns in
// a host's namespace. Healing deletes it whole, chains and set with it.
const partitionTable = "shoal_test_partition"

// partitionSet is the set, in partitionTable, of the IPv4 addresses the
// host is cut off from.
const partitionSet = "cut"

// partitionMu serializes Partition and heal across all hosts. Within one
// host it makes "does the table exist yet" and "create it" one step; across
// hosts it is needed because nftables v0.3.0 numbers new sets from a
// package-level counter that AddSet increments under the Conn's own lock
// only, so two Conns adding sets at once race.
var partitionMu sync.Mutex

// Partition cuts the host off from the given hosts (all other hosts of its
// Net, and the Net's registry address, when none are given): every IPv4
// packet between them is dropped in the host's namespace, both directions,
// by an nftables table (family inet, name "shoal_test_partition") with an
// input and an output filter chain and a set of the cut addresses. The drop
// is silent (no RST, no ICMP), so established TCP connections stall rather
// than reset, as when a cable is pulled, and new connections time out
// rather than being refused. The cut is in force when Partition returns.
//
// Cutting again adds addresses to the set. heal removes the whole table,
// whichever call made it, so it ends every cut of this host at once; it is
// idempotent, and it is also run at test cleanup. Like Partition it reports
// failure through the test's Fatalf, so call it from the test's goroutine.
func (h *Host) Partition(from ...*Host) (heal func()) {
	if h.net == nil {
		panic("harness: Partition on a host that is not on a Net")
	}
	t := h.net.t
	t.Helper()
	addrs := h.partitionPeers(from)

	heal = func() {
		t.Helper()
		if err := h.healPartition(); err != nil {
			t.Fatalf("heal the partition of %s: %v", h.Name, err)
		}
	}
	t.Cleanup(heal)

	partitionMu.Lock()
	defer partitionMu.Unlock()
	err := withNftables(h, func(c *nftables.Conn) error {
		exists, err := tableExists(c)
		if err != nil {
			return err
		}
		elems := make([]nftables.SetElement, len(addrs))
		for i, a := range addrs {
			elems[i] = nftables.SetElement{Key: net.ParseIP(a).To4()}
		}
		table := &nftables.Table{Family: nftables.TableFamilyINet, Name: partitionTable}
		if exists {
			set := &nftables.Set{Table: table, Name: partitionSet, KeyType: nftables.TypeIPAddr}
			if err := c.SetAddElements(set, elems); err != nil {
				return err
			}
			return c.Flush()
		}
		if err := addPartitionTable(c, table, elems); err != nil {
			return err
		}
		return c.Flush()
	})
	if err != nil {
		t.Fatalf("partition %s (%s) from %s: %v", h.Name, h.IP, strings.Join(addrs, ", "), err)
	}
	return heal
}

// partitionPeers lists the IPv4 addresses Partition cuts h off from: those
// of from, or when from is empty those of every other host of h's Net and
// the registry's. A host on another Net, or h itself, is a test bug and
// fails the test: their addresses would mean nothing, or cut h off from
// its own sockets.
func (h *Host) partitionPeers(from []*Host) []string {
	t := h.net.t
	t.Helper()
	if len(from) == 0 {
		for _, o := range h.net.hosts {
			if o != h {
				from = append(from, o)
			}
		}
		reg, _, err := net.SplitHostPort(RegistryAddr)
		if err != nil {
			t.Fatalf("registry address %q: %v", RegistryAddr, err)
		}
		addrs := []string{reg}
		for _, o := range from {
			addrs = append(addrs, o.IP)
		}
		return addrs
	}
	var addrs []string
	for _, o := range from {
		switch {
		case o == nil:
			t.Fatalf("partition %s from a nil host", h.Name)
		case o == h:
			t.Fatalf("partition %s from itself", h.Name)
		case o.net != h.net:
			t.Fatalf("partition %s from %s, a host on a different Net", h.Name, o.Name)
		}
		addrs = append(addrs, o.IP)
	}
	return addrs
}

// addPartitionTable queues, for one atomic batch, the equivalent of
//
//	table inet shoal_test_partition {
//		set cut { type ipv4_addr; elements = { ELEMS } }
//		chain input {
//			type filter hook input priority 0; policy accept;
//			meta nfproto ipv4 ip saddr @cut drop
//		}
//		chain output {
//			type filter hook output priority 0; policy accept;
//			meta nfproto ipv4 ip daddr @cut drop
//		}
//	}
//
// The nfproto match comes first because an inet table sees IPv6 packets
// too, whose network header has other bytes at the IPv4 address offsets.
func addPartitionTable(c *nftables.Conn, table *nftables.Table, elems []nftables.SetElement) error {
	c.AddTable(table)
	set := &nftables.Set{Table: table, Name: partitionSet, KeyType: nftables.TypeIPAddr}
	if err := c.AddSet(set, elems); err != nil {
		return fmt.Errorf("nftables set %s: %w", partitionSet, err)
	}
	accept := nftables.ChainPolicyAccept
	for _, dir := range []struct {
		chain  string
		hook   *nftables.ChainHook
		offset uint32 // of the address in the IPv4 header: saddr 12, daddr 16
	}{
		{"input", nftables.ChainHookInput, 12},
		{"output", nftables.ChainHookOutput, 16},
	} {
		ch := c.AddChain(&nftables.Chain{
			Name:     dir.chain,
			Table:    table,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  dir.hook,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &accept,
		})
		c.AddRule(&nftables.Rule{
			Table: table,
			Chain: ch,
			Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: dir.offset, Len: 4},
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
				&expr.Verdict{Kind: expr.VerdictDrop},
			},
		})
	}
	return nil
}

// healPartition deletes the host's partition table. A table that is
// already gone, or a namespace that is (its tables went with it), is not
// an error.
func (h *Host) healPartition() error {
	partitionMu.Lock()
	defer partitionMu.Unlock()
	err := withNftables(h, func(c *nftables.Conn) error {
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: partitionTable})
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete nftables table inet %s: %w", partitionTable, err)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// hasPartitionTable reports whether the host's namespace holds the
// partition table, for tests that check heal.
func (h *Host) hasPartitionTable() (bool, error) {
	var exists bool
	err := withNftables(h, func(c *nftables.Conn) (err error) {
		exists, err = tableExists(c)
		return err
	})
	return exists, err
}

func tableExists(c *nftables.Conn) (bool, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == partitionTable {
			return true, nil
		}
	}
	return false, nil
}

// withNftables runs fn with an nftables connection bound to the host's
// namespace. The namespace file stays open until fn returns, because the
// Conn opens a new netlink socket, in the namespace the fd names, for every
// operation. Descriptor 0 is refused: to nftables (and the netlink package
// under it) NetNS 0 means "the calling thread's namespace", which would put
// the rules on the machine itself.
func withNftables(h *Host, fn func(*nftables.Conn) error) error {
	f, err := os.Open(NetnsPath(h.NS))
	if err != nil {
		return fmt.Errorf("network namespace of %s: %w", h.Name, err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if fd == 0 {
		return fmt.Errorf("network namespace of %s opened as descriptor 0, which nftables takes for the current namespace", h.Name)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.NS, err)
	}
	return fn(c)
}
