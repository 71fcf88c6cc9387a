package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/http/httptrace"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// loadTrace is what the load client knows of one failed request, to tell
// a request that never got a connection from one that was connected and
// got no answer: the milliseconds from its start to each step it reached
// (dns_start, dns_done, connect_start, connect_done, got_conn,
// wrote_request, first_byte; a step missing was not reached), the
// connection's addresses (Remote is the VIP; the backend it was DNATed to
// is in the client's conntrack, and the backend's whoami logs Local as the
// RemoteAddr of each request it took) and the kernel's TCP_INFO of the
// socket when it was closed or the request ended.
type loadTrace struct {
	Connected bool               `json:"connected"`
	Steps     map[string]float64 `json:"steps_ms"`
	ElapsedMS float64            `json:"elapsed_ms"`
	Local     string             `json:"local,omitempty"`
	Remote    string             `json:"remote,omitempty"`
	DialError string             `json:"dial_error,omitempty"`
	TCP       *tcpInfo           `json:"tcp,omitempty"`
}

// tcpInfo is the part of Linux's struct tcp_info that says how far a
// connection got: its state (1 established, 2 syn-sent, 7 close, 8
// close-wait, ...), retransmissions, bytes the peer acknowledged and
// bytes received, and how long ago data last came in.
type tcpInfo struct {
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
	AtMS           float64 `json:"at_ms"` // when it was read, from the request's start
}

// reqTrace collects a loadTrace while a request runs; the transport's
// goroutines write to it, so it is locked.
type reqTrace struct {
	mu    sync.Mutex
	start time.Time
	t     loadTrace
	conn  *tracedConn
}

func newReqTrace(start time.Time) *reqTrace {
	return &reqTrace{start: start, t: loadTrace{Steps: map[string]float64{}}}
}

func (r *reqTrace) ms(at time.Time) float64 {
	return float64(at.Sub(r.start).Microseconds()) / 1000
}

func (r *reqTrace) event(step string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.t.Steps[step]; !ok {
		r.t.Steps[step] = r.ms(time.Now())
	}
}

// context carries r's hooks.
func (r *reqTrace) context(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) { r.event("dns_start") },
		DNSDone:  func(httptrace.DNSDoneInfo) { r.event("dns_done") },
		ConnectStart: func(_, addr string) {
			r.event("connect_start")
			r.mu.Lock()
			r.t.Remote = addr
			r.mu.Unlock()
		},
		ConnectDone: func(_, addr string, err error) {
			r.event("connect_done")
			if err != nil {
				r.mu.Lock()
				r.t.DialError = err.Error()
				r.mu.Unlock()
			}
		},
		GotConn: func(info httptrace.GotConnInfo) {
			r.event("got_conn")
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Connected = true
			r.t.Local, r.t.Remote = info.Conn.LocalAddr().String(), info.Conn.RemoteAddr().String()
			if c, ok := info.Conn.(*tracedConn); ok {
				r.conn = c
			}
		},
		TLSHandshakeDone:     func(tls.ConnectionState, error) { r.event("tls_done") },
		WroteRequest:         func(httptrace.WroteRequestInfo) { r.event("wrote_request") },
		GotFirstResponseByte: func() { r.event("first_byte") },
	})
}

// done is the trace of a request that ended: with the socket's TCP_INFO,
// as read when the transport closed it, or now if still open.
func (r *reqTrace) done() *loadTrace {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	var info *tcpInfo
	if c != nil {
		info = c.info(r)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.t
	t.Steps = make(map[string]float64, len(r.t.Steps))
	for k, v := range r.t.Steps {
		t.Steps[k] = v
	}
	t.ElapsedMS = r.ms(time.Now())
	t.TCP = info
	return &t
}

var dialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}

// tracedDial dials as the default transport does and wraps the connection
// so its TCP_INFO is read just before it is closed.
func tracedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	c, err := dialer.DialContext(ctx, network, addr)
	if d := time.Since(start); d >= slowDial {
		sd := slowDialRec{Start: start, MS: float64(d.Microseconds()) / 1000, Remote: addr}
		if err != nil {
			sd.Error = err.Error()
		} else {
			sd.Local = c.LocalAddr().String()
		}
		slowDials.Lock()
		if len(slowDials.l) < 1000 {
			slowDials.l = append(slowDials.l, sd)
		}
		slowDials.Unlock()
	}
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &tracedConn{TCPConn: tc}, nil
}

type tracedConn struct {
	*net.TCPConn
	mu     sync.Mutex
	closed *tcpInfo // read at Close
	closeT time.Time
}

func (c *tracedConn) Close() error {
	c.mu.Lock()
	if c.closed == nil {
		c.closed, c.closeT = readTCPInfo(c.TCPConn), time.Now()
	}
	c.mu.Unlock()
	return c.TCPConn.Close()
}

// info is the TCP_INFO read at Close, or now if the conn is open.
func (c *tracedConn) info(r *reqTrace) *tcpInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, at := c.closed, c.closeT
	if in == nil {
		in, at = readTCPInfo(c.TCPConn), time.Now()
	}
	if in == nil {
		return nil
	}
	cp := *in
	cp.AtMS = r.ms(at)
	return &cp
}

// readTCPInfo is getsockopt(TCP_INFO) of c, nil if it cannot be read.
func readTCPInfo(c *net.TCPConn) *tcpInfo {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var buf [232]byte
	var info *tcpInfo
	_ = raw.Control(func(fd uintptr) {
		n := uint32(len(buf))
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if errno != 0 || n < 136 {
			return
		}
		u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(buf[off:]) }
		u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(buf[off:]) }
		// Offsets of struct tcp_info (include/uapi/linux/tcp.h).
		info = &tcpInfo{
			State: buf[0], Retransmits: buf[2], Backoff: buf[4],
			Unacked: u32(24), LastDataSentMS: u32(44), LastDataRecvMS: u32(52),
			RTTMicros: u32(68), TotalRetrans: u32(100),
			BytesAcked: u64(120), BytesReceived: u64(128),
		}
	})
	return info
}

// slowDial is how long a dial takes to be kept in the report's slow
// dials: a connection whose SYN or SYN-ACK was lost completes after the
// kernel's first retransmission, 1 s later.
const slowDial = 500 * time.Millisecond

// slowDialRec is one dial that took slowDial or more, kept even when it
// completed after its request had given up (the transport lets a dial
// finish): when it started, how long it took, from which local address
// (the backend it was DNATed to is in conntrack) or its error.
type slowDialRec struct {
	Start  time.Time `json:"start"`
	MS     float64   `json:"ms"`
	Local  string    `json:"local,omitempty"`
	Remote string    `json:"remote"`
	Error  string    `json:"error,omitempty"`
}

var slowDials struct {
	sync.Mutex
	l []slowDialRec
}

func slowDialsNow() []slowDialRec {
	slowDials.Lock()
	defer slowDials.Unlock()
	return append([]slowDialRec{}, slowDials.l...)
}
