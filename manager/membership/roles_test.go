package membership

import (
	"slices"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestStaleMembers(t *testing.T) {
	node := func(desired, cert shoalv1.NodeRole) *shoalv1.Node {
		return &shoalv1.Node{Spec: &shoalv1.NodeSpec{DesiredRole: desired}, Role: cert}
	}
	const (
		mgr = shoalv1.NodeRole_NODE_ROLE_MANAGER
		wrk = shoalv1.NodeRole_NODE_ROLE_WORKER
	)
	nodes := map[string]*shoalv1.Node{
		"m1":       node(mgr, mgr),
		"m2":       node(mgr, mgr),
		"demoted":  node(wrk, mgr), // demotion asked, certificate not renewed yet
		"promoted": node(mgr, wrk), // promotion in progress
		"w1":       node(wrk, wrk),
	}
	for _, tc := range []struct {
		members []string
		want    []string
	}{
		{nil, nil},
		{[]string{"m1", "m2"}, nil},
		{[]string{"m1", "promoted"}, nil},
		{[]string{"m1", "demoted"}, []string{"demoted"}},
		{[]string{"m1", "gone"}, []string{"gone"}},
		{[]string{"gone", "m1", "w1", "m2", "demoted"}, []string{"gone", "w1", "demoted"}},
	} {
		if got := StaleMembers(tc.members, nodes); !slices.Equal(got, tc.want) {
			t.Errorf("StaleMembers(%v) = %v; want %v", tc.members, got, tc.want)
		}
	}
	if got := StaleMembers([]string{"m1"}, nil); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("StaleMembers([m1], no nodes) = %v; want [m1]", got)
	}
}
