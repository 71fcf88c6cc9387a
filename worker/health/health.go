// Package health is a task's health check: which check applies (the
// task's, else its image's HEALTHCHECK), the state machine that turns
// probe results into docker's states (starting, healthy, unhealthy), and
// the loop that probes on a clock. Probes themselves are the caller's
// (Prober): a command run inside the container, or an HTTP GET or TCP
// connect the node makes into the container's network namespace.
//
// The semantics are docker's: probes run every interval (30 s), each
// bounded by timeout (30 s); during start_period they run every
// start_interval (5 s) and failures do not count, though one success makes
// the task healthy; after it, retries (3) consecutive failures make it
// unhealthy, and one success makes it healthy again.
package health

import (
	"fmt"
	"strings"
	"time"
)

// Docker's defaults.
const (
	DefaultInterval      = 30 * time.Second
	DefaultTimeout       = 30 * time.Second
	DefaultStartInterval = 5 * time.Second
	DefaultRetries       = 3
	// MaxOutput is how much of a probe's output is kept.
	MaxOutput = 4096
)

// Config is a health check. At most one of Test (a CMD or CMD-SHELL), HTTP
// and TCPPort is set; zero durations and retries take docker's defaults.
type Config struct {
	// Test is docker's: empty inherits, ["NONE"] disables, ["CMD",
	// arg...] runs arg... in the container, ["CMD-SHELL", command] runs
	// /bin/sh -c command.
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
	// HTTP is "http://:PORT/PATH" or "https://:PORT/PATH".
	HTTP    string
	TCPPort uint32
}

// Kind is what a check runs.
type Kind int

// Kinds.
const (
	None Kind = iota // no check
	Exec             // a command in the container
	HTTP             // a GET into its network namespace
	TCP              // a connect into its network namespace
)

// Kind says what c runs.
func (c Config) Kind() Kind {
	switch {
	case c.HTTP != "":
		return HTTP
	case c.TCPPort != 0:
		return TCP
	case len(c.Test) > 0 && c.Test[0] != "NONE":
		return Exec
	}
	return None
}

// Args is the command an Exec check runs in the container.
func (c Config) Args() ([]string, error) {
	if len(c.Test) == 0 {
		return nil, fmt.Errorf("the health check has no test")
	}
	switch c.Test[0] {
	case "CMD":
		if len(c.Test) < 2 {
			return nil, fmt.Errorf("health check CMD has no command")
		}
		return c.Test[1:], nil
	case "CMD-SHELL":
		if len(c.Test) < 2 {
			return nil, fmt.Errorf("health check CMD-SHELL has no command")
		}
		return []string{"/bin/sh", "-c", strings.Join(c.Test[1:], " ")}, nil
	}
	return nil, fmt.Errorf("unknown health check type %q: want CMD, CMD-SHELL or NONE", c.Test[0])
}

// Effective is the check a container runs: the task's (task, nil when it
// sets none) over its image's (img, nil when none), field by field as
// docker merges them: a task that names no test (and no HTTP or TCP probe)
// takes the image's, and its zero durations and retries take the image's.
// ok is false when no check applies (none set, or ["NONE"]).
func Effective(task, img *Config) (c Config, ok bool) {
	switch {
	case task == nil && img == nil:
		return Config{}, false
	case task == nil:
		c = *img
	case img == nil:
		c = *task
	default:
		c = *task
		if len(c.Test) == 0 && c.HTTP == "" && c.TCPPort == 0 {
			c.Test = img.Test
		}
		if c.Interval == 0 {
			c.Interval = img.Interval
		}
		if c.Timeout == 0 {
			c.Timeout = img.Timeout
		}
		if c.StartPeriod == 0 {
			c.StartPeriod = img.StartPeriod
		}
		if c.StartInterval == 0 {
			c.StartInterval = img.StartInterval
		}
		if c.Retries == 0 {
			c.Retries = img.Retries
		}
	}
	if c.Kind() == None {
		return Config{}, false
	}
	return c.withDefaults(), true
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StartInterval <= 0 {
		c.StartInterval = DefaultStartInterval
	}
	if c.Retries <= 0 {
		c.Retries = DefaultRetries
	}
	if c.StartPeriod < 0 {
		c.StartPeriod = 0
	}
	return c
}

// State is a health state, docker's.
type State int

// States.
const (
	Starting State = iota + 1
	Healthy
	Unhealthy
)

func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// Result is one probe's outcome: exit code 0 is healthy, anything else a
// failure (-1 for a probe that could not run or timed out).
type Result struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

// Status is where a check stands.
type Status struct {
	State State
	// Since is when State last changed.
	Since         time.Time
	FailingStreak int
	// Output and ExitCode are the last probe's.
	Output   string
	ExitCode int
}

// Machine turns probe results into states. It is pure: time comes in with
// the results.
type Machine struct {
	cfg     Config
	started time.Time
	st      Status
}

// NewMachine is the check cfg (with defaults, from Effective) of a
// container that started at started: starting.
func NewMachine(cfg Config, started time.Time) *Machine {
	return &Machine{cfg: cfg.withDefaults(), started: started, st: Status{State: Starting, Since: started}}
}

// Status is the state now.
func (m *Machine) Status() Status { return m.st }

// Observe takes a probe result and says whether the state changed.
func (m *Machine) Observe(r Result) (changed bool) {
	prev := m.st.State
	m.st.Output, m.st.ExitCode = Trim(r.Output), r.ExitCode
	if r.ExitCode == 0 {
		m.st.FailingStreak = 0
		m.st.State = Healthy
	} else if m.st.State != Starting || r.Start.Sub(m.started) >= m.cfg.StartPeriod {
		// Failures in the start period do not count while it has never
		// been healthy.
		m.st.FailingStreak++
		if m.st.FailingStreak >= m.cfg.Retries {
			m.st.State = Unhealthy
		}
	}
	if m.st.State != prev {
		m.st.Since = r.End
		return true
	}
	return false
}

// Next is how long after a probe that ended at now the next one runs:
// start_interval while starting within the start period, else interval.
func (m *Machine) Next(now time.Time) time.Duration {
	if m.st.State == Starting && now.Sub(m.started) < m.cfg.StartPeriod {
		return m.cfg.StartInterval
	}
	return m.cfg.Interval
}

// TimeoutOutput is a timed-out probe's output, docker's words.
func TimeoutOutput(d time.Duration) string {
	return fmt.Sprintf("Health check exceeded timeout (%v)", d)
}

// Trim keeps the first MaxOutput bytes of a probe's output (dropping a
// character cut in two).
func Trim(s string) string {
	if len(s) <= MaxOutput {
		return s
	}
	return strings.ToValidUTF8(s[:MaxOutput], "")
}
