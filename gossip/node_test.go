package gossip

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/worker/session"
)

// A worker's gossip starts from a heartbeat answer, joins the peer it
// names, and learns from the membership a manager it was never told
// about; that manager is then among the worker's failover targets.
func TestNodeLearnsManagers(t *testing.T) {
	keys := [][]byte{bytes.Repeat([]byte{9}, KeySize)}
	mgr, err := Start(Config{NodeID: "m1", BindAddr: freeAddr(t), Keys: keys,
		Meta: &shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_MANAGER, ManagerAddr: "127.0.0.1:4242"}})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()

	w := NewNode(zap.NewNop(), freeAddr(t))
	defer w.Stop(false)
	if got := w.Managers(); got != nil {
		t.Fatalf("managers() before gossip started = %v; want none", got)
	}
	// No keys yet: nothing starts.
	w.Sync("w1", "", &shoalv1.HeartbeatResponse{}, &shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_WORKER})
	if w.Addr() != "" {
		t.Fatalf("gossip started without keys at %s", w.Addr())
	}
	w.Sync("w1", "", &shoalv1.HeartbeatResponse{GossipKeys: keys, GossipPeers: []string{mgr.Addr()}}, &shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_WORKER})
	if w.Addr() == "" {
		t.Fatal("gossip did not start from a heartbeat answer with keys")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(w.Managers(), []string{"127.0.0.1:4242"}) {
		if time.Now().After(deadline) {
			t.Fatalf("managers() = %v; want [127.0.0.1:4242]", w.Managers())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := session.Targets("127.0.0.1:5000", false, []string{"127.0.0.1:4300"}, w.Managers()); !slices.Equal(got, []string{"127.0.0.1:4300", "127.0.0.1:4242"}) {
		t.Errorf("session.Targets() = %v; want the known manager, then the one gossip announced", got)
	}
}

func TestGossipAdvertise(t *testing.T) {
	for _, tc := range []struct {
		bind, adv, observed, want string
	}{
		{"10.0.0.5:7946", "10.0.0.9", "10.0.0.7", ""}, // a concrete bind address is advertised as is
		{"0.0.0.0:7946", "10.0.0.9", "10.0.0.7", "10.0.0.9:7946"},
		{"0.0.0.0:7946", "", "10.0.0.7", "10.0.0.7:7946"},
		{"[::]:7000", "", "fd00::7", "[fd00::7]:7000"},
		{"0.0.0.0:7946", "", "", ""},
	} {
		n := NewNode(zap.NewNop(), tc.bind)
		if got := n.advertise(tc.adv, tc.observed); got != tc.want {
			t.Errorf("advertise(bind %s, adv %q, observed %q) = %q; want %q", tc.bind, tc.adv, tc.observed, got, tc.want)
		}
	}
}
