package gossip

import (
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Records are a small replicated table on top of the membership: each
// node publishes one record (opaque bytes: its overlay endpoints), and
// every node converges on the newest version of every live node's record
// without any manager. A change is sent at once to every member over TCP;
// the periodic push/pull exchanges whole tables and repairs what a send
// missed. A record whose origin fails or leaves the membership disappears
// from Records at once, which is what takes a dead node's endpoints out
// of DNS and the load balancers.

// record is one origin's record as this member knows it.
type record struct {
	version uint64
	data    []byte
}

// Publish replaces this node's record and sends it to every member.
// Neither it nor the other record methods call into memberlist while
// holding g.mu: memberlist calls the event delegate, which takes g.mu,
// with its own locks held.
// Versions are the publish time in nanoseconds (and always above the last
// one), so a restarted node's record supersedes what it published before.
func (g *Gossip) Publish(data []byte) {
	g.mu.Lock()
	self := g.self
	v := uint64(time.Now().UnixNano())
	if cur, ok := g.records[self]; ok && v <= cur.version {
		v = cur.version + 1
	}
	g.records[self] = record{version: v, data: slices.Clone(data)}
	msg, err := proto.Marshal(&shoalv1.GossipRecords{Records: []*shoalv1.GossipRecord{{Origin: self, Version: v, Data: data}}})
	g.mu.Unlock()
	if err != nil {
		g.log.Warn("gossip: encode record", zap.Error(err))
		return
	}
	for _, m := range g.ml.Members() {
		if m.Name == self {
			continue
		}
		go func(n *memberlist.Node) {
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Debug("gossip: send record", zap.String("to", n.Name), zap.Error(err))
			}
		}(m)
	}
	// Not inline: a caller may hold its own lock around Publish.
	go g.changed()
}

// sendOwn sends this node's record to a member that just joined (or came
// back), so it need not wait for a push/pull to learn it.
func (g *Gossip) sendOwn(n *memberlist.Node) {
	g.mu.Lock()
	ml, self := g.ml, g.self
	r, ok := g.records[self]
	g.mu.Unlock()
	if !ok || ml == nil || n.Name == self {
		return
	}
	msg, err := proto.Marshal(&shoalv1.GossipRecords{Records: []*shoalv1.GossipRecord{{Origin: self, Version: r.version, Data: r.data}}})
	if err != nil {
		return
	}
	if err := ml.SendReliable(n, msg); err != nil {
		g.log.Debug("gossip: send record", zap.String("to", n.Name), zap.Error(err))
	}
}

// Records returns the newest record of every live member, this node's
// included, by node ID.
func (g *Gossip) Records() map[string][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	self := g.self
	out := map[string][]byte{}
	for origin, r := range g.records {
		if _, alive := g.members[origin]; alive || origin == self {
			out[origin] = slices.Clone(r.data)
		}
	}
	return out
}

// merge takes every record newer than the one held; it reports whether
// anything changed.
func (g *Gossip) merge(buf []byte) bool {
	var in shoalv1.GossipRecords
	if err := proto.Unmarshal(buf, &in); err != nil {
		g.log.Debug("gossip: bad records", zap.Error(err))
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	self := g.self
	changed := false
	for _, r := range in.GetRecords() {
		if r.GetOrigin() == "" || r.GetOrigin() == self {
			continue // this node is the authority on its own record
		}
		if cur, ok := g.records[r.GetOrigin()]; ok && cur.version >= r.GetVersion() {
			continue
		}
		g.records[r.GetOrigin()] = record{version: r.GetVersion(), data: slices.Clone(r.GetData())}
		changed = true
	}
	return changed
}

// table encodes every record held, for a push/pull.
func (g *Gossip) table() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out shoalv1.GossipRecords
	for origin, r := range g.records {
		out.Records = append(out.Records, &shoalv1.GossipRecord{Origin: origin, Version: r.version, Data: r.data})
	}
	buf, err := proto.Marshal(&out)
	if err != nil {
		return nil
	}
	return buf
}
