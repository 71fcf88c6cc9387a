package daemon

import (
	"bytes"
	"context"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/ca"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker/session"
)

// The node's membership as the leader sees it. Every heartbeat answer
// (worker/session sends the heartbeats) may say the node was removed,
// promoted or demoted, and names the managers, gossip keys and peers, the
// node's ingress attachment and the attachments it holds. The daemon keeps
// what a restart needs, renews the node's certificate before it expires or
// when its role changes, starts or stops the manager to match the role,
// and hands the rest to the parts it concerns.

// startAgent starts the heartbeats and the assignment stream. Callers
// hold d.mu.
func (d *Daemon) startAgent() {
	d.agt = startLoop(d.ctx, func(ctx context.Context) { d.session.Heartbeats(ctx, d.cfg.HeartbeatPeriod, d) })
	d.sess = startLoop(d.ctx, func(ctx context.Context) { d.session.FollowAssignments(ctx, d.agent) })
	d.logSubs = startLoop(d.ctx, func(ctx context.Context) { d.session.FollowLogSubscriptions(ctx, d.logPub) })
}

// stopAgent stops them and waits. Callers must not hold d.mu: the loops
// may be waiting for it.
func (d *Daemon) stopAgent() {
	d.mu.Lock()
	a, s, l := d.agt, d.sess, d.logSubs
	d.agt, d.sess, d.logSubs = nil, nil, nil
	d.mu.Unlock()
	a.stop()
	s.stop()
	l.stop()
}

// Request implements session.Beat.
func (d *Daemon) Request() *shoalv1.HeartbeatRequest {
	return &shoalv1.HeartbeatRequest{Description: d.describe(), GossipAddr: d.gsp.Addr()}
}

// Answered implements session.Beat.
func (d *Daemon) Answered(ctx context.Context, resp *shoalv1.HeartbeatResponse) (stop bool) {
	if d.reconcile(ctx, resp) {
		return true
	}
	d.syncGossip(resp)
	if in := resp.GetIngress(); in != nil {
		d.overlay.SetIngress(in)
	}
	d.att.Reconcile(resp.GetAttachments())
	return false
}

// syncGossip starts or updates the node's gossip from a heartbeat answer.
func (d *Daemon) syncGossip(resp *shoalv1.HeartbeatResponse) {
	d.mu.Lock()
	if d.st == nil || d.id == nil {
		d.mu.Unlock()
		return
	}
	self, adv := d.st.NodeID, hostOfAddr(d.st.Addr)
	meta := &shoalv1.GossipMeta{Role: auth.RoleToProto(d.id.Role())}
	if d.mgr != nil {
		meta.ManagerAddr = d.st.Addr
	}
	d.mu.Unlock()
	d.gsp.Sync(self, adv, resp, meta)
}

// Targets implements session.Node.
func (d *Daemon) Targets() ([]string, *tlsutil.Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.targetsLocked(true), d.id
}

// targetsLocked lists the managers to try, this node's own API first.
// Callers hold d.mu.
func (d *Daemon) targetsLocked(includeSelf bool) []string {
	if d.st == nil {
		return nil
	}
	return session.Targets(d.st.Addr, includeSelf && d.mgr != nil, d.st.Managers, d.gsp.Managers())
}

// self is the node's ID and advertised address, for the overlay.
func (d *Daemon) self() (nodeID, addr string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return "", "", false
	}
	return d.st.NodeID, d.st.Addr, true
}

// callManagers calls fn on the known managers in turn until one answers;
// fn's context is the per-manager one of session.CallEach, so one manager
// that hangs does not hold up the others. Callers hold d.mu.
func (d *Daemon) callManagers(ctx context.Context, includeSelf bool, fn func(context.Context, *grpc.ClientConn) error) error {
	return d.session.CallEach(ctx, d.targetsLocked(includeSelf), d.id, fn)
}

