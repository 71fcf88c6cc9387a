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

// Run probes a container that started at started per cfg, on clk, until
// ctx ends, and calls changed with the status at the start (starting)
// and each time its state changes (not on every probe). The first probe
// runs one interval (start_interval within the start period) after the
// start, as docker's. changed runs on Run's goroutine; the next probe
// waits for it.
func Run(ctx context.Context, clk clock.Clock, cfg Config, started time.Time, probe Probe, changed func(Status)) {
	run(ctx, clk, cfg, started, probe, changed, nil)
}

// run is Run; parked, for tests, is called each time the loop waits for
// its next probe with no probe in flight.
func run(ctx context.Context, clk clock.Clock, cfg Config, started time.Time, probe Probe, changed func(Status), parked func()) {
	m := NewMachine(cfg, started)
	cfg = m.cfg
	changed(m.Status())
	t := clk.NewTimer(max(0, m.Next(clk.Now())-clk.Since(started)))
	defer t.Stop()
	for {
		if parked != nil {
			parked()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		r := once(ctx, clk, cfg.Timeout, probe)
		if ctx.Err() != nil {
			return
		}
		if m.Observe(r) {
			changed(m.Status())
		}
		t.Reset(m.Next(clk.Now()))
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
