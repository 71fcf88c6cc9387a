package container

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shoal-run/shoal/internal/ctrspec"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// Capabilities is docker's default set changed by add and drop, with
// docker's rules: add ALL grants every capability but the dropped ones;
// drop ALL keeps only the added ones; otherwise the defaults lose the
// dropped ones and gain the added ones (an added one wins over a drop).
func Capabilities(add, drop []string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range shim.AllCaps() {
		known[c] = true
	}
	norm := func(list []string) (map[string]bool, error) {
		out := map[string]bool{}
		for _, c := range list {
			if err := ctrspec.CheckCap(c); err != nil {
				return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
			}
			n := ctrspec.NormalizeCap(c)
			out[n] = true
		}
		return out, nil
	}
	a, err := norm(add)
	if err != nil {
		return nil, err
	}
	d, err := norm(drop)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	switch {
	case a["ALL"]:
		for c := range known {
			if !d[c] {
				set[c] = true
			}
		}
	case d["ALL"]:
		for c := range a {
			set[c] = true
		}
	default:
		for _, c := range shim.DefaultCaps {
			if !d[c] {
				set[c] = true
			}
		}
		for c := range a {
			set[c] = true
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// shimRlimits checks ulimits and turns them into the init's.
func shimRlimits(us []Ulimit) ([]shim.Rlimit, error) {
	if err := ctrspec.CheckUlimits(us); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	out := make([]shim.Rlimit, 0, len(us))
	for _, u := range us {
		r, soft, hard := ctrspec.Rlimit(u)
		out = append(out, shim.Rlimit{Resource: r, Soft: soft, Hard: hard})
	}
	return out, nil
}

// resolvConf lays a DNS config over a base resolv.conf: given
// nameservers, search domains or options replace the base's lines of
// that kind, as docker's --dns, --dns-search and --dns-option do.
func resolvConf(base string, dns DNSConfig) string {
	if len(dns.Nameservers) == 0 && len(dns.Search) == 0 && len(dns.Options) == 0 {
		return base
	}
	var keep []string
	for _, line := range strings.Split(base, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			switch {
			case f[0] == "nameserver" && len(dns.Nameservers) > 0,
				(f[0] == "search" || f[0] == "domain") && len(dns.Search) > 0,
				f[0] == "options" && len(dns.Options) > 0:
				continue
			}
		}
		if strings.TrimSpace(line) != "" {
			keep = append(keep, line)
		}
	}
	for _, ns := range dns.Nameservers {
		keep = append(keep, "nameserver "+ns)
	}
	if len(dns.Search) > 0 {
		keep = append(keep, "search "+strings.Join(dns.Search, " "))
	}
	if len(dns.Options) > 0 {
		keep = append(keep, "options "+strings.Join(dns.Options, " "))
	}
	return strings.Join(keep, "\n") + "\n"
}

// checkExtraHosts wants "IP NAME [ALIAS...]" lines.
func checkExtraHosts(lines []string) error {
	for _, l := range lines {
		if err := ctrspec.CheckHostLine(l); err != nil {
			return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
		}
	}
	return nil
}

// checkSpec refuses what the init could not do, before anything is made.
func checkSpec(spec Spec) error {
	for k := range spec.Sysctls {
		if err := ctrspec.CheckSysctl(k, spec.Network == shim.NetworkHost); err != nil {
			return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
		}
	}
	if _, err := shimRlimits(spec.Ulimits); err != nil {
		return err
	}
	if _, err := Capabilities(spec.CapAdd, spec.CapDrop); err != nil {
		return err
	}
	if err := checkExtraHosts(spec.ExtraHosts); err != nil {
		return err
	}
	for _, ns := range spec.DNS.Nameservers {
		if net.ParseIP(ns) == nil {
			return fmt.Errorf("dns server %q: not an IP address: %w", ns, errdefs.ErrInvalid)
		}
	}
	targets := map[string]bool{}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) == "/" {
			return fmt.Errorf("mount target %q: must be an absolute path other than /: %w", m.Target, errdefs.ErrInvalid)
		}
		t := filepath.Clean(m.Target)
		if targets[t] {
			return fmt.Errorf("duplicate mount point: %s: %w", t, errdefs.ErrInvalid)
		}
		targets[t] = true
	}
	return nil
}

// tmpfsData is a tmpfs mount's options.
func tmpfsData(size int64, mode os.FileMode) string {
	if mode == 0 {
		mode = 0o1777
	}
	data := fmt.Sprintf("mode=%o", uint32(mode.Perm())|modeBits(mode))
	if size > 0 {
		data += fmt.Sprintf(",size=%d", size)
	}
	return data
}

// modeBits turns os.FileMode's setuid/setgid/sticky into the octal bits.
func modeBits(m os.FileMode) uint32 {
	var b uint32
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b | uint32(m)&0o7000
}
