package faults

import (
	"fmt"
	"time"
)

// FreezeResult is what scenario 6 measured.
type FreezeResult struct {
	Victim   string
	Frozen   int           // replicas on the frozen worker
	Restored time.Duration // SIGSTOP → every replica running on the others
	Healed   time.Duration // SIGCONT → exactly the replicas, stale ones stopped
}

// Freeze is scenario 6: the worker running the most replicas is stopped
// with SIGSTOP for hold (a node that hangs, not one that died): its
// replicas are restored on the others; once it is resumed, it stops its
// stale containers and exactly replicas run.
func Freeze(e *Env, svc string, replicas int, hold time.Duration) FreezeResult {
	e.T.Helper()
	e.Create(e.Spec(svc, int64(replicas)))
	victim, n := e.MostLoaded(svc)
	others := e.Except(victim)
	e.H.Fault("SIGSTOP", victim.Name)
	frozen := time.Now()
	victim.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			victim.Thaw()
		}
	}()
	e.Eventually(30*time.Second, func() error { return e.ConvergedOn(svc, replicas, others) })
	r := FreezeResult{Victim: victim.Name, Frozen: n, Restored: time.Since(frozen)}
	e.H.Fault("restored on the others", r.Restored.Round(time.Millisecond).String())
	holdFault(frozen, hold)
	e.H.Fault("SIGCONT", victim.Name)
	resumed := time.Now()
	victim.Thaw()
	thawed = true
	e.Eventually(30*time.Second, func() error { return e.Converged(svc, replicas) })
	r.Healed = time.Since(resumed)
	e.H.Fault("converged", fmt.Sprintf("%d replicas, %s after SIGCONT", replicas, r.Healed.Round(time.Millisecond)))
	e.AllReady(20 * time.Second)
	return r
}
