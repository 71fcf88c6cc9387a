package controlapi

import (
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strings"

	"github.com/shoal-run/shoal/internal/ctrspec"
	"github.com/shoal-run/shoal/internal/regauth"
	"github.com/shoal-run/shoal/internal/tasktmpl"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// bindPropagations are the propagation modes of a bind mount, docker's.
var bindPropagations = map[string]bool{"": true, "rprivate": true, "private": true, "rshared": true, "shared": true, "rslave": true, "slave": true}

// validateContainer checks the container spec's fields beyond the basic
// ones: templates, mounts, capabilities, sysctls, ulimits, DNS, hosts,
// groups, the stop signal, the pids limit and the log driver. A node
// meets none it cannot run.
func validateContainer(f *fieldErrors, t *shoalv1.TaskSpec) {
	c := t.GetContainer()
	if h := c.GetHostname(); strings.Contains(h, "{{") {
		if x, err := tasktmpl.Check(h); err != nil {
			f.add("service.hostname", "%v", err)
		} else if len(x) > 63 || !hostnameRE.MatchString(x) {
			f.add("service.hostname", "%q does not make a valid hostname (it gives %q for a task)", h, x)
		}
	}
	for i, e := range c.GetEnv() {
		if _, v, _ := strings.Cut(e, "="); strings.Contains(v, "{{") {
			if _, err := tasktmpl.Check(v); err != nil {
				f.add(fmt.Sprintf("service.env[%d]", i), "%v", err)
			}
		}
	}
	validateMounts(f, c.GetMounts())
	for _, list := range []struct {
		field string
		caps  []string
	}{{"service.cap_add", c.GetCapAdd()}, {"service.cap_drop", c.GetCapDrop()}} {
		for i, cp := range list.caps {
			if err := ctrspec.CheckCap(cp); err != nil {
				f.add(fmt.Sprintf("%s[%d]", list.field, i), "%v", err)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.GetSysctls())) {
		// A task always has a network namespace of its own.
		if err := ctrspec.CheckSysctl(k, false); err != nil {
			f.add("service.sysctls", "%v", err)
		}
	}
	var uls []ctrspec.Ulimit
	for _, u := range c.GetUlimits() {
		uls = append(uls, ctrspec.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	if err := ctrspec.CheckUlimits(uls); err != nil {
		f.add("service.ulimits", "%v", err)
	}
	for i, ns := range c.GetDnsConfig().GetNameservers() {
		if net.ParseIP(ns) == nil {
			f.add(fmt.Sprintf("service.dns[%d]", i), "IP address is not correctly formatted: %s", ns)
		}
	}
	for i, s := range append(append([]string{}, c.GetDnsConfig().GetSearch()...), c.GetDnsConfig().GetOptions()...) {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			f.add("service.dns_search_or_option", "entry %d %q must be one word", i, s)
		}
	}
	for i, h := range c.GetHosts() {
		if err := ctrspec.CheckHostLine(h); err != nil {
			f.add(fmt.Sprintf("service.hosts[%d]", i), "%v", err)
		}
	}
	for i, g := range c.GetGroups() {
		if g == "" || strings.ContainsAny(g, ": \t\r\n") {
			f.add(fmt.Sprintf("service.groups[%d]", i), "%q must be a group name or number", g)
		}
	}
	if s := c.GetStopSignal(); s != "" {
		if _, err := ctrspec.ParseSignal(s); err != nil {
			f.add("service.stop_signal", "%v", err)
		}
	}
	if p := t.GetResources().GetLimits().GetPids(); p < 0 {
		f.add("service.limit_pids", "must be >= 0 (0 is unlimited), got %d", p)
	}
	if p := t.GetResources().GetReservations().GetPids(); p != 0 {
		f.add("service.reserve_pids", "cannot be reserved, only limited (--limit-pids)")
	}
	if a := c.GetPullOptions().GetRegistryAuth(); a != "" {
		if _, err := regauth.Decode(a); err != nil {
			f.add("service.registry_auth", "%v", err) // never the value
		}
	}
	if ld := t.GetLogDriver(); ld != nil {
		if _, _, err := ctrspec.LogOptions(ld.GetName(), ld.GetOptions()); err != nil {
			f.add("service.log_driver", "%v", err)
		}
	}
}

func validateMounts(f *fieldErrors, ms []*shoalv1.Mount) {
	targets := map[string]int{}
	for i, m := range ms {
		field := fmt.Sprintf("service.mounts[%d]", i)
		target, err := tasktmpl.Check(m.GetTarget())
		if err != nil {
			f.add(field, "target: %v", err)
			continue
		}
		source, err := tasktmpl.Check(m.GetSource())
		if err != nil {
			f.add(field, "source: %v", err)
			continue
		}
		if !path.IsAbs(target) || path.Clean(target) == "/" {
			f.add(field, "invalid mount target %q: must be an absolute path other than /", m.GetTarget())
		} else if j, dup := targets[path.Clean(target)]; dup && !strings.Contains(m.GetTarget(), "{{") {
			f.add(field, "duplicate mount point: %s (also service.mounts[%d])", path.Clean(target), j)
		} else {
			targets[path.Clean(target)] = i
		}
		bind, vol, tmpfs := m.GetBindOptions(), m.GetVolumeOptions(), m.GetTmpfsOptions()
		switch m.GetType() {
		case shoalv1.MountType_MOUNT_TYPE_BIND:
			switch {
			case vol != nil || tmpfs != nil:
				f.add(field, "cannot mix 'volume-*' or 'tmpfs-*' options with mount type 'bind'")
			case source == "":
				f.add(field, "source is required for a bind mount")
			case !path.IsAbs(source):
				f.add(field, "invalid bind source %q: must be an absolute path on the node", m.GetSource())
			case !bindPropagations[bind.GetPropagation()]:
				f.add(field, "invalid bind-propagation %q: use rprivate, private, rshared, shared, rslave or slave", bind.GetPropagation())
			}
		case shoalv1.MountType_MOUNT_TYPE_VOLUME:
			switch {
			case bind != nil || tmpfs != nil:
				f.add(field, "cannot mix 'bind-*' or 'tmpfs-*' options with mount type 'volume'")
			case source != "" && ctrspec.CheckVolumeName(source) != nil:
				f.add(field, "%v", ctrspec.CheckVolumeName(source))
			}
			if d := vol.GetDriverConfig(); d != nil {
				if d.GetName() != "" && d.GetName() != "local" {
					f.add(field, "volume driver %q is not supported: use local (the default)", d.GetName())
				} else if err := ctrspec.CheckVolumeOptions(d.GetOptions()); err != nil {
					f.add(field, "volume-opt: %v", err)
				}
			}
			validLabels(f, field+".volume_labels", vol.GetLabels())
		case shoalv1.MountType_MOUNT_TYPE_TMPFS:
			switch {
			case bind != nil || vol != nil:
				f.add(field, "cannot mix 'bind-*' or 'volume-*' options with mount type 'tmpfs'")
			case m.GetSource() != "":
				f.add(field, "a tmpfs mount takes no source, got %q", m.GetSource())
			case tmpfs.GetSizeBytes() < 0:
				f.add(field, "tmpfs-size must be >= 0, got %d", tmpfs.GetSizeBytes())
			case tmpfs.GetMode()&^0o7777 != 0:
				f.add(field, "tmpfs-mode %o has bits beyond 07777", tmpfs.GetMode())
			}
		default:
			f.add(field, "invalid mount type: use bind, volume or tmpfs")
		}
	}
}
