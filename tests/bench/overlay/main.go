// Command overlay measures the data path of the overlay network and the
// routing mesh, side by side in one run, on a cluster of 1 manager + 2
// workers whose hosts are network namespaces (tests/faults).
//
// First, HTTP request latency and rate from a Go load generator (-clients
// keep-alive connections, each one request at a time, -warmup then
// -duration) against the whoami service web (2 replicas, both on worker1,
// on overlay network app, published -p 8080:80), over each path:
//
//	baseline  worker2's host namespace -> the whoami binary itself in
//	          worker1's host namespace (no container, no overlay)
//	direct    a container of service client on worker2 -> one web task's
//	          overlay address on worker1 (VXLAN between the hosts)
//	vip       the same container -> web's VIP on app
//	mesh      a separate host namespace -> a node's address, port 8080:
//	          worker1 (runs the replicas) and manager1 (runs none)
//
// Then how fast the VIP follows the tasks, -trials times: `service scale
// web=3` and the time from the new task's container existing to a request
// through the VIP answered by it; `service scale web=2` and the time from
// the removed task's container being gone until no request through the
// VIP fails and none is answered by it. Alongside, the client container
// asks its resolver (127.0.0.11:53 in its namespace) for tasks.web: the
// time from the new container running to the answer including the new
// task's address, and from the scale command (and from the container
// gone) to the answers no longer including the removed one's.
//
// The load generator runs in this process, on the same CPUs as the
// daemons, the containers and the kernel's network path: the figures are
// relative, the ratio to the baseline is the point. whoami has no TCP
// sink or large-body endpoint, so throughput is the bytes of whoami's
// answers (a few hundred each) downloaded repeatedly: request rate times
// answer size, not a bulk-transfer figure.
//
//	go run ./tests/bench/overlay [-duration 5s] [-warmup 1s] [-clients 8] [-trials 3] [-json]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/shoal-run/shoal/netoverlay"
	"github.com/shoal-run/shoal/tests/bench/internal/benchkit"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Load is one path's load-generator result.
type Load struct {
	Path        string           `json:"path"`
	From        string           `json:"from"`
	URL         string           `json:"url"`
	Clients     int              `json:"clients"`
	Seconds     float64          `json:"seconds"`
	Requests    int              `json:"requests"`
	Errors      int              `json:"errors"`
	FirstError  string           `json:"first_error,omitempty"`
	RPS         float64          `json:"requests_per_s"`
	BodyBytes   int64            `json:"body_bytes"`
	MBps        float64          `json:"body_mb_per_s"`
	AvgBody     float64          `json:"avg_body_bytes"`
	Latency     benchkit.Summary `json:"latency"`
	AnsweredBy  map[string]int   `json:"answered_by"`
	RPSVsBase   float64          `json:"rps_vs_baseline,omitempty"`
	P50VsBase   float64          `json:"p50_vs_baseline,omitempty"`
	P99VsBase   float64          `json:"p99_vs_baseline,omitempty"`
	RPSVsDirect float64          `json:"rps_vs_direct,omitempty"`
	P50VsDirect float64          `json:"p50_vs_direct,omitempty"`
}

// Bulk is one path's bulk transfer: /bytes downloads on one connection.
type Bulk struct {
	Path  string    `json:"path"`
	MB    int       `json:"mb_each"`
	MBps  []float64 `json:"mb_per_s"` // per download
	Med   float64   `json:"median_mb_per_s"`
	Ratio float64   `json:"vs_baseline,omitempty"`
}

// bulk downloads /bytes?mb=mb n times over one keep-alive connection and
// returns MB/s (MiB) per download.
func bulk(dial dialFunc, base string, mb, n int) ([]float64, error) {
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: dial, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	var out []float64
	for i := 0; i < n+1; i++ { // the first warms the connection up
		start := time.Now()
		resp, err := client.Get(fmt.Sprintf("%sbytes?mb=%d", base, mb))
		if err != nil {
			return nil, err
		}
		got, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if got != int64(mb)<<20 {
			return nil, fmt.Errorf("%s: %d bytes; want %d", base, got, int64(mb)<<20)
		}
		if i > 0 {
			out = append(out, float64(mb)/time.Since(start).Seconds())
		}
	}
	return out, nil
}

