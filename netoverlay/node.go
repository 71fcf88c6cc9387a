package netoverlay

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Node keeps this node's overlay in line with the tasks it runs and with
// what the other nodes announce: a network's bridge and VXLAN device exist
// while a local task is on it, each task's container has one interface per
// network (eth0, eth1, ... in the task's order), the node's own endpoints
// are published through Publish (the gossip record), and every remote
// endpoint on a local network is in the VXLAN device's FDB and neighbour
// table. Nothing here asks a manager: the data plane follows the gossip.
type Node struct {
	plane    *Plane
	underlay netip.Addr
	mtu      int
	publish  func([]byte)
	log      *zap.Logger
	upstream []string

	mu      sync.Mutex
	ingress *shoalv1.TaskNetwork // the node's own attachment to ingress
	// pruneKeep is a Prune waiting for the ingress attachment.
	pruneKeep []string
	mesh      string                               // the routing mesh last written (Mesh.key)
	local     map[string]localTask                 // task ID → its interfaces
	remote    map[string]*shoalv1.OverlayEndpoints // node ID → what it announced
	self      string

	// view is what the containers' DNS servers read: every endpoint by
	// network ID, replaced whole after each change, so a query never
	// waits on mu (held while nftables are written into every local
	// container's namespace).
	view atomic.Pointer[map[string][]*shoalv1.OverlayEndpoint]
}

type localTask struct {
	task *shoalv1.Task
	ns   string
	dns  *resolver
	lb   string // the VIPs last written to its namespace (lbKey)
	// ready is whether the task takes new connections: from when its
	// workload started until it is about to stop, so the VIPs, DNS and
	// the mesh neither send to a server not started yet nor to one
	// stopping. Before and after, its endpoints are announced as
	// draining: the other nodes keep it reachable (FDB and neighbour
	// entries), so the connections it has can finish.
	ready bool
}

// NodeConfig configures a Node.
type NodeConfig struct {
	Plane *Plane
	// NodeID is this node's ID, to skip its own gossip record.
	NodeID string
	// Underlay is the address other nodes send VXLAN packets to.
	Underlay netip.Addr
	MTU      int
	// Publish spreads this node's endpoints (an encoded
	// OverlayEndpoints) to the others.
	Publish func([]byte)
	// DNSUpstream are the resolvers ("host:53") names outside the
	// cluster are forwarded to; none refuses them.
	DNSUpstream []string
	Log         *zap.Logger
}

// NewNode starts with no local task.
func NewNode(c NodeConfig) *Node {
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.Publish == nil {
		c.Publish = func([]byte) {}
	}
	return &Node{plane: c.Plane, underlay: c.Underlay, mtu: c.MTU, publish: c.Publish, log: c.Log, upstream: c.DNSUpstream,
		local: map[string]localTask{}, remote: map[string]*shoalv1.OverlayEndpoints{}, self: c.NodeID}
}

// MAC is the interface address of ip on an overlay: 02:42 and the IPv4
// address, as Docker does, so it needs no allocation and every node can
// derive a remote endpoint's MAC from its IP.
func MAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// config is the node-local configuration of a task's network.
func (n *Node) config(tn *shoalv1.TaskNetwork) (Config, netip.Prefix, error) {
	addr, err := netip.ParsePrefix(tn.GetAddr())
	if err != nil {
		return Config{}, addr, fmt.Errorf("network %s: task address %q: %v", tn.GetNetworkName(), tn.GetAddr(), err)
	}
	c := Config{ID: tn.GetNetworkId(), VNI: tn.GetVni(), Subnet: addr.Masked(), Underlay: n.underlay, MTU: n.mtu, NetworkMTU: int(tn.GetMtu())}
	if gw, err := netip.ParseAddr(tn.GetGateway()); err == nil {
		c.BridgeAddrs = []netip.Prefix{netip.PrefixFrom(gw, addr.Bits())}
	}
	if own := n.ingress; own != nil && own.GetNetworkId() == tn.GetNetworkId() {
		if a, err := netip.ParsePrefix(own.GetAddr()); err == nil {
			c.BridgeAddrs = append(c.BridgeAddrs, a)
		}
	}
	return c, addr, nil
}

