package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// resolveTarget resolves a mount target inside the container's root.
// The init runs it after pivot_root, so "/" is the container's root and
// symlinks are followed as if it were the whole filesystem; the host's
// root, still reachable under oldRoot until setup ends, is refused.
func resolveTarget(target string) (string, error) {
	if !filepath.IsAbs(target) {
		return "", fmt.Errorf("mount target %q: must be an absolute path", target)
	}
	p, err := securejoin.SecureJoin("/", target)
	if err != nil {
		return "", fmt.Errorf("resolve mount target %s: %w", target, err)
	}
	if p == oldRoot || strings.HasPrefix(p, oldRoot+"/") {
		return "", fmt.Errorf("mount target %s resolves outside the container (to %s, through a symlink in the image)", target, p)
	}
	if p == "/" {
		return "", fmt.Errorf("mount target %s: cannot mount over the container's root", target)
	}
	return p, nil
}

var propagations = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
}

// userMount makes one of the container's mounts (after pivot_root; a
// bind's source is a host path, reached under oldRoot).
func userMount(m Mount) error {
	target, err := resolveTarget(m.Target)
	if err != nil {
		return err
	}
	switch m.Kind {
	case KindTmpfs:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		// docker's tmpfs mounts: nosuid, nodev, noexec.
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if m.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount("tmpfs", target, "tmpfs", flags, m.Data); err != nil {
			return fmt.Errorf("tmpfs (%s): %w", m.Data, err)
		}
		return nil
	case KindBind:
		prop, ok := propagations[m.Propagation]
		if m.Propagation == "" {
			prop, ok = propagations["rprivate"], true
		}
		if !ok {
			return fmt.Errorf("bind propagation %q: use rprivate, private, rshared, shared, rslave or slave", m.Propagation)
		}
		if err := bindInto(oldRoot+m.Source, target, m.ReadOnly); err != nil {
			return err
		}
		return unix.Mount("", target, "", prop, "")
	}
	return fmt.Errorf("mount kind %q: use bind or tmpfs", m.Kind)
}

// setSysctls writes each under /proc/sys, inside the container's own
// namespaces (the runtime let only namespaced ones through).
func setSysctls(sysctls map[string]string) error {
	for k, v := range sysctls {
		if strings.Contains(k, "..") || strings.ContainsAny(k, "/") {
			return fmt.Errorf("sysctl %q: not a sysctl name", k)
		}
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sysctl %s: this kernel has no such setting", k)
			}
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// setRlimits applies the limits to this process, which the workload
// inherits through exec.
func setRlimits(limits []Rlimit) error {
	for _, l := range limits {
		if err := unix.Setrlimit(l.Resource, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("ulimit %d (soft %d, hard %d): %w", l.Resource, l.Soft, l.Hard, err)
		}
	}
	return nil
}
