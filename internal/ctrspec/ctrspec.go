// Package ctrspec holds the rules of a container spec that need no node:
// capability names, namespaced sysctls, ulimits, /etc/hosts lines, stop
// signals, sizes and log options. The control API checks a service
// against them when it is written, so a mistake is refused at once and
// names the field; the runtime checks a container again before it runs it.
package ctrspec

import (
	"fmt"
	"math"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Caps maps the capability names docker uses to their numbers.
var Caps = map[string]int{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_FSETID": unix.CAP_FSETID,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_MKNOD": unix.CAP_MKNOD, "CAP_NET_RAW": unix.CAP_NET_RAW,
	"CAP_SETGID": unix.CAP_SETGID, "CAP_SETUID": unix.CAP_SETUID, "CAP_SETFCAP": unix.CAP_SETFCAP,
	"CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_KILL": unix.CAP_KILL, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME,
	"CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER, "CAP_SYS_MODULE": unix.CAP_SYS_MODULE,
	"CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT,
	"CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN, "CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
}

// DefaultCaps is docker's default capability set.
var DefaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// NormalizeCap spells a capability as the kernel's headers do
// ("net_admin" → "CAP_NET_ADMIN"); "ALL" stays.
func NormalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

// CheckCap refuses a capability name the kernel does not have.
func CheckCap(c string) error {
	if n := NormalizeCap(c); n != "ALL" {
		if _, ok := Caps[n]; !ok {
			return fmt.Errorf("unknown capability: %q (e.g. NET_ADMIN, CAP_SYS_TIME or ALL)", c)
		}
	}
	return nil
}

// namespacedSysctls are the IPC sysctls a container's namespaces own, as
// docker (runc) allows them; net.* are the network namespace's.
var namespacedSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// CheckSysctl refuses a sysctl a container cannot own: only the IPC ones
// and, with a network namespace of its own, net.*.
func CheckSysctl(key string, hostNetwork bool) error {
	switch {
	case namespacedSysctls[key], strings.HasPrefix(key, "fs.mqueue.") && len(key) > len("fs.mqueue."):
		return nil
	case strings.HasPrefix(key, "net.") && len(key) > len("net."):
		if hostNetwork {
			return fmt.Errorf("sysctl %q is not allowed in the host's network namespace", key)
		}
		return nil
	}
	return fmt.Errorf("sysctl %q is not allowed: it is not namespaced; only IPC (kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, fs.mqueue.*) and network (net.*) sysctls can be set per container", key)
}

// Rlimits are docker's --ulimit names and their resources.
var Rlimits = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// UlimitNames are the names --ulimit takes, sorted.
func UlimitNames() []string {
	out := make([]string, 0, len(Rlimits))
	for n := range Rlimits {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Ulimit is one resource limit; a negative value is unlimited.
type Ulimit struct {
	Name       string `json:"name"`
	Soft, Hard int64
}

// CheckUlimits refuses an unknown name, a name given twice, and a soft
// limit above its hard one.
func CheckUlimits(us []Ulimit) error {
	seen := map[string]bool{}
	for _, u := range us {
		if _, ok := Rlimits[u.Name]; !ok {
			return fmt.Errorf("ulimit %q: unknown; use one of %s", u.Name, strings.Join(UlimitNames(), ", "))
		}
		if seen[u.Name] {
			return fmt.Errorf("ulimit %q: given twice", u.Name)
		}
		seen[u.Name] = true
		if limit(u.Soft) > limit(u.Hard) {
			return fmt.Errorf("ulimit %s: soft limit %d is above the hard limit %d", u.Name, u.Soft, u.Hard)
		}
	}
	return nil
}

// limit is a ulimit value as the kernel takes it (negative: infinity).
func limit(v int64) uint64 {
	if v < 0 {
		return unix.RLIM_INFINITY
	}
	return uint64(v)
}

// Rlimit is u as the kernel's resource and values.
func Rlimit(u Ulimit) (resource int, soft, hard uint64) {
	return Rlimits[u.Name], limit(u.Soft), limit(u.Hard)
}

// ParseUlimit reads docker's --ulimit NAME=SOFT[:HARD] (HARD defaults to
// SOFT; -1 or "unlimited" is no limit).
func ParseUlimit(s string) (Ulimit, error) {
	name, vals, ok := strings.Cut(s, "=")
	if !ok || name == "" || vals == "" {
		return Ulimit{}, fmt.Errorf("invalid ulimit argument: %q: use NAME=SOFT[:HARD], e.g. nofile=1024:2048", s)
	}
	soft, hard, hasHard := strings.Cut(vals, ":")
	num := func(v string) (int64, error) {
		if v == "unlimited" {
			return -1, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < -1 {
			return 0, fmt.Errorf("invalid ulimit argument: %q: %q is not a number (-1 or unlimited for none)", s, v)
		}
		return n, nil
	}
	u := Ulimit{Name: name}
	var err error
	if u.Soft, err = num(soft); err != nil {
		return Ulimit{}, err
	}
	u.Hard = u.Soft
	if hasHard {
		if u.Hard, err = num(hard); err != nil {
			return Ulimit{}, err
		}
	}
	if err := CheckUlimits([]Ulimit{u}); err != nil {
		return Ulimit{}, err
	}
	return u, nil
}

// CheckHostLine wants an /etc/hosts line "IP HOSTNAME [ALIAS...]".
func CheckHostLine(l string) error {
	f := strings.Fields(l)
	if len(f) < 2 || net.ParseIP(f[0]) == nil || strings.ContainsAny(l, "\n\r#") {
		return fmt.Errorf("extra host %q: want \"IP HOSTNAME [ALIAS...]\"", l)
	}
	return nil
}

// ParseSignal reads SIGTERM, TERM, term or 15.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (e.g. SIGTERM, KILL or 9)", s)
}

// ParseSize reads sizes as docker does: 512, 64k, 64m, 1g, 1.5GiB, 100MB
// (binary units throughout).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := float64(1)
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a size (e.g. 512m, 1g)", s)
	}
	if v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v * mult), nil
}

