package controlapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

const (
	manager = shoalv1.NodeRole_NODE_ROLE_MANAGER
	worker  = shoalv1.NodeRole_NODE_ROLE_WORKER
	ready   = shoalv1.NodeState_NODE_STATE_READY
	down    = shoalv1.NodeState_NODE_STATE_DOWN
)

func testNode(id, hostname string, role shoalv1.NodeRole, state shoalv1.NodeState) *shoalv1.Node {
	n := &shoalv1.Node{
		Id:          id,
		Spec:        &shoalv1.NodeSpec{DesiredRole: role, Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE},
		Description: &shoalv1.NodeDescription{Hostname: hostname},
		Status:      &shoalv1.NodeStatus{State: state},
		Role:        role,
	}
	if role == manager {
		n.ManagerStatus = &shoalv1.ManagerStatus{Addr: hostname + ":4242", RaftAddr: hostname + ":4243"}
	}
	return n
}

// newCluster returns a server over three managers m1 (leader), m2 and m3,
// all Raft members, a ready worker w1 and a down worker w2.
func newCluster(t *testing.T) (*Server, *fakeRaft) {
	t.Helper()
	s, r := newTestServer(t)
	r.members = []string{"m1", "m2", "m3"}
	seed(t, r,
		testNode("m1", "host-c", manager, ready),
		testNode("m2", "host-a", manager, ready),
		testNode("m3", "host-b", manager, ready),
		testNode("w1", "host-d", worker, ready),
		testNode("w2", "host-e", worker, down),
	)
	return s, r
}

func withRole(t *testing.T, s *Server, id string, role shoalv1.NodeRole) (*shoalv1.NodeSpec, uint64) {
	t.Helper()
	n := getNode(t, s, id)
	spec := proto.Clone(n.GetSpec()).(*shoalv1.NodeSpec)
	spec.DesiredRole = role
	return spec, n.GetMeta().GetVersion()
}

func TestUpdateNodeDemote(t *testing.T) {
	for _, tc := range []struct {
		name        string
		members     []string
		unreachable []string
		target      string
		force       bool
		err         string // "" means allowed
		wantRemoved bool
	}{
		{name: "all reachable", target: "m3", wantRemoved: true},
		{name: "the leader", target: "m1", wantRemoved: true},
		{name: "one other down", unreachable: []string{"m2"}, target: "m3", err: "would leave 1 of 2 remaining managers reachable"},
		{name: "one other down, forced", unreachable: []string{"m2"}, target: "m3", force: true, wantRemoved: true},
		{name: "the unreachable one", unreachable: []string{"m3"}, target: "m3", wantRemoved: true},
		{name: "last manager", members: []string{"m1"}, target: "m1", err: "is the last manager"},
		{name: "last manager, forced", members: []string{"m1"}, target: "m1", force: true, err: "is the last manager"},
		// m3 wants to be a manager but has not joined Raft: no quorum at stake.
		{name: "not a member", members: []string{"m1", "m2"}, unreachable: []string{"m2"}, target: "m3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newCluster(t)
			if tc.members != nil {
				r.members = tc.members
			}
			for _, id := range tc.unreachable {
				r.unreachable[id] = true
			}
			membersBefore := r.MemberIDs()
			before := s.Store.Snapshot()
			spec, version := withRole(t, s, tc.target, worker)

			resp, err := s.UpdateNode(context.Background(), &shoalv1.UpdateNodeRequest{NodeId: tc.target, Version: version, Spec: spec, Force: tc.force})
			if tc.err != "" {
				if !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("UpdateNode(demote %s, force=%v) = %v; want ErrFailedPrecond with %q", tc.target, tc.force, err, tc.err)
				}
				if after := s.Store.Snapshot(); !proto.Equal(after, before) {
					t.Errorf("a refused demotion changed the store")
				}
				if removed := r.removedIDs(); len(removed) != 0 {
					t.Errorf("a refused demotion called RemoveServer(%v)", removed)
				}
				return
			}
			if err != nil {
				t.Fatalf("UpdateNode(demote %s, force=%v) = %v; want success", tc.target, tc.force, err)
			}
			stored := getNode(t, s, tc.target)
			if stored.GetSpec().GetDesiredRole() != worker {
				t.Errorf("stored desired role = %v; want worker", stored.GetSpec().GetDesiredRole())
			}
			if !proto.Equal(resp.GetNode(), stored) {
				t.Errorf("UpdateNode returned %v; the store holds %v", resp.GetNode(), stored)
			}
			wantRemoved := []string(nil)
			if tc.wantRemoved {
				wantRemoved = []string{tc.target}
			}
			if got := r.removedIDs(); !slices.Equal(got, wantRemoved) {
				t.Errorf("UpdateNode(demote %s) with members %v called RemoveServer(%v); want %v", tc.target, membersBefore, got, wantRemoved)
			}
		})
	}
}

