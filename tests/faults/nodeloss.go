package faults

import (
	"fmt"
	"time"
)

// NodeLossResult is what scenario 2 measured.
type NodeLossResult struct {
	Victim   string
	Lost     int           // replicas that ran on the killed host
	Restored time.Duration // kill → every replica running again on the others
}

// NodeLoss is scenario 2: a service of replicas replicas; the worker host
// running the most of them is killed with SIGKILL (its daemon and its
// containers, as if the machine died); every replica must run again on the
// other hosts. The cluster is e (at least one worker).
func NodeLoss(e *Env, svc string, replicas int) NodeLossResult {
	e.T.Helper()
	e.Create(e.Spec(svc, int64(replicas)))
	victim, most := e.MostLoaded(svc)
	e.H.Fault("kill -9 host", victim.Name)
	killed := time.Now()
	victim.KillHost()
	e.Eventually(30*time.Second, func() error { return e.Converged(svc, replicas) })
	r := NodeLossResult{Victim: victim.Name, Lost: most, Restored: time.Since(killed)}
	e.H.Fault("restored", fmt.Sprintf("%d replicas in %s", replicas, r.Restored.Round(time.Millisecond)))
	return r
}
