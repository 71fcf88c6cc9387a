package netem

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family inet) that Run owns in the
// namespace while it runs.
const TableName = "shoal_netem"

// ChainName is the base chain in TableName, hooked on output.
const ChainName = "output"

// installRule creates, in one atomic batch, the equivalent of
//
//	table inet shoal_netem {
//		chain output {
//			type filter hook output priority 0; policy accept;
//			meta oifname "DEV" queue num QUEUE bypass
//		}
//	}
//
// replacing a leftover shoal_netem table (from a netem that was killed)
// if there is one. The queue statement is nft's native one where the
// kernel has it (CONFIG_NFT_QUEUE); where it does not, as on the test
// kernel, the same rule uses the xtables NFQUEUE target through nft_compat
// (what iptables-nft's -j NFQUEUE --queue-bypass installs). It reports
// whether it replaced a leftover and whether it had to use nft_compat.
func installRule(dev string, queue uint16) (replaced, compat bool, err error) {
	for _, compat := range []bool{false, true} {
		replaced, err = installRuleWith(dev, queue, compat)
		if compat || !errors.Is(err, unix.ENOENT) {
			// ENOENT from the native attempt means no "queue" expression
			// in this kernel; the batch was rolled back whole.
			return replaced, compat, err
		}
	}
	panic("unreachable")
}

func installRuleWith(dev string, queue uint16, compat bool) (replaced bool, err error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("netem: nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("netem: list nftables tables: %w (is nf_tables in the kernel?)", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			c.DelTable(t)
			replaced = true
		}
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	ch := c.AddChain(&nftables.Chain{
		Name:     ChainName,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityFilter,
	})
	// bypass: with no listener bound to the queue the packet passes.
	var toQueue expr.Any = &expr.Queue{Num: queue, Flag: expr.QueueFlagBypass}
	if compat {
		toQueue = nfqueueTarget(queue)
	}
	c.AddRule(&nftables.Rule{
		Table: t,
		Chain: ch,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(dev)},
			toQueue,
		},
	})
	if err := c.Flush(); err != nil {
		how := "queue"
		if compat {
			how = "xt NFQUEUE target"
		}
		return false, fmt.Errorf("netem: install nftables table inet %s (oifname %q -> %s %d bypass): %w", TableName, dev, how, queue, err)
	}
	return replaced, nil
}

// nfqueueTarget is the xtables NFQUEUE target, revision 3, with
// struct xt_NFQ_info_v3 {u16 queuenum; u16 queues_total; u16 flags} in
// host byte order, padded to XT_ALIGN (8), flags NFQ_FLAG_BYPASS.
func nfqueueTarget(queue uint16) *expr.Target {
	const nfqFlagBypass = 0x01
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:2], queue)
	binary.NativeEndian.PutUint16(info[2:4], 1) // queues_total: just this one
	binary.NativeEndian.PutUint16(info[4:6], nfqFlagBypass)
	raw := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &raw}
}

// flushRules deletes the rule (every rule in the table) but keeps the
// table and its hooked chain.
func flushRules() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netem: nftables: %w", err)
	}
	c.FlushTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netem: delete the rule in nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// removeTable deletes the whole table, its chain and rule with it. A table
// that is already gone is not an error.
func removeTable() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netem: nftables: %w", err)
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netem: delete nftables table inet %s: %w", TableName, err)
	}
	return nil
}

// ifname is dev as the kernel compares interface names: IFNAMSIZ bytes,
// NUL-padded (what `nft` emits for oifname "dev").
func ifname(dev string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, dev)
	return b
}