func TestUpdateNodeOtherChanges(t *testing.T) {
	s, r := newCluster(t)
	ctx := context.Background()

	// Promotion, drain and labels only change the spec.
	spec, v := withRole(t, s, "w1", manager)
	spec.Availability = shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	spec.Labels = map[string]string{"zone": "a"}
	resp, err := s.UpdateNode(ctx, &shoalv1.UpdateNodeRequest{NodeId: "host-d", Version: v, Spec: spec})
	if err != nil {
		t.Fatalf("UpdateNode(promote w1) = %v", err)
	}
	if got := getNode(t, s, "w1"); !proto.Equal(got.GetSpec(), spec) || !proto.Equal(got, resp.GetNode()) {
		t.Errorf("stored w1 = %v; want spec %v as returned %v", got, spec, resp.GetNode())
	}
	if got := r.removedIDs(); len(got) != 0 {
		t.Errorf("a promotion called RemoveServer(%v)", got)
	}

	for _, tc := range []struct {
		name string
		req  *shoalv1.UpdateNodeRequest
		cat  error
	}{
		{"stale version", &shoalv1.UpdateNodeRequest{NodeId: "w1", Version: v, Spec: spec}, errdefs.ErrConflict},
		{"no spec", &shoalv1.UpdateNodeRequest{NodeId: "w1", Version: resp.GetNode().GetMeta().GetVersion()}, errdefs.ErrInvalid},
		{"no role", &shoalv1.UpdateNodeRequest{NodeId: "w1", Version: resp.GetNode().GetMeta().GetVersion(), Spec: &shoalv1.NodeSpec{
			Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		}}, errdefs.ErrInvalid},
		{"unknown node", &shoalv1.UpdateNodeRequest{NodeId: "nope", Version: 1, Spec: spec}, errdefs.ErrNotFound},
	} {
		before := s.Store.Snapshot()
		if _, err := s.UpdateNode(ctx, tc.req); !errdefs.Is(err, tc.cat) {
			t.Errorf("UpdateNode(%s) = %v; want %v", tc.name, err, tc.cat)
		}
		if after := s.Store.Snapshot(); !proto.Equal(after, before) {
			t.Errorf("UpdateNode(%s) was refused but changed the store", tc.name)
		}
	}
}

func TestUpdateNodeRemoveServerFails(t *testing.T) {
	s, r := newCluster(t)
	r.removeErr = errors.New("raft: leadership lost")
	spec, v := withRole(t, s, "m2", worker)
	_, err := s.UpdateNode(context.Background(), &shoalv1.UpdateNodeRequest{NodeId: "m2", Version: v, Spec: spec})
	if err == nil || !strings.Contains(err.Error(), "node m2 is marked for demotion but leaving raft failed") || !errors.Is(err, r.removeErr) {
		t.Errorf("UpdateNode(demote m2) with a failing RemoveServer = %v; want the demotion error wrapping %v", err, r.removeErr)
	}
	// The role manager finishes the demotion from the stored spec.
	if got := getNode(t, s, "m2").GetSpec().GetDesiredRole(); got != worker {
		t.Errorf("stored desired role of m2 = %v; want worker", got)
	}
}

