package tests

import (
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/faults"
)

// Fault scenario 2: a 10-replica service; a worker host killed with -9
// (daemon and containers); all 10 run again on the others.
func TestScenarioNodeLoss(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 3)
	r := faults.NodeLoss(e, "web", 10)
	t.Logf("measured: %s (%d replicas) killed; all 10 running again after %s", r.Victim, r.Lost, r.Restored)
}

// Fault scenario 3: the leader killed with -9 five times while a client
// keeps updating the service through every manager in turn: every
// acknowledged update is in the final spec, in order; once converged, no
// container runs an older spec.
func TestScenarioLeaderKills(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 3, 1)
	r := faults.LeaderKills(e, "web", 2, 5)
	t.Logf("measured: leaders killed %v; writes accepted again after %v; %d acknowledged, %d in the final spec", r.Kills, r.Recovery, r.Acked, r.Final)
	for _, fw := range r.FirstWrites {
		t.Logf("measured: first create after a kill %s", fw)
	}
}

// Fault scenario 6: a worker frozen with SIGSTOP for 10 s: its replicas
// are restored elsewhere; resumed, it stops the stale ones, leaving
// exactly the replicas (no duplicates).
func TestScenarioFreezeWorker(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	r := faults.Freeze(e, "web", 6, 10*time.Second)
	t.Logf("measured: %s frozen with %d replicas; restored on the others after %s; converged %s after SIGCONT", r.Victim, r.Frozen, r.Restored, r.Healed)
}

// Fault scenario 4: a worker running replicas cut off from every other
// host for 20 s, then healed: exactly the replicas run (no duplicates, no
// losses).
func TestScenarioPartitionWorker(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 3)
	r := faults.PartitionWorker(e, "web", 6, 20*time.Second)
	t.Logf("measured: %s cut off with %d replicas; restored on the others after %s; converged %s after the heal", r.Victim, r.Cut, r.Restored, r.Healed)
}

// Fault scenario 5: the leader cut off from the other managers while
// clients write through both sides: a new leader on the majority side,
// no write acknowledged by the old one after that, and after the heal one
// leader and one history with every acknowledged write. A create sent
// through a majority manager right after the cut is accepted as it is: the
// manager stops waiting on the old leader and sends it to the new one,
// well within the client's 5 s deadline (it used to wait on the silent
// old leader until that deadline).
func TestScenarioPartitionLeader(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 3, 0)
	r := faults.PartitionLeader(e, "register", 5*time.Second)
	t.Logf("measured: %s cut off; %s elected after %s; acknowledged %d through the old leader, %d through the majority; %d in the final spec", r.OldLeader, r.NewLeader, r.Elected, r.AckedOld, r.AckedNew, r.Final)
	t.Logf("measured: first create after the cut %s", r.FirstWrite)
	if r.FirstWrite.Attempts != 1 {
		t.Fatalf("the first create sent through %s after the cut failed: %v; want it accepted by the new leader, within the client's deadline", r.FirstWrite.Via, r.FirstWrite.Errors)
	}
}

// Fault scenario 7: every worker daemon restarted in turn: no container
// restarted (same PIDs), never fewer than the replicas running.
func TestScenarioRollingDaemonRestart(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 3)
	r := faults.RollingRestart(e, "web", 6)
	t.Logf("measured: restarted %v, each ready again after %v; lowest of %d samples: %d containers running, %d tasks reported running", r.Restarted, r.Downtime, r.Samples, r.MinRunning, r.MinReported)
}

// Fault scenario 8: bad input across the API from a client on another
// host: clear errors, no state change, no daemon crash.
func TestScenarioBadInput(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 2, 1)
	r := faults.BadInput(e)
	for _, c := range append(r.Cases, r.Joins...) {
		t.Log(c)
	}
}
