package session

import (
	"slices"
	"testing"
)

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		own       string
		ownServes bool
		known     []string
		gossiped  []string
		want      []string
	}{
		{"a worker: the known managers, then gossip's", "w:4242", false, []string{"m1:4242"}, []string{"m2:4242"}, []string{"m1:4242", "m2:4242"}},
		{"a manager tries itself first", "m1:4242", true, []string{"m1:4242", "m2:4242"}, nil, []string{"m1:4242", "m2:4242"}},
		{"a manager whose API is down skips itself", "m1:4242", false, []string{"m1:4242", "m2:4242"}, []string{"m1:4242"}, []string{"m2:4242"}},
		{"each once", "w:4242", false, []string{"m1:4242", "m2:4242"}, []string{"m2:4242", "m3:4242", "m3:4242"}, []string{"m1:4242", "m2:4242", "m3:4242"}},
		{"none known", "w:4242", false, nil, nil, nil},
	} {
		if got := Targets(tc.own, tc.ownServes, tc.known, tc.gossiped); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Targets(%q, %v, %v, %v) = %v; want %v", tc.name, tc.own, tc.ownServes, tc.known, tc.gossiped, got, tc.want)
		}
	}
}
