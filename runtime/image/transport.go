package image

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// plainHTTPAllowed decides whether registry ("host[:port]") may be spoken
// to without TLS: only loopback registries (127.0.0.0/8, ::1, localhost)
// and those listed in insecure. An insecure entry with a port matches only
// that port; without one it matches the host on any port.
func plainHTTPAllowed(registry string, insecure []string) bool {
	host, _ := splitHostPort(registry)
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	return listedInsecure(registry, insecure)
}

// listedInsecure reports whether registry is one of insecure.
func listedInsecure(registry string, insecure []string) bool {
	host, port := splitHostPort(registry)
	for _, e := range insecure {
		eh, ep := splitHostPort(e)
		if strings.EqualFold(eh, host) && (ep == "" || ep == port) {
			return true
		}
	}
	return false
}

// splitHostPort splits "host[:port]", "[v6]:port" or a bare IPv6 address.
func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
}

// validateInsecure checks the InsecureRegistries option.
func validateInsecure(list []string) error {
	for _, e := range list {
		if strings.Contains(e, "://") || strings.Contains(e, "/") {
			return fmt.Errorf("insecure registry %q: give host[:port] without a scheme or path: %w", e, errdefs.ErrInvalid)
		}
		if u, err := url.Parse("//" + e); err != nil || u.Host != e || e == "" {
			return fmt.Errorf("insecure registry %q: not a valid host[:port]: %w", e, errdefs.ErrInvalid)
		}
	}
	return nil
}

// guardTransport enforces the plain-HTTP rule on every request the
// registry client makes (pings, token endpoints, redirects), whatever the
// library decides to try, and skips certificate checks only for registries
// the operator listed as insecure.
type guardTransport struct {
	insecure   []string
	secure     *http.Transport
	skipVerify *http.Transport
}

func newGuardTransport(insecure []string) *guardTransport {
	secure := http.DefaultTransport.(*http.Transport).Clone()
	skip := secure.Clone()
	skip.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries listed as insecure
	return &guardTransport{insecure: insecure, secure: secure, skipVerify: skip}
}

func (g *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "http":
		if !plainHTTPAllowed(req.URL.Host, g.insecure) {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, &plainHTTPError{host: req.URL.Host}
		}
	case "https":
		if listedInsecure(req.URL.Host, g.insecure) {
			return g.skipVerify.RoundTrip(req)
		}
	}
	return g.secure.RoundTrip(req)
}

func (g *guardTransport) closeIdle() {
	g.secure.CloseIdleConnections()
	g.skipVerify.CloseIdleConnections()
}

// plainHTTPError is the refusal of a plain-HTTP request.
type plainHTTPError struct{ host string }

func (e *plainHTTPError) Error() string {
	return fmt.Sprintf("refusing plain http to %s: only loopback registries and those listed as insecure registries may be used without TLS", e.host)
}

func (e *plainHTTPError) Unwrap() error { return errdefs.ErrFailedPrecond }
