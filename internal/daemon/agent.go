package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/ca"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The agent keeps every node in touch with the managers: it heartbeats,
// learns the manager list, renews the node's certificate before it expires
// or when the node's role changes, and starts or stops the manager to
// match the role (promotion and demotion).

// startAgent starts the agent loop and the task session. Callers hold
// d.mu.
func (d *Daemon) startAgent() {
	d.agt = startLoop(d.ctx, d.agentLoop)
	if d.work != nil {
		d.sess = startLoop(d.ctx, d.work.sessionLoop)
	}
}

// stopAgent stops the agent loop and waits for it. Callers must not hold
// d.mu: the loop may be waiting for it.
func (d *Daemon) stopAgent() {
	d.mu.Lock()
	a, s := d.agt, d.sess
	d.agt, d.sess = nil, nil
	d.mu.Unlock()
	a.stop()
	s.stop()
}

func (d *Daemon) agentLoop(ctx context.Context) {
	period := d.cfg.HeartbeatPeriod
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Heartbeats leave every period, however long the last one took:
		// on a slow link the leader must not see them spaced by period
		// plus a round trip.
		start := time.Now()
		resp, err := d.heartbeat(ctx)
		if err != nil {
			d.log.Debug("heartbeat", zap.Error(err))
		} else {
			if p := time.Duration(resp.GetPeriodMs()) * time.Millisecond; p > 0 {
				period = p
			}
			if d.reconcile(ctx, resp) {
				return
			}
			d.syncGossip(resp)
			if in := resp.GetIngress(); in != nil && d.work != nil {
				d.work.overlay.setIngress(in)
			}
			if d.att != nil {
				d.att.reconcile(resp.GetAttachments())
			}
		}
		t.Reset(max(period-time.Since(start), 0))
	}
}

// syncGossip starts or updates the node's gossip from a heartbeat answer.
func (d *Daemon) syncGossip(resp *shoalv1.HeartbeatResponse) {
	d.mu.Lock()
	if d.st == nil || d.id == nil {
		d.mu.Unlock()
		return
	}
	self, adv := d.st.NodeID, hostOfAddr(d.st.Addr)
	meta := &shoalv1.GossipMeta{Role: ca.RoleToProto(d.id.Role())}
	if d.mgr != nil {
		meta.ManagerAddr = d.st.Addr
	}
	d.mu.Unlock()
	d.gsp.sync(self, adv, resp, meta)
}

// targetsLocked lists the managers to try, this node's own API first.
// Callers hold d.mu.
func (d *Daemon) targetsLocked(includeSelf bool) []string {
	if d.st == nil {
		return nil
	}
	var out []string
	if includeSelf && d.mgr != nil {
		out = append(out, d.st.Addr)
	}
	// The managers the leader named, then any others gossip knows of.
	for _, a := range append(slices.Clone(d.st.Managers), d.gsp.managers()...) {
		if a != d.st.Addr && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (d *Daemon) agentConn(addr string, id *tlsutil.Identity) (*grpc.ClientConn, error) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.agentConns == nil {
		d.agentConns = map[string]*grpc.ClientConn{}
	}
	if c, ok := d.agentConns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(id.ClientConfig())))
	if err != nil {
		return nil, err
	}
	d.agentConns[addr] = c
	return c, nil
}

// closeAgentConns drops connections so the next calls present the
// current certificate.
func (d *Daemon) closeAgentConns() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	for a, c := range d.agentConns {
		c.Close()
		delete(d.agentConns, a)
	}
}

// callEach calls fn on each target in turn until one succeeds. An error
// that is the caller's fault (not unavailability) ends the tries.
func (d *Daemon) callEach(ctx context.Context, targets []string, id *tlsutil.Identity, fn func(context.Context, *grpc.ClientConn) error) error {
	if len(targets) == 0 {
		return fmt.Errorf("no manager address known: %w", errdefs.ErrUnavailable)
	}
	var last error
	for _, addr := range targets {
		conn, err := d.agentConn(addr, id)
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = fn(cctx, conn)
		cancel()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("manager %s: %w", addr, errgrpc.FromGRPC(err))
		if errdefs.Is(last, errdefs.ErrInvalid) || errdefs.Is(last, errdefs.ErrPermissionDenied) {
			return last
		}
	}
	return last
}

// callManagers is callEach over the known managers. Callers hold d.mu.
func (d *Daemon) callManagers(ctx context.Context, includeSelf bool, fn func(*grpc.ClientConn) error) error {
	return d.callEach(ctx, d.targetsLocked(includeSelf), d.id, func(_ context.Context, c *grpc.ClientConn) error { return fn(c) })
}

func (d *Daemon) heartbeat(ctx context.Context) (*shoalv1.HeartbeatResponse, error) {
	d.mu.Lock()
	targets, id := d.targetsLocked(true), d.id
	d.mu.Unlock()
	if id == nil {
		return nil, fmt.Errorf("%w", errNotInSwarm)
	}
	var resp *shoalv1.HeartbeatResponse
	err := d.callEach(ctx, targets, id, func(cctx context.Context, c *grpc.ClientConn) error {
		var err error
		resp, err = shoalv1.NewDispatcherServiceClient(c).Heartbeat(cctx, &shoalv1.HeartbeatRequest{Description: d.describe(), GossipAddr: d.gsp.addr()})
		return err
	})
	return resp, err
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
		d.gsp.stop(true)
		d.closeAgentConns()
		d.st, d.id = nil, nil
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
	if resp.GetDesiredRole() != ca.RoleToProto(d.id.Role()) || due {
		if err := d.renewLocked(ctx); err != nil {
			d.log.Warn("renew node certificate", zap.Error(err))
			return false
		}
	}
	member := slices.Contains(resp.GetManagers(), d.st.Addr)
	role := ca.RoleToProto(d.id.Role())
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
	err = d.callManagers(ctx, true, func(c *grpc.ClientConn) error {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var err error
		resp, err = shoalv1.NewCAServiceClient(c).RenewNodeCertificate(cctx, &shoalv1.RenewNodeCertificateRequest{
			CsrPem: csrPEM, Addr: d.st.Addr, RaftAddr: raftAddr,
		})
		return err
	})
	if err != nil {
		return err
	}
	if err := d.id.Set(resp.GetCertPem(), keyPEM); err != nil {
		return err
	}
	if err := d.certs().Save(d.id.CAPEM, resp.GetCertPem(), keyPEM); err != nil {
		return err
	}
	if d.st.RaftAddr != raftAddr {
		d.st.RaftAddr = raftAddr
		_ = d.saveState(d.st)
	}
	d.closeAgentConns()
	d.closeLocalConn()
	d.log.Info("node certificate renewed", zap.String("role", resp.GetRole().String()), zap.Time("expires", d.id.Leaf().NotAfter))
	return nil
}

// joinRaftOnce asks the leader (through another manager) to add this
// node to Raft. Callers hold d.mu.
func (d *Daemon) joinRaftOnce(ctx context.Context) error {
	return d.callManagers(ctx, false, func(c *grpc.ClientConn) error {
		_, err := shoalv1.NewRaftServiceClient(c).JoinRaft(ctx, &shoalv1.JoinRaftRequest{RaftAddr: d.st.RaftAddr})
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
