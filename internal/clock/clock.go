// Package clock is the seam through which time reaches Shoal's loops
// (heartbeat expiry, node-down detection, restart back-off, orchestrator
// pass spacing, the task runner): production code takes a Clock, tests
// give it a Fake that they advance by hand, so timing behaviour is tested
// without wall-clock waits.
//
// It is github.com/jonboulle/clockwork under Shoal's names; like the rest
// of internal/ it imports nothing of the product.
package clock

import (
	"time"

	"github.com/jonboulle/clockwork"
)

// Clock tells the time and makes timers and tickers.
type Clock = clockwork.Clock

// Timer and Ticker are made by a Clock; their channels are Chan().
type (
	Timer  = clockwork.Timer
	Ticker = clockwork.Ticker
)

// Fake is a Clock that moves only when Advance is called. BlockUntilContext
// waits until a number of timers, tickers and sleepers wait on it, so a
// test can advance exactly when the loop under test is parked.
type Fake = clockwork.FakeClock

// Real is the wall clock.
func Real() Clock { return clockwork.NewRealClock() }

// NewFake is a fake clock that starts at t.
func NewFake(t time.Time) *Fake { return clockwork.NewFakeClockAt(t) }
