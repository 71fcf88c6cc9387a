package benchkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// LoadAvg is the 1-, 5- and 15-minute load averages from /proc/loadavg.
type LoadAvg [3]float64

// ReadLoadAvg reads /proc/loadavg.
func ReadLoadAvg() (LoadAvg, error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return LoadAvg{}, err
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return LoadAvg{}, fmt.Errorf("/proc/loadavg: %q", data)
	}
	var l LoadAvg
	for i := range l {
		if l[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return LoadAvg{}, fmt.Errorf("/proc/loadavg: %w", err)
		}
	}
	return l, nil
}

// String is "1.02 0.80 0.65".
func (l LoadAvg) String() string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

// Quiet records how the wait for a quiet machine went.
type Quiet struct {
	Max     float64       `json:"max_load1"`
	Before  LoadAvg       `json:"load_before_wait"`
	After   LoadAvg       `json:"load_after_wait"` // when the measurement started
	Waited  time.Duration `json:"waited_ns"`
	Reached bool          `json:"reached"` // the 1-minute load fell below Max in time
}

// WaitQuiet waits until the 1-minute load average is below max, checking
// every 5 s for at most timeout, and says how it went. It never fails:
// a benchmark that waited in vain goes on and reports the load it ran at.
// progress, if not nil, gets a line every 30 s.
func WaitQuiet(max float64, timeout time.Duration, progress func(format string, args ...any)) Quiet {
	start := time.Now()
	q := Quiet{Max: max}
	q.Before, _ = ReadLoadAvg()
	last := start
	for {
		l, err := ReadLoadAvg()
		if err != nil {
			break
		}
		q.After = l
		if l[0] < max {
			q.Reached = true
			break
		}
		if time.Since(start) >= timeout {
			break
		}
		if progress != nil && time.Since(last) >= 30*time.Second {
			progress("waiting for load1 < %.2f: load %s, %s so far", max, l, time.Since(start).Round(time.Second))
			last = time.Now()
		}
		time.Sleep(min(5*time.Second, timeout-time.Since(start)+time.Millisecond))
	}
	q.Waited = time.Since(start).Round(time.Millisecond)
	return q
}

// String is one line for a summary.
func (q Quiet) String() string {
	s := fmt.Sprintf("load %s before the wait, %s at the start of the measurement after %s", q.Before, q.After, q.Waited.Round(time.Second))
	if !q.Reached {
		s += fmt.Sprintf(" (load1 did NOT fall below %.2f in time)", q.Max)
	}
	return s
}
