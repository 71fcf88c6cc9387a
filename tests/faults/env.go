// Package faults holds the fault scenarios of the multi-host harness: a
// cluster of real daemons, one per network namespace, a fault injected for
// real (kill -9, SIGSTOP, nftables partitions), and invariants checked
// against what really runs on the hosts and against the history of every
// client operation. The end-to-end tests in tests/ run each scenario once
// and fail on a broken invariant; tests/bench/faults runs them several
// times and reports the times they measure.
package faults

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// Env is one scenario's cluster: M managers and W workers, each on its
// own host, the whoami image in the hosts' registry, and the history.
type Env struct {
	T     harness.TB
	Net   *harness.Net
	C     *harness.Cluster
	Image string // reference the hosts pull
	H     *harness.History
	// Logf reports progress (the test's Logf, or a program's output).
	Logf func(format string, args ...any)
}

// Start forms the cluster, waits until every node is ready with one
// leader, and pushes the whoami image.
func Start(t harness.TB, managers, workers int, args ...string) *Env {
	t.Helper()
	c, net := harness.StartNetCluster(t, managers, workers, args...)
	e := &Env{T: t, Net: net, C: c, H: harness.NewHistory(t), Logf: t.Logf}
	e.Image = net.ServeImage(testimage.Options{Tag: "1"})
	e.Eventually(30*time.Second, func() error { return AllReadyIn(e.nodes(c.Managers[0]), managers+workers) })
	return e
}

// Eventually retries fn until nil, failing the scenario after timeout.
func (e *Env) Eventually(timeout time.Duration, fn func() error) {
	e.T.Helper()
	harness.Eventually(e.T, timeout, fn)
}

func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// nodes lists the nodes through m; nil when m does not answer.
func (e *Env) nodes(m *harness.Node) []*shoalv1.Node { return ListNodes(m, 3*time.Second) }

// ListNodes is node ls through m within d (a follower forwards the call to
// the leader it knows, which may be cut off); nil when m does not answer.
func ListNodes(m *harness.Node, d time.Duration) []*shoalv1.Node {
	ctx, cancel := ctxFor(d)
	defer cancel()
	resp, err := m.Control().ListNodes(ctx, &shoalv1.ListNodesRequest{})
	if err != nil {
		return nil
	}
	return resp.GetNodes()
}

// AllReadyIn checks that want nodes are listed, all ready, with one
// leader.
func AllReadyIn(nodes []*shoalv1.Node, want int) error {
	if len(nodes) != want {
		return fmt.Errorf("%d nodes listed; want %d", len(nodes), want)
	}
	leaders := 0
	for _, n := range nodes {
		if n.GetStatus().GetState() != shoalv1.NodeState_NODE_STATE_READY {
			return fmt.Errorf("node %s at %s is %s (%s)", n.GetId(), n.GetStatus().GetAddr(), n.GetStatus().GetState(), n.GetStatus().GetMessage())
		}
		if n.GetManagerStatus().GetLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d leaders; want 1", leaders)
	}
	return nil
}

// AllReady waits until every node is ready with one leader, seen from a
// running manager.
func (e *Env) AllReady(timeout time.Duration) {
	e.T.Helper()
	want := len(e.C.Nodes())
	e.Eventually(timeout, func() error {
		var err error
		for _, m := range e.C.Managers {
			if !m.Running() {
				continue
			}
			if err = AllReadyIn(e.nodes(m), want); err == nil {
				return nil
			}
		}
		return err
	})
}

// NodeByID maps node IDs to harness nodes, through their addresses.
func (e *Env) NodeByID() map[string]*harness.Node {
	out := map[string]*harness.Node{}
	for _, m := range e.C.Managers {
		if !m.Running() {
			continue
		}
		for _, n := range e.nodes(m) {
			for _, h := range e.C.Nodes() {
				if h.Host != nil && h.Host.IP == n.GetStatus().GetAddr() {
					out[n.GetId()] = h
				}
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return out
}

// Spec is a replicated whoami service with extra environment.
func (e *Env) Spec(name string, replicas int64, env ...string) *shoalv1.ServiceSpec {
	return &shoalv1.ServiceSpec{
		Name: name,
		Task: &shoalv1.TaskSpec{
			Container: &shoalv1.ContainerSpec{Image: e.Image, Env: env},
		},
		Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: replicas}},
	}
}

// Create creates a service through the leader and waits until its
// replicas run.
func (e *Env) Create(spec *shoalv1.ServiceSpec) *shoalv1.Service {
	e.T.Helper()
	leader := e.C.Leader(20 * time.Second)
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	op := e.H.Invoke("setup", "create", spec.GetName())
	resp, err := leader.Control().CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec})
	if err != nil {
		op.Fail(err)
		e.T.Fatalf("create service %s: %v", spec.GetName(), err)
	}
	op.Ok(resp.GetService().GetId())
	e.Eventually(60*time.Second, func() error { return e.Converged(spec.GetName(), int(spec.GetReplicated().GetReplicas())) })
	return resp.GetService()
}

// Tasks lists a service's tasks through any manager that answers.
func (e *Env) Tasks(svc string) ([]*shoalv1.Task, error) { return e.C.Tasks(svc) }

// Converged checks a service end to end (harness.Cluster.Converged): want
// containers of it really run, one per task desired and reported running,
// each on its task's node.
func (e *Env) Converged(svc string, want int) error { return e.C.Converged(svc, want) }

// ConvergedOn is Converged counting only the containers on nodes
// (harness.Cluster.ConvergedOn).
func (e *Env) ConvergedOn(svc string, want int, nodes []*harness.Node) error {
	return e.C.ConvergedOn(svc, want, nodes)
}

// Except lists the cluster's nodes but some.
func (e *Env) Except(skip ...*harness.Node) []*harness.Node { return e.C.Except(skip...) }

// MostLoaded is the worker running the most containers of svc.
func (e *Env) MostLoaded(svc string) (*harness.Node, int) {
	var best *harness.Node
	most := 0
	for _, w := range e.C.Workers {
		n := 0
		for _, c := range w.RunningContainers() {
			if c.Service == svc {
				n++
			}
		}
		if n > most {
			best, most = w, n
		}
	}
	if best == nil {
		e.T.Fatalf("no worker runs a replica of %s", svc)
	}
	return best, most
}

// Definite reports whether an error from a write means it did not and
// will not take effect: the request was refused as such. Anything else (a
// timeout, a lost connection, a leader lost mid-commit) leaves the outcome
// unknown.
func Definite(err error) bool {
	switch status.Code(err) {
	case codes.Aborted, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted:
		return true
	}
	return false
}

// Complete records a write's outcome in the history.
func Complete(op *harness.Op, err error) {
	switch {
	case err == nil:
		op.Ok(nil)
	case Definite(err):
		op.Fail(err)
	default:
		op.Info(err)
	}
}

// holdFault returns once a fault that began at start has lasted hold: its
// length is the scenario's, nothing to wait for.
func holdFault(start time.Time, hold time.Duration) {
	if left := hold - time.Since(start); left > 0 {
		time.Sleep(left)
	}
}
