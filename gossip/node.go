package gossip

import (
	"net"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Node runs the node's gossip membership: it starts once a heartbeat
// answer brings the cluster's keys, joins through the peers the leader
// names, rejoins peers it lost (after a partition heals), and follows key
// and role changes. It is the manager's view of gossip too
// (manager.GossipView), the overlay's channel for its records, and the
// worker's source of managers it was never told about.
type Node struct {
	log      *zap.Logger
	bind     string // host:port to listen on
	changed  chan struct{}
	joinWait time.Duration

	joins sync.WaitGroup // background joins; Stop waits for them

	mu        sync.Mutex
	g         *Gossip
	joining   bool
	lastJoin  time.Time
	record    []byte                  // this node's record, published once gossip runs
	onRecords func(map[string][]byte) // told every live node's record on each change
}

// Off as the gossip address runs the node without gossip: failures are
// then detected by heartbeats alone.
const Off = "off"

// NewNode makes the node's gossip membership, to listen on bind
// (host:port) once it starts.
func NewNode(log *zap.Logger, bind string) *Node {
	return &Node{log: log.Named("gossip"), bind: bind, changed: make(chan struct{}, 1), joinWait: 2 * time.Second}
}

// Sync acts on a heartbeat answer. self is this node's ID, advHost the
// host it advertises (may be empty), meta what it announces.
func (n *Node) Sync(self, advHost string, resp *shoalv1.HeartbeatResponse, meta *shoalv1.GossipMeta) {
	keys := resp.GetGossipKeys()
	if len(keys) == 0 || n.bind == Off {
		return // a leader from before gossip, no cluster yet, or gossip off
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.g == nil {
		adv := n.advertise(advHost, resp.GetObservedAddr())
		g, err := Start(Config{
			NodeID: self, BindAddr: n.bind, AdvertiseAddr: adv, Keys: keys, Meta: meta,
			OnChange: n.onChange, Log: n.log,
		})
		if err != nil {
			n.log.Warn("gossip did not start; failures are detected by heartbeats alone", zap.Error(err))
			return
		}
		n.g = g
		n.log.Info("gossip started", zap.String("addr", g.Addr()))
		if n.record != nil {
			g.Publish(n.record)
		}
	} else {
		if err := n.g.SetKeys(keys); err != nil {
			n.log.Warn("gossip keys", zap.Error(err))
		}
		if err := n.g.SetMeta(meta); err != nil {
			n.log.Debug("gossip meta", zap.Error(err))
		}
	}
	n.joinMissingLocked(resp.GetGossipPeers())
}

// advertise is the gossip address to announce: the bind address unless it
// is a wildcard, then the configured advertise host, then the address the
// manager saw this node call from.
func (n *Node) advertise(advHost, observed string) string {
	host, port, err := net.SplitHostPort(n.bind)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return ""
	}
	switch {
	case advHost != "":
		host = advHost
	case observed != "":
		host = observed
	default:
		return ""
	}
	return net.JoinHostPort(host, port)
}

// joinMissingLocked joins, in the background and at most every joinWait,
// the peers that are not in the membership. memberlist does not rejoin a
// peer it declared dead, so this is what heals gossip after a partition.
func (n *Node) joinMissingLocked(peers []string) {
	if n.joining || time.Since(n.lastJoin) < n.joinWait {
		return
	}
	have := map[string]bool{}
	for _, m := range n.g.Members() {
		have[m.Addr] = true
	}
	var missing []string
	for _, p := range peers {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	n.joining, n.lastJoin = true, time.Now()
	g := n.g
	n.joins.Add(1)
	go func() {
		defer n.joins.Done()
		k, err := g.Join(missing)
		n.log.Debug("gossip join", zap.Strings("peers", missing), zap.Int("answered", k), zap.Error(err))
		n.mu.Lock()
		n.joining = false
		n.mu.Unlock()
	}()
}

// onChange follows every membership or record change.
func (n *Node) onChange() {
	n.kick()
	n.mu.Lock()
	g, fn := n.g, n.onRecords
	n.mu.Unlock()
	if g != nil && fn != nil {
		fn(g.Records())
	}
}

// Publish sets this node's record (its overlay endpoints), spreading it
// now or as soon as gossip starts.
func (n *Node) Publish(data []byte) {
	n.mu.Lock()
	n.record = append([]byte(nil), data...)
	g := n.g
	n.mu.Unlock()
	if g != nil {
		g.Publish(data)
	}
}

// FollowRecords has fn told every live node's record on each change, and
// once now.
func (n *Node) FollowRecords(fn func(map[string][]byte)) {
	n.mu.Lock()
	n.onRecords = fn
	g := n.g
	n.mu.Unlock()
	if g != nil {
		fn(g.Records())
	}
}

func (n *Node) kick() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// Addr is the gossip address to report in heartbeats.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.g == nil {
		return ""
	}
	return n.g.Addr()
}

// Managers lists the gRPC addresses of the managers gossip knows.
func (n *Node) Managers() []string {
	n.mu.Lock()
	g := n.g
	n.mu.Unlock()
	if g == nil {
		return nil
	}
	var out []string
	for _, m := range g.Members() {
		if a := m.Meta.GetManagerAddr(); m.Meta.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER && a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Failed implements manager.GossipView.
func (n *Node) Failed() map[string]time.Time {
	n.mu.Lock()
	g := n.g
	n.mu.Unlock()
	if g == nil {
		return nil
	}
	return g.Failed()
}

// Changed implements manager.GossipView.
func (n *Node) Changed() <-chan struct{} { return n.changed }

// Stop ends gossip; leave says goodbye first (the node leaves the
// cluster), otherwise the others see a failure unless the node comes back
// in time (a daemon restart).
func (n *Node) Stop(leave bool) {
	n.mu.Lock()
	g := n.g
	n.g = nil
	n.mu.Unlock()
	// A join still under way finishes (bounded by memberlist's dial
	// timeout) before the memberlist it uses is shut down.
	n.joins.Wait()
	if g == nil {
		return
	}
	var err error
	if leave {
		err = g.Leave()
	} else {
		err = g.Close()
	}
	if err != nil {
		n.log.Debug("gossip stop", zap.Error(err))
	}
}
