// Package netoverlay is the node-local data plane of overlay networks: for
// each network a node takes part in, a Linux bridge and a VXLAN device in the
// node's network namespace, and for each container on the network a veth
// pair whose host end is a port of the bridge.
//
// The package makes the kernel match what it is told and decides nothing:
// which networks exist, which addresses containers get and which container
// lives behind which host come from the caller (the worker, fed by the
// managers and by gossip). Every call is idempotent and corrects what it
// finds, so a restarted daemon can replay its state over whatever an earlier
// run left behind and remove networks it no longer needs (see
// Plane.Networks).
//
// The VXLAN devices learn nothing and flood nothing: remote MAC addresses are
// reached through static forwarding entries (MAC → remote host), and ARP
// requests for remote containers are answered on the spot by the VXLAN
// device's proxy from static neighbour entries (IP → MAC). See SetPeers.
//
// The package talks to the kernel through rtnetlink
// (github.com/vishvananda/netlink) only; it runs no commands and touches no
// namespace but the one given to New and the container namespaces given to
// Attach. It knows nothing of the manager, the worker or the store.
package netoverlay
