package daemon

import (
	"fmt"
	"net"
	"strings"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/errdefs"
)

// withPort adds port to addr when addr has none.
func withPort(addr, port string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), port)
}

func portOf(addr, def string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "" {
		return p
	}
	return def
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// chooseAdvertise picks the address other nodes use to reach this one:
// the flag, the listen address when it is specific, or the only global
// unicast address of this host.
func chooseAdvertise(requested, configured, listen string) (string, error) {
	port := portOf(listen, defaults.APIPort)
	for _, a := range []string{requested, configured} {
		if a != "" {
			return withPort(a, port), nil
		}
	}
	if h, _, err := net.SplitHostPort(listen); err == nil && !isUnspecified(h) {
		return listen, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	var cands []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			cands = append(cands, n.IP.String())
		}
	}
	switch len(cands) {
	case 1:
		return withPort(cands[0], port), nil
	case 0:
		return "", fmt.Errorf("no address to advertise: this host has no global IPv4 address; pass --advertise-addr: %w", errdefs.ErrInvalid)
	}
	return "", fmt.Errorf("could not choose an address to advertise among %s; pass --advertise-addr: %w", strings.Join(cands, ", "), errdefs.ErrInvalid)
}
