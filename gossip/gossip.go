// Package gossip is the node's membership in the cluster-wide memberlist
// gossip (port 7946 tcp+udp, AES-GCM encrypted with the cluster's keys).
// Every node runs one. It gives two things the managers alone cannot:
// a second opinion on which nodes have failed (probes from every node,
// indirect probes through others, suspicion that the suspect may refute),
// which the leader uses to confirm a node down sooner than the heartbeat
// TTL; and the list of managers as the nodes themselves announce it, so a
// worker can fail over to managers it was never told about.
//
// Names in the membership are node IDs. The package knows memberlist and
// zap, and nothing of the manager or the store.
package gossip

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/logging"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// DefaultPort is the gossip port of DESIGN.md.
const DefaultPort = defaults.GossipPort

// KeySize is the size of a gossip key: AES-256.
const KeySize = 32

// Timing tunes failure detection. The defaults detect a dead node in
// about a second on a LAN while tolerating 200 ms round trips: a probe
// every 300 ms, a direct ack awaited 250 ms before indirect probes through
// other nodes, then a suspicion of 2 probe intervals that the suspect can
// refute before it is declared dead.
type Timing struct {
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	SuspicionMult  int
}

// DefaultTiming is the Timing used when none is given.
var DefaultTiming = Timing{
	ProbeInterval:  300 * time.Millisecond,
	ProbeTimeout:   250 * time.Millisecond,
	GossipInterval: 100 * time.Millisecond,
	SuspicionMult:  2,
}

// Config configures a member.
type Config struct {
	NodeID string
	// BindAddr is the host:port to listen on (tcp and udp).
	BindAddr string
	// AdvertiseAddr is the host:port other nodes reach this one on; the
	// bind address when empty.
	AdvertiseAddr string
	// Keys encrypt gossip; the first is the primary. At least one.
	Keys [][]byte
	Meta *shoalv1.GossipMeta
	// OnChange is called (without locks held, possibly concurrently)
	// after a member joins, fails, leaves or changes its meta.
	OnChange func()
	Timing   Timing
	Log      *zap.Logger
}

// Member is one node as this member sees it.
type Member struct {
	NodeID string
	Addr   string // gossip host:port
	Meta   *shoalv1.GossipMeta
}

// Gossip is a running member.
type Gossip struct {
	ml       *memberlist.Memberlist
	keyring  *memberlist.Keyring
	onChange func()
	log      *zap.Logger

	mu      sync.Mutex
	meta    []byte
	members map[string]Member    // alive or suspect
	failed  map[string]time.Time // node ID -> when it was declared dead
	keys    [][]byte
	records map[string]record // origin node ID -> its newest record
	self    string            // this node's ID
}

// ValidateKeys checks gossip keys.
func ValidateKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errors.New("gossip: no key: the cluster has not distributed its gossip key yet")
	}
	for i, k := range keys {
		if len(k) != KeySize {
			return fmt.Errorf("gossip: key %d is %d bytes, want %d", i, len(k), KeySize)
		}
	}
	return nil
}

// Start joins nobody yet: it listens and waits for Join or for others to
// join it.
func Start(cfg Config) (*Gossip, error) {
	if err := ValidateKeys(cfg.Keys); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	bindHost, bindPort, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address: %w", err)
	}
	advHost, advPort := bindHost, bindPort
	if cfg.AdvertiseAddr != "" {
		if advHost, advPort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("gossip advertise address: %w", err)
		}
	}
	meta, err := proto.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keys: %w", err)
	}
	g := &Gossip{
		keyring: kr, onChange: cfg.OnChange, log: cfg.Log, meta: meta,
		members: map[string]Member{}, failed: map[string]time.Time{}, keys: cloneKeys(cfg.Keys), records: map[string]record{}, self: cfg.NodeID,
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = bindHost, bindPort
	mc.AdvertiseAddr, mc.AdvertisePort = advHost, advPort
	mc.Keyring = kr
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.ProbeInterval = cfg.Timing.ProbeInterval
	mc.ProbeTimeout = cfg.Timing.ProbeTimeout
	mc.GossipInterval = cfg.Timing.GossipInterval
	mc.SuspicionMult = cfg.Timing.SuspicionMult
	mc.TCPTimeout = 2 * time.Second
	mc.PushPullInterval = 5 * time.Second // also repairs the records
	mc.DeadNodeReclaimTime = time.Second  // a node may come back on a new address
	mc.Logger = logging.StdLog(cfg.Log)
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.DNSConfigPath = "" // node addresses are IPs; never resolve through DNS
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", cfg.BindAddr, err)
	}
	g.mu.Lock()
	g.ml = ml
	g.mu.Unlock()
	return g, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = slices.Clone(k)
	}
	return out
}

