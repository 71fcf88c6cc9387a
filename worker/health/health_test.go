package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestEffective(t *testing.T) {
	img := &Config{Test: []string{"CMD", "check"}, Interval: 2 * time.Second, Retries: 5, StartPeriod: time.Minute}
	cases := []struct {
		name      string
		task, img *Config
		want      Config
		ok        bool
	}{
		{"none at all", nil, nil, Config{}, false},
		{"image only, defaults filled", nil, img,
			Config{Test: img.Test, Interval: 2 * time.Second, Timeout: 30 * time.Second, StartPeriod: time.Minute, StartInterval: 5 * time.Second, Retries: 5}, true},
		{"task only", &Config{Test: []string{"CMD-SHELL", "true"}}, nil,
			Config{Test: []string{"CMD-SHELL", "true"}, Interval: 30 * time.Second, Timeout: 30 * time.Second, StartInterval: 5 * time.Second, Retries: 3}, true},
		{"task without test takes the image's test and unset fields", &Config{Interval: time.Second}, img,
			Config{Test: img.Test, Interval: time.Second, Timeout: 30 * time.Second, StartPeriod: time.Minute, StartInterval: 5 * time.Second, Retries: 5}, true},
		{"task test over the image's", &Config{Test: []string{"CMD", "other"}}, img,
			Config{Test: []string{"CMD", "other"}, Interval: 2 * time.Second, Timeout: 30 * time.Second, StartPeriod: time.Minute, StartInterval: 5 * time.Second, Retries: 5}, true},
		{"task NONE disables the image's", &Config{Test: []string{"NONE"}}, img, Config{}, false},
		{"image NONE", nil, &Config{Test: []string{"NONE"}}, Config{}, false},
		{"task http replaces the image's test", &Config{HTTP: "http://:80/health"}, img,
			Config{HTTP: "http://:80/health", Interval: 2 * time.Second, Timeout: 30 * time.Second, StartPeriod: time.Minute, StartInterval: 5 * time.Second, Retries: 5}, true},
		{"task tcp", &Config{TCPPort: 80, Retries: 1}, nil,
			Config{TCPPort: 80, Interval: 30 * time.Second, Timeout: 30 * time.Second, StartInterval: 5 * time.Second, Retries: 1}, true},
		{"empty task, no image", &Config{Interval: time.Second}, nil, Config{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Effective(c.task, c.img)
			if ok != c.ok || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("Effective = %+v, %v; want %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	cases := []struct {
		test []string
		want string
		err  string
	}{
		{[]string{"CMD", "curl", "-f", "http://localhost/"}, "[curl -f http://localhost/]", ""},
		{[]string{"CMD-SHELL", "curl -f localhost || exit 1"}, "[/bin/sh -c curl -f localhost || exit 1]", ""},
		{[]string{"CMD"}, "", "CMD has no command"},
		{[]string{"EXEC", "x"}, "", `unknown health check type "EXEC"`},
	}
	for _, c := range cases {
		got, err := Config{Test: c.test}.Args()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: err %v; want %q", c.test, err, c.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("%v: %v, %v; want %s", c.test, got, err, c.want)
		}
	}
}

// step is one probe result at an offset from the start, and the state and
// streak after it.
type step struct {
	at     time.Duration
	code   int
	state  State
	streak int
	change bool
}

func TestMachine(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"retries consecutive failures make it unhealthy", Config{Retries: 3}, []step{
			{30 * time.Second, 1, Starting, 1, false},
			{60 * time.Second, 1, Starting, 2, false},
			{90 * time.Second, 1, Unhealthy, 3, true},
			{120 * time.Second, 1, Unhealthy, 4, false},
			{150 * time.Second, 0, Healthy, 0, true},
		}},
		{"a success resets the streak", Config{Retries: 2}, []step{
			{1 * time.Second, 0, Healthy, 0, true},
			{2 * time.Second, 1, Healthy, 1, false},
			{3 * time.Second, 0, Healthy, 0, false},
			{4 * time.Second, 1, Healthy, 1, false},
			{5 * time.Second, 1, Unhealthy, 2, true},
		}},
		{"failures in the start period do not count", Config{Retries: 1, StartPeriod: 10 * time.Second}, []step{
			{5 * time.Second, 1, Starting, 0, false},
			{9 * time.Second, 1, Starting, 0, false},
			{10 * time.Second, 1, Unhealthy, 1, true},
		}},
		{"one success in the start period makes it healthy, and failures count from then", Config{Retries: 1, StartPeriod: time.Minute}, []step{
			{5 * time.Second, 1, Starting, 0, false},
			{10 * time.Second, 0, Healthy, 0, true},
			{15 * time.Second, 1, Unhealthy, 1, true},
		}},
		{"default retries are 3", Config{}, []step{
			{30 * time.Second, 1, Starting, 1, false},
			{60 * time.Second, -1, Starting, 2, false},
			{90 * time.Second, 2, Unhealthy, 3, true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := NewMachine(c.cfg, t0)
			if s := m.Status(); s.State != Starting || !s.Since.Equal(t0) {
				t.Fatalf("a new check is %v since %v; want starting since the start", s.State, s.Since)
			}
			for i, s := range c.steps {
				at := t0.Add(s.at)
				changed := m.Observe(Result{Start: at, End: at, ExitCode: s.code, Output: fmt.Sprint("probe ", i)})
				st := m.Status()
				if st.State != s.state || st.FailingStreak != s.streak || changed != s.change {
					t.Fatalf("after probe %d (exit %d at %v): %v streak %d changed %v; want %v streak %d changed %v",
						i, s.code, s.at, st.State, st.FailingStreak, changed, s.state, s.streak, s.change)
				}
				if st.Output != fmt.Sprint("probe ", i) || st.ExitCode != s.code {
					t.Errorf("output %q exit %d; want the last probe's", st.Output, st.ExitCode)
				}
				if changed && !st.Since.Equal(at) {
					t.Errorf("since %v; want the change at %v", st.Since, at)
				}
			}
		})
	}
}

func TestNext(t *testing.T) {
	m := NewMachine(Config{Interval: 10 * time.Second, StartPeriod: 20 * time.Second, StartInterval: time.Second, Retries: 1}, t0)
	if d := m.Next(t0); d != time.Second {
		t.Errorf("in the start period, starting: next in %v; want the start interval", d)
	}
	if d := m.Next(t0.Add(20 * time.Second)); d != 10*time.Second {
		t.Errorf("after the start period: next in %v; want the interval", d)
	}
	m.Observe(Result{Start: t0.Add(time.Second), End: t0.Add(time.Second)})
	if d := m.Next(t0.Add(time.Second)); d != 10*time.Second {
		t.Errorf("healthy in the start period: next in %v; want the interval", d)
	}
	if d := NewMachine(Config{}, t0).Next(t0); d != 30*time.Second {
		t.Errorf("defaults: next in %v; want 30s", d)
	}
}

func TestTrim(t *testing.T) {
	long := strings.Repeat("é", MaxOutput) // 2 bytes each
	got := Trim(long)
	if len(got) != MaxOutput || !strings.HasPrefix(long, got) {
		t.Errorf("trimmed to %d bytes; want the first %d", len(got), MaxOutput)
	}
	odd := "x" + long
	if got := Trim(odd); len(got) != MaxOutput-1 || !strings.HasPrefix(odd, got) {
		t.Errorf("a cut character: %d bytes; want %d (the cut one dropped)", len(got), MaxOutput-1)
	}
	if Trim("ok") != "ok" {
		t.Error("short output changed")
	}
}

// fakeProbe answers with the codes it is given, one per probe; a probe
// given block waits for its context.
type fakeProbe struct {
	mu    sync.Mutex
	codes []int
	block bool
	calls int
}

func (f *fakeProbe) probe(ctx context.Context) (int, string, error) {
	f.mu.Lock()
	f.calls++
	if f.block {
		f.mu.Unlock()
		<-ctx.Done()
		return 0, "", ctx.Err()
	}
	defer f.mu.Unlock()
	if len(f.codes) == 0 {
		return 0, "", errors.New("no more codes")
	}
	c := f.codes[0]
	f.codes = f.codes[1:]
	return c, fmt.Sprintf("exit %d", c), nil
}

// loop is Run on a fake clock.
type loop struct {
	clk    *clock.Fake
	ch     chan Status   // what it reports
	parked chan struct{} // each time it waits with no probe in flight
}

// start runs the loop and returns what stops it.
func start(t *testing.T, cfg Config, p *fakeProbe) (*loop, func()) { return startLoop(cfg, p, false) }

func startLoop(cfg Config, p *fakeProbe, atOnce bool) (*loop, func()) {
	l := &loop{clk: clock.NewFake(t0), ch: make(chan Status, 100), parked: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop{Clock: l.clk, Config: cfg, Started: l.clk.Now(), AtOnce: atOnce, Probe: p.probe,
			Changed: func(s Status) { l.ch <- s }, parked: func() { l.parked <- struct{}{} }}.Run(ctx)
	}()
	return l, func() { cancel(); <-done }
}

// advance moves the clock by d once the loop waits for its next probe.
func (l *loop) advance(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-l.parked:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop never waited for its next probe")
	}
	l.waitAndAdvance(t, d)
}

