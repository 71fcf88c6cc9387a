package cli

import (
	"encoding/csv"
	"fmt"
	"path"
	"strconv"
	"strings"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// parseMount reads docker's --mount syntax: comma-separated key=value
// fields, type=bind|volume|tmpfs (default volume), source/src,
// target/dst/destination, readonly/ro[=bool], volume-nocopy[=bool],
// volume-label=k=v, volume-driver, volume-opt=k=v, tmpfs-size,
// tmpfs-mode (octal), bind-propagation, consistency (ignored, as on
// Linux).
func parseMount(s string) (*shoalv1.Mount, error) {
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("invalid mount %q: %w", s, err)
	}
	m := &shoalv1.Mount{Type: shoalv1.MountType_MOUNT_TYPE_VOLUME}
	var (
		bind   shoalv1.BindOptions
		vol    shoalv1.VolumeOptions
		tmpfs  shoalv1.TmpfsOptions
		hasVol bool
		hasBnd bool
		hasTmp bool
	)
	volOpts := map[string]string{}
	for _, field := range fields {
		key, val, hasVal := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		boolVal := func() (bool, error) {
			if !hasVal {
				return true, nil
			}
			switch strings.ToLower(val) {
			case "1", "true":
				return true, nil
			case "0", "false":
				return false, nil
			}
			return false, fmt.Errorf("invalid value for %s: %s", key, val)
		}
		switch key {
		case "readonly", "ro":
			if m.ReadOnly, err = boolVal(); err != nil {
				return nil, err
			}
			continue
		case "volume-nocopy":
			if vol.NoCopy, err = boolVal(); err != nil {
				return nil, err
			}
			hasVol = true
			continue
		}
		if !hasVal {
			return nil, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
		}
		switch key {
		case "type":
			switch strings.ToLower(val) {
			case "bind":
				m.Type = shoalv1.MountType_MOUNT_TYPE_BIND
			case "volume":
				m.Type = shoalv1.MountType_MOUNT_TYPE_VOLUME
			case "tmpfs":
				m.Type = shoalv1.MountType_MOUNT_TYPE_TMPFS
			default:
				return nil, fmt.Errorf("invalid mount type %q: use bind, volume or tmpfs", val)
			}
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "bind-propagation":
			switch val {
			case "rprivate", "private", "rshared", "shared", "rslave", "slave":
				bind.Propagation = val
			default:
				return nil, fmt.Errorf("invalid bind-propagation %q: use rprivate, private, rshared, shared, rslave or slave", val)
			}
			hasBnd = true
		case "volume-driver":
			if vol.DriverConfig == nil {
				vol.DriverConfig = &shoalv1.Driver{}
			}
			vol.DriverConfig.Name = val
			hasVol = true
		case "volume-label":
			k, v, _ := strings.Cut(val, "=")
			if vol.Labels == nil {
				vol.Labels = map[string]string{}
			}
			vol.Labels[k] = v
			hasVol = true
		case "volume-opt":
			k, v, ok := strings.Cut(val, "=")
			if !ok {
				return nil, fmt.Errorf("invalid volume-opt %q: must be key=value", val)
			}
			volOpts[k] = v
			hasVol = true
		case "tmpfs-size":
			n, err := parseBytes(val)
			if err != nil {
				return nil, fmt.Errorf("invalid value for %s: %s", key, val)
			}
			tmpfs.SizeBytes = n
			hasTmp = true
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil || n > 0o7777 {
				return nil, fmt.Errorf("invalid value for %s: %s (octal permission bits, e.g. 1770)", key, val)
			}
			tmpfs.Mode = uint32(n)
			hasTmp = true
		case "consistency":
		default:
			return nil, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if m.Target == "" {
		return nil, fmt.Errorf("target is required")
	}
	if !path.IsAbs(m.Target) {
		return nil, fmt.Errorf("invalid mount target %q: must be an absolute path", m.Target)
	}
	if len(volOpts) > 0 {
		if vol.DriverConfig == nil {
			vol.DriverConfig = &shoalv1.Driver{}
		}
		vol.DriverConfig.Options = volOpts
	}
	switch m.Type {
	case shoalv1.MountType_MOUNT_TYPE_BIND:
		if hasVol || hasTmp {
			return nil, fmt.Errorf("cannot mix 'volume-*' or 'tmpfs-*' options with mount type 'bind'")
		}
		if m.Source == "" {
			return nil, fmt.Errorf("source is required for a bind mount")
		}
		if hasBnd {
			m.BindOptions = &bind
		}
	case shoalv1.MountType_MOUNT_TYPE_VOLUME:
		if hasBnd || hasTmp {
			return nil, fmt.Errorf("cannot mix 'bind-*' or 'tmpfs-*' options with mount type 'volume'")
		}
		if hasVol {
			m.VolumeOptions = &vol
		}
	case shoalv1.MountType_MOUNT_TYPE_TMPFS:
		if hasBnd || hasVol {
			return nil, fmt.Errorf("cannot mix 'bind-*' or 'volume-*' options with mount type 'tmpfs'")
		}
		if m.Source != "" {
			return nil, fmt.Errorf("invalid mount: a tmpfs mount takes no source, got %q", m.Source)
		}
		if hasTmp {
			m.TmpfsOptions = &tmpfs
		}
	}
	return m, nil
}

// parseVolumeFlag reads docker run's -v: [SOURCE:]TARGET[:OPTIONS], where
// an absolute SOURCE is a bind mount and another a named volume, no
// SOURCE an anonymous volume; OPTIONS are ro, rw, nocopy and a
// propagation (comma-separated).
func parseVolumeFlag(s string) (*shoalv1.Mount, error) {
	parts := strings.Split(s, ":")
	m := &shoalv1.Mount{Type: shoalv1.MountType_MOUNT_TYPE_VOLUME}
	var opts string
	switch len(parts) {
	case 1:
		m.Target = parts[0]
	case 2:
		if path.IsAbs(parts[1]) {
			m.Source, m.Target = parts[0], parts[1]
		} else {
			m.Target, opts = parts[0], parts[1]
		}
	case 3:
		m.Source, m.Target, opts = parts[0], parts[1], parts[2]
	default:
		return nil, fmt.Errorf("invalid volume specification: '%s'", s)
	}
	if m.Target == "" || !path.IsAbs(m.Target) {
		return nil, fmt.Errorf("invalid volume specification: '%s': the target must be an absolute path", s)
	}
	if m.Source != "" && (path.IsAbs(m.Source) || strings.HasPrefix(m.Source, ".")) {
		if !path.IsAbs(m.Source) {
			return nil, fmt.Errorf("invalid volume specification: '%s': a bind source must be an absolute path", s)
		}
		m.Type = shoalv1.MountType_MOUNT_TYPE_BIND
	}
	if opts == "" {
		return m, nil
	}
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro":
			m.ReadOnly = true
		case "rw":
			m.ReadOnly = false
		case "nocopy":
			if m.Type != shoalv1.MountType_MOUNT_TYPE_VOLUME {
				return nil, fmt.Errorf("invalid volume specification: '%s': nocopy is for volumes", s)
			}
			m.VolumeOptions = &shoalv1.VolumeOptions{NoCopy: true}
		case "rprivate", "private", "rshared", "shared", "rslave", "slave":
			if m.Type != shoalv1.MountType_MOUNT_TYPE_BIND {
				return nil, fmt.Errorf("invalid volume specification: '%s': %s is for bind mounts", s, o)
			}
			m.BindOptions = &shoalv1.BindOptions{Propagation: o}
		case "z", "Z", "consistent", "cached", "delegated":
		default:
			return nil, fmt.Errorf("invalid volume specification: '%s': unknown option %q", s, o)
		}
	}
	return m, nil
}