// ScaleUp is one `service scale web=3` trial.
type ScaleUp struct {
	Task string `json:"task"`
	Host string `json:"host"`
	// ScaleToContainer: the scale command sent -> the new container's
	// workload process seen alive.
	ScaleToContainer time.Duration `json:"scale_to_container_ns"`
	// ContainerToVIP: the container seen alive -> the first answer through
	// the VIP by its hostname.
	ContainerToVIP time.Duration `json:"container_to_vip_ns"`
	// ContainerToListen: the container seen alive -> a TCP socket
	// listening on port 80 in its namespace (/proc/PID/net/tcp6).
	ContainerToListen time.Duration `json:"container_to_listen_ns"`
	// LastFailure: the container seen alive -> the start of the last
	// request through the VIP that failed (0 when none failed after it).
	LastFailure time.Duration `json:"container_to_last_failure_ns"`
	Probes      int           `json:"probes"`
	Failed      int           `json:"failed"`
	// FailedBeforeSeen: the failed requests sent before the container
	// was seen alive.
	FailedBeforeSeen int    `json:"failed_before_seen"`
	FirstError       string `json:"first_error,omitempty"`
	// Addr is the new task's address on app.
	Addr string `json:"addr"`
	// ContainerToDNS: the container seen alive -> the first answer to an
	// A query for tasks.web, from the client container to its resolver,
	// that includes Addr (negative when it came before the container was
	// seen; only queries sent after the scale command count).
	ContainerToDNS time.Duration `json:"container_to_dns_ns"`
	DNSQueries     int           `json:"dns_queries"`
	DNSFailed      int           `json:"dns_failed"`
	// DNSMissedAfter: successful answers after the first with Addr that
	// lack it.
	DNSMissedAfter int             `json:"dns_missed_after"`
	DNSFirstError  string          `json:"dns_first_error,omitempty"`
	dnsRTTs        []time.Duration // each successful query's round trip
}

// ScaleDown is one `service scale web=2` trial.
type ScaleDown struct {
	Task string `json:"task"`
	// ScaleToGone: the scale command sent -> the removed task's workload
	// process gone.
	ScaleToGone time.Duration `json:"scale_to_gone_ns"`
	// GoneToClean: the container gone -> the start of the last request
	// through the VIP that failed or was answered by it (0 when the last
	// such request came before the container was gone, or there was none).
	GoneToClean   time.Duration `json:"gone_to_clean_ns"`
	Probes        int           `json:"probes"`
	FailedBefore  int           `json:"failed_before_gone"`
	FailedAfter   int           `json:"failed_after_gone"`
	AnsweredAfter int           `json:"answered_by_it_after_gone"`
	FirstError    string        `json:"first_error,omitempty"`
	// Addr is the removed task's address on app.
	Addr string `json:"addr"`
	// ScaleToDNSClean: the scale command sent -> the first successful
	// answer for tasks.web without Addr after the last one with it.
	ScaleToDNSClean time.Duration `json:"scale_to_dns_clean_ns"`
	// GoneToDNSClean: the container gone -> that same answer (negative
	// when DNS dropped Addr before the container was gone).
	GoneToDNSClean time.Duration   `json:"gone_to_dns_clean_ns"`
	DNSQueries     int             `json:"dns_queries"`
	DNSFailed      int             `json:"dns_failed"`
	DNSFirstError  string          `json:"dns_first_error,omitempty"`
	dnsRTTs        []time.Duration // each successful query's round trip
}

// Result is the whole run.
type Result struct {
	Machine   benchkit.Machine            `json:"machine"`
	Version   string                      `json:"binary_version,omitempty"`
	Clients   int                         `json:"clients"`
	Warmup    time.Duration               `json:"warmup_ns"`
	Duration  time.Duration               `json:"duration_ns"`
	Trials    int                         `json:"trials"`
	Probers   int                         `json:"probers"`
	Hosts     map[string]string           `json:"addresses"`
	Loads     []*Load                     `json:"loads"`
	Bulks     []*Bulk                     `json:"bulk"`
	Ups       []ScaleUp                   `json:"scale_up"`
	Downs     []ScaleDown                 `json:"scale_down"`
	Summaries map[string]benchkit.Summary `json:"summaries"`
	Notes     []string                    `json:"notes"`
}

const probers = 4

// bulkMB is the size of each bulk download.
const bulkMB = 256

func main() {
	duration := flag.Duration("duration", 5*time.Second, "measured load per path, after the warmup")
	warmup := flag.Duration("warmup", time.Second, "load per path before measuring")
	clients := flag.Int("clients", 8, "concurrent clients, each on its own keep-alive connection")
	trials := flag.Int("trials", 3, "scale-up and scale-down trials")
	asJSON := flag.Bool("json", false, "print the full result as JSON")
	verbose := flag.Bool("v", false, "log the harness's progress")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "overlay: run as root: hosts are network namespaces, replicas real containers")
		os.Exit(1)
	}
	if *clients < 1 || *trials < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "overlay: -clients, -trials and -duration must be positive")
		os.Exit(2)
	}
	defer harness.RemoveBinary()
	benchkit.Run(*verbose, *asJSON, func(t *benchkit.TB) *Result {
		return run(t, *clients, *warmup, *duration, *trials)
	}, summary)
	harness.SweepNetns()
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "overlay: "+format+"\n", args...)
}

