package store

import (
	"fmt"
	"net/netip"

	"github.com/shoal-run/shoal/manager/addrs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The allocator asks, for every address and port it considers, whether
// something in the store holds it. These indexes answer in one lookup
// instead of a scan of every service, task and node: "addr" indexes
// service VIPs, the interfaces of tasks that still hold theirs
// (addrs.TaskHolds) and nodes' own addresses (ingress, container
// attachments) by "network ID\x00address"; "endpoint_port" indexes the
// ports services' endpoints hold, allocated ones included.

// addrIndexer indexes the addresses an object holds.
type addrIndexer struct{}

func (addrIndexer) FromObject(obj any) (bool, [][]byte, error) {
	var vals [][]byte
	for _, a := range addrs.Held(obj) {
		vals = append(vals, []byte(a.Network+"\x00"+a.Addr.String()+"\x00"))
	}
	return len(vals) > 0, vals, nil
}

func (addrIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("addr index takes a network ID and an address")
	}
	return []byte(args[0].(string) + "\x00" + args[1].(string) + "\x00"), nil
}

// endpointPortIndexer indexes services by the ports their endpoints hold
// ("30000/tcp").
type endpointPortIndexer struct{}

func (endpointPortIndexer) FromObject(obj any) (bool, [][]byte, error) {
	var vals [][]byte
	for _, p := range obj.(*shoalv1.Service).GetEndpoint().GetPorts() {
		if p.GetPublishedPort() != 0 {
			vals = append(vals, []byte(PortString(p)+"\x00"))
		}
	}
	return len(vals) > 0, vals, nil
}

func (endpointPortIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("endpoint_port index takes one argument")
	}
	return []byte(args[0].(string) + "\x00"), nil
}

// AddrInUse reports whether a service, a task or a node holds address a
// on a network.
func AddrInUse(r ReadTx, network string, a netip.Addr) bool {
	for _, table := range []string{TableService, TableTask, TableNode} {
		if raw, err := r.tx.First(table, "addr", network, a.String()); err == nil && raw != nil {
			return true
		}
	}
	return false
}

// PortInUse reports whether the endpoint of a service other than except
// holds a published port ("8080/tcp").
func PortInUse(r ReadTx, key, except string) bool {
	it, err := r.tx.Get(TableService, "endpoint_port", key)
	if err != nil {
		return false
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if raw.(*shoalv1.Service).GetId() != except {
			return true
		}
	}
	return false
}
