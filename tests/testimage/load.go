package testimage

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// LoadReport is what `whoami load` writes: per URL the requests answered
// 2xx and the others, who answered, and every failure (the first -keep of
// them) with its time and error. whoami/load.go writes the same JSON.
type LoadReport struct {
	Started         time.Time    `json:"started"`
	Written         time.Time    `json:"written"`
	Final           bool         `json:"final"` // written at SIGTERM, after the last request
	Targets         []LoadTarget `json:"targets"`
	Failures        []LoadFail   `json:"failures"`
	FailuresDropped int          `json:"failures_dropped"`
	// SlowDials are the dials that took 500 ms or more (a SYN or SYN-ACK
	// lost costs the kernel's 1 s retransmission), kept even when they
	// completed after their request gave up.
	SlowDials []LoadSlowDial `json:"slow_dials"`
}

// LoadSlowDial is one slow dial: when it started, how long it took, from
// which local address, or its error.
type LoadSlowDial struct {
	Start  time.Time `json:"start"`
	MS     float64   `json:"ms"`
	Local  string    `json:"local,omitempty"`
	Remote string    `json:"remote"`
	Error  string    `json:"error,omitempty"`
}

// LoadTarget is one URL's totals.
type LoadTarget struct {
	URL    string `json:"url"`
	OK     int    `json:"ok"`
	Failed int    `json:"failed"`
	// Answered is keyed by the answer's Hostname line (a container's
	// hostname, by default the first 12 characters of its ID).
	Answered map[string]*LoadAnswer `json:"answered"`
}

