package faults

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// historyEnv is the environment variable the append client grows: the
// service spec is the register, "HISTORY=1,2,3" the list of appends.
const historyEnv = "HISTORY"

// parseHistory reads the appended values out of a spec's environment.
func parseHistory(env []string) ([]int, error) {
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, historyEnv+"=")
		if !ok {
			continue
		}
		var out []int
		for _, f := range strings.Split(v, ",") {
			if f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %v", historyEnv, v, err)
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, nil
}

func withHistory(env []string, vals []int) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, historyEnv+"=") {
			out = append(out, kv)
		}
	}
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = strconv.Itoa(v)
	}
	return append(out, historyEnv+"="+strings.Join(s, ","))
}

// Appender is a client that keeps appending increasing values to a
// service's HISTORY through the managers in turn (read the spec, append,
// update at the version read), recording every operation in the history.
type Appender struct {
	e       *Env
	svc     string
	process string
	targets []*harness.Node
	clients []shoalv1.ControlServiceClient
	timeout time.Duration
	pace    time.Duration

	next   int
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	acked  []time.Time // completion of each acknowledged append
	sentAt []time.Time // invocation of each acknowledged append
}

// NewAppender prepares a client of svc writing through targets, values
// from first on; Start runs it.
func NewAppender(e *Env, process, svc string, first int, targets ...*harness.Node) *Appender {
	a := &Appender{e: e, svc: svc, process: process, targets: targets, timeout: 2 * time.Second, pace: 50 * time.Millisecond, next: first}
	for _, n := range targets {
		a.clients = append(a.clients, n.Control())
	}
	return a
}

// Start runs the client until Stop.
func (a *Appender) Start() {
	a.stop, a.done = make(chan struct{}), make(chan struct{})
	go a.loop()
}

// Stop ends the client after its operation in flight.
func (a *Appender) Stop() {
	close(a.stop)
	<-a.done
}

func (a *Appender) loop() {
	defer close(a.done)
	tick := time.NewTicker(a.pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
		a.appendOnce(a.clients[i%len(a.clients)])
	}
}

// appendOnce does one read-append-update. A failed read means the write
// was never sent: a definite failure.
func (a *Appender) appendOnce(c shoalv1.ControlServiceClient) {
	v := a.next
	a.next++
	op := a.e.H.Invoke(a.process, "append", v)
	invoked := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	got, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: a.svc})
	if err != nil {
		op.Fail(fmt.Errorf("read before the update: %w", err))
		return
	}
	s := got.GetService()
	vals, err := parseHistory(s.GetSpec().GetTask().GetContainer().GetEnv())
	if err != nil {
		op.Fail(err)
		return
	}
	spec := s.GetSpec()
	spec.Task.Container.Env = withHistory(spec.GetTask().GetContainer().GetEnv(), append(vals, v))
	_, err = c.UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: s.GetId(), Version: s.GetMeta().GetVersion(), Spec: spec})
	Complete(op, err)
	if err == nil {
		a.mu.Lock()
		a.acked = append(a.acked, time.Now())
		a.sentAt = append(a.sentAt, invoked)
		a.mu.Unlock()
	}
}

// Acked counts the acknowledged appends so far.
func (a *Appender) Acked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

// FirstAckAfter is when the first append invoked after t was
// acknowledged; false if none was yet.
func (a *Appender) FirstAckAfter(t time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, s := range a.sentAt {
		if s.After(t) {
			return a.acked[i], true
		}
	}
	return time.Time{}, false
}

// CheckFinal waits for every running manager to agree on svc's final
// HISTORY, checks it against the operation history (CheckAppends), and
// returns it.
func (e *Env) CheckFinal(svc string) []int {
	e.T.Helper()
	var final []int
	e.Eventually(20*time.Second, func() (err error) {
		final, err = e.Final(svc)
		return err
	})
	if err := harness.CheckAppends(e.H.Events(), final); err != nil {
		e.T.Fatalf("the final spec contradicts the history: %v", err)
	}
	return final
}