func run(t *benchkit.TB, clients int, warmup, duration time.Duration, trials int) *Result {
	r := &Result{
		Machine: benchkit.DescribeMachine(), Version: benchkit.BinaryVersion(t.BuildBinary()),
		Clients: clients, Warmup: warmup, Duration: duration, Trials: trials, Probers: probers,
		Hosts: map[string]string{}, Summaries: map[string]benchkit.Summary{},
	}
	progress("starting 1 manager + 2 workers")
	e := faults.Start(t, 1, 2, "--log-level", "info")
	m := e.C.Managers[0]
	hostB, hostA := e.C.Workers[0], e.C.Workers[1] // worker1 serves, worker2 loads
	for _, n := range e.C.Nodes() {
		r.Hosts[n.Name] = n.Host.IP
	}
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "2", "--network", "app",
		"--constraint", "node.hostname=="+hostB.Name, "-p", "8080:80", e.Image)
	m.MustCLI("service", "create", "-d", "--name", "client", "--replicas", "1", "--network", "app",
		"--constraint", "node.hostname=="+hostA.Name, e.Image, "sleep", "1h")
	e.Eventually(90*time.Second, func() error {
		if err := e.Converged("web", 2); err != nil {
			return err
		}
		return e.Converged("client", 1)
	})
	var clientPid int
	for _, c := range hostA.RunningContainers() {
		if c.Service == "client" {
			clientPid = c.Pid
		}
	}
	if clientPid == 0 {
		t.Fatalf("no container of client on %s", hostA.Name)
	}
	inClient := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return harness.DialIn(ctx, fmt.Sprintf("/proc/%d/ns/net", clientPid), network, addr)
	}
	addrs := taskAddrs(t, e, "web", "app")
	var direct netip.Addr
	var directTask string
	for _, c := range hostB.RunningContainers() {
		if c.Service == "web" && addrs[c.Task].IsValid() {
			direct, directTask = addrs[c.Task], c.ID
			break
		}
	}
	if !direct.IsValid() {
		t.Fatalf("no web task with an address on app on %s: %v", hostB.Name, addrs)
	}
	vip := e.ServiceVIP("web", "app")
	r.Hosts["web task "+short(directTask)] = direct.String()
	r.Hosts["web VIP on app"] = vip.String()

	// Baseline: whoami on worker1's host namespace, no container.
	bin, err := testimage.BuildWhoami("")
	if err != nil {
		t.Fatal(err)
	}
	startBaseline(t, hostB.Host, bin, 8090)
	outside := e.Net.AddHost("client")
	r.Hosts["client (host namespace)"] = outside.IP

	paths := []struct {
		name, from, url string
		dial            dialFunc
	}{
		{"baseline", hostA.Name + " host netns", fmt.Sprintf("http://%s:8090/", hostB.Host.IP), hostA.Host.DialContext},
		{"direct", "client container, " + hostA.Name, fmt.Sprintf("http://%s/", direct), inClient},
		{"vip", "client container, " + hostA.Name, fmt.Sprintf("http://%s/", vip), inClient},
		{"mesh, node with replicas", "separate host netns", fmt.Sprintf("http://%s:8080/", hostB.Host.IP), outside.DialContext},
		{"mesh, node with none", "separate host netns", fmt.Sprintf("http://%s:8080/", m.Host.IP), outside.DialContext},
	}
	for _, p := range paths {
		e.Eventually(20*time.Second, func() error {
			_, err := getOnce(p.dial, p.url, 2*time.Second)
			return err
		})
	}
	for _, p := range paths {
		progress("load %s: %s from %s, %d clients, %s + %s", p.name, p.url, p.from, clients, warmup, duration)
		l := load(p.dial, p.url, clients, warmup, duration)
		l.Path, l.From = p.name, p.from
		r.Loads = append(r.Loads, l)
	}
	for _, p := range paths {
		progress("bulk %s: %s, 3 downloads of %d MiB on one connection", p.name, p.url, bulkMB)
		mbps, err := bulk(p.dial, p.url, bulkMB, 3)
		if err != nil {
			t.Fatalf("bulk %s: %v", p.name, err)
		}
		s := append([]float64{}, mbps...)
		slices.Sort(s)
		r.Bulks = append(r.Bulks, &Bulk{Path: p.name, MB: bulkMB, MBps: mbps, Med: s[len(s)/2]})
	}
	for _, b := range r.Bulks[1:] {
		b.Ratio = ratio(b.Med, r.Bulks[0].Med)
	}
	base, dir := r.Loads[0], r.Loads[1]
	for _, l := range r.Loads[1:] {
		l.RPSVsBase = ratio(l.RPS, base.RPS)
		l.P50VsBase = ratio(l.Latency.P50MS, base.Latency.P50MS)
		l.P99VsBase = ratio(l.Latency.P99MS, base.Latency.P99MS)
		if l != dir {
			l.RPSVsDirect = ratio(l.RPS, dir.RPS)
			l.P50VsDirect = ratio(l.Latency.P50MS, dir.Latency.P50MS)
		}
	}

	vipURL := fmt.Sprintf("http://%s/", vip)
	for i := 0; i < trials; i++ {
		up := scaleUp(t, e, inClient, vipURL)
		r.Ups = append(r.Ups, up)
		progress("trial %d/%d: scale up: container after %v, answering through the VIP %v later (%d probes, %d failed)",
			i+1, trials, up.ScaleToContainer.Round(time.Millisecond), up.ContainerToVIP.Round(time.Millisecond), up.Probes, up.Failed)
		progress("trial %d/%d: scale up: tasks.web includes %s %v after the container ran (%d queries, %d failed, %d answers without it after)",
			i+1, trials, up.Addr, up.ContainerToDNS.Round(100*time.Microsecond), up.DNSQueries, up.DNSFailed, up.DNSMissedAfter)
		down := scaleDown(t, e, inClient, vipURL)
		r.Downs = append(r.Downs, down)
		progress("trial %d/%d: scale down: gone after %v, VIP clean %v after that (%d probes, %d failed before gone, %d after, %d answered by it after)",
			i+1, trials, down.ScaleToGone.Round(time.Millisecond), down.GoneToClean.Round(time.Millisecond), down.Probes,
			down.FailedBefore, down.FailedAfter, down.AnsweredAfter)
		progress("trial %d/%d: scale down: tasks.web without %s %v after the scale, %v after the container was gone (%d queries, %d failed)",
			i+1, trials, down.Addr, down.ScaleToDNSClean.Round(100*time.Microsecond), down.GoneToDNSClean.Round(100*time.Microsecond),
			down.DNSQueries, down.DNSFailed)
	}
	var upS, upV, upL, upF, upD, downG, downC, downDS, downDG, rtts []time.Duration
	for _, u := range r.Ups {
		upS, upV = append(upS, u.ScaleToContainer), append(upV, u.ContainerToVIP)
		upL, upF = append(upL, u.ContainerToListen), append(upF, u.LastFailure)
		upD, rtts = append(upD, u.ContainerToDNS), append(rtts, u.dnsRTTs...)
	}
	for _, d := range r.Downs {
		downG, downC = append(downG, d.ScaleToGone), append(downC, d.GoneToClean)
		downDS, downDG = append(downDS, d.ScaleToDNSClean), append(downDG, d.GoneToDNSClean)
		rtts = append(rtts, d.dnsRTTs...)
	}
	r.Summaries["scale up: scale -> container running"] = benchkit.Summarize(upS)
	r.Summaries["scale up: container running -> answers via VIP"] = benchkit.Summarize(upV)
	r.Summaries["scale up: container running -> listening on :80"] = benchkit.Summarize(upL)
	r.Summaries["scale up: container running -> last failed via VIP"] = benchkit.Summarize(upF)
	r.Summaries["scale down: scale -> container gone"] = benchkit.Summarize(downG)
	r.Summaries["scale down: container gone -> VIP clean"] = benchkit.Summarize(downC)
	r.Summaries["scale up: container running -> in tasks.web (DNS)"] = benchkit.Summarize(upD)
	r.Summaries["scale down: scale -> out of tasks.web (DNS)"] = benchkit.Summarize(downDS)
	r.Summaries["scale down: container gone -> out of tasks.web (DNS)"] = benchkit.Summarize(downDG)
	r.Summaries["DNS: one A query for tasks.web, round trip"] = benchkit.Summarize(rtts)
	r.Notes = []string{
		"the load table's MB/s is whoami's text answer downloaded repeatedly (request rate x answer size, which differs by path); bulk throughput is the /bytes table",
		"the load generator, daemons, containers and the kernel share the machine's CPUs; absolute figures are CPU-bound, compare the ratios",
		"whoami logs every request to stdout: in a container that goes to the daemon's log pipeline, for the baseline to a pipe this program drains",
		"direct hits one web task; vip and mesh balance per connection over both web tasks (both on " + hostB.Name + ")",
		fmt.Sprintf("scale trials probe the VIP from the client container with %d goroutines, a new connection per request, 1 s timeout, 2 ms pause between requests", probers),
		"alongside, one goroutine asks the client container's resolver (" + netoverlay.DNSAddr + " in its namespace) an A query for tasks.web, a new UDP socket per query, 1 s timeout, 2 ms pause between queries; a DNS time is the end of the first answer with (scale up) or without (scale down, after the last one with) the task's address; negative: before the container was seen running or gone",
	}
	return r
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// taskAddrs maps the tasks of svc to their addresses on network.
func taskAddrs(t *benchkit.TB, e *faults.Env, svc, network string) map[string]netip.Addr {
	var tasks []struct {
		ID       string `json:"id"`
		Networks []struct {
			NetworkName string `json:"network_name"`
			Addr        string `json:"addr"`
		} `json:"networks"`
	}
	if err := json.Unmarshal([]byte(e.C.Managers[0].MustCLI("service", "ps", "--format", "json", svc)), &tasks); err != nil {
		t.Fatal(err)
	}
	out := map[string]netip.Addr{}
	for _, tk := range tasks {
		for _, n := range tk.Networks {
			if n.NetworkName == network {
				if p, err := netip.ParsePrefix(n.Addr); err == nil {
					out[tk.ID] = p.Addr()
				}
			}
		}
	}
	return out
}