// LoadAnswer is how often one replica answered, and when first and last
// (the time each of those requests was sent).
type LoadAnswer struct {
	N     int       `json:"n"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// LoadFail is one failed request: when it was sent, to which URL, and why.
type LoadFail struct {
	Time   time.Time  `json:"time"`
	Target string     `json:"target"`
	Error  string     `json:"error"`
	Trace  *LoadTrace `json:"trace,omitempty"`
}

// LoadTrace is how far a failed request got (see whoami/trace.go): the
// milliseconds from its start to each step it reached (dns_start,
// dns_done, connect_start, connect_done, got_conn, wrote_request,
// first_byte; a missing step was not reached), whether it had a
// connection, the connection's addresses (Remote is the VIP; the backend's
// whoami logs Local as the RemoteAddr of each request it took) and the
// socket's TCP_INFO when it was closed.
type LoadTrace struct {
	Connected bool               `json:"connected"`
	Steps     map[string]float64 `json:"steps_ms"`
	ElapsedMS float64            `json:"elapsed_ms"`
	Local     string             `json:"local,omitempty"`
	Remote    string             `json:"remote,omitempty"`
	DialError string             `json:"dial_error,omitempty"`
	TCP       *LoadTCPInfo       `json:"tcp,omitempty"`
}

// LoadTCPInfo is part of Linux's struct tcp_info of a failed request's
// socket: State 1 is established, 2 syn-sent, 8 close-wait; BytesAcked
// counts from 1 (the SYN), so 1 means the request's bytes were never
// acknowledged.
type LoadTCPInfo struct {
	State          uint8   `json:"state"`
	Retransmits    uint8   `json:"retransmits"`
	Backoff        uint8   `json:"backoff"`
	Unacked        uint32  `json:"unacked"`
	TotalRetrans   uint32  `json:"total_retrans"`
	RTTMicros      uint32  `json:"rtt_us"`
	LastDataRecvMS uint32  `json:"last_data_recv_ms"`
	LastDataSentMS uint32  `json:"last_data_sent_ms"`
	BytesAcked     uint64  `json:"bytes_acked"`
	BytesReceived  uint64  `json:"bytes_received"`
	AtMS           float64 `json:"at_ms"`
}

// String is the trace in one line: the steps reached, in order, then the
// connection and its TCP state.
func (t *LoadTrace) String() string {
	if t == nil {
		return "no trace"
	}
	steps := make([]string, 0, len(t.Steps))
	for k := range t.Steps {
		steps = append(steps, k)
	}
	sort.Slice(steps, func(i, j int) bool { return t.Steps[steps[i]] < t.Steps[steps[j]] })
	var b strings.Builder
	for _, k := range steps {
		fmt.Fprintf(&b, "%s@%.1fms ", k, t.Steps[k])
	}
	fmt.Fprintf(&b, "ended@%.1fms connected=%v", t.ElapsedMS, t.Connected)
	if t.Local != "" || t.Remote != "" {
		fmt.Fprintf(&b, " %s->%s", t.Local, t.Remote)
	}
	if t.DialError != "" {
		fmt.Fprintf(&b, " dial: %s", t.DialError)
	}
	if c := t.TCP; c != nil {
		fmt.Fprintf(&b, " tcp{state %d, retransmits %d, total retrans %d, unacked %d, bytes acked %d, received %d, rtt %dus, last recv %dms ago, read@%.1fms}",
			c.State, c.Retransmits, c.TotalRetrans, c.Unacked, c.BytesAcked, c.BytesReceived, c.RTTMicros, c.LastDataRecvMS, c.AtMS)
	}
	return b.String()
}

// ParseLoadReport reads a report.
func ParseLoadReport(data []byte) (LoadReport, error) {
	var r LoadReport
	if err := json.Unmarshal(data, &r); err != nil {
		return LoadReport{}, fmt.Errorf("load report %.80q: %w", data, err)
	}
	return r, nil
}

// OK is the requests answered 2xx, over every URL.
func (r LoadReport) OK() int {
	n := 0
	for _, t := range r.Targets {
		n += t.OK
	}
	return n
}

// Failed is the requests that failed, over every URL.
func (r LoadReport) Failed() int {
	n := 0
	for _, t := range r.Targets {
		n += t.Failed
	}
	return n
}

// Target is the totals of the URL u; the zero LoadTarget if the client
// has no such URL.
func (r LoadReport) Target(u string) LoadTarget {
	for _, t := range r.Targets {
		if t.URL == u {
			return t
		}
	}
	return LoadTarget{}
}

// Answerers is who answered any URL, with the first and last time over
// all URLs.
func (r LoadReport) Answerers() map[string]LoadAnswer {
	out := map[string]LoadAnswer{}
	for _, t := range r.Targets {
		for h, a := range t.Answered {
			cur, ok := out[h]
			if !ok {
				out[h] = *a
				continue
			}
			cur.N += a.N
			if a.First.Before(cur.First) {
				cur.First = a.First
			}
			if a.Last.After(cur.Last) {
				cur.Last = a.Last
			}
			out[h] = cur
		}
	}
	return out
}

// Summary is one line per URL ("URL: 812 ok, 0 failed, answered by 6")
// and one per failure kept, the first 50 of them.
func (r LoadReport) Summary() string {
	var b strings.Builder
	for _, t := range r.Targets {
		hosts := make([]string, 0, len(t.Answered))
		for h, a := range t.Answered {
			hosts = append(hosts, fmt.Sprintf("%s×%d", h, a.N))
		}
		sort.Strings(hosts)
		fmt.Fprintf(&b, "%s: %d ok, %d failed, answered by %d: %s\n", t.URL, t.OK, t.Failed, len(t.Answered), strings.Join(hosts, " "))
	}
	for i, f := range r.Failures {
		if i == 50 {
			fmt.Fprintf(&b, "  and %d more failures\n", len(r.Failures)-50)
			break
		}
		fmt.Fprintf(&b, "  failed %s %s: %s\n    %s\n", f.Time.Format("15:04:05.000"), f.Target, f.Error, f.Trace)
	}
	if r.FailuresDropped > 0 {
		fmt.Fprintf(&b, "  and %d failures not kept\n", r.FailuresDropped)
	}
	for _, d := range r.SlowDials {
		fmt.Fprintf(&b, "  slow dial %s %s->%s: %.0fms %s\n", d.Start.Format("15:04:05.000"), d.Local, d.Remote, d.MS, d.Error)
	}
	return b.String()
}
