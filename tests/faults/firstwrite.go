package faults

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/harness"
)

// firstWriteDeadline is each attempt's own deadline: the client's of the
// issue that measured a cut-off leader against a killed one.
const firstWriteDeadline = 5 * time.Second

// FirstWriteResult is what a FirstWrite client saw.
type FirstWriteResult struct {
	Via      string
	Accepted time.Duration // fault → the create acknowledged
	Attempts int           // creates sent, the accepted one included
	Errors   []error       // of the attempts that failed, in order
}

// FirstWrite is a client that, from a fault on, creates a service
// through one manager until the create is accepted, as a user repeats
// `service create` until it works: each attempt with a 5 s deadline, the
// next 50 ms after a failure. An AlreadyExists after an attempt whose
// outcome was unknown means that attempt was applied: accepted then.
type FirstWrite struct {
	done chan FirstWriteResult
}

// StartFirstWrite starts the client on via, creating name (0 replicas),
// timing from the fault at from.
func StartFirstWrite(e *Env, via *harness.Node, name string, from time.Time) *FirstWrite {
	w := &FirstWrite{done: make(chan FirstWriteResult, 1)}
	client := via.Control()
	spec := e.Spec(name, 0)
	go func() {
		r := FirstWriteResult{Via: via.Name}
		for {
			r.Attempts++
			op := e.H.Invoke("client-first-write", "create", name)
			ctx, cancel := context.WithTimeout(context.Background(), firstWriteDeadline)
			_, err := client.CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec})
			cancel()
			if err == nil || (status.Code(err) == codes.AlreadyExists && len(r.Errors) > 0) {
				op.Ok(name)
				r.Accepted = time.Since(from)
				w.done <- r
				return
			}
			Complete(op, err)
			r.Errors = append(r.Errors, err)
			if Definite(err) || time.Since(from) > time.Minute {
				w.done <- r
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

// Wait returns the result once the create was accepted; it fails the
// scenario if it was refused for good or not accepted within a minute.
func (w *FirstWrite) Wait(e *Env) FirstWriteResult {
	e.T.Helper()
	r := <-w.done
	if r.Accepted == 0 {
		e.T.Fatalf("no create accepted through %s after %d attempts: %v", r.Via, r.Attempts, r.Errors)
	}
	return r
}

// String says how the first write went.
func (r FirstWriteResult) String() string {
	s := fmt.Sprintf("accepted through %s after %s, attempt %d", r.Via, r.Accepted.Round(time.Millisecond), r.Attempts)
	switch n := len(r.Errors); {
	case n == 1:
		s += fmt.Sprintf(" (the first failed: %v)", r.Errors[0])
	case n > 1:
		s += fmt.Sprintf(" (%d failed, the first: %v; the last: %v)", n, r.Errors[0], r.Errors[n-1])
	}
	return s
}
