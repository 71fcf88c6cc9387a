package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/rewrap"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtimeapi"
)

// Autolock. A manager whose certificate set is sealed with the cluster's
// unlock key restarts locked: it knows its cluster (state.json) but can
// read neither its TLS key nor its Raft data, so it starts nothing of the
// cluster (no Raft, no manager listener, no worker session, no gossip)
// and serves only its local socket, where Info says "locked" and every
// call that needs the cluster answers keys.ErrLocked. Its containers run
// on, untouched. Unlock with the right key starts it as a normal restart
// would; a wrong key changes nothing.
//
// A manager that was down while the key was rotated is unlocked with the
// key its disk was wrapped with (the one before the rotation); it then
// re-wraps with the current key as soon as its store has the cluster
// object (manager/rewrap), as docker's managers do.

// setKeys replaces the node's key material.
func (d *Daemon) setKeys(m *keys.Material) {
	d.keysMu.Lock()
	d.keys = m
	d.keysMu.Unlock()
}

// lock leaves the node in the locked state.
func (d *Daemon) lock(st *state, mat *keys.Material) {
	d.mu.Lock()
	d.st, d.id, d.locked = st, nil, true
	d.setKeys(mat)
	d.mu.Unlock()
	d.log.Warn("this manager is locked (autolock): it serves nothing of the cluster until `shoal swarm unlock` gives it the unlock key",
		zap.String("cluster", st.ClusterID), zap.String("node", st.NodeID))
}

// isLocked reports whether the node waits for swarm unlock.
func (d *Daemon) isLocked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.locked
}

func (s *swarmServer) Unlock(ctx context.Context, req *shoalv1.UnlockRequest) (*shoalv1.UnlockResponse, error) {
	d := s.d
	d.mu.Lock()
	if d.st == nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("this node is not part of a swarm: %w", errdefs.ErrFailedPrecond)
	}
	if !d.locked {
		d.mu.Unlock()
		return nil, fmt.Errorf("swarm is not locked: %w", errdefs.ErrConflict)
	}
	key := strings.TrimSpace(req.GetUnlockKey())
	if _, err := keys.ParseUnlockKey(key); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	id, mat, err := d.certs().LoadSet(key)
	if err != nil {
		d.mu.Unlock()
		return nil, err // keys.ErrInvalidKey for another key; never the key itself
	}
	st := d.st
	d.locked = false
	if err := d.start(st, id, mat); err != nil {
		d.stopManager()
		d.st, d.id, d.locked = st, nil, true
		// Back to the sealed material: the unlocked data key does not stay
		// in memory of a node that stays locked.
		if _, sealed, lerr := d.certs().LoadSet(""); errors.Is(lerr, keys.ErrLocked) && sealed != nil {
			d.setKeys(sealed)
		}
		d.mu.Unlock()
		return nil, fmt.Errorf("unlocked, but the manager did not start (it stays locked): %w", err)
	}
	d.mu.Unlock()
	d.restoreDataPlane(st, d.rt)
	d.log.Info("swarm unlocked", zap.String("cluster", st.ClusterID), zap.String("node", st.NodeID))
	return &shoalv1.UnlockResponse{}, nil
}

// managerKeys is the manager's material as manager/rewrap sees it: it
// re-wraps the material and saves it with the node's certificate set in
// one atomic save.
type managerKeys struct {
	d  *Daemon
	id *tlsutil.Identity
}

var _ rewrap.Material = (*managerKeys)(nil)

func (k *managerKeys) WrappedWith(unlockKey string) bool {
	k.d.keysMu.Lock()
	defer k.d.keysMu.Unlock()
	m := k.d.keys
	switch {
	case m == nil:
		return true // not a manager's set (any more): nothing to wrap
	case unlockKey == "":
		return !m.Autolocked()
	}
	// Unlocking unlocked material only checks the key.
	return m.Autolocked() && m.Unlock(unlockKey) == nil
}

func (k *managerKeys) Rewrap(unlockKey string) error {
	k.d.keysMu.Lock()
	defer k.d.keysMu.Unlock()
	m := k.d.keys
	if m == nil {
		return nil
	}
	next, err := m.Rewrap(unlockKey)
	if err != nil {
		return err
	}
	certPEM, keyPEM := k.id.PEM()
	if err := k.d.certs().Save(k.id.CAPEM, certPEM, keyPEM, next); err != nil {
		return err
	}
	k.d.keys = next
	return nil
}

// lockGuard refuses what the runtime asks of the cluster (standalone
// containers on overlay networks) while the node is locked.
type lockGuard struct {
	runtimeapi.Networks
	d *Daemon
}

func (g lockGuard) Join(ctx context.Context, network, name string) (map[string]string, func(bool), error) {
	if g.d.isLocked() {
		return nil, nil, keys.ErrLocked
	}
	return g.Networks.Join(ctx, network, name)
}