// Final reads the service's HISTORY through every running manager; they
// must all give the same list.
func (e *Env) Final(svc string) ([]int, error) {
	var first []int
	seen := false
	for _, m := range e.C.Managers {
		if !m.Running() {
			continue
		}
		ctx, cancel := ctxFor(3 * time.Second)
		got, err := m.Control().GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: svc})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read %s through %s: %v", svc, m.Name, err)
		}
		vals, err := parseHistory(got.GetService().GetSpec().GetTask().GetContainer().GetEnv())
		if err != nil {
			return nil, err
		}
		if seen && fmt.Sprint(vals) != fmt.Sprint(first) {
			return nil, fmt.Errorf("managers disagree: %v through an earlier one, %v through %s", first, vals, m.Name)
		}
		first, seen = vals, true
	}
	if !seen {
		return nil, fmt.Errorf("no manager runs")
	}
	return first, nil
}

// RunsFinal checks that every container of svc really running has the
// final HISTORY in its environment: no task runs an older spec.
func (e *Env) RunsFinal(svc string, final []int) error {
	want := withHistory(nil, final)[0]
	for _, n := range e.C.Nodes() {
		for _, c := range n.RunningContainers() {
			if c.Service != svc {
				continue
			}
			got := ""
			for _, kv := range c.Env {
				if strings.HasPrefix(kv, historyEnv+"=") {
					got = kv
				}
			}
			if got != want {
				return fmt.Errorf("%s runs task %s (pid %d) with %q; the final spec has %q", n.Name, c.Task, c.Pid, got, want)
			}
		}
	}
	return nil
}

// otherManager is a manager other than m.
func (e *Env) otherManager(m *harness.Node) *harness.Node {
	for _, o := range e.C.Managers {
		if o != m {
			return o
		}
	}
	e.T.Fatalf("no manager other than %s", m.Name)
	return nil
}

// LeaderKillResult is what scenario 3 measured.
type LeaderKillResult struct {
	Kills    []string        // the leaders killed, in order
	Recovery []time.Duration // kill → the first write invoked after it acknowledged
	Acked    int
	Final    int // values in the final list
	// FirstWrites are creates sent through a surviving manager right
	// after each kill, each repeated until accepted.
	FirstWrites []FirstWriteResult
}

// LeaderKills is scenario 3: while a client keeps updating a service's
// spec through every manager in turn, the leader is killed with SIGKILL
// kills times (restarted after each, once a new leader took writes);
// after each kill another client creates a service through a surviving
// manager until it is accepted (FirstWrite).
// Every acknowledged update must be in the final spec, in order, none
// that definitely failed, and once converged every container runs the
// final spec.
func LeaderKills(e *Env, svc string, replicas, kills int) LeaderKillResult {
	e.T.Helper()
	e.Create(e.Spec(svc, int64(replicas), historyEnv+"="))
	a := NewAppender(e, "client", svc, 1, e.C.Managers...)
	a.Start()
	stopped := false
	defer func() {
		if !stopped {
			a.Stop()
		}
	}()
	var r LeaderKillResult
	for i := 0; i < kills; i++ {
		// Some writes between kills, through the full cluster.
		base := a.Acked()
		e.Eventually(30*time.Second, func() error {
			if a.Acked() < base+5 {
				return fmt.Errorf("%d writes acknowledged since the last restart; want 5", a.Acked()-base)
			}
			return nil
		})
		leader := e.C.Leader(20 * time.Second)
		e.H.Fault("kill -9 leader", leader.Name)
		killed := time.Now()
		leader.Kill()
		first := StartFirstWrite(e, e.otherManager(leader), fmt.Sprintf("first-after-kill-%d", i+1), killed)
		var back time.Time
		e.Eventually(30*time.Second, func() error {
			var ok bool
			if back, ok = a.FirstAckAfter(killed); !ok {
				return fmt.Errorf("no write acknowledged since %s was killed", leader.Name)
			}
			return nil
		})
		r.Kills = append(r.Kills, leader.Name)
		r.Recovery = append(r.Recovery, back.Sub(killed))
		e.H.Fault("writes accepted again", back.Sub(killed).Round(time.Millisecond).String())
		fw := first.Wait(e)
		r.FirstWrites = append(r.FirstWrites, fw)
		e.H.Fault("first create through a survivor", fw.String())
		leader.Start()
		e.H.Fault("restarted", leader.Name)
		e.AllReady(30 * time.Second)
	}
	a.Stop()
	stopped = true
	r.Acked = a.Acked()
	final := e.CheckFinal(svc)
	r.Final = len(final)
	e.Eventually(90*time.Second, func() error {
		if err := e.Converged(svc, replicas); err != nil {
			return err
		}
		return e.RunsFinal(svc, final)
	})
	return r
}
