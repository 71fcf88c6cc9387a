package harness

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/shoal-run/shoal/netoverlay"
)

// InNetns runs fn on an OS thread switched into the network namespace at
// path; sockets fn creates stay there (see netoverlay.InNetns). The test
// process can listen and dial inside namespaces it has no route into,
// without adding anything to the machine's own namespace.
func InNetns(path string, fn func() error) error { return netoverlay.InNetns(path, fn) }

// NetnsPath is the path of a namespace made by the harness.
func NetnsPath(name string) string { return filepath.Join(netnsDir, name) }

// Listen opens a listener inside the host's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(NetnsPath(h.NS), func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext connects from inside the host's namespace, as a program
// running on that host would.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return DialIn(ctx, NetnsPath(h.NS), network, addr)
}

// DialIn connects from inside the network namespace at path.
func DialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(path, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient is an HTTP client whose connections start on the host, never
// through a proxy.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       h.DialContext,
		DisableKeepAlives: true,
	}}
}