// LogDriver is the only log driver: docker's json-file, JSON lines on the
// node, rotated.
const LogDriver = "json-file"

// MinLogSize is the smallest max-size taken: a rotation every few lines
// would cost more than it keeps.
const MinLogSize = 4 << 10

// LogOptions reads a log driver and its options, docker's --log-driver and
// --log-opt max-size=SIZE,max-file=N; zero values are the node's defaults.
func LogOptions(driver string, opts map[string]string) (maxSize int64, maxFiles int, err error) {
	if driver != "" && driver != LogDriver {
		return 0, 0, fmt.Errorf("log driver %q is not supported: use %s (the default)", driver, LogDriver)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := opts[k]
		switch k {
		case "max-size":
			n, err := ParseSize(v)
			if err != nil {
				return 0, 0, fmt.Errorf("log option max-size: %w", err)
			}
			if n < MinLogSize {
				return 0, 0, fmt.Errorf("log option max-size: %q is below the smallest, 4k", v)
			}
			maxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return 0, 0, fmt.Errorf("log option max-file: %q: give a whole number from 1 to 1000", v)
			}
			maxFiles = n
		default:
			return 0, 0, fmt.Errorf("unknown log opt '%s' for %s log driver: use max-size or max-file", k, LogDriver)
		}
	}
	return maxSize, maxFiles, nil
}

var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// CheckVolumeName refuses a name the local driver cannot take, in docker's
// words.
func CheckVolumeName(name string) error {
	if !volumeNameRE.MatchString(name) {
		return fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name)
	}
	return nil
}

// CheckVolumeOptions validates the local driver's options, docker's
// volume-opt: type, device and o.
func CheckVolumeOptions(opts map[string]string) error {
	for k := range opts {
		switch k {
		case "type", "device", "o":
		default:
			return fmt.Errorf("invalid option: %q (the local driver takes type, device and o)", k)
		}
	}
	t, dev := opts["type"], opts["device"]
	switch {
	case len(opts) == 0:
		return nil
	case t == "":
		return fmt.Errorf("missing required option: \"type\" (e.g. type=tmpfs or type=none with device=/path,o=bind)")
	case dev == "":
		return fmt.Errorf("missing required option: \"device\"")
	case t == "none" && !hasOpt(opts["o"], "bind") && !hasOpt(opts["o"], "rbind"):
		return fmt.Errorf("type=none needs o=bind (a bind of device, a host directory)")
	case t == "none" && !path.IsAbs(dev):
		return fmt.Errorf("device %q: a bind needs an absolute host path", dev)
	}
	return nil
}

func hasOpt(o, want string) bool {
	for _, f := range strings.Split(o, ",") {
		if f == want {
			return true
		}
	}
	return false
}
