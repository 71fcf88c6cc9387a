package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// loopback dials 127.0.0.1 here; in the worker the dialer makes its
// socket in the container's network namespace.
func loopback(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func portOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestParseURL(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"http://:8080/health", "http://127.0.0.1:8080/health", ""},
		{"https://:443", "https://127.0.0.1:443/", ""},
		{"http://localhost:80/x?y=1", "http://127.0.0.1:80/x?y=1", ""},
		{"ftp://:21/", "", "the scheme must be http or https"},
		{"http://example.com:80/", "", "give no host"},
		{"http://:0/", "", "the port must be 1 to 65535"},
		{"http:///health", "", "the port must be 1 to 65535"},
	}
	for _, c := range cases {
		u, err := ParseURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v; want an error saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || u.String() != c.want {
			t.Errorf("%s: %v, %v; want %s", c.in, u, err, c.want)
		}
	}
}

func TestHTTPProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("fine")) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/bad", http.StatusFound) })
	mux.HandleFunc("/bad", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "broken", http.StatusInternalServerError) })
	plain := httptest.NewServer(mux)
	defer plain.Close()
	secure := httptest.NewTLSServer(mux)
	defer secure.Close()
	p, s := portOf(t, plain.URL), portOf(t, secure.URL)
	cases := []struct {
		url  string
		code int
		out  string
	}{
		{"http://:" + p + "/ok", 0, "200 OK\nfine"},
		{"http://:" + p + "/moved", 0, "302 Found"},
		{"http://:" + p + "/bad", 1, "500 Internal Server Error\nbroken"},
		{"https://:" + s + "/ok", 0, "200 OK\nfine"},
	}
	for _, c := range cases {
		probe, err := HTTPProbe(c.url, loopback)
		if err != nil {
			t.Fatal(err)
		}
		code, out, err := probe(context.Background())
		if err != nil || code != c.code || !strings.Contains(out, c.out) {
			t.Errorf("%s: exit %d, %q, %v; want exit %d with %q", c.url, code, out, err, c.code, c.out)
		}
	}
	// Nothing listening: an error (a failure).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	probe, _ := HTTPProbe("http://:"+closed+"/", loopback)
	if _, _, err := probe(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a closed port: %v; want connection refused", err)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	if code, out, _ := TCPProbe(port, loopback)(context.Background()); code != 0 {
		t.Errorf("an open port: exit %d, %q; want 0", code, out)
	}
	ln.Close()
	if code, out, _ := TCPProbe(port, loopback)(context.Background()); code != 1 || !strings.Contains(out, "refused") {
		t.Errorf("a closed port: exit %d, %q; want 1, refused", code, out)
	}
}

func TestProbeOfExec(t *testing.T) {
	var got []string
	exec := func(_ context.Context, args []string) (int, []byte, error) { got = args; return 3, []byte("out"), nil }
	p, err := ProbeOf(Config{Test: []string{"CMD-SHELL", "exit 3"}}, exec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, err := p(context.Background()); code != 3 || out != "out" || err != nil || strings.Join(got, " ") != "/bin/sh -c exit 3" {
		t.Errorf("exit %d, %q, %v, ran %q", code, out, err, got)
	}
	if _, err := ProbeOf(Config{Test: []string{"CMD", "true"}}, nil, nil); err == nil {
		t.Error("a CMD check with no way to run it: no error")
	}
}