// Join contacts the given gossip addresses and merges their state. It
// reports how many answered.
func (g *Gossip) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	return g.ml.Join(addrs)
}

// Addr is this member's advertised gossip address.
func (g *Gossip) Addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// SetKeys installs the cluster's current keys; the first becomes primary
// and keys no longer listed are dropped.
func (g *Gossip) SetKeys(keys [][]byte) error {
	if err := ValidateKeys(keys); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if slices.EqualFunc(keys, g.keys, func(a, b []byte) bool { return string(a) == string(b) }) {
		return nil
	}
	for _, k := range keys {
		if err := g.keyring.AddKey(k); err != nil {
			return err
		}
	}
	if err := g.keyring.UseKey(keys[0]); err != nil {
		return err
	}
	for _, old := range g.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return string(k) == string(old) }) {
			_ = g.keyring.RemoveKey(old)
		}
	}
	g.keys = cloneKeys(keys)
	g.log.Info("gossip keys changed", zap.Int("keys", len(keys)))
	return nil
}

// SetMeta changes what this node announces and spreads it.
func (g *Gossip) SetMeta(meta *shoalv1.GossipMeta) error {
	b, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	g.mu.Lock()
	same := string(b) == string(g.meta)
	g.meta = b
	g.mu.Unlock()
	if same {
		return nil
	}
	return g.ml.UpdateNode(time.Second)
}

// Members lists the nodes this member believes alive (or only
// suspected), itself included.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.NodeID < b.NodeID:
			return -1
		case a.NodeID > b.NodeID:
			return 1
		}
		return 0
	})
	return out
}

// Failed maps the nodes that dropped out of the membership (declared
// dead, or left) and have not come back since to when that happened.
// memberlist's Node.State does not tell the two apart in its leave
// event, and either way the node is gone; a daemon that restarts closes
// without leaving and comes back before it is declared dead.
func (g *Gossip) Failed() map[string]time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]time.Time, len(g.failed))
	for id, at := range g.failed {
		out[id] = at
	}
	return out
}

// Leave tells the others this node is going away for good (swarm leave),
// then stops.
func (g *Gossip) Leave() error {
	err := g.ml.Leave(time.Second)
	return errors.Join(err, g.ml.Shutdown())
}

// Close stops gossiping without a goodbye: to the others this looks like
// a failure unless the node comes back quickly, which is what a daemon
// restart is.
func (g *Gossip) Close() error { return g.ml.Shutdown() }

func (g *Gossip) changed() {
	if g.onChange != nil {
		g.onChange()
	}
}

// delegate is memberlist's Delegate: the node meta and the records.
type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return slices.Clone(d.meta)
}

func (d *delegate) NotifyMsg(buf []byte) {
	if (*Gossip)(d).merge(buf) {
		go (*Gossip)(d).changed()
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return (*Gossip)(d).table() }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if (*Gossip)(d).merge(buf) {
		go (*Gossip)(d).changed()
	}
}

// events is memberlist's EventDelegate. memberlist calls it with its own
// lock held, so it copies what it needs and returns.
type events Gossip

func (e *events) member(n *memberlist.Node) Member {
	meta := &shoalv1.GossipMeta{}
	if err := proto.Unmarshal(n.Meta, meta); err != nil {
		e.log.Debug("gossip: bad node meta", zap.String("node", n.Name), zap.Error(err))
	}
	return Member{NodeID: n.Name, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), Meta: meta}
}

func (e *events) NotifyJoin(n *memberlist.Node) {
	e.join(n)
	node := *n
	go (*Gossip)(e).sendOwn(&node)
}

func (e *events) join(n *memberlist.Node) {
	m := e.member(n)
	e.mu.Lock()
	e.members[m.NodeID] = m
	delete(e.failed, m.NodeID)
	e.mu.Unlock()
	go (*Gossip)(e).changed()
}

func (e *events) NotifyUpdate(n *memberlist.Node) { e.join(n) }

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.mu.Lock()
	delete(e.members, n.Name)
	e.failed[n.Name] = time.Now()
	e.mu.Unlock()
	go (*Gossip)(e).changed()
}