// waitAndAdvance moves the clock by d once one timer waits on it.
func (l *loop) waitAndAdvance(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.clk.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("nothing waits on the clock: %v", err)
	}
	l.clk.Advance(d)
}

func next(t *testing.T, ch <-chan Status) Status {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no status reported")
		return Status{}
	}
}

func TestRunReportsChangesOnly(t *testing.T) {
	p := &fakeProbe{codes: []int{1, 0, 0, 1, 1}}
	l, stop := start(t, Config{Interval: 10 * time.Second, Retries: 2}, p)
	defer stop()
	if s := next(t, l.ch); s.State != Starting {
		t.Fatalf("first report %v; want starting", s.State)
	}
	want := []State{Healthy, Unhealthy}
	for i := 0; i < 5; i++ {
		l.advance(t, 10*time.Second)
	}
	for _, w := range want {
		if s := next(t, l.ch); s.State != w {
			t.Fatalf("reported %v; want %v", s.State, w)
		}
	}
	l.advance(t, 0) // the fifth probe is done
	select {
	case s := <-l.ch:
		t.Fatalf("a report with no change: %+v", s)
	default:
	}
}

func TestRunStartsAfterOneInterval(t *testing.T) {
	p := &fakeProbe{codes: []int{0}}
	l, stop := start(t, Config{Interval: 10 * time.Second, StartPeriod: time.Minute, StartInterval: 2 * time.Second}, p)
	defer stop()
	next(t, l.ch)
	l.advance(t, 1999*time.Millisecond)
	l.waitAndAdvance(t, 0) // the loop's timer still waits: not fired
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if calls != 0 {
		t.Fatalf("probed %d times before the start interval", calls)
	}
	l.waitAndAdvance(t, time.Millisecond)
	if s := next(t, l.ch); s.State != Healthy || !s.Since.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("%+v; want healthy since 2s in", s)
	}
}

