package container

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// NormalizeCap spells a capability as the kernel's headers do
// ("net_admin" → "CAP_NET_ADMIN"); "ALL" stays.
func NormalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

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
			n := NormalizeCap(c)
			if n != "ALL" && !known[n] {
				return nil, fmt.Errorf("unknown capability: %q: %w", c, errdefs.ErrInvalid)
			}
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

// namespacedSysctls are the IPC sysctls a container's namespaces own, as
// docker (runc) allows them; net.* are the network namespace's.
var namespacedSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// CheckSysctl refuses a sysctl a container cannot own: only the IPC ones
// and, with a network namespace of its own, net.*.
func CheckSysctl(key, network string) error {
	switch {
	case namespacedSysctls[key], strings.HasPrefix(key, "fs.mqueue.") && len(key) > len("fs.mqueue."):
		return nil
	case strings.HasPrefix(key, "net.") && len(key) > len("net."):
		if network == shim.NetworkHost {
			return fmt.Errorf("sysctl %q is not allowed in the host's network namespace: %w", key, errdefs.ErrInvalid)
		}
		return nil
	}
	return fmt.Errorf("sysctl %q is not allowed: it is not namespaced; only IPC (kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, fs.mqueue.*) and network (net.*) sysctls can be set per container: %w", key, errdefs.ErrInvalid)
}

// rlimits are docker's --ulimit names.
var rlimits = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// UlimitNames are the names --ulimit takes.
func UlimitNames() []string {
	out := make([]string, 0, len(rlimits))
	for n := range rlimits {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// shimRlimits checks ulimits and turns them into the init's.
func shimRlimits(us []Ulimit) ([]shim.Rlimit, error) {
	var out []shim.Rlimit
	seen := map[string]bool{}
	for _, u := range us {
		r, ok := rlimits[u.Name]
		if !ok {
			return nil, fmt.Errorf("ulimit %q: unknown; use one of %s: %w", u.Name, strings.Join(UlimitNames(), ", "), errdefs.ErrInvalid)
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("ulimit %q: given twice: %w", u.Name, errdefs.ErrInvalid)
		}
		seen[u.Name] = true
		soft, hard := uint64(u.Soft), uint64(u.Hard)
		if u.Soft < 0 {
			soft = unix.RLIM_INFINITY
		}
		if u.Hard < 0 {
			hard = unix.RLIM_INFINITY
		}
		if soft > hard {
			return nil, fmt.Errorf("ulimit %s: soft limit %d is above the hard limit %d: %w", u.Name, u.Soft, u.Hard, errdefs.ErrInvalid)
		}
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
		f := strings.Fields(l)
		if len(f) < 2 || net.ParseIP(f[0]) == nil || strings.ContainsAny(l, "\n\r") {
			return fmt.Errorf("extra host %q: want \"IP HOSTNAME [ALIAS...]\": %w", l, errdefs.ErrInvalid)
		}
	}
	return nil
}

// checkSpec refuses what the init could not do, before anything is made.
func checkSpec(spec Spec) error {
	for k := range spec.Sysctls {
		if err := CheckSysctl(k, spec.Network); err != nil {
			return err
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
