// Package raftnode runs a manager's Raft member: hashicorp/raft with a
// raft-boltdb log and stable store, a file snapshot store and a mutual-TLS
// transport; log entries and snapshots are encrypted at rest with the
// member's data key (atrest.go). It proposes store batches, changes
// membership, tracks which followers the leader can reach and tells when
// the leader changes. It knows nothing of the API.
package raftnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/logging"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/metrics/timing"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Timing holds the Raft timeouts. The defaults elect a new leader well
// under a second after the old one dies on a LAN.
type Timing struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
}

// DefaultTiming is tuned for fast failover on a LAN.
var DefaultTiming = Timing{Heartbeat: 400 * time.Millisecond, Election: 400 * time.Millisecond, LeaderLease: 300 * time.Millisecond}

// TimingFor is the timing of a heartbeat timeout of heartbeat (daemon
// --raft-heartbeat): elections as soon, leases three quarters of it; 0 is
// DefaultTiming.
func TimingFor(heartbeat time.Duration) Timing {
	if heartbeat <= 0 {
		return DefaultTiming
	}
	return Timing{Heartbeat: heartbeat, Election: heartbeat, LeaderLease: heartbeat * 3 / 4}
}

// Config configures a Raft member.
type Config struct {
	NodeID        string
	BindAddr      string // host:port to listen on
	AdvertiseAddr string // host:port other managers dial
	Dir           string
	Identity      *tlsutil.Identity
	FSM           *store.FSM
	Log           *zap.Logger
	// DEK is the member's data encryption key (internal/keys): its Raft
	// log entries and snapshots are sealed with it on disk. Required.
	DEK    []byte
	Timing Timing

	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// Bootstrap makes a new one-member cluster when there is no state.
	Bootstrap bool
	// ForceNewCluster rewrites the membership to this member alone,
	// keeping all state.
	ForceNewCluster bool
}

// Node is a running Raft member.
type Node struct {
	cfg    Config
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	logs   *raftboltdb.BoltStore
	snaps  *raft.FileSnapshotStore
	obs    *raft.Observer
	obsCh  chan raft.Observation
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed map[raft.ServerID]bool // followers the leader cannot reach
	// leader is the leader last seen; changed is closed, and replaced,
	// when that changes.
	leader  string
	changed chan struct{}
}

// HasState reports whether dir holds Raft state.
func HasState(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "raft.db"))
	return err == nil
}

// Start opens the stores and starts the member.
func Start(cfg Config) (*Node, error) {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	cipher, err := keys.NewCipher(cfg.DEK)
	if err != nil {
		return nil, fmt.Errorf("raft: the manager's data encryption key: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.Timing.Heartbeat
	rc.ElectionTimeout = cfg.Timing.Election
	rc.LeaderLeaseTimeout = cfg.Timing.LeaderLease
	rc.CommitTimeout = 5 * time.Millisecond
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.Logger = logging.HCLog(cfg.Log.Named("raft"))
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}

	disk, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", cfg.Dir, err)
	}
	diskSnaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir, "snapshots"), 2, rc.Logger)
	if err != nil {
		disk.Close()
		return nil, err
	}
	// What raft is given: plaintext above, sealed on disk (atrest.go).
	var logs raft.LogStore = &sealedLogs{disk: disk, cipher: cipher}
	var stable raft.StableStore = disk
	var snaps raft.SnapshotStore = &sealedSnapshots{disk: diskSnaps, cipher: cipher}
	if err := checkAtRest(cfg.Dir, disk, snaps, cipher); err != nil {
		disk.Close()
		return nil, err
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
	if err != nil {
		disk.Close()
		return nil, fmt.Errorf("raft advertise address %q: %w", cfg.AdvertiseAddr, err)
	}
	stream, err := newTLSStream(cfg.BindAddr, adv, cfg.Identity)
	if err != nil {
		disk.Close()
		return nil, fmt.Errorf("raft listen on %s: %w", cfg.BindAddr, err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 2 * time.Second, Logger: rc.Logger,
	})
	closeAll := func() { trans.Close(); disk.Close() }

	self := raft.Server{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(cfg.AdvertiseAddr)}
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		closeAll()
		return nil, err
	}
	switch {
	case cfg.ForceNewCluster:
		if !has {
			closeAll()
			return nil, fmt.Errorf("--force-new-cluster: no raft state in %s to recover from: %w", cfg.Dir, errdefs.ErrFailedPrecond)
		}
		if err := raft.RecoverCluster(rc, cfg.FSM, logs, stable, snaps, trans, raft.Configuration{Servers: []raft.Server{self}}); err != nil {
			closeAll()
			return nil, fmt.Errorf("force new cluster: %w", err)
		}
		// RecoverCluster replayed the log into the FSM; NewRaft restores
		// it again from the snapshot it wrote.
	case cfg.Bootstrap && !has:
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, trans, raft.Configuration{Servers: []raft.Server{self}}); err != nil {
			closeAll()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, cfg.FSM, logs, stable, snaps, trans)
	if err != nil {
		closeAll()
		return nil, err
	}
	n := &Node{cfg: cfg, raft: r, trans: trans, logs: disk, snaps: diskSnaps, stop: make(chan struct{}), failed: map[raft.ServerID]bool{},
		obsCh: make(chan raft.Observation, 64), changed: make(chan struct{})}
	n.obs = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.obs)
	n.wg.Add(1)
	go n.watch()
	return n, nil
}

// leaderPoll is how often the leader is read again, in case an
// observation was dropped (raft drops them when the channel is full).
const leaderPoll = 100 * time.Millisecond

