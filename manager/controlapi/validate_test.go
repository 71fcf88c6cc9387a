package controlapi

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fullSpec sets every field of a service spec to a valid value.
func fullSpec() *shoalv1.ServiceSpec {
	return &shoalv1.ServiceSpec{
		Name:   "web-1.prod_a",
		Labels: map[string]string{"team": "edge", "tier": ""},
		Mode:   &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 3}},
		Task: &shoalv1.TaskSpec{
			Container: &shoalv1.ContainerSpec{
				Image:           "registry.local:5000/team/app:v1.2@" + testDigest,
				Command:         []string{"/bin/app"},
				Args:            []string{"--port", "80"},
				Env:             []string{"A=1", "EMPTY=", "PASSTHROUGH", "WITH_EQ=a=b"},
				Labels:          map[string]string{"com.example.x": "y"},
				Dir:             "/srv/app",
				User:            "1000:1000",
				Hostname:        "web.example.com",
				StopGracePeriod: durationpb.New(10 * time.Second),
			},
			Resources: &shoalv1.ResourceRequirements{
				Limits:       &shoalv1.Resources{NanoCpus: 2e9, MemoryBytes: 512 << 20},
				Reservations: &shoalv1.Resources{NanoCpus: 5e8, MemoryBytes: 256 << 20},
			},
			Restart: &shoalv1.RestartPolicy{
				Condition:   shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE,
				Delay:       durationpb.New(5 * time.Second),
				MaxAttempts: 3,
				Window:      durationpb.New(time.Minute),
			},
			Placement: &shoalv1.Placement{
				Constraints: []string{"node.role==worker", "node.labels.zone!=east", "engine.labels.ssd==true", "node.platform.os==linux"},
				Preferences: []*shoalv1.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}, {SpreadDescriptor: "engine.labels.rack"}},
				MaxReplicas: 2,
			},
		},
		Endpoint: &shoalv1.EndpointSpec{
			Mode: shoalv1.EndpointMode_ENDPOINT_MODE_VIP,
			Ports: []*shoalv1.PortConfig{
				{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 80, PublishedPort: 8080, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS},
				// The same number over UDP is another port.
				{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_UDP, TargetPort: 80, PublishedPort: 8080, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS},
				{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 9090, PublishedPort: 65535, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_HOST},
				// Unpublished ports may repeat.
				{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 1, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS},
				{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 65535, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS},
			},
		},
		Networks: []*shoalv1.NetworkAttachment{
			{Target: "frontend", Aliases: []string{"web", "web.internal"}},
			{Target: "backend"},
		},
		Update: &shoalv1.UpdateConfig{Parallelism: 2, Delay: durationpb.New(time.Second), FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK,
			Monitor: durationpb.New(5 * time.Second), MaxFailureRatio: 1, Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST},
		Rollback: &shoalv1.UpdateConfig{Parallelism: 0, FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE,
			Monitor: durationpb.New(0), Order: shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST},
	}
}

func TestValidateServiceSpecValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *shoalv1.ServiceSpec
	}{
		{"full", fullSpec()},
		{"minimal", &shoalv1.ServiceSpec{
			Name: "a",
			Mode: &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}},
			Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "nginx"}},
		}},
		{"zero replicas", func() *shoalv1.ServiceSpec {
			s := fullSpec()
			s.GetReplicated().Replicas = 0
			return s
		}()},
		{"dnsrr with host ports", func() *shoalv1.ServiceSpec {
			s := fullSpec()
			s.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
			for _, p := range s.Endpoint.Ports {
				p.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_HOST
			}
			return s
		}()},
		{"reservation without limit", func() *shoalv1.ServiceSpec {
			s := fullSpec()
			s.Task.Resources.Limits = nil
			s.Task.Resources.Reservations = &shoalv1.Resources{NanoCpus: 64e9, MemoryBytes: 1 << 40}
			return s
		}()},
		{"63-character name", func() *shoalv1.ServiceSpec {
			s := fullSpec()
			s.Name = strings.Repeat("a", 63)
			return s
		}()},
	} {
		if err := ValidateServiceSpec(tc.spec); err != nil {
			t.Errorf("%s: ValidateServiceSpec(%v) = %v; want nil", tc.name, tc.spec, err)
		}
	}
}

