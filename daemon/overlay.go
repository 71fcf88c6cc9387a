package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/netoverlay"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
)

// overlay is the worker's Networker: the node's overlay data plane, made
// on the first task on a network (once the node is in a cluster and knows
// the address other nodes reach it on), fed by the gossip records of the
// other nodes and publishing its own.
type overlay struct {
	d *Daemon

	mu      sync.Mutex
	node    *netoverlay.Node
	meshNo  bool     // told once why this node runs no routing mesh
	pending []string // a Prune that came before the overlay (non-nil)
}

func (o *overlay) get() (*netoverlay.Node, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.node != nil {
		return o.node, nil
	}
	o.d.mu.Lock()
	st := o.d.st
	o.d.mu.Unlock()
	if st == nil {
		return nil, fmt.Errorf("overlay networks need the node to be in a swarm")
	}
	underlay, err := netip.ParseAddr(hostOfAddr(st.Addr))
	if err != nil {
		return nil, fmt.Errorf("overlay networks need an IP address to advertise, not %q: use --advertise-addr", st.Addr)
	}
	if underlay.IsLoopback() || underlay.IsUnspecified() {
		// A node on loopback (shoal dev, tests on 127.0.0.1) shares the
		// machine's namespace with everything else: no bridges, VXLAN
		// devices or forwarding there.
		return nil, fmt.Errorf("overlay networks need the node to advertise a non-loopback address (it advertises %s): use --advertise-addr", underlay)
	}
	plane, err := netoverlay.New("", o.d.log.Named("overlay"))
	if err != nil {
		return nil, err
	}
	up, err := dnsUpstream(o.d.cfg.DNSUpstream)
	if err != nil {
		return nil, err
	}
	n := netoverlay.NewNode(netoverlay.NodeConfig{Plane: plane, NodeID: st.NodeID, Underlay: underlay, Publish: o.d.gsp.Publish,
		DNSUpstream: up, Log: o.d.log.Named("overlay")})
	o.node = n
	o.d.gsp.FollowRecords(n.SetRemote)
	if o.pending != nil {
		n.Prune(o.pending)
		o.pending = nil
	}
	return n, nil
}

// dnsUpstream resolves the --dns-upstream setting.
func dnsUpstream(flag []string) ([]string, error) {
	if len(flag) == 1 && flag[0] == "none" {
		return nil, nil
	}
	if len(flag) == 0 {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return nil, nil // no resolver: names outside the cluster are refused
		}
		return netoverlay.Upstreams(string(data)), nil
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

// close stops the containers' DNS servers at daemon exit.
func (o *overlay) close() {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// setIngress hands the node's ingress attachment from a heartbeat answer
// to the overlay (the routing mesh), once it changed.
func (o *overlay) setIngress(tn *shoalv1.TaskNetwork) {
	n, err := o.get()
	if err != nil {
		o.mu.Lock()
		if !o.meshNo {
			o.meshNo = true
			o.d.log.Info("no routing mesh on this node", zap.Error(err))
		}
		o.mu.Unlock()
		return
	}
	if err := n.SetIngress(tn); err != nil {
		o.d.log.Warn("routing mesh", zap.Error(err))
	}
}

// Attach implements worker.Networker.
func (o *overlay) Attach(t *shoalv1.Task, ns string) error {
	n, err := o.get()
	if err != nil {
		return err
	}
	return n.Attach(t, ns)
}

// Ready implements worker.Networker.
func (o *overlay) Ready(taskID string, ready bool) {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n != nil {
		n.SetReady(taskID, ready)
	}
}

// Prune implements worker.Networker: the overlay is made first (a node
// whose previous daemon left devices behind has them removed even before
// its next task on a network).
//
// The agent calls it with its own lock held, and get takes the daemon's,
// which the daemon may hold while it waits for the agent (swarm leave):
// so without an overlay yet, the keep list waits for get.
func (o *overlay) Prune(keep []string) {
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
func (o *overlay) Detach(taskID string) error {
	o.mu.Lock()
	n := o.node
	o.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Detach(taskID)
}

// restoreDataPlane brings back the data plane of a node restarted in a
// cluster from what it saved and from its containers' labels, without
// waiting for a manager (there may be none answering): gossip with the
// last keys and peers, the routing mesh with the last ingress attachment,
// and every running container plugged in and announced again. The
// assignments, once a leader sends them, change only what they disagree
// with.
func (d *Daemon) restoreDataPlane(st *state, rt *container.Runtime) {
	if len(st.GossipKeys) > 0 {
		d.syncGossip(&shoalv1.HeartbeatResponse{GossipKeys: st.GossipKeys, GossipPeers: st.GossipPeers})
	}
	if in := st.ingress(); in != nil {
		d.work.overlay.setIngress(in)
	}
	for _, c := range rt.List() {
		v, ok := c.Labels[netoverlay.LabelNetworks]
		if !ok || c.Status != container.Running || c.Pid <= 0 {
			continue
		}
		t, err := netoverlay.DecodeNetworks(v)
		if err != nil {
			d.log.Warn("overlay: a container's networks label", zap.String("container", c.ID), zap.Error(err))
			continue
		}
		if err := d.work.overlay.Attach(t, netoverlay.ProcNetns(c.Pid)); err != nil {
			d.log.Warn("overlay: plug a running container in again", zap.String("container", c.ID), zap.Error(err))
			continue
		}
		if c.Labels[netoverlay.LabelAttachment] != "" {
			d.att.Running(c.ID, c.Labels) // and withdrawn when it exits
			continue
		}
		d.work.overlay.Ready(t.GetId(), true)
	}
}
