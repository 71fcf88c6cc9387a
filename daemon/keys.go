package daemon

import (
	"os"

	"github.com/shoal-run/shoal/internal/keys"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// A manager's key material (internal/keys) lives in its certificate set
// (tlsutil.Files): made when the node first becomes a manager (swarm
// init, join as a manager, promotion), kept by every certificate renewal,
// removed with the Raft data when the node stops being one (demotion,
// leave, removal). Its DEK seals the manager's Raft log and snapshots.

// managerDEK returns the DEK Raft is started with, making and saving new
// material for a manager that has none (a node whose certificate says
// manager but whose set has no material: one promoted by a renewal that
// predates it). Material that is locked (autolock) gives keys.ErrLocked.
// Callers hold d.mu.
func (d *Daemon) managerDEK() ([]byte, error) {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	if d.keys == nil {
		mat, err := keys.New()
		if err != nil {
			return nil, err
		}
		certPEM, keyPEM := d.id.PEM()
		if err := d.certs().Save(d.id.CAPEM, certPEM, keyPEM, mat); err != nil {
			return nil, err
		}
		d.keys = mat
	}
	return d.keys.DEK()
}

// keysForRole is the material to save with a renewed certificate of role:
// the node's own, or new material for a node becoming a manager (Raft
// data left from an earlier membership is removed then: nothing could
// read it without the material it was sealed with, and the node joins
// Raft afresh); none for a worker, unless its manager still runs (a
// demoted manager keeps its Raft data until it has left the Raft group).
// Callers hold d.mu and d.keysMu.
func (d *Daemon) keysForRole(role shoalv1.NodeRole) (*keys.Material, error) {
	switch {
	case role == shoalv1.NodeRole_NODE_ROLE_MANAGER && d.keys == nil:
		if d.mgr == nil {
			if err := os.RemoveAll(d.raftDir()); err != nil {
				return nil, err
			}
		}
		return keys.New()
	case role != shoalv1.NodeRole_NODE_ROLE_MANAGER && d.mgr == nil:
		return nil, nil
	}
	return d.keys, nil
}

// dropKeys saves the certificate set without material, once the Raft
// data it sealed is gone. Callers hold d.mu.
func (d *Daemon) dropKeys() error {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	if d.keys == nil {
		return nil
	}
	certPEM, keyPEM := d.id.PEM()
	if err := d.certs().Save(d.id.CAPEM, certPEM, keyPEM, nil); err != nil {
		return err
	}
	d.keys = nil
	return nil
}