func (n *Node) watch() {
	defer n.wg.Done()
	poll := time.NewTicker(leaderPoll)
	defer poll.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-poll.C:
			n.noteLeader()
		case o := <-n.obsCh:
			n.mu.Lock()
			_, leader := o.Data.(raft.LeaderObservation)
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				n.failed[d.PeerID] = true
			case raft.ResumedHeartbeatObservation:
				delete(n.failed, d.PeerID)
			case raft.LeaderObservation:
				n.failed = map[raft.ServerID]bool{}
			}
			n.mu.Unlock()
			if leader {
				n.noteLeader()
			}
		}
	}
}

// noteLeader wakes the waiters of LeaderChanged when the leader is not
// the one last seen.
func (n *Node) noteLeader() {
	id := n.Leader()
	n.mu.Lock()
	defer n.mu.Unlock()
	if id != n.leader {
		n.leader = id
		close(n.changed)
		n.changed = make(chan struct{})
	}
}

// LeaderChanged returns a channel that is closed once the leader this
// member sees changes (to another member, or to none) after the call.
// Take the channel before reading Leader, so no change falls between.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// FailoverWait is how long a member may take to see a new leader once it
// stops hearing from the old one: a heartbeat timeout and a few election
// rounds (each randomized up to twice its timeout), with room for a
// split vote.
func (n *Node) FailoverWait() time.Duration {
	return 2*n.cfg.Timing.Heartbeat + 3*2*n.cfg.Timing.Election
}

// Reachable reports whether the leader can reach member id. It is only
// meaningful on the leader.
func (n *Node) Reachable(id string) bool {
	if id == n.cfg.NodeID {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.failed[raft.ServerID(id)]
}

// IsLeader reports whether this member is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's ID, or "" when there is none.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// CaughtUp reports whether this member follows a leader and has applied
// every entry it knows to be committed: its store is then the cluster's
// present, not a replay of its past.
func (n *Node) CaughtUp() bool {
	if n.Leader() == "" {
		return false
	}
	commit, err := strconv.ParseUint(n.raft.Stats()["commit_index"], 10, 64)
	return err == nil && commit > 0 && n.raft.AppliedIndex() >= commit
}

// LeaderCh signals leadership gained (true) and lost (false).
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// Members returns the current voting configuration.
func (n *Node) Members() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// IsMember reports whether id is in the configuration.
func (n *Node) IsMember(id string) bool {
	ms, err := n.Members()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if string(m.ID) == id {
			return true
		}
	}
	return false
}

// ErrNoQuorum is returned when a write cannot be committed.
var errNotLeader = fmt.Errorf("this manager is not the leader; retry through another manager: %w", errdefs.ErrUnavailable)

func mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return errNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("the leader lost its quorum while writing; the change may or may not have been applied: check, then retry: %w", errdefs.ErrUnavailable)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("the leader is too busy to accept the write; retry: %w", errdefs.ErrUnavailable)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("this manager is shutting down: %w", errdefs.ErrUnavailable)
	}
	return err
}

// Propose writes one batch through Raft and returns the index at which it
// was applied. An error from the store (a conflict, a duplicate name) comes
// back unchanged. When ctx ends first the outcome is unknown.
func (n *Node) Propose(ctx context.Context, b *shoalv1.StoreBatch) (uint64, error) {
	data, err := store.EncodeBatch(b)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	f := n.raft.Apply(data, 2*time.Second)
	done := make(chan struct{})
	go func() { _ = f.Error(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("no quorum: the write was not committed in time (is a majority of managers running?); it may still be applied: %w", errdefs.ErrUnavailable)
	}
	if err := f.Error(); err != nil {
		return 0, mapRaftErr(err)
	}
	timing.RaftCommit.Observe(time.Since(begin).Seconds())
	if err, ok := f.Response().(error); ok && err != nil {
		return 0, err
	}
	return f.Index(), nil
}

// VerifyLeader confirms this member is still the leader with a quorum's
// heartbeat, so reads it answers are not stale.
func (n *Node) VerifyLeader(ctx context.Context) error {
	return wait(ctx, n.raft.VerifyLeader())
}

// Barrier waits until every committed entry is applied to the FSM.
func (n *Node) Barrier(ctx context.Context) error {
	return wait(ctx, n.raft.Barrier(5*time.Second))
}

func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return mapRaftErr(err)
	case <-ctx.Done():
		return fmt.Errorf("no quorum: a majority of managers did not answer in time: %w", errdefs.ErrUnavailable)
	}
}

// AddVoter adds a manager to the configuration.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second))
}

// RemoveServer removes a manager from the configuration.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second))
}

// Snapshot forces a snapshot (used by tests and `swarm` maintenance).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Stats exposes raft's statistics.
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// DiskSizes are the bytes of this member's Raft log file and of its
// latest snapshot (0 when it has none).
func (n *Node) DiskSizes() (logBytes, snapshotBytes int64) {
	if st, err := os.Stat(filepath.Join(n.cfg.Dir, "raft.db")); err == nil {
		logBytes = st.Size()
	}
	if metas, err := n.snaps.List(); err == nil && len(metas) > 0 {
		snapshotBytes = metas[0].Size
	}
	return logBytes, snapshotBytes
}

// Shutdown stops the member and closes its stores.
func (n *Node) Shutdown() error {
	err := n.raft.Shutdown().Error()
	n.raft.DeregisterObserver(n.obs)
	close(n.stop)
	n.wg.Wait()
	// Close pooled outgoing connections too: Close alone leaves them open
	// and the peers' reader goroutines waiting on them.
	n.trans.CloseStreams()
	n.trans.Close()
	n.logs.Close()
	return err
}

// MemberIDs returns the IDs of the voters.
func (n *Node) MemberIDs() []string {
	ms, err := n.Members()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, string(m.ID))
	}
	return out
}
