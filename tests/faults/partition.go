package faults

import (
	"fmt"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
)

// PartitionWorkerResult is what scenario 4 measured.
type PartitionWorkerResult struct {
	Victim   string
	Cut      int           // replicas on the cut-off worker
	Restored time.Duration // cut → every replica running on the others
	Healed   time.Duration // heal → exactly the replicas across the cluster
}

// PartitionWorker is scenario 4: the worker running the most replicas is
// cut off from every other host (and the registry) for hold while its
// containers keep running; the others take over its replicas; after the
// heal, exactly replicas run: no duplicates, no losses.
func PartitionWorker(e *Env, svc string, replicas int, hold time.Duration) PartitionWorkerResult {
	e.T.Helper()
	e.Create(e.Spec(svc, int64(replicas)))
	victim, n := e.MostLoaded(svc)
	others := e.Except(victim)
	e.H.Fault("partition from all", victim.Name)
	cut := time.Now()
	heal := victim.Host.Partition()
	defer heal()
	e.Eventually(30*time.Second, func() error { return e.ConvergedOn(svc, replicas, others) })
	r := PartitionWorkerResult{Victim: victim.Name, Cut: n, Restored: time.Since(cut)}
	e.H.Fault("restored on the others", r.Restored.Round(time.Millisecond).String())
	holdFault(cut, hold)
	e.H.Fault("heal", victim.Name)
	healed := time.Now()
	heal()
	e.Eventually(60*time.Second, func() error { return e.Converged(svc, replicas) })
	r.Healed = time.Since(healed)
	e.H.Fault("converged", fmt.Sprintf("%d replicas, %s after the heal", replicas, r.Healed.Round(time.Millisecond)))
	e.AllReady(30 * time.Second)
	return r
}

// PartitionLeaderResult is what scenario 5 measured.
type PartitionLeaderResult struct {
	OldLeader, NewLeader string
	Elected              time.Duration // cut → a new leader on the majority side
	AckedOld, AckedNew   int           // writes acknowledged through each side
	Final                int
	// FirstWrite is a create sent through a majority manager right after
	// the cut, repeated until accepted.
	FirstWrite FirstWriteResult
}

// PartitionLeader is scenario 5: the leader is cut off from the other
// managers while one client writes through it and another through the
// majority side, and a third creates a service through a majority manager
// from the cut on until it is accepted (FirstWrite). A new leader must be
// elected on the majority side; the
// old leader must acknowledge no write once the new one leads; after the
// heal there is one leader and one history holding every acknowledged
// write (and no definitely failed one), in real-time order.
func PartitionLeader(e *Env, svc string, hold time.Duration) PartitionLeaderResult {
	e.T.Helper()
	if len(e.C.Managers) < 3 {
		e.T.Fatalf("scenario 5 needs 3 managers, have %d", len(e.C.Managers))
	}
	e.Create(e.Spec(svc, 1, historyEnv+"="))
	old := e.C.Leader(20 * time.Second)
	majority := []*harness.Node{}
	var hosts []*harness.Host
	for _, m := range e.C.Managers {
		if m != old {
			majority = append(majority, m)
			hosts = append(hosts, m.Host)
		}
	}
	aOld := NewAppender(e, "client-old", svc, 1, old)
	aNew := NewAppender(e, "client-new", svc, 1_000_000, majority...)
	aOld.Start()
	aNew.Start()
	stopped := false
	defer func() {
		if !stopped {
			aOld.Stop()
			aNew.Stop()
		}
	}()
	e.Eventually(20*time.Second, func() error {
		if aOld.Acked() < 3 || aNew.Acked() < 3 {
			return fmt.Errorf("writes acknowledged before the cut: %d through the leader, %d through the others; want 3 each", aOld.Acked(), aNew.Acked())
		}
		return nil
	})

	e.H.Fault("partition leader from managers", old.Name)
	cut := time.Now()
	heal := old.Host.Partition(hosts...)
	defer heal()
	first := StartFirstWrite(e, majority[0], "first-after-cut", cut)
	var r PartitionLeaderResult
	r.OldLeader = old.Name
	var elected time.Time
	e.Eventually(30*time.Second, func() error {
		for _, m := range majority {
			for _, n := range ListNodes(m, 200*time.Millisecond) {
				if n.GetManagerStatus().GetLeader() && n.GetManagerStatus().GetAddr() != old.Addr {
					elected = time.Now()
					r.NewLeader = n.GetManagerStatus().GetAddr()
					return nil
				}
			}
		}
		return fmt.Errorf("no new leader on the majority side")
	})
	r.Elected = elected.Sub(cut)
	e.H.Fault("new leader", fmt.Sprintf("%s after %s", r.NewLeader, r.Elected.Round(time.Millisecond)))
	// The majority side takes writes while the old leader is cut off.
	base := aNew.Acked()
	e.Eventually(30*time.Second, func() error {
		if aNew.Acked() < base+3 {
			return fmt.Errorf("the majority side acknowledged %d writes since the election; want 3", aNew.Acked()-base)
		}
		return nil
	})
	r.FirstWrite = first.Wait(e)
	e.H.Fault("first create through the majority", r.FirstWrite.String())
	holdFault(cut, hold)
	if at, ok := aOld.FirstAckAfter(elected); ok {
		e.T.Fatalf("the old leader %s acknowledged a write at +%s, invoked after %s was elected", old.Name, at.Sub(cut), r.NewLeader)
	}
	e.H.Fault("heal", old.Name)
	heal()
	e.AllReady(30 * time.Second)
	aOld.Stop()
	aNew.Stop()
	stopped = true
	r.AckedOld, r.AckedNew = aOld.Acked(), aNew.Acked()
	r.Final = len(e.CheckFinal(svc))
	return r
}
