package convert

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"pgregory.net/rapid"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func genStrings(t *rapid.T, label string) []string {
	return rapid.SliceOfN(rapid.StringMatching(`[a-z0-9=./:-]{1,8}`), 0, 3).Draw(t, label)
}

func genMap(t *rapid.T, label string) map[string]string {
	m := rapid.MapOfN(rapid.StringMatching(`[a-z][a-z.]{0,6}`), rapid.StringMatching(`[a-z0-9]{0,5}`), 0, 3).Draw(t, label)
	if len(m) == 0 {
		return nil
	}
	return m
}

func genDur(t *rapid.T, label string) *durationpb.Duration {
	if !rapid.Bool().Draw(t, label+".set") {
		return nil
	}
	return durationpb.New(time.Duration(rapid.Int64Range(1, 1e12).Draw(t, label)))
}

// genServiceSpec draws a Shoal service spec in the forms Docker's types
// can carry (an empty map is nil, a set message has something in it).
func genServiceSpec(t *rapid.T) *shoalv1.ServiceSpec {
	c := &shoalv1.ContainerSpec{
		Image: rapid.StringMatching(`[a-z]{1,6}(:[0-9])?`).Draw(t, "image"), Command: genStrings(t, "command"), Args: genStrings(t, "args"),
		Env: genStrings(t, "env"), Labels: genMap(t, "clabels"), Dir: rapid.StringMatching(`(/[a-z]{1,4})?`).Draw(t, "dir"),
		User: rapid.StringMatching(`[a-z0-9]{0,4}`).Draw(t, "user"), Hostname: rapid.StringMatching(`[a-z]{0,4}`).Draw(t, "hostname"),
		StopGracePeriod: genDur(t, "grace"), Init: rapid.Bool().Draw(t, "init"), ReadOnly: rapid.Bool().Draw(t, "ro"),
		StopSignal: rapid.SampledFrom([]string{"", "SIGINT"}).Draw(t, "signal"), Tty: rapid.Bool().Draw(t, "tty"),
		CapAdd: genStrings(t, "capadd"), CapDrop: genStrings(t, "capdrop"), Sysctls: genMap(t, "sysctls"),
		Hosts: genStrings(t, "hosts"), Groups: genStrings(t, "groups"),
	}
	switch rapid.IntRange(0, 3).Draw(t, "health") {
	case 1:
		c.Healthcheck = &shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: genDur(t, "hi"), Timeout: genDur(t, "ht"),
			StartPeriod: genDur(t, "hs"), StartInterval: genDur(t, "hsi"), Retries: rapid.Int32Range(0, 9).Draw(t, "retries")}
	case 2:
		c.Healthcheck = &shoalv1.HealthConfig{Http: "http://:8080/healthz", Interval: genDur(t, "hi")}
	case 3:
		c.Healthcheck = &shoalv1.HealthConfig{TcpPort: uint32(rapid.IntRange(1, 65535).Draw(t, "tcp"))}
	}
	if rapid.Bool().Draw(t, "dns") {
		c.DnsConfig = &shoalv1.DNSConfig{Nameservers: []string{"10.0.0.2"}, Search: genStrings(t, "search"), Options: []string{"ndots:2"}}
	}
	for i := range rapid.IntRange(0, 2).Draw(t, "secrets") {
		c.Secrets = append(c.Secrets, &shoalv1.SecretReference{SecretId: "s" + string(rune('a'+i)), SecretName: "n",
			File: &shoalv1.FileTarget{Name: "f", Uid: "0", Gid: "0", Mode: uint32(rapid.IntRange(0, 0o777).Draw(t, "smode"))}})
	}
	for range rapid.IntRange(0, 2).Draw(t, "configs") {
		c.Configs = append(c.Configs, &shoalv1.ConfigReference{ConfigId: "c", ConfigName: "n", File: &shoalv1.FileTarget{Name: "/f", Mode: 0o444}})
	}
	for range rapid.IntRange(0, 2).Draw(t, "ulimits") {
		c.Ulimits = append(c.Ulimits, &shoalv1.Ulimit{Name: "nofile", Soft: rapid.Int64Range(0, 9).Draw(t, "soft"), Hard: 10})
	}
	for range rapid.IntRange(0, 3).Draw(t, "mounts") {
		m := &shoalv1.Mount{Target: "/t", ReadOnly: rapid.Bool().Draw(t, "mro")}
		switch rapid.IntRange(0, 2).Draw(t, "mtype") {
		case 0:
			m.Type, m.Source = shoalv1.MountType_MOUNT_TYPE_BIND, "/src"
			if rapid.Bool().Draw(t, "prop") {
				m.BindOptions = &shoalv1.BindOptions{Propagation: "rshared"}
			}
		case 1:
			m.Type, m.Source = shoalv1.MountType_MOUNT_TYPE_VOLUME, rapid.StringMatching(`[a-z]{0,4}`).Draw(t, "vol")
			if rapid.Bool().Draw(t, "vopts") {
				m.VolumeOptions = &shoalv1.VolumeOptions{NoCopy: true, Labels: genMap(t, "vlabels"),
					DriverConfig: &shoalv1.Driver{Name: "local", Options: map[string]string{"type": "tmpfs"}}}
			}
		case 2:
			m.Type = shoalv1.MountType_MOUNT_TYPE_TMPFS
			if rapid.Bool().Draw(t, "topts") {
				m.TmpfsOptions = &shoalv1.TmpfsOptions{SizeBytes: rapid.Int64Range(1, 1<<30).Draw(t, "size"), Mode: uint32(rapid.IntRange(1, 0o7777).Draw(t, "tmode"))}
			}
		}
		c.Mounts = append(c.Mounts, m)
	}
	task := &shoalv1.TaskSpec{Container: c, ForceUpdate: rapid.Uint64Range(0, 3).Draw(t, "force")}
	if rapid.Bool().Draw(t, "resources") {
		task.Resources = &shoalv1.ResourceRequirements{
			Limits:       &shoalv1.Resources{NanoCpus: rapid.Int64Range(1, 4e9).Draw(t, "lcpu"), MemoryBytes: rapid.Int64Range(0, 1<<32).Draw(t, "lmem"), Pids: 7},
			Reservations: &shoalv1.Resources{MemoryBytes: rapid.Int64Range(1, 1<<30).Draw(t, "rmem")},
		}
	}
	if rapid.Bool().Draw(t, "restart") {
		task.Restart = &shoalv1.RestartPolicy{
			Condition: shoalv1.RestartCondition(rapid.IntRange(0, 3).Draw(t, "cond")), Delay: genDur(t, "rdelay"),
			MaxAttempts: rapid.Int64Range(0, 5).Draw(t, "attempts"), Window: genDur(t, "window"),
		}
	}
	binpack := rapid.Bool().Draw(t, "binpack")
	if rapid.Bool().Draw(t, "placement") || binpack {
		task.Placement = &shoalv1.Placement{Constraints: []string{"node.role==worker"}, MaxReplicas: rapid.Int64Range(0, 3).Draw(t, "max"),
			Preferences: []*shoalv1.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}},
			Platforms:   []*shoalv1.Platform{{Os: "linux", Architecture: "amd64"}}}
		if binpack {
			task.Placement.Strategy = shoalv1.PlacementStrategy_PLACEMENT_STRATEGY_BINPACK
		}
	}
	if rapid.Bool().Draw(t, "logdriver") {
		task.LogDriver = &shoalv1.Driver{Name: "json-file", Options: map[string]string{"max-size": "10m"}}
	}
	s := &shoalv1.ServiceSpec{Name: rapid.StringMatching(`[a-z]{1,8}`).Draw(t, "name"), Labels: genMap(t, "labels"), Task: task}
	switch rapid.IntRange(0, 3).Draw(t, "mode") {
	case 0:
		s.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: rapid.Int64Range(0, 9).Draw(t, "replicas")}}
	case 1:
		s.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
	case 2:
		s.Mode = &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{MaxConcurrent: rapid.Int64Range(0, 3).Draw(t, "mc"), TotalCompletions: rapid.Int64Range(0, 9).Draw(t, "tc")}}
	case 3:
		s.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}
	}
	for _, u := range []**shoalv1.UpdateConfig{&s.Update, &s.Rollback} {
		if rapid.Bool().Draw(t, "update") {
			*u = &shoalv1.UpdateConfig{Parallelism: rapid.Uint64Range(0, 4).Draw(t, "par"), Delay: genDur(t, "udelay"), Monitor: genDur(t, "mon"),
				FailureAction: shoalv1.UpdateFailureAction(rapid.IntRange(0, 3).Draw(t, "fa")), MaxFailureRatio: 0.5,
				Order: shoalv1.UpdateOrder(rapid.IntRange(0, 2).Draw(t, "order"))}
		}
	}
	if rapid.Bool().Draw(t, "endpoint") {
		e := &shoalv1.EndpointSpec{Mode: shoalv1.EndpointMode(rapid.IntRange(0, 2).Draw(t, "emode"))}
		for range rapid.IntRange(0, 2).Draw(t, "ports") {
			e.Ports = append(e.Ports, &shoalv1.PortConfig{Protocol: shoalv1.PortProtocol(rapid.IntRange(1, 2).Draw(t, "proto")),
				TargetPort: 80, PublishedPort: uint32(rapid.IntRange(0, 9000).Draw(t, "pub")), PublishMode: shoalv1.PublishMode(rapid.IntRange(1, 2).Draw(t, "pmode"))})
		}
		s.Endpoint = e
	}
	for range rapid.IntRange(0, 2).Draw(t, "networks") {
		s.Networks = append(s.Networks, &shoalv1.NetworkAttachment{Target: "net", Aliases: genStrings(t, "aliases")})
	}
	return s
}

