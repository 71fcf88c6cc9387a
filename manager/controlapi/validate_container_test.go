package controlapi

import (
	"strings"
	"testing"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestValidateContainer(t *testing.T) {
	vol := shoalv1.MountType_MOUNT_TYPE_VOLUME
	bind := shoalv1.MountType_MOUNT_TYPE_BIND
	tmpfs := shoalv1.MountType_MOUNT_TYPE_TMPFS
	for _, tc := range []struct {
		name string
		edit func(*shoalv1.TaskSpec)
		want string // "" when valid
	}{
		{"everything valid", func(t *shoalv1.TaskSpec) {
			c := t.Container
			c.Hostname = "{{.Service.Name}}-{{.Task.Slot}}"
			c.Env = []string{"NODE={{.Node.Hostname}}"}
			c.Mounts = []*shoalv1.Mount{
				{Type: vol, Source: "data-{{.Task.Slot}}", Target: "/data"},
				{Type: vol, Target: "/anon"},
				{Type: bind, Source: "/srv", Target: "/srv", BindOptions: &shoalv1.BindOptions{Propagation: "rslave"}},
				{Type: tmpfs, Target: "/tmp", TmpfsOptions: &shoalv1.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1777}},
				{Type: vol, Source: "fast", Target: "/fast", VolumeOptions: &shoalv1.VolumeOptions{DriverConfig: &shoalv1.Driver{Name: "local", Options: map[string]string{"type": "tmpfs", "device": "tmpfs"}}}},
			}
			c.CapAdd, c.CapDrop = []string{"CAP_NET_ADMIN"}, []string{"ALL"}
			c.Sysctls = map[string]string{"net.core.somaxconn": "1024", "kernel.shmmni": "100"}
			c.Ulimits = []*shoalv1.Ulimit{{Name: "nofile", Soft: 10, Hard: 20}}
			c.DnsConfig = &shoalv1.DNSConfig{Nameservers: []string{"10.0.0.2"}, Search: []string{"corp"}, Options: []string{"ndots:2"}}
			c.Hosts, c.Groups, c.StopSignal = []string{"10.0.0.5 db"}, []string{"audio", "29"}, "SIGUSR1"
			t.Resources = &shoalv1.ResourceRequirements{Limits: &shoalv1.Resources{Pids: 10}}
			t.LogDriver = &shoalv1.Driver{Name: "json-file", Options: map[string]string{"max-size": "1m", "max-file": "3"}}
		}, ""},
		{"bad hostname template", func(t *shoalv1.TaskSpec) { t.Container.Hostname = "{{.Service.Nope}}" }, "service.hostname"},
		{"hostname template gives a bad name", func(t *shoalv1.TaskSpec) { t.Container.Hostname = "{{.Task.Name}}_x" }, "does not make a valid hostname"},
		{"bad env template", func(t *shoalv1.TaskSpec) { t.Container.Env = []string{"A={{.Task.Slot"} }, "service.env[0]"},
		{"relative target", func(t *shoalv1.TaskSpec) { t.Container.Mounts = []*shoalv1.Mount{{Type: tmpfs, Target: "tmp"}} }, "must be an absolute path"},
		{"target /", func(t *shoalv1.TaskSpec) { t.Container.Mounts = []*shoalv1.Mount{{Type: tmpfs, Target: "/"}} }, "other than /"},
		{"duplicate target", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: tmpfs, Target: "/a"}, {Type: vol, Source: "v1", Target: "/a/"}}
		}, "duplicate mount point: /a"},
		{"bind without source", func(t *shoalv1.TaskSpec) { t.Container.Mounts = []*shoalv1.Mount{{Type: bind, Target: "/a"}} }, "source is required"},
		{"relative bind source", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: bind, Source: "srv", Target: "/a"}}
		}, "must be an absolute path on the node"},
		{"bad propagation", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: bind, Source: "/srv", Target: "/a", BindOptions: &shoalv1.BindOptions{Propagation: "up"}}}
		}, "invalid bind-propagation"},
		{"bind with volume options", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: bind, Source: "/srv", Target: "/a", VolumeOptions: &shoalv1.VolumeOptions{}}}
		}, "cannot mix"},
		{"bad volume name", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: vol, Source: "a b", Target: "/a"}}
		}, "invalid characters for a local volume name"},
		{"other volume driver", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: vol, Source: "v1", Target: "/a", VolumeOptions: &shoalv1.VolumeOptions{DriverConfig: &shoalv1.Driver{Name: "nfs"}}}}
		}, `volume driver "nfs" is not supported`},
		{"bad volume-opt", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: vol, Source: "v1", Target: "/a", VolumeOptions: &shoalv1.VolumeOptions{DriverConfig: &shoalv1.Driver{Options: map[string]string{"size": "1"}}}}}
		}, "invalid option"},
		{"tmpfs with source", func(t *shoalv1.TaskSpec) {
			t.Container.Mounts = []*shoalv1.Mount{{Type: tmpfs, Source: "x", Target: "/a"}}
		}, "takes no source"},
		{"no mount type", func(t *shoalv1.TaskSpec) { t.Container.Mounts = []*shoalv1.Mount{{Target: "/a"}} }, "invalid mount type"},
		{"unknown capability", func(t *shoalv1.TaskSpec) { t.Container.CapAdd = []string{"CAP_FLY"} }, "service.cap_add[0]"},
		{"host sysctl", func(t *shoalv1.TaskSpec) { t.Container.Sysctls = map[string]string{"vm.swappiness": "1"} }, "not namespaced"},
		{"ulimit soft above hard", func(t *shoalv1.TaskSpec) { t.Container.Ulimits = []*shoalv1.Ulimit{{Name: "nofile", Soft: 2, Hard: 1}} }, "above the hard limit"},
		{"dns not an IP", func(t *shoalv1.TaskSpec) { t.Container.DnsConfig = &shoalv1.DNSConfig{Nameservers: []string{"dns"}} }, "service.dns[0]"},
		{"hosts line", func(t *shoalv1.TaskSpec) { t.Container.Hosts = []string{"db 10.0.0.1"} }, "service.hosts[0]"},
		{"group with colon", func(t *shoalv1.TaskSpec) { t.Container.Groups = []string{"a:b"} }, "service.groups[0]"},
		{"stop signal", func(t *shoalv1.TaskSpec) { t.Container.StopSignal = "SIGNOPE" }, "unknown signal"},
		{"negative pids", func(t *shoalv1.TaskSpec) {
			t.Resources = &shoalv1.ResourceRequirements{Limits: &shoalv1.Resources{Pids: -1}}
		}, "service.limit_pids"},
		{"log driver", func(t *shoalv1.TaskSpec) { t.LogDriver = &shoalv1.Driver{Name: "syslog"} }, "not supported"},
		{"log option", func(t *shoalv1.TaskSpec) { t.LogDriver = &shoalv1.Driver{Options: map[string]string{"max-file": "0"}} }, "max-file"},
	} {
		s := &shoalv1.ServiceSpec{Name: "web", Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}},
			Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx"}}}
		tc.edit(s.Task)
		err := ValidateServiceSpec(s)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