// parseTmpfsFlag reads docker run's --tmpfs: TARGET[:OPTIONS], OPTIONS
// as mount(8)'s: size=64m, mode=1777 (others refused).
func parseTmpfsFlag(s string) (*shoalv1.Mount, error) {
	target, opts, _ := strings.Cut(s, ":")
	if !path.IsAbs(target) {
		return nil, fmt.Errorf("invalid tmpfs %q: the target must be an absolute path", s)
	}
	m := &shoalv1.Mount{Type: shoalv1.MountType_MOUNT_TYPE_TMPFS, Target: target}
	if opts == "" {
		return m, nil
	}
	t := &shoalv1.TmpfsOptions{}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			n, err := parseBytes(v)
			if err != nil {
				return nil, fmt.Errorf("invalid tmpfs %q: size: %w", s, err)
			}
			t.SizeBytes = n
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return nil, fmt.Errorf("invalid tmpfs %q: mode %q is not octal permission bits", s, v)
			}
			t.Mode = uint32(n)
		case "rw", "exec", "noexec", "nosuid", "nodev":
		case "ro":
			m.ReadOnly = true
		default:
			return nil, fmt.Errorf("invalid tmpfs %q: unknown option %q (use size= and mode=)", s, k)
		}
	}
	m.TmpfsOptions = t
	return m, nil
}

// parseMounts parses each value of a flag with parse.
func parseMounts(flag string, in []string, parse func(string) (*shoalv1.Mount, error)) ([]*shoalv1.Mount, error) {
	var out []*shoalv1.Mount
	for _, s := range in {
		m, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q for %q flag: %w", s, flag, err)
		}
		out = append(out, m)
	}
	return out, nil
}
