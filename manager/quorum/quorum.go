// Package quorum holds the rules that keep a Raft cluster of managers
// able to decide: which membership changes leave a quorum of reachable
// managers. It is pure: the control API (node demote and rm) and the
// membership room (demotions, a manager leaving Raft) ask it before they
// change the configuration.
package quorum

import (
	"fmt"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Member is a Raft voter as the quorum check sees it.
type Member struct {
	ID        string
	Reachable bool
}

// CheckRemoval says whether removing target from members keeps a quorum
// of reachable managers in the new configuration. It is pure.
func CheckRemoval(members []Member, target string) error {
	var remaining, reachable int
	found := false
	for _, m := range members {
		if m.ID == target {
			found = true
			continue
		}
		remaining++
		if m.Reachable {
			reachable++
		}
	}
	if !found {
		return nil
	}
	if remaining == 0 {
		return fmt.Errorf("node %s is the last manager; promote another node first, or use `swarm leave --force` to end the cluster: %w", target, errdefs.ErrFailedPrecond)
	}
	if need := remaining/2 + 1; reachable < need {
		return fmt.Errorf("removing manager %s would leave %d of %d remaining managers reachable, fewer than the quorum of %d; bring managers back first or use --force: %w",
			target, reachable, remaining, need, errdefs.ErrFailedPrecond)
	}
	return nil
}

// Voters is what Members needs of a Raft member.
type Voters interface {
	MemberIDs() []string
	Reachable(id string) bool
}

// Members lists the voters of r with whether each is reachable.
func Members(r Voters) []Member {
	var out []Member
	for _, id := range r.MemberIDs() {
		out = append(out, Member{ID: id, Reachable: r.Reachable(id)})
	}
	return out
}