func TestRunTimeout(t *testing.T) {
	p := &fakeProbe{block: true}
	l, stop := start(t, Config{Interval: time.Second, Timeout: 3 * time.Second, Retries: 1}, p)
	defer stop()
	next(t, l.ch)
	l.advance(t, time.Second) // the probe starts and blocks
	l.waitAndAdvance(t, 3*time.Second)
	s := next(t, l.ch)
	if s.State != Unhealthy || s.ExitCode != -1 || s.Output != "Health check exceeded timeout (3s)" {
		t.Fatalf("%+v; want unhealthy with docker's timeout output", s)
	}
}

func TestRunProbeError(t *testing.T) {
	p := &fakeProbe{} // no codes: an error
	l, stop := start(t, Config{Interval: time.Second, Retries: 1}, p)
	defer stop()
	next(t, l.ch)
	l.advance(t, time.Second)
	if s := next(t, l.ch); s.State != Unhealthy || s.ExitCode != -1 || s.Output != "no more codes" {
		t.Fatalf("%+v; want unhealthy with the error as output", s)
	}
}

func TestRunAtOnce(t *testing.T) {
	p := &fakeProbe{codes: []int{0}}
	l, stop := startLoop(Config{Interval: time.Hour}, p, true)
	defer stop()
	next(t, l.ch)
	if s := next(t, l.ch); s.State != Healthy || !s.Since.Equal(t0) {
		t.Fatalf("%+v; want healthy at once, with no time passed", s)
	}
}