// A Shoal spec shown through the Docker API and sent back unchanged (what
// `docker service update` does with the fields it does not touch) is the
// same spec, through JSON as a client sees it; with insertDefaults too.
func TestServiceSpecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := genServiceSpec(t)
		for _, withDefaults := range []bool{false, true} {
			shown := FromServiceSpec(want)
			if withDefaults {
				Defaults(&shown)
			}
			b, err := json.Marshal(shown)
			if err != nil {
				t.Fatal(err)
			}
			var back swarm.ServiceSpec
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, err := ServiceSpec(back, "")
			if err != nil {
				t.Fatalf("the Docker form of a Shoal spec is refused: %v\n%s", err, b)
			}
			if !withDefaults && !proto.Equal(got, want) {
				t.Fatalf("round trip changed the spec:\n got %v\nwant %v\nvia %s", got, want, b)
			}
		}
	})
}

func TestServiceSpecRegistryAuth(t *testing.T) {
	in := swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "web"}}}
	got, err := ServiceSpec(in, "eyJ1c2VybmFtZSI6InUifQ==")
	if err != nil || got.GetTask().GetContainer().GetPullOptions().GetRegistryAuth() != "eyJ1c2VybmFtZSI6InUifQ==" {
		t.Fatalf("the header's credentials: %v, %v", got, err)
	}
	// Never shown back.
	b, _ := json.Marshal(FromServiceSpec(got))
	if strings.Contains(string(b), "eyJ1c2VybmFtZSI6InUifQ") {
		t.Errorf("credentials shown: %s", b)
	}
	if r := got.GetReplicated().GetReplicas(); r != 1 {
		t.Errorf("no mode is Docker's one replica; got %d", r)
	}
}

