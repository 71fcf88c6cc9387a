package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shoal-run/shoal/internal/atomicfile"
	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// state is what a node remembers of its cluster across restarts.
type state struct {
	ClusterID string   `json:"cluster_id"`
	NodeID    string   `json:"node_id"`
	Addr      string   `json:"addr"`      // advertised gRPC address
	RaftAddr  string   `json:"raft_addr"` // advertised Raft address
	Managers  []string `json:"managers"`  // gRPC addresses of the managers last heard of
	// The gossip keys and peers and the node's ingress attachment last
	// heard of: a daemon restarted while no manager answers still joins
	// the gossip and runs its overlay and routing mesh.
	GossipKeys  [][]byte        `json:"gossip_keys,omitempty"`
	GossipPeers []string        `json:"gossip_peers,omitempty"`
	Ingress     json.RawMessage `json:"ingress,omitempty"` // a TaskNetwork, protojson
}

// ingress is the node's ingress attachment last heard of, or nil.
func (s *state) ingress() *shoalv1.TaskNetwork {
	if len(s.Ingress) == 0 {
		return nil
	}
	var tn shoalv1.TaskNetwork
	if protojson.Unmarshal(s.Ingress, &tn) != nil {
		return nil
	}
	return &tn
}

func (d *Daemon) statePath() string { return filepath.Join(d.cfg.DataDir, "state.json") }
func (d *Daemon) raftDir() string   { return filepath.Join(d.cfg.DataDir, "raft") }
func (d *Daemon) certs() tlsutil.Files {
	return tlsutil.Files{Dir: filepath.Join(d.cfg.DataDir, "certificates")}
}

func (d *Daemon) loadState() (*state, error) {
	data, err := os.ReadFile(d.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v); move it away and join the node again", d.statePath(), err)
	}
	return &s, nil
}

func (d *Daemon) saveState(s *state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(d.statePath(), data, 0o600)
}

// wipeState forgets the cluster: state, certificates and Raft data.
func (d *Daemon) wipeState() error {
	return errors.Join(
		os.Remove(d.statePath()),
		os.RemoveAll(d.certs().Dir),
		os.RemoveAll(d.raftDir()),
	)
}