// startBaseline runs `whoami serve -port PORT` in the host's namespace
// until the program ends, and waits for it to listen.
func startBaseline(t *benchkit.TB, h *harness.Host, bin string, port int) {
	cmd := h.Command(bin, "serve", "-port", fmt.Sprint(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), "listening on") {
				ok = true
				ready <- true
				break
			}
		}
		if !ok {
			ready <- false
			return
		}
		_, _ = io.Copy(io.Discard, out) // every request is logged
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("whoami on %s did not start: %s", h.Name, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("whoami on %s not listening in 10s: %s", h.Name, stderr.String())
	}
}

// hostname is the replica a whoami answer names, "" when none.
func hostname(body []byte) string {
	h, _ := testimage.AnswerHostname(body)
	return h
}

// getOnce asks url on a new connection and returns who answered.
func getOnce(dial dialFunc, url string, timeout time.Duration) (string, error) {
	tr := &http.Transport{Proxy: nil, DialContext: dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	return testimage.GetHostname(&http.Client{Timeout: timeout, Transport: tr}, url)
}

// load runs clients loops of GET url, each on its own keep-alive
// connection, for warmup+duration, and measures the requests that start
// and end within the last duration.
func load(dial dialFunc, url string, clients int, warmup, duration time.Duration) *Load {
	begin := time.Now()
	from, until := begin.Add(warmup), begin.Add(warmup+duration)
	type part struct {
		lat      []time.Duration
		bytes    int64
		errs     int
		firstErr string
		by       map[string]int
	}
	parts := make([]part, clients)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Add(1)
		go func(p *part) {
			defer wg.Done()
			p.by = map[string]int{}
			tr := &http.Transport{Proxy: nil, DialContext: dial, MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
			for {
				start := time.Now()
				if !start.Before(until) {
					return
				}
				resp, err := c.Get(url)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s", resp.Status)
					}
				}
				end := time.Now()
				if start.Before(from) || end.After(until) {
					continue
				}
				if err != nil {
					p.errs++
					if p.firstErr == "" {
						p.firstErr = err.Error()
					}
					continue
				}
				p.lat = append(p.lat, end.Sub(start))
				p.bytes += int64(len(body))
				p.by[hostname(body)]++
			}
		}(&parts[i])
	}
	wg.Wait()
	l := &Load{URL: url, Clients: clients, Seconds: duration.Seconds(), AnsweredBy: map[string]int{}}
	var lat []time.Duration
	for _, p := range parts {
		lat = append(lat, p.lat...)
		l.BodyBytes += p.bytes
		l.Errors += p.errs
		if l.FirstError == "" {
			l.FirstError = p.firstErr
		}
		for h, n := range p.by {
			l.AnsweredBy[h] += n
		}
	}
	l.Requests = len(lat)
	l.RPS = float64(l.Requests) / duration.Seconds()
	l.MBps = float64(l.BodyBytes) / duration.Seconds() / 1e6
	if l.Requests > 0 {
		l.AvgBody = float64(l.BodyBytes) / float64(l.Requests)
	}
	l.Latency = benchkit.Summarize(lat)
	return l
}

