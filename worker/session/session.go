// Package session is the worker's session with the managers. It finds a
// manager to talk to (this node's own API first when it runs one, then the
// managers the leader named, then those gossip announces) and fails over
// across them; it sends a heartbeat every period and hands the leader's
// answer to the node; it follows the leader's assignment stream into the
// task agent; and it reports task status changes in batches.
//
// It speaks the dispatcher's gRPC API with mutual TLS and knows nothing of
// the manager's insides or of the composition root that starts it: what it
// needs of the node comes through the small interfaces below.
package session

import (
	"slices"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Node is what the session needs of the node it runs on.
type Node interface {
	// Targets lists the managers to try, in order (see Targets), and the
	// identity to present to them; id is nil while the node is in no
	// cluster.
	Targets() (targets []string, id *tlsutil.Identity)
}

// Config configures a session.
type Config struct {
	Node  Node
	Clock clock.Clock
	Log   *zap.Logger
}

// Session is the node's link to the managers.
type Session struct {
	node  Node
	clock clock.Clock
	log   *zap.Logger

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn

	mu      sync.Mutex
	pending map[string]*shoalv1.TaskStatus // reports not sent yet
	kick    chan struct{}
}

// New makes a session; it talks to nobody until its loops run.
func New(cfg Config) *Session {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Session{node: cfg.Node, clock: cfg.Clock, log: cfg.Log, conns: map[string]*grpc.ClientConn{},
		pending: map[string]*shoalv1.TaskStatus{}, kick: make(chan struct{}, 1)}
}

// Targets orders the managers to try: own (this node's API address)
// first when this node serves the manager API, then the managers the
// leader named, then any others gossip knows of, each once.
func Targets(own string, ownServes bool, known, gossiped []string) []string {
	var out []string
	if ownServes {
		out = append(out, own)
	}
	for _, a := range append(slices.Clone(known), gossiped...) {
		if a != own && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
