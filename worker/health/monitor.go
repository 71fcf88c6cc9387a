package health

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shoal-run/shoal/internal/clock"
)

// Probe runs one probe within ctx (which ends at the check's timeout) and
// says how it went: exit code 0 is healthy. An error is a probe that
// could not run: a failure whose output is the error.
type Probe func(ctx context.Context) (exitCode int, output string, err error)

// Loop probes one container.
type Loop struct {
	Clock  clock.Clock
	Config Config
	// Started is when the container started: the start period counts
	// from it.
	Started time.Time
	// AtOnce runs the first probe at once (a container taken over after
	// a daemon restart, whose state was lost) instead of one interval
	// (start_interval within the start period) after Started, docker's.
	AtOnce bool
	Probe  Probe
	// Changed is called with the status at the start (starting) and each
	// time its state changes (not on every probe), on Run's goroutine:
	// the next probe waits for it.
	Changed func(Status)

	parked func() // tests: called each time the loop waits with no probe in flight
}

// Run probes until ctx ends.
func (l Loop) Run(ctx context.Context) {
	m := NewMachine(l.Config, l.Started)
	cfg := m.cfg
	l.Changed(m.Status())
	first := max(0, m.Next(l.Clock.Now())-l.Clock.Since(l.Started))
	if l.AtOnce {
		first = 0
	}
	t := l.Clock.NewTimer(first)
	defer t.Stop()
	for {
		if l.parked != nil {
			l.parked()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		r := once(ctx, l.Clock, cfg.Timeout, l.Probe)
		if ctx.Err() != nil {
			return
		}
		if m.Observe(r) {
			l.Changed(m.Status())
			if ctx.Err() != nil {
				return // Changed ended it (the container is stopped)
			}
		}
		t.Reset(m.Next(l.Clock.Now()))
	}
}

// once runs one probe bounded by timeout on clk.
func once(ctx context.Context, clk clock.Clock, timeout time.Duration, probe Probe) Result {
	r := Result{Start: clk.Now()}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var expired atomic.Bool
	timer := clk.NewTimer(timeout)
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-timer.Chan():
			expired.Store(true)
			cancel()
		case <-done:
		}
	}()
	code, out, err := probe(pctx)
	close(done)
	timer.Stop()
	<-watched
	r.End = clk.Now()
	switch {
	case expired.Load() && ctx.Err() == nil:
		r.ExitCode, r.Output = -1, TimeoutOutput(timeout)
	case err != nil:
		r.ExitCode, r.Output = -1, err.Error()
	default:
		r.ExitCode, r.Output = code, out
	}
	return r
}