type (
	mountT         = mount.Mount
	volumeOptionsT = mount.VolumeOptions
	bindOptionsT   = mount.BindOptions
	tmpfsOptionsT  = mount.TmpfsOptions
	healthT        = container.HealthConfig
)

// Every field Shoal does not support is refused with its name, never
// dropped.
func TestServiceSpecRefusals(t *testing.T) {
	one, two := int64(1), uint64(2)
	for _, tc := range []struct {
		name string
		mod  func(s *swarm.ServiceSpec)
		want string
	}{
		{"plugin runtime", func(s *swarm.ServiceSpec) { s.TaskTemplate.Runtime = swarm.RuntimePlugin }, "TaskTemplate.Runtime"},
		{"plugin spec", func(s *swarm.ServiceSpec) { s.TaskTemplate.PluginSpec = &swarm.RuntimeSpec{} }, "PluginSpec"},
		{"attachment", func(s *swarm.ServiceSpec) { s.TaskTemplate.NetworkAttachmentSpec = &swarm.NetworkAttachmentSpec{} }, "NetworkAttachmentSpec"},
		{"no container", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec = nil }, "ContainerSpec"},
		{"oom score", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.OomScoreAdj = 5 }, "OomScoreAdj"},
		{"stdin", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.OpenStdin = true }, "OpenStdin"},
		{"isolation", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Isolation = "hyperv" }, "Isolation"},
		{"credential spec", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{CredentialSpec: &swarm.CredentialSpec{File: "x"}}
		}, "CredentialSpec"},
		{"selinux", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{SELinuxContext: &swarm.SELinuxContext{User: "u"}}
		}, "SELinuxContext"},
		{"seccomp", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{Seccomp: &swarm.SeccompOpts{Mode: swarm.SeccompModeUnconfined}}
		}, "Seccomp"},
		{"apparmor", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{AppArmor: &swarm.AppArmorOpts{Mode: swarm.AppArmorModeDisabled}}
		}, "AppArmor"},
		{"seccomp profile", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{NoNewPrivileges: true, Seccomp: &swarm.SeccompOpts{Mode: swarm.SeccompModeCustom}}
		}, "Seccomp"},
		{"config runtime", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Configs = []*swarm.ConfigReference{{Runtime: &swarm.ConfigReferenceRuntimeTarget{}}}
		}, "Configs[0].Runtime"},
		{"npipe", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Mounts = []mountT{{Type: "npipe"}} }, "Mounts[0].Type"},
		{"cluster volume", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Mounts = []mountT{{Type: "cluster"}} }, "Mounts[0].Type"},
		{"subpath", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts = []mountT{{Type: "volume", VolumeOptions: &volumeOptionsT{Subpath: "a"}}}
		}, "Subpath"},
		{"consistency", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts = []mountT{{Type: "bind", Consistency: "cached"}}
		}, "Consistency"},
		{"bind non-recursive", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts = []mountT{{Type: "bind", BindOptions: &bindOptionsT{NonRecursive: true}}}
		}, "NonRecursive"},
		{"tmpfs options", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts = []mountT{{Type: "tmpfs", TmpfsOptions: &tmpfsOptionsT{Options: [][]string{{"noexec"}}}}}
		}, "TmpfsOptions.Options"},
		{"swap", func(s *swarm.ServiceSpec) { s.TaskTemplate.Resources = &swarm.ResourceRequirements{SwapBytes: &one} }, "SwapBytes"},
		{"swappiness", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Resources = &swarm.ResourceRequirements{MemorySwappiness: &one}
		}, "MemorySwappiness"},
		{"generic resources", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{GenericResources: []swarm.GenericResource{{}}}}
		}, "GenericResources"},
		{"network driver options", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "n", DriverOpts: map[string]string{"a": "b"}}}
		}, "DriverOpts"},
		{"two modes", func(s *swarm.ServiceSpec) {
			s.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &two}, Global: &swarm.GlobalService{}}
		}, "Mode"},
		{"sctp", func(s *swarm.ServiceSpec) {
			s.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "sctp", TargetPort: 80}}}
		}, "EndpointSpec.Ports[0].Protocol"},
		{"bad endpoint mode", func(s *swarm.ServiceSpec) { s.EndpointSpec = &swarm.EndpointSpec{Mode: "anycast"} }, "EndpointSpec.Mode"},
		{"bad failure action", func(s *swarm.ServiceSpec) { s.UpdateConfig = &swarm.UpdateConfig{FailureAction: "explode"} }, "UpdateConfig.FailureAction"},
		{"bad order", func(s *swarm.ServiceSpec) { s.RollbackConfig = &swarm.UpdateConfig{Order: "sideways"} }, "RollbackConfig.Order"},
		{"bad restart condition", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: "sometimes"}
		}, "RestartPolicy.Condition"},
		{"bad strategy", func(s *swarm.ServiceSpec) { s.Labels = map[string]string{LabelPlacementStrategy: "random"} }, LabelPlacementStrategy},
		{"bad HTTP probe", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Healthcheck = &healthT{Test: []string{"HTTP"}}
		}, "Healthcheck.Test"},
		{"bad TCP probe", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Healthcheck = &healthT{Test: []string{"TCP", "http"}}
		}, "Healthcheck.Test"},
	} {
		s := swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "web"}}}
		tc.mod(&s)
		_, err := ServiceSpec(s, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v; want an invalid-argument error naming %q", tc.name, err, tc.want)
		}
	}
}
