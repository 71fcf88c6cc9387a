package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Dialer opens a connection from inside the container's network
// namespace (a socket made there), so 127.0.0.1 is the container's own
// loopback.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// ExecFunc runs args inside the container and returns its exit code and
// combined output.
type ExecFunc func(ctx context.Context, args []string) (exitCode int, output []byte, err error)

// ProbeOf is the probe a check runs: its command through exec, or its HTTP
// GET or TCP connect through dial. A check that cannot run (a bad URL, a
// CMD without a command) is an error.
func ProbeOf(c Config, exec ExecFunc, dial Dialer) (Probe, error) {
	switch c.Kind() {
	case HTTP:
		return HTTPProbe(c.HTTP, dial)
	case TCP:
		return TCPProbe(c.TCPPort, dial), nil
	case Exec:
		args, err := c.Args()
		if err != nil {
			return nil, err
		}
		if exec == nil {
			return nil, fmt.Errorf("health check %s: this node cannot run commands in containers", c.Test[0])
		}
		return func(ctx context.Context) (int, string, error) {
			code, out, err := exec(ctx, args)
			return code, string(out), err
		}, nil
	}
	return nil, fmt.Errorf("no health check to probe")
}

// ParseURL checks an HTTP probe's URL, "http://:PORT/PATH" or
// "https://:PORT/PATH", and returns the URL the node asks (the port on
// the container's loopback).
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("health check URL %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("health check URL %q: the scheme must be http or https", raw)
	}
	if h := u.Hostname(); h != "" && h != "localhost" && h != "127.0.0.1" {
		return nil, fmt.Errorf("health check URL %q: give no host (the check asks the container's own port, \"%s://:PORT/PATH\")", raw, u.Scheme)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("health check URL %q: the port must be 1 to 65535", raw)
	}
	u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// HTTPProbe GETs the URL inside the container's network namespace: a 2xx
// or 3xx answer (redirects not followed) is healthy. https skips
// certificate verification (a workload's certificate names no address
// the node asks). The output is the status line and the start of the
// body.
func HTTPProbe(raw string, dial Dialer) (Probe, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	target := u.String()
	return func(ctx context.Context) (int, string, error) {
		tr := &http.Transport{
			Proxy:             nil,
			DialContext:       dial,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see HTTPProbe
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return -1, "", err
		}
		req.Header.Set("User-Agent", "shoal-healthcheck")
		resp, err := client.Do(req)
		if err != nil {
			return -1, "", fmt.Errorf("GET %s: %v", raw, unwrapURLError(err))
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxOutput))
		out := strings.TrimSpace(fmt.Sprintf("GET %s: %s\n%s", raw, resp.Status, body))
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return 0, out, nil
		}
		return 1, out, nil
	}, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// TCPProbe connects to the port inside the container's network namespace:
// a completed connect is healthy.
func TCPProbe(port uint32, dial Dialer) Probe {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	return func(ctx context.Context) (int, string, error) {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return 1, fmt.Sprintf("connect to port %d: %v", port, err), nil
		}
		c.Close()
		return 0, fmt.Sprintf("connected to port %d", port), nil
	}
}
