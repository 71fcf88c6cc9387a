package netoverlay

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// OnDemand is the node's overlay data plane, made on the first task on a
// network (once the node is in a cluster and knows the address other
// nodes reach it on), fed by the gossip records of the other nodes and
// publishing its own. It is the worker's Networker.
type OnDemand struct {
	cfg OnDemandConfig

	mu      sync.Mutex
	node    *Node
	meshNo  bool     // told once why this node runs no routing mesh
	pending []string // a Prune that came before the overlay (non-nil)
}

// OnDemandConfig configures an OnDemand.
type OnDemandConfig struct {
	// Self says which node this is and the address (host:port) it
	// advertises; ok is false while the node is in no cluster.
	Self func() (nodeID, addr string, ok bool)
	// Records spreads this node's record and follows the others'.
	Records Records
	// DNSUpstream is the --dns-upstream setting (see DNSUpstreams).
	DNSUpstream []string
	Log         *zap.Logger
}

// Records is how nodes tell each other their overlay endpoints (the
// node's gossip).
type Records interface {
	// Publish spreads this node's record.
	Publish(data []byte)
	// FollowRecords has fn told every live node's record on each
	// change, and once now.
	FollowRecords(fn func(map[string][]byte))
}

// NewOnDemand makes the node's overlay, to be built on first use.
func NewOnDemand(cfg OnDemandConfig) *OnDemand {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &OnDemand{cfg: cfg}
}

// Get is the node's overlay, made now if it is not yet.
func (o *OnDemand) Get() (*Node, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.node != nil {
		return o.node, nil
	}
	nodeID, addr, ok := o.cfg.Self()
	if !ok {
		return nil, fmt.Errorf("overlay networks need the node to be in a swarm")
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	underlay, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("overlay networks need an IP address to advertise, not %q: use --advertise-addr", addr)
	}
	if underlay.IsLoopback() || underlay.IsUnspecified() {
		// A node on loopback (shoal dev, tests on 127.0.0.1) shares the
		// machine's namespace with everything else: no bridges, VXLAN
		// devices or forwarding there.
		return nil, fmt.Errorf("overlay networks need the node to advertise a non-loopback address (it advertises %s): use --advertise-addr", underlay)
	}
	plane, err := New("", o.cfg.Log)
	if err != nil {
		return nil, err
	}
	up, err := DNSUpstreams(o.cfg.DNSUpstream)
	if err != nil {
		return nil, err
	}
	n := NewNode(NodeConfig{Plane: plane, NodeID: nodeID, Underlay: underlay, Publish: o.cfg.Records.Publish,
		DNSUpstream: up, Log: o.cfg.Log})
	o.node = n
	o.cfg.Records.FollowRecords(n.SetRemote)
	if o.pending != nil {
		n.Prune(o.pending)
		o.pending = nil
	}
	return n, nil
}

// DNSUpstreams resolves the --dns-upstream setting: the IPs given, or
// the nameservers of /etc/resolv.conf when none is, or none for ["none"].
func DNSUpstreams(flag []string) ([]string, error) {
	if len(flag) == 1 && flag[0] == "none" {
		return nil, nil
	}
	if len(flag) == 0 {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return nil, nil // no resolver: names outside the cluster are refused
		}
		return Upstreams(string(data)), nil
	}
	var out []string
	for _, f := range flag {
		ip, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream %q: not an IP address (or none)", f)
		}
		out = append(out, net.JoinHostPort(ip.String(), "53"))
	}
	return out, nil
}

// Close stops the containers' DNS servers at daemon exit.
func (o *OnDemand) Close() {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// SetIngress hands the node's ingress attachment from a heartbeat answer
// to the overlay (the routing mesh), once it changed.
func (o *OnDemand) SetIngress(tn *shoalv1.TaskNetwork) {
	n, err := o.Get()
	if err != nil {
		o.mu.Lock()
		if !o.meshNo {
			o.meshNo = true
			o.cfg.Log.Info("no routing mesh on this node", zap.Error(err))
		}
		o.mu.Unlock()
		return
	}
	if err := n.SetIngress(tn); err != nil {
		o.cfg.Log.Warn("routing mesh", zap.Error(err))
	}
}

// Attach implements worker.Networker.
func (o *OnDemand) Attach(t *shoalv1.Task, ns string) error {
	n, err := o.Get()
	if err != nil {
		return err
	}
	return n.Attach(t, ns)
}

// Ready implements worker.Networker.
func (o *OnDemand) Ready(taskID string, ready bool) (was bool) {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n != nil {
		return n.SetReady(taskID, ready)
	}
	return false
}

// Prune implements worker.Networker: the overlay is made first (a node
// whose previous daemon left devices behind has them removed even before
// its next task on a network).
//
// The agent calls it with its own lock held, and Get takes the daemon's
// (through Self),
// which the daemon may hold while it waits for the agent (swarm leave):
// so without an overlay yet, the keep list waits for Get.
func (o *OnDemand) Prune(keep []string) {
	o.mu.Lock()
	n := o.node
	if n == nil {
		o.pending = append([]string{}, keep...)
	}
	o.mu.Unlock()
	if n != nil {
		n.Prune(keep)
	}
}

// Detach implements worker.Networker.
func (o *OnDemand) Detach(taskID string) error {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Detach(taskID)
}