// reconcile acts on a heartbeat answer. It reports true when the node
// left the cluster and the agent must stop.
func (d *Daemon) reconcile(ctx context.Context, resp *shoalv1.HeartbeatResponse) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return true
	}
	if resp.GetRemoved() {
		d.log.Warn("this node was removed from the cluster; leaving it")
		d.stopManager()
		d.gsp.Stop(true)
		d.session.CloseConns()
		d.st, d.id = nil, nil
		d.setKeys(nil)
		_ = d.wipeState()
		return true
	}
	if d.remember(resp) {
		if err := d.saveState(d.st); err != nil {
			d.log.Warn("save state", zap.Error(err))
		}
	}
	leaf := d.id.Leaf()
	due := time.Now().After(ca.RenewAt(leaf.NotBefore, leaf.NotAfter))
	if resp.GetDesiredRole() != auth.RoleToProto(d.id.Role()) || due {
		if err := d.renewLocked(ctx); err != nil {
			d.log.Warn("renew node certificate", zap.Error(err))
			return false
		}
	}
	member := slices.Contains(resp.GetManagers(), d.st.Addr)
	role := auth.RoleToProto(d.id.Role())
	switch {
	case role == shoalv1.NodeRole_NODE_ROLE_MANAGER && resp.GetDesiredRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER:
		if d.mgr == nil {
			if err := d.startManager(false, false); err != nil {
				d.log.Warn("start manager after promotion", zap.Error(err))
				return false
			}
		}
		if !member {
			if err := d.joinRaftOnce(ctx); err != nil {
				d.log.Info("joining raft", zap.Error(err))
			}
		}
	case role == shoalv1.NodeRole_NODE_ROLE_WORKER && d.mgr != nil && !member:
		d.log.Info("demoted: stopping the manager")
		d.stopManager()
		if err := os.RemoveAll(d.raftDir()); err != nil {
			d.log.Warn("remove raft data", zap.Error(err))
		} else if err := d.dropKeys(); err != nil {
			d.log.Warn("remove the manager's key material", zap.Error(err))
		}
	}
	return false
}

// remember keeps in d.st what a heartbeat answer says that the node needs
// again after a restart with no manager answering; it reports whether
// anything changed. Callers hold d.mu.
func (d *Daemon) remember(resp *shoalv1.HeartbeatResponse) bool {
	changed := false
	if ms := resp.GetManagers(); len(ms) > 0 && !slices.Equal(ms, d.st.Managers) {
		d.st.Managers, changed = ms, true
	}
	if ks := resp.GetGossipKeys(); len(ks) > 0 && !slices.EqualFunc(ks, d.st.GossipKeys, bytes.Equal) {
		d.st.GossipKeys, changed = ks, true
	}
	if ps := resp.GetGossipPeers(); len(ps) > 0 && !slices.Equal(ps, d.st.GossipPeers) {
		d.st.GossipPeers, changed = ps, true
	}
	if in := resp.GetIngress(); in != nil && !proto.Equal(in, d.st.ingress()) {
		if buf, err := protojson.Marshal(in); err == nil {
			d.st.Ingress, changed = buf, true
		}
	}
	return changed
}

// renewLocked gets a new certificate whose role is the node's desired
// role. Callers hold d.mu.
func (d *Daemon) renewLocked(ctx context.Context) error {
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		return err
	}
	var resp *shoalv1.RenewNodeCertificateResponse
	raftAddr := d.st.RaftAddr
	if raftAddr == "" && d.st.Addr != "" {
		raftAddr = d.raftAdvertise(d.st.Addr)
	}
	err = d.callManagers(ctx, true, func(cctx context.Context, c *grpc.ClientConn) error {
		var err error
		resp, err = shoalv1.NewCAServiceClient(c).RenewNodeCertificate(cctx, &shoalv1.RenewNodeCertificateRequest{
			CsrPem: csrPEM, Addr: d.st.Addr, RaftAddr: raftAddr,
		})
		return err
	})
	if err != nil {
		return err
	}
	// The material and the set are changed together, never between a
	// re-wrap's read and save (manager/rewrap runs without d.mu).
	d.keysMu.Lock()
	mat, err := d.keysForRole(resp.GetRole())
	if err == nil {
		err = d.id.Set(resp.GetCertPem(), keyPEM)
	}
	if err == nil {
		err = d.certs().Save(d.id.CAPEM, resp.GetCertPem(), keyPEM, mat)
	}
	if err == nil {
		d.keys = mat
	}
	d.keysMu.Unlock()
	if err != nil {
		return err
	}
	if d.st.RaftAddr != raftAddr {
		d.st.RaftAddr = raftAddr
		_ = d.saveState(d.st)
	}
	d.session.CloseConns()
	d.closeLocalConn()
	d.log.Info("node certificate renewed", zap.String("role", resp.GetRole().String()), zap.Time("expires", d.id.Leaf().NotAfter))
	return nil
}

// joinRaftOnce asks the leader (through another manager) to add this
// node to Raft. Callers hold d.mu.
func (d *Daemon) joinRaftOnce(ctx context.Context) error {
	return d.callManagers(ctx, false, func(cctx context.Context, c *grpc.ClientConn) error {
		_, err := shoalv1.NewRaftServiceClient(c).JoinRaft(cctx, &shoalv1.JoinRaftRequest{RaftAddr: d.st.RaftAddr})
		return err
	})
}

// joinRaft retries joinRaftOnce until it succeeds or ctx ends. Callers
// hold d.mu.
func (d *Daemon) joinRaft(ctx context.Context) error {
	for {
		err := d.joinRaftOnce(ctx)
		if err == nil || errdefs.Is(err, errdefs.ErrPermissionDenied) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
