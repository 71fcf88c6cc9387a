// Package addrs says which network addresses and published ports an
// object of the store holds: the store indexes objects by them, the
// allocator and the control API ask them. It is a leaf: it imports
// nothing of the manager.
package addrs

import (
	"fmt"
	"net/netip"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// HoldsAddrs reports whether a task still holds its network addresses:
// from the moment a worker may have started its container until the
// worker reports it ended, and, before that, while it is still meant to
// run. A task that is no longer wanted and that no worker took up holds
// nothing.
func TaskHolds(t *shoalv1.Task) bool {
	st := t.GetStatus().GetState()
	switch st {
	case shoalv1.TaskState_TASK_STATE_COMPLETE, shoalv1.TaskState_TASK_STATE_FAILED, shoalv1.TaskState_TASK_STATE_SHUTDOWN,
		shoalv1.TaskState_TASK_STATE_REJECTED, shoalv1.TaskState_TASK_STATE_ORPHANED, shoalv1.TaskState_TASK_STATE_REMOVE:
		return false
	}
	if st < shoalv1.TaskState_TASK_STATE_ACCEPTED && !shoalv1.Runnable(t.GetDesiredState()) {
		return false
	}
	return true
}

// NetAddr is an address held on a network.
type NetAddr struct {
	Network string
	Addr    netip.Addr
}

// Held lists the addresses an object holds: a service's VIPs, the
// interfaces of a task that still holds its (TaskHolds), and a node's
// own ingress address and its standalone containers' attachments. The
// store indexes services, tasks and nodes by them (store.AddrInUse).
func Held(obj any) []NetAddr {
	var out []NetAddr
	add := func(network, cidr string) {
		if p, err := netip.ParsePrefix(cidr); err == nil && network != "" {
			out = append(out, NetAddr{network, p.Addr()})
		}
	}
	switch v := obj.(type) {
	case *shoalv1.Service:
		for _, ip := range v.GetEndpoint().GetVirtualIps() {
			add(ip.GetNetworkId(), ip.GetAddr())
		}
	case *shoalv1.Task:
		if TaskHolds(v) {
			for _, n := range v.GetNetworks() {
				add(n.GetNetworkId(), n.GetAddr())
			}
		}
	case *shoalv1.Node:
		if a := v.GetIngress(); a != nil {
			add(a.GetNetworkId(), a.GetAddr())
		}
		for _, a := range v.GetAttachments() {
			add(a.GetNetwork().GetNetworkId(), a.GetNetwork().GetAddr())
		}
	}
	return out
}

// PortKey renders a published port as "8080/tcp".
func PortKey(port uint32, proto shoalv1.PortProtocol) string {
	if proto == shoalv1.PortProtocol_PORT_PROTOCOL_UDP {
		return fmt.Sprintf("%d/udp", port)
	}
	return fmt.Sprintf("%d/tcp", port)
}