// probe is one request through the VIP on a new connection.
type probe struct {
	start, end time.Time
	host       string
	err        error
}

// probers send requests through the VIP until halted.
type probeSet struct {
	mu     sync.Mutex
	probes []probe
	watch  string
	hit    time.Time
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startProbes(dial dialFunc, url string) *probeSet {
	ps := &probeSet{stop: make(chan struct{})}
	for i := 0; i < probers; i++ {
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			for {
				select {
				case <-ps.stop:
					return
				default:
				}
				start := time.Now()
				h, err := getOnce(dial, url, time.Second)
				pr := probe{start: start, end: time.Now(), host: h, err: err}
				ps.mu.Lock()
				ps.probes = append(ps.probes, pr)
				if ps.watch != "" && h == ps.watch && ps.hit.IsZero() {
					ps.hit = pr.end
				}
				ps.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return ps
}

// watchFor records the first answer by host, from the probes so far on.
func (ps *probeSet) watchFor(host string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.watch = host
	for _, p := range ps.probes {
		if p.host == host && (ps.hit.IsZero() || p.end.Before(ps.hit)) {
			ps.hit = p.end
		}
	}
}

func (ps *probeSet) hitAt() time.Time {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hit
}

func (ps *probeSet) snapshot() []probe {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.probes)
}

func (ps *probeSet) halt() []probe {
	close(ps.stop)
	ps.wg.Wait()
	return ps.snapshot()
}

// dnsAnswer is one A query for the tasks' name to the client container's
// resolver.
type dnsAnswer struct {
	start, end time.Time
	addrs      []netip.Addr
	err        error
}

func (a dnsAnswer) has(ip netip.Addr) bool { return a.err == nil && slices.Contains(a.addrs, ip) }

// queryA asks the resolver of the container dial reaches into
// (netoverlay.DNSAddr, its own loopback) one A question for name, on a
// new UDP socket, and returns the addresses answered.
func queryA(dial dialFunc, name string, timeout time.Duration) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dial(ctx, "udp", netoverlay.DNSAddr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	cl := &dns.Client{Net: "udp", Timeout: timeout}
	resp, _, err := cl.ExchangeWithConnContext(ctx, q, &dns.Conn{Conn: c})
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, dns.RcodeToString[resp.Rcode])
	}
	if resp.Truncated {
		return nil, fmt.Errorf("%s: truncated answer", name)
	}
	var out []netip.Addr
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// dnsProbe asks the resolver for name, one query at a time, until halted.
type dnsProbe struct {
	mu      sync.Mutex
	answers []dnsAnswer
	stop    chan struct{}
	done    chan struct{}
}

func startDNSProbe(dial dialFunc, name string) *dnsProbe {
	dp := &dnsProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(dp.done)
		for {
			select {
			case <-dp.stop:
				return
			default:
			}
			start := time.Now()
			addrs, err := queryA(dial, name, time.Second)
			a := dnsAnswer{start: start, end: time.Now(), addrs: addrs, err: err}
			dp.mu.Lock()
			dp.answers = append(dp.answers, a)
			dp.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return dp
}

func (dp *dnsProbe) snapshot() []dnsAnswer {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return slices.Clone(dp.answers)
}

func (dp *dnsProbe) halt() []dnsAnswer {
	close(dp.stop)
	<-dp.done
	return dp.snapshot()
}

// firstWith is the end of the first answer that started after from and
// includes ip; zero when none did.
func firstWith(answers []dnsAnswer, ip netip.Addr, from time.Time) time.Time {
	for _, a := range answers {
		if a.start.After(from) && a.has(ip) {
			return a.end
		}
	}
	return time.Time{}
}

// cleanOf is the end of the first successful answer after the last one
// that included ip, and whether ip is in none since; zero when no
// successful answer came after it.
func cleanOf(answers []dnsAnswer, ip netip.Addr) time.Time {
	last := -1
	for i, a := range answers {
		if a.has(ip) {
			last = i
		}
	}
	for _, a := range answers[last+1:] {
		if a.err == nil {
			return a.end
		}
	}
	return time.Time{}
}

// dnsTally counts the queries and failed queries among answers, and the
// round trip of each successful one.
func dnsTally(answers []dnsAnswer) (n, failed int, firstErr string, rtts []time.Duration) {
	for _, a := range answers {
		n++
		if a.err != nil {
			failed++
			if firstErr == "" {
				firstErr = a.err.Error()
			}
			continue
		}
		rtts = append(rtts, a.end.Sub(a.start))
	}
	return n, failed, firstErr, rtts
}

// webContainers maps the running containers of web to their IDs, by task.
func webContainers(e *faults.Env) map[string]harness.Container {
	out := map[string]harness.Container{}
	for _, n := range e.C.Nodes() {
		for _, c := range n.RunningContainers() {
			if c.Service == "web" {
				out[c.Task] = c
			}
		}
	}
	return out
}

func scaleUp(t *benchkit.TB, e *faults.Env, dial dialFunc, url string) ScaleUp {
	m := e.C.Managers[0]
	before := webContainers(e)
	ps := startProbes(dial, url)
	dp := startDNSProbe(dial, "tasks.web")
	time.Sleep(200 * time.Millisecond) // probing in full swing
	sent := time.Now()
	m.MustCLI("service", "scale", "-d", "web=3")
	var added harness.Container
	var seen time.Time
	deadline := sent.Add(60 * time.Second)
	for seen.IsZero() {
		for id, c := range webContainers(e) {
			if _, ok := before[id]; !ok {
				added, seen = c, time.Now()
			}
		}
		if time.Now().After(deadline) {
			ps.halt()
			dp.halt()
			t.Fatalf("scale up: no new container of web in 60s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ps.watchFor(short(added.ID))
	// The manager gave the task its address before the container ran.
	ip := taskAddrs(t, e, "web", "app")[added.Task]
	if !ip.IsValid() {
		ps.halt()
		dp.halt()
		t.Fatalf("scale up: new task %s has no address on app", added.Task)
	}
	listen := make(chan time.Time, 1)
	go func() {
		for !listening(added.Pid) && time.Since(seen) < 30*time.Second {
			time.Sleep(time.Millisecond)
		}
		listen <- time.Now()
	}()
	for ps.hitAt().IsZero() || firstWith(dp.snapshot(), ip, sent).IsZero() {
		if time.Since(seen) > 30*time.Second {
			ps.halt()
			dp.halt()
			if ps.hitAt().IsZero() {
				t.Fatalf("scale up: container %s not answering through the VIP in 30s", short(added.ID))
			}
			t.Fatalf("scale up: tasks.web without %s (container %s) 30s after its container ran", ip, short(added.ID))
		}
		time.Sleep(2 * time.Millisecond)
	}
	listened := <-listen
	time.Sleep(200 * time.Millisecond)
	probes := ps.halt()
	answers := dp.halt()
	dnsHit := firstWith(answers, ip, sent)
	u := ScaleUp{Task: added.Task, Host: short(added.ID), ScaleToContainer: seen.Sub(sent), ContainerToVIP: ps.hitAt().Sub(seen),
		ContainerToListen: listened.Sub(seen), Probes: len(probes), Addr: ip.String(), ContainerToDNS: dnsHit.Sub(seen)}
	u.DNSQueries, u.DNSFailed, u.DNSFirstError, u.dnsRTTs = dnsTally(answers)
	for _, a := range answers {
		if a.err == nil && a.start.After(dnsHit) && !a.has(ip) {
			u.DNSMissedAfter++
		}
	}
	for _, p := range probes {
		if p.err != nil {
			u.Failed++
			if p.start.Before(seen) {
				u.FailedBeforeSeen++
			}
			if u.FirstError == "" {
				u.FirstError = p.err.Error()
			}
			u.LastFailure = max(u.LastFailure, p.start.Sub(seen))
		}
	}
	e.Eventually(60*time.Second, func() error { return e.Converged("web", 3) })
	return u
}

// listening reports whether something accepts connections on port 80 in
// pid's network namespace: a connection to its loopback is accepted or
// refused at once. (Reading /proc/PID/net/tcp6 walks the kernel's global
// socket tables, tens of milliseconds with the probes' TIME_WAITs.)
func listening(pid int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c, err := harness.DialIn(ctx, fmt.Sprintf("/proc/%d/ns/net", pid), "tcp", "127.0.0.1:80")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func scaleDown(t *benchkit.TB, e *faults.Env, dial dialFunc, url string) ScaleDown {
	m := e.C.Managers[0]
	before := webContainers(e)
	addrs := taskAddrs(t, e, "web", "app")
	ps := startProbes(dial, url)
	dp := startDNSProbe(dial, "tasks.web")
	time.Sleep(200 * time.Millisecond)
	sent := time.Now()
	m.MustCLI("service", "scale", "-d", "web=2")
	var removed harness.Container
	var gone time.Time
	deadline := sent.Add(60 * time.Second)
	for gone.IsZero() {
		now := webContainers(e)
		for id, c := range before {
			if _, ok := now[id]; !ok {
				removed, gone = c, time.Now()
			}
		}
		if time.Now().After(deadline) {
			ps.halt()
			dp.halt()
			t.Fatalf("scale down: no container of web gone in 60s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	host := short(removed.ID)
	ip := addrs[removed.Task]
	if !ip.IsValid() {
		ps.halt()
		dp.halt()
		t.Fatalf("scale down: removed task %s had no address on app", removed.Task)
	}
	bad := func(p probe) bool { return p.err != nil || (p.host == host && p.start.After(gone)) }
	// Probe until 2 s pass with no bad request after the container is gone
	// and no DNS answer with its address.
	const settle = 2 * time.Second
	for {
		last := gone
		for _, p := range ps.snapshot() {
			if bad(p) && p.start.After(last) {
				last = p.start
			}
		}
		answers := dp.snapshot()
		for _, a := range answers {
			if a.has(ip) && a.end.After(last) {
				last = a.end
			}
		}
		if time.Since(last) >= settle && !cleanOf(answers, ip).IsZero() {
			break
		}
		if time.Since(gone) > 30*time.Second {
			ps.halt()
			dp.halt()
			t.Fatalf("scale down: requests through the VIP still failing or answered by %s, or tasks.web still with %s, 30s after it was gone", host, ip)
		}
		time.Sleep(20 * time.Millisecond)
	}
	probes := ps.halt()
	answers := dp.halt()
	clean := cleanOf(answers, ip)
	d := ScaleDown{Task: removed.Task, ScaleToGone: gone.Sub(sent), Probes: len(probes),
		Addr: ip.String(), ScaleToDNSClean: clean.Sub(sent), GoneToDNSClean: clean.Sub(gone)}
	d.DNSQueries, d.DNSFailed, d.DNSFirstError, d.dnsRTTs = dnsTally(answers)
	for _, p := range probes {
		if !bad(p) {
			continue
		}
		if p.err != nil && d.FirstError == "" {
			d.FirstError = p.err.Error()
		}
		switch {
		case p.err != nil && !p.start.After(gone):
			d.FailedBefore++
		case p.err != nil:
			d.FailedAfter++
		default:
			d.AnsweredAfter++
		}
		if p.start.After(gone) && p.start.Sub(gone) > d.GoneToClean {
			d.GoneToClean = p.start.Sub(gone)
		}
	}
	e.Eventually(60*time.Second, func() error { return e.Converged("web", 2) })
	return d
}

func summary(r *Result) {
	fmt.Printf("overlay: 1 manager + 2 workers, hosts are network namespaces; whoami service web (2 replicas on %s, overlay network app, -p 8080:80)\n", "worker1")
	fmt.Printf("machine: %s\n", r.Machine)
	if r.Version != "" {
		fmt.Printf("version: %s\n", r.Version)
	}
	fmt.Printf("load:    %d clients, each on its own keep-alive connection, one request at a time; %s warmup, %s measured per path; GET / (whoami's text answer)\n",
		r.Clients, r.Warmup, r.Duration)
	var names []string
	for k := range r.Hosts {
		names = append(names, k)
	}
	slices.Sort(names)
	fmt.Print("addresses:")
	for _, k := range names {
		fmt.Printf(" %s=%s", k, r.Hosts[k])
	}
	fmt.Println()
	fmt.Println()
	fmt.Printf("%-25s %-29s %7s %7s %7s %6s %6s %6s %6s %13s %13s\n", "path", "from", "p50 ms", "p99 ms", "req/s", "body B", "MB/s", "errors", "n", "vs baseline", "vs direct")
	fmt.Printf("%-25s %-29s %7s %7s %7s %6s %6s %6s %6s %13s %13s\n", "", "", "", "", "", "", "", "", "", "req/s   p50", "req/s   p50")
	for _, l := range r.Loads {
		vb, vd := "", ""
		if l.RPSVsBase != 0 {
			vb = fmt.Sprintf("%5.2fx %5.2fx", l.RPSVsBase, l.P50VsBase)
		}
		if l.RPSVsDirect != 0 {
			vd = fmt.Sprintf("%5.2fx %5.2fx", l.RPSVsDirect, l.P50VsDirect)
		}
		fmt.Printf("%-25s %-29s %7.2f %7.2f %7.0f %6.0f %6.2f %6d %6d %13s %13s\n", l.Path, l.From, l.Latency.P50MS, l.Latency.P99MS, l.RPS, l.AvgBody, l.MBps, l.Errors, l.Requests, vb, vd)
	}
	fmt.Println()
	for _, l := range r.Loads {
		fmt.Printf("%-25s %s, answered by %s", l.Path, l.URL, benchkit.Counts(l.AnsweredBy, "nobody"))
		if l.FirstError != "" {
			fmt.Printf("; first error: %s", l.FirstError)
		}
		fmt.Println()
	}
	fmt.Println()
	fmt.Printf("bulk transfer (GET /bytes, %d MiB each, 3 downloads after a warm-up one, on one connection):\n", bulkMB)
	fmt.Printf("%-25s %12s %12s %s\n", "path", "median MiB/s", "vs baseline", "each")
	for _, b := range r.Bulks {
		vb := ""
		if b.Ratio != 0 {
			vb = fmt.Sprintf("%.2fx", b.Ratio)
		}
		fmt.Printf("%-25s %12.0f %12s %.0f\n", b.Path, b.Med, vb, b.MBps)
	}
	fmt.Println()
	fmt.Printf("VIP and DNS following the tasks (%d trials; %d probers through the VIP and 1 asking tasks.web, from the client container):\n", r.Trials, r.Probers)
	fmt.Printf("%-54s %10s %10s %10s\n", "figure", "median ms", "max ms", "min ms")
	for _, k := range []string{
		"scale up: scale -> container running",
		"scale up: container running -> answers via VIP",
		"scale up: container running -> listening on :80",
		"scale up: container running -> last failed via VIP",
		"scale down: scale -> container gone",
		"scale down: container gone -> VIP clean",
		"scale up: container running -> in tasks.web (DNS)",
		"scale down: scale -> out of tasks.web (DNS)",
		"scale down: container gone -> out of tasks.web (DNS)",
	} {
		s := r.Summaries[k]
		fmt.Printf("%-54s %10.1f %10.1f %10.1f\n", k, s.P50MS, s.MaxMS, s.MinMS)
	}
	q := r.Summaries["DNS: one A query for tasks.web, round trip"]
	fmt.Printf("%-54s %10.2f %10.2f %10.2f (p99 %.2f, n %d)\n", "DNS: one A query for tasks.web, round trip", q.P50MS, q.MaxMS, q.MinMS, q.P99MS, q.N)
	for i, u := range r.Ups {
		fmt.Printf("  up   %d: new %s, %d probes, %d failed (%d sent before its container was seen)", i+1, u.Host, u.Probes, u.Failed, u.FailedBeforeSeen)
		if u.FirstError != "" {
			fmt.Printf(": %s", u.FirstError)
		}
		fmt.Printf("; DNS: %s, %d queries, %d failed, %d answers without it after the first with it", u.Addr, u.DNSQueries, u.DNSFailed, u.DNSMissedAfter)
		if u.DNSFirstError != "" {
			fmt.Printf(": %s", u.DNSFirstError)
		}
		fmt.Println()
	}
	for i, d := range r.Downs {
		fmt.Printf("  down %d: %d probes, %d failed before the container was gone, %d after, %d answered by it after", i+1, d.Probes, d.FailedBefore, d.FailedAfter, d.AnsweredAfter)
		if d.FirstError != "" {
			fmt.Printf(": %s", d.FirstError)
		}
		fmt.Printf("; DNS: %s, %d queries, %d failed", d.Addr, d.DNSQueries, d.DNSFailed)
		if d.DNSFirstError != "" {
			fmt.Printf(": %s", d.DNSFirstError)
		}
		fmt.Println()
	}
	fmt.Println()
	fmt.Println("notes:")
	for _, n := range r.Notes {
		fmt.Printf("  - %s\n", n)
	}
}
