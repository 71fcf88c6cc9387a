// Package containerspec converts the wire's container pieces (mounts,
// ulimits, DNS) into the runtime's and back, for both the worker (tasks)
// and the node's runtime API (shoal run); it knows nothing else.
package containerspec

import (
	"os"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
)

var mountTypes = map[shoalv1.MountType]string{
	shoalv1.MountType_MOUNT_TYPE_BIND:   container.MountBind,
	shoalv1.MountType_MOUNT_TYPE_VOLUME: container.MountVolume,
	shoalv1.MountType_MOUNT_TYPE_TMPFS:  container.MountTmpfs,
}

// MountFrom is the runtime's mount for a wire one; an unknown type stays
// empty, which the runtime refuses.
func MountFrom(m *shoalv1.Mount) container.Mount {
	out := container.Mount{
		Type: mountTypes[m.GetType()], Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadOnly(),
		Propagation: m.GetBindOptions().GetPropagation(),
		NoCopy:      m.GetVolumeOptions().GetNoCopy(), VolumeLabels: m.GetVolumeOptions().GetLabels(),
		VolumeDriver: m.GetVolumeOptions().GetDriverConfig().GetName(), VolumeOptions: m.GetVolumeOptions().GetDriverConfig().GetOptions(),
		TmpfsSize: m.GetTmpfsOptions().GetSizeBytes(), TmpfsMode: os.FileMode(m.GetTmpfsOptions().GetMode()),
	}
	return out
}

// MountsFrom converts a list.
func MountsFrom(ms []*shoalv1.Mount) []container.Mount {
	var out []container.Mount
	for _, m := range ms {
		out = append(out, MountFrom(m))
	}
	return out
}

// MountTo is the wire form of a runtime mount.
func MountTo(m container.Mount) *shoalv1.Mount {
	out := &shoalv1.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	for t, name := range mountTypes {
		if name == m.Type {
			out.Type = t
		}
	}
	switch m.Type {
	case container.MountBind:
		if m.Propagation != "" {
			out.BindOptions = &shoalv1.BindOptions{Propagation: m.Propagation}
		}
	case container.MountVolume:
		vo := &shoalv1.VolumeOptions{NoCopy: m.NoCopy, Labels: m.VolumeLabels}
		if m.VolumeDriver != "" || len(m.VolumeOptions) > 0 {
			vo.DriverConfig = &shoalv1.Driver{Name: m.VolumeDriver, Options: m.VolumeOptions}
		}
		out.VolumeOptions = vo
	case container.MountTmpfs:
		out.TmpfsOptions = &shoalv1.TmpfsOptions{SizeBytes: m.TmpfsSize, Mode: uint32(m.TmpfsMode)}
	}
	return out
}

// UlimitsFrom converts ulimits.
func UlimitsFrom(us []*shoalv1.Ulimit) []container.Ulimit {
	var out []container.Ulimit
	for _, u := range us {
		out = append(out, container.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	return out
}

// DNSFrom converts a DNS config.
func DNSFrom(d *shoalv1.DNSConfig) container.DNSConfig {
	return container.DNSConfig{Nameservers: d.GetNameservers(), Search: d.GetSearch(), Options: d.GetOptions()}
}