// Attach plugs the container of task t (its init's network namespace at
// ns, e.g. /proc/PID/ns/net) into each of the task's networks and
// announces it. The default route goes through the first network that is
// not the ingress network. Attaching again (a re-adopted container)
// repairs what is missing and changes nothing else.
func (n *Node) Attach(t *shoalv1.Task, ns string) error {
	nets := t.GetNetworks()
	if len(nets) == 0 {
		return nil
	}
	route := -1
	for i, tn := range nets {
		if !tn.GetIngress() {
			route = i
			break
		}
	}
	if route < 0 {
		route = 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// A container that is gone (a re-plug after a restart racing its
	// task's removal) makes no devices: they would outlive it.
	if _, err := os.Stat(ns); err != nil {
		return fmt.Errorf("the container's network namespace: %w", err)
	}
	had := map[string]bool{}
	if ids, err := n.plane.Networks(); err == nil {
		for _, id := range ids {
			had[id] = true
		}
	}
	for i, tn := range nets {
		c, addr, err := n.config(tn)
		if err != nil {
			return err
		}
		err = n.plane.EnsureNetwork(c)
		if err == nil {
			err = n.plane.Attach(c.ID, ns, fmt.Sprintf("eth%d", i), addr, MAC(addr.Addr()), i == route)
		}
		if err != nil {
			// Devices this call made, for it alone, go again.
			for _, made := range nets[:i+1] {
				if id := made.GetNetworkId(); !had[id] && !n.usedLocked(id) {
					_ = n.plane.RemoveNetwork(id)
				}
			}
			return fmt.Errorf("network %s: %w", tn.GetNetworkName(), err)
		}
	}
	lt := localTask{task: proto.Clone(t).(*shoalv1.Task), ns: ns}
	if prev, ok := n.local[t.GetId()]; ok && prev.ns == ns && prev.dns != nil {
		lt.dns = prev.dns
	} else {
		if ok && prev.dns != nil {
			prev.dns.close()
		}
		var names []string
		for _, tn := range nets {
			if !tn.GetIngress() {
				names = append(names, tn.GetNetworkId())
			}
		}
		r, err := serveDNS(ns, names, n.endpointsFrom, n.upstream, n.log)
		if err != nil {
			return fmt.Errorf("the container's DNS server: %w", err)
		}
		lt.dns = r
	}
	if prev, ok := n.local[t.GetId()]; ok && prev.ns == ns {
		lt.lb, lt.ready = prev.lb, prev.ready
	}
	n.local[t.GetId()] = lt
	n.announceLocked()
	for _, tn := range nets {
		n.syncPeersLocked(tn.GetNetworkId())
	}
	n.syncLBLocked()
	n.syncMeshLocked()
	return nil
}

// Detach forgets a task whose container is gone (or going), removes its
// interfaces and the networks no local task uses any more, and announces
// the change. Unknown tasks are ignored.
func (n *Node) Detach(taskID string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	lt, ok := n.local[taskID]
	if !ok {
		return nil
	}
	delete(n.local, taskID)
	n.announceLocked()
	if lt.dns != nil {
		lt.dns.close()
	}
	n.syncLBLocked()
	n.syncMeshLocked()
	var errs []error
	for _, tn := range lt.task.GetNetworks() {
		if err := n.plane.Detach(tn.GetNetworkId(), lt.ns); err != nil {
			errs = append(errs, err)
		}
		if !n.usedLocked(tn.GetNetworkId()) {
			if err := n.plane.RemoveNetwork(tn.GetNetworkId()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("detach task %s: %v", taskID, errs)
	}
	return nil
}

// SetIngress gives the node its own attachment to the ingress network
// (from the leader): the ingress bridge exists from then on, with the
// node's address on it, the node announces that address so tasks on other
// nodes can answer it, and the routing mesh forwards the published ports.
func (n *Node) SetIngress(tn *shoalv1.TaskNetwork) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if proto.Equal(tn, n.ingress) {
		return nil
	}
	n.ingress = proto.Clone(tn).(*shoalv1.TaskNetwork)
	c, _, err := n.config(tn)
	if err != nil {
		return err
	}
	if err := n.plane.EnsureNetwork(c); err != nil {
		return fmt.Errorf("ingress network: %w", err)
	}
	n.announceLocked()
	n.syncPeersLocked(tn.GetNetworkId())
	n.syncMeshLocked()
	if n.pruneKeep != nil {
		n.pruneLocked(n.pruneKeep)
		n.pruneKeep = nil
	}
	return nil
}

// syncMeshLocked brings the routing mesh in line with the ingress
// endpoints cluster-wide.
func (n *Node) syncMeshLocked() {
	own := n.ingress
	if own == nil {
		return
	}
	m := Mesh{Bridge: bridgeName(own.GetNetworkId())}
	if a, err := netip.ParsePrefix(own.GetAddr()); err == nil {
		m.NodeAddr = a.Addr()
	}
	bridges := map[string]bool{m.Bridge: true}
	subnets := map[netip.Prefix]bool{}
	for _, lt := range n.local {
		for _, tn := range lt.task.GetNetworks() {
			bridges[bridgeName(tn.GetNetworkId())] = true
			if a, err := netip.ParsePrefix(tn.GetAddr()); err == nil {
				subnets[a.Masked()] = true
			}
		}
	}
	for p := range subnets {
		m.Masquerade = append(m.Masquerade, p)
	}
	for b := range bridges {
		m.Bridges = append(m.Bridges, b)
	}
	ports := map[[2]uint32]*MeshPort{}
	for _, e := range n.endpointsLocked(own.GetNetworkId()) {
		addr, err := netip.ParseAddr(e.GetAddr())
		if err != nil || e.GetTaskId() == "" {
			continue
		}
		local := e.GetHost() == n.underlay.String()
		for _, p := range e.GetPorts() {
			if p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_HOST && !local {
				continue // host mode: only where a task runs, straight to it
			}
			udp := p.GetProtocol() == shoalv1.PortProtocol_PORT_PROTOCOL_UDP
			k := [2]uint32{p.GetPublishedPort(), 0}
			if udp {
				k[1] = 1
			}
			mp := ports[k]
			if mp == nil {
				mp = &MeshPort{UDP: udp, Port: uint16(p.GetPublishedPort())}
				ports[k] = mp
			}
			mp.Backends = append(mp.Backends, netip.AddrPortFrom(addr, uint16(p.GetTargetPort())))
		}
	}
	for _, mp := range ports {
		m.Ports = append(m.Ports, *mp)
	}
	m.sort()
	if k := m.key(); k != n.mesh {
		if err := SetMesh("", m); err != nil {
			n.log.Warn("overlay: routing mesh", zap.Error(err))
			return
		}
		n.mesh = k
	}
}

// SetReady puts a local task's endpoints into the VIPs, DNS and the mesh
// (its workload started, and passed its health check if it has one) or
// takes them out (it is about to stop, or failed its check), leaving it
// reachable for the connections it has. It says whether the task was
// ready before (false for unknown tasks, which are ignored).
func (n *Node) SetReady(taskID string, ready bool) (was bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	lt, ok := n.local[taskID]
	if !ok {
		return false
	}
	if was = lt.ready; was == ready {
		return was
	}
	lt.ready = ready
	n.local[taskID] = lt
	n.announceLocked()
	n.syncLBLocked()
	n.syncMeshLocked()
	return was
}

// Prune removes the bridge and VXLAN device of every network on the node
// that no local task, no task in keep (assigned, maybe not re-adopted
// yet) and not the node's ingress attachment is on: what a daemon that
// was down left of tasks that went meanwhile.
func (n *Node) Prune(keep []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ingress == nil {
		// Until the leader names the node's ingress attachment, its
		// bridge cannot be told from a leftover: prune once it does.
		n.pruneKeep = append([]string{}, keep...)
		return
	}
	n.pruneLocked(keep)
}

func (n *Node) pruneLocked(keep []string) {
	ids, err := n.plane.Networks()
	if err != nil {
		n.log.Warn("overlay: list networks", zap.Error(err))
		return
	}
	want := map[string]bool{}
	for _, id := range keep {
		want[id] = true
	}
	for _, id := range ids {
		if want[id] || n.usedLocked(id) {
			continue
		}
		if err := n.plane.RemoveNetwork(id); err != nil {
			n.log.Warn("overlay: remove a network no task is on", zap.String("network", id), zap.Error(err))
			continue
		}
		n.log.Info("overlay: removed a network no task is on", zap.String("network", id))
	}
}

func (n *Node) usedLocked(network string) bool {
	if n.ingress.GetNetworkId() == network {
		return true
	}
	for _, lt := range n.local {
		for _, tn := range lt.task.GetNetworks() {
			if tn.GetNetworkId() == network {
				return true
			}
		}
	}
	return false
}

// Local is this node's endpoints, as it announces them.
func (n *Node) Local() *shoalv1.OverlayEndpoints {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.localLocked()
}

func (n *Node) localLocked() *shoalv1.OverlayEndpoints {
	out := &shoalv1.OverlayEndpoints{}
	ids := make([]string, 0, len(n.local))
	for id := range n.local {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := n.local[id].task
		draining := !n.local[id].ready
		for _, tn := range t.GetNetworks() {
			addr, err := netip.ParsePrefix(tn.GetAddr())
			if err != nil {
				continue
			}
			vip := ""
			if v, err := netip.ParsePrefix(tn.GetVip()); err == nil {
				vip = v.Addr().String()
			}
			out.Endpoints = append(out.Endpoints, &shoalv1.OverlayEndpoint{
				NetworkId: tn.GetNetworkId(), TaskId: t.GetId(), ServiceId: t.GetServiceId(), ServiceName: t.GetServiceName(),
				Addr: addr.Addr().String(), Host: n.underlay.String(), Vip: vip, Aliases: tn.GetAliases(), Ingress: tn.GetIngress(),
				Ports: tn.GetPorts(), Draining: draining,
			})
		}
	}
	if own := n.ingress; own != nil {
		if a, err := netip.ParsePrefix(own.GetAddr()); err == nil {
			out.Endpoints = append(out.Endpoints, &shoalv1.OverlayEndpoint{
				NetworkId: own.GetNetworkId(), Addr: a.Addr().String(), Host: n.underlay.String(), Ingress: true,
				Mac: BridgeMAC(own.GetNetworkId(), n.underlay).String(),
			})
		}
	}
	return out
}

func (n *Node) announceLocked() {
	n.viewLocked()
	buf, err := proto.Marshal(n.localLocked())
	if err != nil {
		n.log.Warn("overlay: encode endpoints", zap.Error(err))
		return
	}
	n.publish(buf)
}

// viewLocked replaces the DNS servers' view with the endpoints known now.
func (n *Node) viewLocked() {
	v := map[string][]*shoalv1.OverlayEndpoint{}
	for _, e := range n.localLocked().GetEndpoints() {
		if !e.GetDraining() {
			v[e.GetNetworkId()] = append(v[e.GetNetworkId()], e)
		}
	}
	for _, eps := range n.remote {
		for _, e := range eps.GetEndpoints() {
			if !e.GetDraining() {
				v[e.GetNetworkId()] = append(v[e.GetNetworkId()], e)
			}
		}
	}
	n.view.Store(&v)
}

// SetRemote takes every node's announced endpoints (node ID → encoded
// OverlayEndpoints, this node's own skipped) and brings the peer tables
// of the local networks in line.
func (n *Node) SetRemote(records map[string][]byte) {
	remote := map[string]*shoalv1.OverlayEndpoints{}
	for node, buf := range records {
		if node == n.self {
			continue
		}
		var eps shoalv1.OverlayEndpoints
		if err := proto.Unmarshal(buf, &eps); err != nil {
			n.log.Debug("overlay: bad endpoints record", zap.String("node", node), zap.Error(err))
			continue
		}
		remote[node] = &eps
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.remote = remote
	done := map[string]bool{}
	for _, lt := range n.local {
		for _, tn := range lt.task.GetNetworks() {
			if id := tn.GetNetworkId(); !done[id] {
				done[id] = true
				n.syncPeersLocked(id)
			}
		}
	}
	if own := n.ingress; own != nil && !done[own.GetNetworkId()] {
		n.syncPeersLocked(own.GetNetworkId())
	}
	// DNS follows once the peers are reachable, before the slower
	// load-balancer and mesh rules.
	n.viewLocked()
	n.syncLBLocked()
	n.syncMeshLocked()
}

// Close stops the containers' DNS servers; the devices and containers
// stay (a restarted daemon re-adopts them).
func (n *Node) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, lt := range n.local {
		if lt.dns != nil {
			lt.dns.close()
		}
		lt.dns = nil
		n.local[id] = lt
	}
}

// endpointsFrom is Endpoints for the DNS servers, from the view: without
// taking mu.
func (n *Node) endpointsFrom(network string) []*shoalv1.OverlayEndpoint {
	if v := n.view.Load(); v != nil {
		return (*v)[network]
	}
	return nil
}

// Endpoints is every endpoint on a network that takes new connections
// (not draining): local and remote.
func (n *Node) Endpoints(network string) []*shoalv1.OverlayEndpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.endpointsLocked(network)
}

func (n *Node) endpointsLocked(network string) []*shoalv1.OverlayEndpoint {
	var out []*shoalv1.OverlayEndpoint
	for _, e := range n.localLocked().GetEndpoints() {
		if e.GetNetworkId() == network && !e.GetDraining() {
			out = append(out, e)
		}
	}
	for _, eps := range n.remote {
		for _, e := range eps.GetEndpoints() {
			if e.GetNetworkId() == network && !e.GetDraining() {
				out = append(out, e)
			}
		}
	}
	return out
}

// syncLBLocked brings every local container's load balancer in line with
// the endpoints known: for each network it is on (but ingress), each
// service VIP there balanced over the service's tasks on that network.
func (n *Node) syncLBLocked() {
	for id, lt := range n.local {
		var vips []VIP
		for _, tn := range lt.task.GetNetworks() {
			if tn.GetIngress() {
				continue
			}
			byVIP := map[netip.Addr][]netip.Addr{}
			for _, e := range n.endpointsLocked(tn.GetNetworkId()) {
				vip, err1 := netip.ParseAddr(e.GetVip())
				addr, err2 := netip.ParseAddr(e.GetAddr())
				if err1 == nil && err2 == nil {
					byVIP[vip] = append(byVIP[vip], addr)
				}
			}
			for vip, bes := range byVIP {
				vips = append(vips, VIP{Addr: vip, Backends: bes})
			}
		}
		sortVIPs(vips)
		key := lbKey(vips)
		if key == lt.lb {
			continue
		}
		if err := SetVIPs(lt.ns, vips); err != nil {
			n.log.Warn("overlay: load balancer", zap.String("task", id), zap.Error(err))
			continue
		}
		n.log.Debug("overlay: load balancer set", zap.String("task", id), zap.String("vips", key))
		lt.lb = key
		n.local[id] = lt
	}
}

func (n *Node) syncPeersLocked(network string) {
	var peers []Peer
	for _, eps := range n.remote {
		for _, e := range eps.GetEndpoints() {
			if e.GetNetworkId() != network {
				continue
			}
			ip, err1 := netip.ParseAddr(e.GetAddr())
			host, err2 := netip.ParseAddr(e.GetHost())
			if err1 != nil || err2 != nil || host == n.underlay {
				continue
			}
			mac := MAC(ip)
			if m, err := net.ParseMAC(e.GetMac()); err == nil {
				mac = m
			}
			peers = append(peers, Peer{IP: ip, MAC: mac, Host: host})
		}
	}
	if err := n.plane.SetPeers(network, peers); err != nil {
		n.log.Warn("overlay: peers", zap.String("network", network), zap.Error(err))
	}
}