func TestValidateServiceSpecImages(t *testing.T) {
	for _, tc := range []struct {
		image string
		ok    bool
	}{
		{"nginx", true},
		{"nginx:1.25", true},
		{"nginx:1.25-alpine", true},
		{"library/nginx:latest", true},
		{"ghcr.io/org/app:v1", true},
		{"localhost:5000/app", true},
		{"Registry.Local:5000/team/app@" + testDigest, true},
		{"nginx@" + testDigest, true},
		{"my-app_2.x", true},
		{"", false},
		{"NGINX", false},
		{"nginx:", false},
		{"nginx:" + strings.Repeat("t", 129), false},
		{"nginx@sha256:abc", false},
		{"nginx latest", false},
		{"/nginx", false},
		{"nginx/", false},
		{"-nginx", false},
	} {
		s := fullSpec()
		s.Task.Container.Image = tc.image
		err := ValidateServiceSpec(s)
		if got := err == nil; got != tc.ok {
			t.Errorf("ValidateServiceSpec(image %q) = %v; want ok=%v", tc.image, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "service.image: ") {
			t.Errorf("ValidateServiceSpec(image %q) = %q; want it to name service.image", tc.image, err)
		}
	}
}

func TestValidateServiceSpecOneBadField(t *testing.T) {
	dur := durationpb.New
	for _, tc := range []struct {
		name   string
		mutate func(s *shoalv1.ServiceSpec)
		field  string // the message starts with "field: "
		text   string // and contains this
	}{
		{"spec too large", func(s *shoalv1.ServiceSpec) {
			s.Task.Container.Env = []string{"BIG=" + strings.Repeat("x", MaxServiceSpecBytes)}
		}, "service", "over the limit of 256 KiB"},
		{"negative replicas", func(s *shoalv1.ServiceSpec) { s.GetReplicated().Replicas = -1 }, "service.replicas", "must be >= 0, got -1"},
		{"no mode", func(s *shoalv1.ServiceSpec) { s.Mode = nil }, "service.mode", "replicated, global, replicated-job or global-job"},
		{"empty name", func(s *shoalv1.ServiceSpec) { s.Name = "" }, "service.name", "is required"},
		{"long name", func(s *shoalv1.ServiceSpec) { s.Name = strings.Repeat("a", 64) }, "service.name", "at most 63 characters, got 64"},
		{"name with slash", func(s *shoalv1.ServiceSpec) { s.Name = "a/b" }, "service.name", `"a/b" may only contain`},
		{"name starting with dash", func(s *shoalv1.ServiceSpec) { s.Name = "-web" }, "service.name", "must start with a letter or digit"},
		{"bad label key", func(s *shoalv1.ServiceSpec) { s.Labels = map[string]string{"a b": "x"} }, "service.labels", `"a b"`},
		{"empty label key", func(s *shoalv1.ServiceSpec) { s.Labels = map[string]string{"": "x"} }, "service.labels", "non-empty"},
		{"label key with =", func(s *shoalv1.ServiceSpec) { s.Labels = map[string]string{"a=b": "x"} }, "service.labels", `"a=b"`},
		{"bad container label", func(s *shoalv1.ServiceSpec) { s.Task.Container.Labels = map[string]string{"x\ty": ""} }, "service.container_labels", "label key"},
		{"no task", func(s *shoalv1.ServiceSpec) { s.Task = nil }, "service.image", "is required"},
		{"no image", func(s *shoalv1.ServiceSpec) { s.Task.Container.Image = "" }, "service.image", "is required"},
		{"bad image", func(s *shoalv1.ServiceSpec) { s.Task.Container.Image = "Nginx:latest" }, "service.image", "not a valid image reference"},
		{"env without key", func(s *shoalv1.ServiceSpec) { s.Task.Container.Env = []string{"A=1", "=x"} }, "service.env[1]", `"=x" must be KEY=VALUE`},
		{"env key with space", func(s *shoalv1.ServiceSpec) { s.Task.Container.Env = []string{"MY VAR=1"} }, "service.env[0]", "without spaces"},
		{"relative workdir", func(s *shoalv1.ServiceSpec) { s.Task.Container.Dir = "srv/app" }, "service.workdir", `"srv/app" must be an absolute path`},
		{"bad user", func(s *shoalv1.ServiceSpec) { s.Task.Container.User = "root:wheel:x" }, "service.user", "USER or USER:GROUP"},
		{"user without name", func(s *shoalv1.ServiceSpec) { s.Task.Container.User = ":1000" }, "service.user", `":1000"`},
		{"bad hostname", func(s *shoalv1.ServiceSpec) { s.Task.Container.Hostname = "web_1" }, "service.hostname", `"web_1" is not a valid hostname`},
		{"hostname ending with dash", func(s *shoalv1.ServiceSpec) { s.Task.Container.Hostname = "web-" }, "service.hostname", "not a valid hostname"},
		{"long hostname", func(s *shoalv1.ServiceSpec) { s.Task.Container.Hostname = strings.Repeat("h", 64) }, "service.hostname", "not a valid hostname"},
		{"negative stop grace", func(s *shoalv1.ServiceSpec) { s.Task.Container.StopGracePeriod = dur(-time.Second) }, "service.stop_grace_period", "must be >= 0, got -1s"},
		{"negative limit cpu", func(s *shoalv1.ServiceSpec) { s.Task.Resources.Limits.NanoCpus = -1 }, "service.limit_cpu", "must be >= 0, got -1"},
		{"negative limit memory", func(s *shoalv1.ServiceSpec) {
			s.Task.Resources.Limits.MemoryBytes = -1
			s.Task.Resources.Reservations.MemoryBytes = 0
		}, "service.limit_memory", "must be >= 0, got -1"},
		{"negative reserve cpu", func(s *shoalv1.ServiceSpec) { s.Task.Resources.Reservations.NanoCpus = -5 }, "service.reserve_cpu", "must be >= 0, got -5"},
		{"negative reserve memory", func(s *shoalv1.ServiceSpec) { s.Task.Resources.Reservations.MemoryBytes = -5 }, "service.reserve_memory", "must be >= 0, got -5"},
		{"reserve cpu above limit", func(s *shoalv1.ServiceSpec) { s.Task.Resources.Reservations.NanoCpus = 3e9 }, "service.reserve_cpu", "reservation 3000000000 nano-CPUs exceeds the limit 2000000000"},
		{"reserve memory above limit", func(s *shoalv1.ServiceSpec) { s.Task.Resources.Reservations.MemoryBytes = 1 << 30 }, "service.reserve_memory", "exceeds the limit 536870912"},
		{"tiny memory limit", func(s *shoalv1.ServiceSpec) {
			s.Task.Resources.Limits.MemoryBytes = 1 << 20
			s.Task.Resources.Reservations.MemoryBytes = 0
		}, "service.limit_memory", "at least 6 MiB, got 1048576 bytes"},
		{"unknown restart condition", func(s *shoalv1.ServiceSpec) { s.Task.Restart.Condition = 42 }, "service.restart_condition", "unknown condition 42"},
		{"negative restart delay", func(s *shoalv1.ServiceSpec) { s.Task.Restart.Delay = dur(-time.Millisecond) }, "service.restart_delay", "must be >= 0, got -1ms"},
		{"negative restart window", func(s *shoalv1.ServiceSpec) { s.Task.Restart.Window = dur(-time.Minute) }, "service.restart_window", "must be >= 0, got -1m0s"},
		{"negative max attempts", func(s *shoalv1.ServiceSpec) { s.Task.Restart.MaxAttempts = -1 }, "service.restart_max_attempts", "got -1"},
		{"negative update delay", func(s *shoalv1.ServiceSpec) { s.Update = &shoalv1.UpdateConfig{Delay: dur(-time.Second)} }, "service.update_delay", "must be >= 0, got -1s"},
		{"negative update monitor", func(s *shoalv1.ServiceSpec) { s.Update = &shoalv1.UpdateConfig{Monitor: dur(-time.Second)} }, "service.update_monitor", "must be >= 0, got -1s"},
		{"update ratio above 1", func(s *shoalv1.ServiceSpec) { s.Update = &shoalv1.UpdateConfig{MaxFailureRatio: 1.5} }, "service.update_max_failure_ratio", "must be between 0 and 1, got 1.5"},
		{"negative rollback ratio", func(s *shoalv1.ServiceSpec) { s.Rollback = &shoalv1.UpdateConfig{MaxFailureRatio: -0.1} }, "service.rollback_max_failure_ratio", "must be between 0 and 1, got -0.1"},
		{"rollback of a rollback", func(s *shoalv1.ServiceSpec) {
			s.Rollback = &shoalv1.UpdateConfig{FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK}
		}, "service.rollback_failure_action", "a rollback cannot roll back; use pause or continue"},
		{"unknown update action", func(s *shoalv1.ServiceSpec) { s.Update = &shoalv1.UpdateConfig{FailureAction: 9} }, "service.update_failure_action", "unknown action 9"},
		{"unknown rollback order", func(s *shoalv1.ServiceSpec) { s.Rollback = &shoalv1.UpdateConfig{Order: 7} }, "service.rollback_order", "unknown order 7; use stop-first or start-first"},
		{"constraint without operator", func(s *shoalv1.ServiceSpec) {
			s.Task.Placement.Constraints = []string{"node.role==worker", "node.role=worker"}
		}, "service.constraints[1]", "no == or != operator"},
		{"constraint on unknown key", func(s *shoalv1.ServiceSpec) { s.Task.Placement.Constraints = []string{"node.zone==a"} }, "service.constraints[0]", `unknown attribute "node.zone"`},
		{"preference not a label", func(s *shoalv1.ServiceSpec) {
			s.Task.Placement.Preferences = []*shoalv1.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}, {SpreadDescriptor: "node.hostname"}}
		}, "service.placement_preferences[1]", `spread="node.hostname" must name a label`},
		{"preference with empty label", func(s *shoalv1.ServiceSpec) {
			s.Task.Placement.Preferences = []*shoalv1.PlacementPreference{{SpreadDescriptor: "node.labels."}}
		}, "service.placement_preferences[0]", "must name a label"},
		{"negative max per node", func(s *shoalv1.ServiceSpec) { s.Task.Placement.MaxReplicas = -2 }, "service.replicas_max_per_node", "got -2"},
		{"unknown endpoint mode", func(s *shoalv1.ServiceSpec) { s.Endpoint.Mode = 9 }, "service.endpoint_mode", "vip or dnsrr"},
		{"target port 0", func(s *shoalv1.ServiceSpec) { s.Endpoint.Ports[1].TargetPort = 0 }, "service.publish[1]", "target port must be 1-65535, got 0"},
		{"target port too big", func(s *shoalv1.ServiceSpec) { s.Endpoint.Ports[0].TargetPort = 65536 }, "service.publish[0]", "target port must be 1-65535, got 65536"},
		{"published port too big", func(s *shoalv1.ServiceSpec) { s.Endpoint.Ports[2].PublishedPort = 70000 }, "service.publish[2]", "published port must be 0-65535, got 70000"},
		{"no protocol", func(s *shoalv1.ServiceSpec) {
			s.Endpoint.Ports[0].Protocol = shoalv1.PortProtocol_PORT_PROTOCOL_UNSPECIFIED
		}, "service.publish[0]", "protocol must be tcp or udp"},
		{"no publish mode", func(s *shoalv1.ServiceSpec) {
			s.Endpoint.Ports[0].PublishMode = shoalv1.PublishMode_PUBLISH_MODE_UNSPECIFIED
		}, "service.publish[0]", "mode must be ingress or host"},
		{"duplicate published port", func(s *shoalv1.ServiceSpec) {
			s.Endpoint.Ports = append(s.Endpoint.Ports, &shoalv1.PortConfig{
				Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 81, PublishedPort: 8080, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_HOST,
			})
		}, "service.publish[5]", "published port 8080/tcp is also given by service.publish[0]"},
		{"dnsrr with ingress", func(s *shoalv1.ServiceSpec) {
			s.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
			s.Endpoint.Ports = s.Endpoint.Ports[2:3] // the host-mode port is fine
			s.Endpoint.Ports = append(s.Endpoint.Ports, &shoalv1.PortConfig{
				Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 80, PublishedPort: 80, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS,
			})
		}, "service.publish[1]", "endpoint mode dnsrr cannot publish in ingress mode"},
		{"network without target", func(s *shoalv1.ServiceSpec) { s.Networks[1].Target = "" }, "service.networks[1]", "needs a network name or ID"},
		{"duplicate network", func(s *shoalv1.ServiceSpec) {
			s.Networks = append(s.Networks, &shoalv1.NetworkAttachment{Target: "frontend"})
		}, "service.networks[2]", `network "frontend" is attached twice`},
		{"bad alias", func(s *shoalv1.ServiceSpec) { s.Networks[0].Aliases = []string{"ok", "not ok"} }, "service.networks[0]", `alias "not ok"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fullSpec()
			tc.mutate(s)
			err := ValidateServiceSpec(s)
			if err == nil {
				t.Fatalf("ValidateServiceSpec(%v) = nil; want an error naming %s", s, tc.field)
			}
			if !errdefs.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ValidateServiceSpec(%v) = %v; want category ErrInvalid", s, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.field+": ") || !strings.Contains(msg, tc.text) {
				t.Errorf("ValidateServiceSpec(%s) = %q; want %q: ...%q...", tc.name, msg, tc.field, tc.text)
			}
			// One bad field gives one problem: no other field is named.
			for _, other := range []string{"service.name", "service.image", "service.replicas", "service.publish", "service.env"} {
				if !strings.HasPrefix(tc.field, other) && strings.Contains(msg, other) {
					t.Errorf("ValidateServiceSpec(%s) = %q; also blames %s", tc.name, msg, other)
				}
			}
		})
	}
}

func TestValidateServiceSpecReportsEveryError(t *testing.T) {
	s := fullSpec()
	s.Name = ""
	s.GetReplicated().Replicas = -1
	s.Task.Container.Image = "UPPER"
	s.Task.Container.Env = []string{"=v"}
	s.Task.Container.Dir = "rel"
	s.Task.Restart.MaxAttempts = -1
	s.Endpoint.Ports[0].TargetPort = 0
	s.Networks[1].Target = "frontend"

	err := ValidateServiceSpec(s)
	if !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("ValidateServiceSpec(many bad fields) = %v; want ErrInvalid", err)
	}
	want := []string{
		"service.name: is required",
		"service.replicas: must be >= 0, got -1",
		`service.image: "UPPER"`,
		"service.env[0]:",
		"service.workdir:",
		"service.restart_max_attempts:",
		"service.publish[0]: target port",
		"service.networks[1]:",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("ValidateServiceSpec(many bad fields) = %q; want it to contain %q", err, w)
		}
	}
	if got := strings.Count(err.Error(), "; service."); got != len(want)-1 {
		t.Errorf("ValidateServiceSpec(many bad fields) lists %d problems; want %d: %q", got+1, len(want), err)
	}
}

func TestValidateServiceSpecNil(t *testing.T) {
	err := ValidateServiceSpec(nil)
	if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "service: a spec is required") {
		t.Errorf("ValidateServiceSpec(nil) = %v; want ErrInvalid naming service", err)
	}
}

func TestValidateServiceSpecDoesNotModify(t *testing.T) {
	s := fullSpec()
	s.Task.Container.Env = append(s.Task.Container.Env, "=bad")
	before := proto.Clone(s)
	_ = ValidateServiceSpec(s)
	if !proto.Equal(s, before) {
		t.Errorf("ValidateServiceSpec changed its input: %v; want %v", s, before)
	}
}

func TestValidateNodeSpec(t *testing.T) {
	ok := func() *shoalv1.NodeSpec {
		return &shoalv1.NodeSpec{
			DesiredRole:  shoalv1.NodeRole_NODE_ROLE_WORKER,
			Availability: shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN,
			Labels:       map[string]string{"zone": "a"},
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*shoalv1.NodeSpec)
		want   string // "" means valid
	}{
		{"valid", func(*shoalv1.NodeSpec) {}, ""},
		{"manager active", func(s *shoalv1.NodeSpec) {
			s.DesiredRole, s.Availability = shoalv1.NodeRole_NODE_ROLE_MANAGER, shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
		}, ""},
		{"pause", func(s *shoalv1.NodeSpec) { s.Availability = shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE }, ""},
		{"no availability", func(s *shoalv1.NodeSpec) { s.Availability = 0 }, "node.availability: must be active, pause or drain"},
		{"no role", func(s *shoalv1.NodeSpec) { s.DesiredRole = 0 }, "node.role: must be manager or worker"},
		{"bad label", func(s *shoalv1.NodeSpec) { s.Labels = map[string]string{"a=b": ""} }, "node.labels: label key"},
	} {
		s := ok()
		tc.mutate(s)
		err := ValidateNodeSpec(s)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: ValidateNodeSpec(%v) = %v; want nil", tc.name, s, err)
		case tc.want != "" && (!errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: ValidateNodeSpec(%v) = %v; want ErrInvalid with %q", tc.name, s, err, tc.want)
		}
	}
	if err := ValidateNodeSpec(nil); !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ValidateNodeSpec(nil) = %v; want ErrInvalid", err)
	}
}

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		in             string
		key, op, value string
		err            string // substring of the error; "" means valid
	}{
		{in: "node.role==manager", key: "node.role", op: "==", value: "manager"},
		{in: "node.role!=worker", key: "node.role", op: "!=", value: "worker"},
		{in: " node.id == abc ", key: "node.id", op: "==", value: "abc"},
		{in: "node.hostname==web-1", key: "node.hostname", op: "==", value: "web-1"},
		{in: "node.platform.os==linux", key: "node.platform.os", op: "==", value: "linux"},
		{in: "node.platform.arch!=arm64", key: "node.platform.arch", op: "!=", value: "arm64"},
		{in: "node.labels.zone==east", key: "node.labels.zone", op: "==", value: "east"},
		{in: "node.labels.a.b!=c", key: "node.labels.a.b", op: "!=", value: "c"},
		{in: "engine.labels.ssd==true", key: "engine.labels.ssd", op: "==", value: "true"},
		{in: "node.labels.x==a=b", key: "node.labels.x", op: "==", value: "a=b"},
		{in: "node.role=manager", err: "no == or != operator"},
		{in: "node.role", err: "no == or != operator"},
		{in: "", err: "no == or != operator"},
		{in: "node.role==", err: "no value after =="},
		{in: "node.role!=  ", err: "no value after !="},
		{in: "node.label.zone==a", err: `unknown attribute "node.label.zone"`},
		{in: "node.ip==10.0.0.1", err: "unknown attribute"},
		{in: "==x", err: `unknown attribute ""`},
		{in: "labels.zone==a", err: "unknown attribute"},
		{in: "node.role==leader", err: "node.role is manager or worker"},
		{in: "node.role!=", err: "no value"},
	} {
		key, op, value, err := ParseConstraint(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseConstraint(%q) = %q, %q, %q, %v; want error containing %q", tc.in, key, op, value, err, tc.err)
			}
			if key != "" || op != "" || value != "" {
				t.Errorf("ParseConstraint(%q) returned %q %q %q with its error; want empty", tc.in, key, op, value)
			}
			continue
		}
		if err != nil || key != tc.key || op != tc.op || value != tc.value {
			t.Errorf("ParseConstraint(%q) = %q, %q, %q, %v; want %q, %q, %q, nil", tc.in, key, op, value, err, tc.key, tc.op, tc.value)
		}
	}
}

// TestParseConstraintEmptyLabel: a label constraint must name a label, as
// placement preferences must.
func TestParseConstraintEmptyLabel(t *testing.T) {
	for _, c := range []string{"node.labels.==x", "engine.labels.!=x"} {
		if key, op, value, err := ParseConstraint(c); err == nil {
			t.Errorf("ParseConstraint(%q) = %q, %q, %q, nil; want an error (no label name)", c, key, op, value)
		}
	}
}

// A constraint the scheduler could not use is refused at the API.
func TestConstraintTheSchedulerRefuses(t *testing.T) {
	s := fullSpec()
	s.Task.Placement = &shoalv1.Placement{Constraints: []string{"node.labels.zone==a<b"}}
	if err := ValidateServiceSpec(s); err == nil || !strings.Contains(err.Error(), "service.constraints[0]") {
		t.Fatalf("ValidateServiceSpec(zone==a<b) = %v; want a refusal naming service.constraints[0]", err)
	}
}
