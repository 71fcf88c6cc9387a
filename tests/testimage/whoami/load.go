package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// load is a client for tests of zero-downtime deploys: one loop per URL
// sending GETs, each on a new TCP connection (no keep-alive), with a small
// timeout, at most one in flight per URL, one every -every. It counts per
// URL the requests answered 2xx (ok) and the others (failed: dial errors,
// resets, timeouts, non-2xx answers), and who answered (the Hostname line
// of a whoami answer). Every failure is kept with its time and error (the
// first -keep of them; later ones are only counted).
//
// The totals are rewritten to -out every 100 ms (a temporary file renamed
// over it, so readers see whole files). On SIGTERM or SIGINT it stops
// sending, waits for the requests in flight, writes the final totals with
// "final": true to -out and as one JSON line to stdout, and exits 0.
//
//	load [-every 20ms] [-timeout 2s] [-out /tmp/whoami-load.json] [-keep 1000] URL...
//
// The JSON is the LoadReport of package testimage (tests/testimage/load.go).
func load(args []string) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	every := fs.Duration("every", 20*time.Millisecond, "pause between the end of one request and the next, per URL")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of one request, connect to end of body")
	out := fs.String("out", "/tmp/whoami-load.json", "file the totals are written to every 100 ms and at the end")
	keep := fs.Int("keep", 1000, "failures kept with their time and error; later ones are only counted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "whoami: load: give at least one URL, e.g. whoami load http://web/")
		return 2
	}
	if *every < 0 || *timeout <= 0 || *keep < 0 {
		fmt.Fprintln(os.Stderr, "whoami: load: -every must be >= 0, -timeout > 0 and -keep >= 0")
		return 2
	}
	for _, u := range fs.Args() {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			fmt.Fprintf(os.Stderr, "whoami: load: %q is not an http:// or https:// URL\n", u)
			return 2
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)

	st := newLoadState(fs.Args(), *keep)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, u := range fs.Args() {
		wg.Add(1)
		// Arguments, not captures: the embedded go.mod may predate
		// per-iteration loop variables.
		go func(i int, u string) {
			defer wg.Done()
			loadLoop(ctx, st, i, u, *every, *timeout)
		}(i, u)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
run:
	for {
		select {
		case <-tick.C:
			if err := writeReport(*out, st.report(false)); err != nil {
				fmt.Fprintf(os.Stderr, "whoami: load: %v\n", err)
			}
		case <-sigs:
			break run
		}
	}
	stop()
	wg.Wait()
	r := st.report(true)
	code := 0
	if err := writeReport(*out, r); err != nil {
		fmt.Fprintf(os.Stderr, "whoami: load: %v\n", err)
		code = 1
	}
	line, _ := json.Marshal(r)
	fmt.Printf("%s\n", line)
	return code
}

// loadLoop sends requests to one URL until ctx ends. A request under way
// when ctx ends is finished: stopping the client is not a failure of the
// service.
func loadLoop(ctx context.Context, st *loadState, i int, u string, every, timeout time.Duration) {
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	client.Transport.(*http.Transport).DialContext = tracedDial
	for ctx.Err() == nil {
		start := time.Now()
		tr := newReqTrace(start)
		host, err := getOnce(client, u, tr)
		var why *loadTrace
		if err != nil {
			why = tr.done()
		}
		st.record(i, start, host, err, why)
		if every > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}
}

// getOnce sends one GET and reads the whole answer; a non-2xx status is
// an error.
func getOnce(c *http.Client, u string, tr *reqTrace) (string, error) {
	req, err := http.NewRequestWithContext(tr.context(context.Background()), http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("answered %s: %.100q", resp.Status, body)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if h, ok := strings.CutPrefix(line, "Hostname: "); ok {
			return h, nil
		}
	}
	return "", nil // a 2xx that is not whoami's: ok, answerer unknown
}

// The report's JSON, mirrored by testimage.LoadReport.
type (
	loadReport struct {
		Started         time.Time     `json:"started"`
		Written         time.Time     `json:"written"`
		Final           bool          `json:"final"`
		Targets         []loadTarget  `json:"targets"`
		Failures        []loadFail    `json:"failures"`
		FailuresDropped int           `json:"failures_dropped"`
		SlowDials       []slowDialRec `json:"slow_dials"`
	}
	loadTarget struct {
		URL      string                 `json:"url"`
		OK       int                    `json:"ok"`
		Failed   int                    `json:"failed"`
		Answered map[string]*loadAnswer `json:"answered"`
	}
	loadAnswer struct {
		N     int       `json:"n"`
		First time.Time `json:"first"`
		Last  time.Time `json:"last"`
	}
	loadFail struct {
		Time   time.Time  `json:"time"`
		Target string     `json:"target"`
		Error  string     `json:"error"`
		Trace  *loadTrace `json:"trace,omitempty"`
	}
)

type loadState struct {
	mu   sync.Mutex
	keep int
	r    loadReport
}

func newLoadState(urls []string, keep int) *loadState {
	st := &loadState{keep: keep, r: loadReport{Started: time.Now(), Failures: []loadFail{}}}
	for _, u := range urls {
		st.r.Targets = append(st.r.Targets, loadTarget{URL: u, Answered: map[string]*loadAnswer{}})
	}
	return st
}

func (st *loadState) record(i int, at time.Time, host string, err error, why *loadTrace) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := &st.r.Targets[i]
	if err != nil {
		t.Failed++
		if len(st.r.Failures) < st.keep {
			st.r.Failures = append(st.r.Failures, loadFail{Time: at, Target: t.URL, Error: err.Error(), Trace: why})
		} else {
			st.r.FailuresDropped++
		}
		return
	}
	t.OK++
	a := t.Answered[host]
	if a == nil {
		a = &loadAnswer{First: at}
		t.Answered[host] = a
	}
	a.N++
	a.Last = at
}

// report is a deep copy of the totals, stamped now.
func (st *loadState) report(final bool) loadReport {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.r
	r.Written, r.Final = time.Now(), final
	r.SlowDials = slowDialsNow()
	r.Failures = append([]loadFail{}, st.r.Failures...)
	r.Targets = make([]loadTarget, len(st.r.Targets))
	for i, t := range st.r.Targets {
		c := t
		c.Answered = make(map[string]*loadAnswer, len(t.Answered))
		for h, a := range t.Answered {
			cp := *a
			c.Answered[h] = &cp
		}
		r.Targets[i] = c
	}
	return r
}

// writeReport replaces path with r, through a temporary file in the same
// directory.
func writeReport(path string, r loadReport) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".load-*.tmp")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
