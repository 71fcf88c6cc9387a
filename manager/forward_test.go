package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func createReq(name string) *shoalv1.CreateServiceRequest {
	return &shoalv1.CreateServiceRequest{Spec: &shoalv1.ServiceSpec{
		Name: name,
		Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "busybox"}},
		Mode: &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 0}},
	}}
}

// callResult is how a call in flight ended.
type callResult struct {
	err  error
	took time.Duration
}

// clientDeadline is the caller's own deadline in these tests: the one a
// benchmark client of the issue used.
const clientDeadline = 5 * time.Second

// inFlight starts call in the background with the client's deadline.
func inFlight(call func(ctx context.Context) error) <-chan callResult {
	out := make(chan callResult, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
		defer cancel()
		err := call(ctx)
		out <- callResult{err: err, took: time.Since(start)}
	}()
	return out
}

func warm(t *testing.T, via *testManager, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
	defer cancel()
	if _, err := via.client.CreateService(ctx, createReq(name)); err != nil {
		t.Fatalf("create %s through %s before any fault: %v", name, via.id, err)
	}
}

// A write forwarded by a follower to a leader that then goes silent (every
// packet dropped, as in a partition) and loses its leadership is sent
// again to the new leader and accepted within the caller's deadline,
// instead of waiting on the dead connection until the deadline.
func TestForwardFollowsNewLeaderWhenLeaderCutOff(t *testing.T) {
	c := startTestCluster(t, 3)
	old := c.leader()
	via := c.others(old)[0]
	warm(t, via, "before") // the follower's connection to the leader is up

	old.proxy.drop(true, true)
	res := inFlight(func(ctx context.Context) error {
		_, err := via.client.CreateService(ctx, createReq("during"))
		return err
	})
	c.waitFor("the forwarded create to be held in the cut", func() error {
		if old.proxy.holding() == 0 {
			return errors.New("no bytes towards the old leader are held")
		}
		return nil
	})
	c.stopRaft(old)
	r := <-res
	if r.err != nil {
		t.Fatalf("create through %s after the leader %s was cut off: %v (after %s); want it accepted by the new leader", via.id, old.id, r.err, r.took.Round(time.Millisecond))
	}
	next := c.leader()
	c.waitFor("the service on the new leader", func() error {
		if n := next.services("during"); n != 1 {
			return errors.New("not there yet")
		}
		return nil
	})
	t.Logf("accepted through %s after %s; new leader %s", via.id, r.took.Round(time.Millisecond), next.id)
}

// The same when the leader dies: its connection is refused at once, and
// the follower waits for the new leader and sends the write there rather
// than answering Unavailable.
func TestForwardFollowsNewLeaderWhenLeaderDies(t *testing.T) {
	c := startTestCluster(t, 3)
	old := c.leader()
	via := c.others(old)[0]
	warm(t, via, "before")

	old.srv.Stop()
	c.stopRaft(old)
	res := inFlight(func(ctx context.Context) error {
		_, err := via.client.CreateService(ctx, createReq("after-death"))
		return err
	})
	r := <-res
	if r.err != nil {
		t.Fatalf("create through %s after the leader %s died: %v (after %s); want it accepted by the new leader", via.id, old.id, r.err, r.took.Round(time.Millisecond))
	}
	if n := c.leader().services("after-death"); n != 1 {
		t.Fatalf("the new leader has %d services after-death; want 1", n)
	}
}

// A follower whose connection to a manager failed while that manager was
// down (and is in gRPC's back-off since) forwards to it at once when it
// becomes the leader, rather than failing with the stale error.
func TestForwardReconnectsToNewLeaderAtOnce(t *testing.T) {
	c := startTestCluster(t, 3)
	old := c.leader()
	rest := c.others(old)
	for i, tm := range rest {
		other := rest[1-i]
		other.proxy.refuse()
		conn, err := tm.m.fwd.Conn(other.proxy.addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.Connect()
		c.waitFor(tm.id+"'s connection to "+other.id+" to fail", func() error {
			if s := conn.GetState(); s != connectivity.TransientFailure {
				return fmt.Errorf("state %s", s)
			}
			return nil
		})
		other.proxy.reopen()
	}
	old.srv.Stop()
	c.stopRaft(old)
	next := c.leader()
	via := c.others(next)[0]
	if via == old {
		via = c.others(next)[1]
	}
	r := <-inFlight(func(ctx context.Context) error {
		_, err := via.client.CreateService(ctx, createReq("after-reconnect"))
		return err
	})
	if r.err != nil {
		t.Fatalf("create through %s, whose connection to the new leader %s had failed earlier: %v (after %s); want it accepted", via.id, next.id, r.err, r.took.Round(time.Millisecond))
	}
}

// A write the old leader applied, whose answer was lost in the cut, is
// sent again; the new leader refuses the copy (the name is taken by the
// first). That refusal must not reach the caller as a definite "already
// exists": the caller's own write took effect. It gets an unknown outcome
// (Unavailable, check then retry), and the service exists once.
func TestForwardRetryOfAppliedWriteIsAnUnknownOutcome(t *testing.T) {
	c := startTestCluster(t, 3)
	old := c.leader()
	via := c.others(old)[0]
	warm(t, via, "before")

	old.proxy.drop(false, true) // the request arrives; the answer does not
	res := inFlight(func(ctx context.Context) error {
		_, err := via.client.CreateService(ctx, createReq("answer-lost"))
		return err
	})
	c.waitFor("the create applied on the follower", func() error {
		if via.services("answer-lost") != 1 {
			return errors.New("not applied yet")
		}
		return nil
	})
	c.stopRaft(old)
	r := <-res
	if status.Code(r.err) != codes.Unavailable {
		t.Fatalf("create whose answer was lost: %v (after %s); want Unavailable: the outcome is unknown to the follower", r.err, r.took.Round(time.Millisecond))
	}
	if msg := status.Convert(r.err).Message(); !strings.Contains(msg, "may have been applied") || !strings.Contains(msg, "already in use") {
		t.Errorf("message %q should say the first attempt may have been applied, and what the new leader said", msg)
	}
	next := c.leader()
	if n := next.services("answer-lost"); n != 1 {
		t.Fatalf("the new leader has %d services answer-lost; want 1", n)
	}
}

// A call that is not safe to send twice (a remove by name) is not sent
// again: the caller learns at once that the outcome is unknown instead of
// waiting until its deadline.
func TestForwardDoesNotRetryUnsafeCalls(t *testing.T) {
	c := startTestCluster(t, 3)
	old := c.leader()
	via := c.others(old)[0]
	warm(t, via, "keep")

	old.proxy.drop(true, true)
	res := inFlight(func(ctx context.Context) error {
		_, err := via.client.RemoveService(ctx, &shoalv1.RemoveServiceRequest{ServiceId: "keep"})
		return err
	})
	c.waitFor("the forwarded remove to be held in the cut", func() error {
		if old.proxy.holding() == 0 {
			return errors.New("no bytes towards the old leader are held")
		}
		return nil
	})
	c.stopRaft(old)
	r := <-res
	if status.Code(r.err) != codes.Unavailable {
		t.Fatalf("remove in flight while the leader was cut off: %v (after %s); want Unavailable (outcome unknown)", r.err, r.took.Round(time.Millisecond))
	}
	if msg := status.Convert(r.err).Message(); !strings.Contains(msg, "may or may not have been applied") {
		t.Errorf("message %q should say the outcome is unknown", msg)
	}
	next := c.leader()
	if n := next.services("keep"); n != 1 {
		t.Fatalf("the remove was sent again: the new leader has %d services keep; want 1", n)
	}
}
