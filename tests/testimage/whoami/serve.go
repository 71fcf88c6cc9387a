package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// serve answers HTTP until SIGTERM or SIGINT (exit 0, after logging
// "shutting down") or until /crash?code=N asks it to exit with code N.
//
// Every path but the ones below answers with the text of whoami: Name (if
// set), Hostname, one IP line per non-loopback address, RemoteAddr, the
// request line and the headers. UDP datagrams to the same port are
// answered with the Hostname line.
//
//	/health     200 "ok"; 500 "unhealthy: ..." while the file -unhealthy-file
//	            (default /tmp/unhealthy) exists, or always when started with
//	            -health fail (env WHOAMI_HEALTH=fail): an image whose health
//	            check never passes
//	/hostname   the hostname alone
//	/slow       the whoami answer after ?ms=N milliseconds (default 1000)
//	/env        the environment, one variable per line, sorted
//	/crash      answer, then exit with ?code=N (default 1)
//
// On SIGTERM it shuts down gracefully: it stops accepting (the listener
// closes), lets the requests in flight finish (up to 5 s) and exits 0.
//
// It prints "listening on ADDR" to stdout once the socket is open, so a
// caller that passes -listen 127.0.0.1:0 learns the port.
func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	port := fs.Int("port", defaultPort(), "TCP port to listen on, on every address")
	listen := fs.String("listen", "", "listen address host:port; overrides -port")
	name := fs.String("name", os.Getenv("WHOAMI_NAME"), "name printed first in every answer")
	health := fs.String("health", envOr("WHOAMI_HEALTH", "ok"), "ok: /health follows -unhealthy-file; fail: /health always answers 500")
	unhealthyFile := fs.String("unhealthy-file", envOr("WHOAMI_UNHEALTHY_FILE", "/tmp/unhealthy"), "while this file exists /health answers 500")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *health != "ok" && *health != "fail" {
		fmt.Fprintf(os.Stderr, "whoami: serve: -health must be ok or fail, got %q\n", *health)
		return 2
	}
	addr := *listen
	if addr == "" {
		addr = ":" + strconv.Itoa(*port)
	}
	logger := log.New(os.Stdout, "whoami: ", log.LstdFlags|log.Lmicroseconds)
	// Before "listening on": whoever waits for that line may stop us next.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "whoami: %v\n", err)
		return 1
	}
	// The same port over UDP: every datagram is answered with the
	// Hostname line, for tests of UDP load balancing and publishing.
	if pc, err := net.ListenPacket("udp", addr); err == nil {
		defer pc.Close()
		go answerUDP(pc)
	} else {
		logger.Printf("no UDP on %s: %v", addr, err)
	}
	logger.Printf("listening on %s", ln.Addr())

	crash := make(chan int, 1)
	srv := &http.Server{
		Handler:           logRequests(logger, handler(*name, healthCheck{fail: *health == "fail", file: *unhealthyFile}, crash)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case s := <-sigs:
		logger.Printf("shutting down (%v)", s)
		shutdown(srv, 5*time.Second)
		return 0
	case code := <-crash:
		logger.Printf("crashing with exit code %d", code)
		shutdown(srv, 2*time.Second)
		return code
	case err := <-served:
		fmt.Fprintf(os.Stderr, "whoami: serve: %v\n", err)
		return 1
	}
}

// envOr is the environment variable k, or def when it is unset or empty.
func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// healthCheck decides what /health answers.
type healthCheck struct {
	fail bool   // always unhealthy
	file string // unhealthy while it exists
}

// check returns "" when healthy, else why not.
func (h healthCheck) check() string {
	if h.fail {
		return "unhealthy: started with -health fail"
	}
	if h.file != "" {
		if _, err := os.Stat(h.file); err == nil {
			return "unhealthy: " + h.file + " exists"
		}
	}
	return ""
}

// defaultPort is WHOAMI_PORT, else PORT, else 80.
func defaultPort() int {
	for _, k := range []string{"WHOAMI_PORT", "PORT"} {
		if p, err := strconv.Atoi(os.Getenv(k)); err == nil && p > 0 {
			return p
		}
	}
	return 80
}

// shutdown stops accepting and waits up to d for answers in flight.
func shutdown(srv *http.Server, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}

func logRequests(logger *log.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("%s %s %s %s", r.RemoteAddr, r.Method, r.URL.RequestURI(), r.Proto)
		h.ServeHTTP(w, r)
	})
}

func handler(name string, health healthCheck, crash chan<- int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if why := health.check(); why != "" {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, why)
			return
		}
		io.WriteString(w, "ok")
	})
	// /bytes?mb=N streams N MiB (default 1, at most 4096) of zeros: bulk
	// throughput for the overlay benchmark.
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		mb := 1
		if s := r.URL.Query().Get("mb"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 4096 {
				http.Error(w, "mb must be an integer in [0, 4096]", http.StatusBadRequest)
				return
			}
			mb = n
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(mb<<20))
		buf := make([]byte, 64<<10)
		for i := 0; i < mb*16; i++ {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms := 1000
		if s := r.URL.Query().Get("ms"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 600000 {
				http.Error(w, "ms must be an integer in [0, 600000]", http.StatusBadRequest)
				return
			}
			ms = n
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeWhoami(w, name, r)
	})
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		h, _ := os.Hostname()
		fmt.Fprintln(w, h)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		env := os.Environ()
		sort.Strings(env)
		for _, kv := range env {
			fmt.Fprintln(w, kv)
		}
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		code := 1
		if s := r.URL.Query().Get("code"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 255 {
				http.Error(w, "code must be an integer in [0, 255]", http.StatusBadRequest)
				return
			}
			code = n
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "crashing with exit code %d\n", code)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case crash <- code:
		default: // a crash is already under way
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeWhoami(w, name, r)
	})
	return mux
}

func writeWhoami(w io.Writer, name string, r *http.Request) {
	if name != "" {
		fmt.Fprintf(w, "Name: %s\n", name)
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "Hostname: %s\n", host)
	for _, ip := range nonLoopbackIPs() {
		fmt.Fprintf(w, "IP: %s\n", ip)
	}
	fmt.Fprintf(w, "RemoteAddr: %s\n", r.RemoteAddr)
	fmt.Fprintf(w, "%s %s %s\n", r.Method, r.URL.RequestURI(), r.Proto)
	fmt.Fprintf(w, "Host: %s\n", r.Host)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}

func nonLoopbackIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []string
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if ip == nil || ip.IsLoopback() {
			continue
		}
		ips = append(ips, ip.String())
	}
	return ips
}

// answerUDP answers each datagram with "Hostname: NAME\n" until pc is
// closed.
func answerUDP(pc net.PacketConn) {
	host, _ := os.Hostname()
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo([]byte("Hostname: "+host+"\n"), from)
	}
}