func TestRemoveNode(t *testing.T) {
	for _, tc := range []struct {
		name        string
		target      string
		force       bool
		cat         error
		err         string
		wantRemoved []string // RemoveServer calls
	}{
		{name: "manager", target: "m2", cat: errdefs.ErrFailedPrecond, err: "node m2 is a manager; demote it first"},
		{name: "manager by hostname", target: "host-a", cat: errdefs.ErrFailedPrecond, err: "is a manager"},
		{name: "manager, forced", target: "m2", force: true, wantRemoved: []string{"m2"}},
		{name: "leader", target: "m1", cat: errdefs.ErrFailedPrecond, err: "node m1 is the leader"},
		{name: "leader, forced", target: "m1", force: true, cat: errdefs.ErrFailedPrecond, err: "is the leader"},
		{name: "ready worker", target: "w1", cat: errdefs.ErrFailedPrecond, err: "node w1 is ready"},
		{name: "ready worker, forced", target: "w1", force: true},
		{name: "down worker", target: "w2"},
		{name: "down worker by hostname", target: "host-e"},
		{name: "unknown", target: "zz", cat: errdefs.ErrNotFound, err: `node "zz"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newCluster(t)
			before := s.Store.Snapshot()
			_, err := s.RemoveNode(context.Background(), &shoalv1.RemoveNodeRequest{NodeId: tc.target, Force: tc.force})
			if got := r.removedIDs(); !slices.Equal(got, tc.wantRemoved) {
				t.Errorf("RemoveNode(%s, force=%v) called RemoveServer(%v); want %v", tc.target, tc.force, got, tc.wantRemoved)
			}
			if tc.cat != nil {
				if !errdefs.Is(err, tc.cat) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("RemoveNode(%s, force=%v) = %v; want %v with %q", tc.target, tc.force, err, tc.cat, tc.err)
				}
				if after := s.Store.Snapshot(); !proto.Equal(after, before) {
					t.Errorf("RemoveNode(%s) was refused but changed the store", tc.target)
				}
				return
			}
			if err != nil {
				t.Fatalf("RemoveNode(%s, force=%v) = %v; want success", tc.target, tc.force, err)
			}
			if _, err := s.GetNode(context.Background(), &shoalv1.GetNodeRequest{NodeId: tc.target}); !errdefs.Is(err, errdefs.ErrNotFound) {
				t.Errorf("GetNode(%s) after removal = %v; want ErrNotFound", tc.target, err)
			}
			if n := len(s.Store.Snapshot().GetNodes()); n != 4 {
				t.Errorf("after RemoveNode(%s) the store has %d nodes; want 4", tc.target, n)
			}
		})
	}
}

func TestListNodesDecoratesManagers(t *testing.T) {
	s, r := newCluster(t)
	r.unreachable["m2"] = true
	resp, err := s.ListNodes(context.Background(), &shoalv1.ListNodesRequest{})
	if err != nil {
		t.Fatalf("ListNodes() = %v", err)
	}
	type view struct {
		id           string
		isManager    bool
		leader       bool
		reachability shoalv1.Reachability
	}
	var got []view
	for _, n := range resp.GetNodes() {
		got = append(got, view{n.GetId(), n.GetManagerStatus() != nil, n.GetManagerStatus().GetLeader(), n.GetManagerStatus().GetReachability()})
	}
	// Sorted by hostname: host-a (m2), host-b (m3), host-c (m1), host-d, host-e.
	want := []view{
		{"m2", true, false, shoalv1.Reachability_REACHABILITY_UNREACHABLE},
		{"m3", true, false, shoalv1.Reachability_REACHABILITY_REACHABLE},
		{"m1", true, true, shoalv1.Reachability_REACHABILITY_REACHABLE},
		{"w1", false, false, shoalv1.Reachability_REACHABILITY_UNSPECIFIED},
		{"w2", false, false, shoalv1.Reachability_REACHABILITY_UNSPECIFIED},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListNodes() = %+v; want %+v", got, want)
	}
	for _, n := range resp.GetNodes() {
		if n.GetManagerStatus() != nil && n.GetManagerStatus().GetAddr() == "" {
			t.Errorf("ListNodes() lost the address of manager %s", n.GetId())
		}
	}

	// The decoration is the leader's live view; it is not written back.
	if ms := getNode(t, s, "m1").GetManagerStatus(); ms.GetLeader() || ms.GetReachability() != shoalv1.Reachability_REACHABILITY_UNSPECIFIED {
		t.Errorf("stored m1 manager status = %v; want no live fields", ms)
	}

	one, err := s.GetNode(context.Background(), &shoalv1.GetNodeRequest{NodeId: "host-c"})
	if err != nil || one.GetNode().GetId() != "m1" || !one.GetNode().GetManagerStatus().GetLeader() {
		t.Errorf("GetNode(host-c) = %v, %v; want m1 marked leader", one.GetNode(), err)
	}
}
