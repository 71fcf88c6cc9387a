package quorum

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// members builds a member list from "id" (reachable) and "id!" (unreachable).
func members(spec ...string) []Member {
	var out []Member
	for _, s := range spec {
		id, down := strings.CutSuffix(s, "!")
		out = append(out, Member{ID: id, Reachable: !down})
	}
	return out
}

func TestCheckRemoval(t *testing.T) {
	for _, tc := range []struct {
		members []Member
		target  string
		err     string // substring; "" means allowed
	}{
		{members(), "a", ""},
		{members("a", "b"), "z", ""}, // not a member: nothing to check
		{members("a!", "b!"), "z", ""},
		{members("a"), "a", "is the last manager"},
		{members("a!"), "a", "is the last manager"},
		{members("a", "b"), "a", ""},
		{members("a", "b!"), "a", "would leave 0 of 1 remaining managers reachable, fewer than the quorum of 1"},
		{members("a!", "b"), "a", ""}, // removing the unreachable one is fine
		{members("a", "b", "c"), "c", ""},
		{members("a", "b!", "c"), "c", "would leave 1 of 2 remaining managers reachable, fewer than the quorum of 2"},
		{members("a", "b", "c!"), "c", ""},
		{members("a", "b", "c", "d"), "d", ""},
		{members("a", "b", "c!", "d"), "d", ""}, // 2 of 3, quorum 2
		{members("a", "b!", "c!", "d"), "d", "would leave 1 of 3"},
		{members("a", "b", "c", "d!", "e!"), "a", "would leave 2 of 4 remaining managers reachable, fewer than the quorum of 3"},
		{members("a", "b", "c", "d!", "e!"), "e", ""}, // 3 of 4
	} {
		err := CheckRemoval(tc.members, tc.target)
		if tc.err == "" {
			if err != nil {
				t.Errorf("CheckRemoval(%v, %q) = %v; want nil", tc.members, tc.target, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CheckRemoval(%v, %q) = %v; want error containing %q", tc.members, tc.target, err, tc.err)
			continue
		}
		if !errdefs.Is(err, errdefs.ErrFailedPrecond) {
			t.Errorf("CheckRemoval(%v, %q) = %v; want category ErrFailedPrecond", tc.members, tc.target, err)
		}
		if !strings.Contains(err.Error(), tc.target) {
			t.Errorf("CheckRemoval(%v, %q) = %q; want it to name the node", tc.members, tc.target, err)
		}
	}
}

// TestCheckRemovalProperty checks CheckRemoval against the definition:
// removal is allowed iff the target is not a member, or the remaining
// members are not empty and a majority of them is reachable.
func TestCheckRemovalProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 9).Draw(t, "members")
		var ms []Member
		for i := range n {
			ms = append(ms, Member{ID: fmt.Sprintf("m%d", i), Reachable: rapid.Bool().Draw(t, fmt.Sprintf("reachable%d", i))})
		}
		target := fmt.Sprintf("m%d", rapid.IntRange(0, 10).Draw(t, "target"))

		isMember, remaining, reachable := false, 0, 0
		for _, m := range ms {
			if m.ID == target {
				isMember = true
				continue
			}
			remaining++
			if m.Reachable {
				reachable++
			}
		}
		// A majority of the remaining: more than half.
		want := !isMember || (remaining > 0 && 2*reachable > remaining)

		err := CheckRemoval(ms, target)
		if got := err == nil; got != want {
			t.Fatalf("CheckRemoval(%v, %q) = %v; want allowed=%v", ms, target, err, want)
		}
		if err != nil && !errdefs.Is(err, errdefs.ErrFailedPrecond) {
			t.Fatalf("CheckRemoval(%v, %q) = %v; want ErrFailedPrecond", ms, target, err)
		}
	})
}
