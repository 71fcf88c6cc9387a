package stack

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// NamespaceLabel is docker's label of a stack's objects.
const NamespaceLabel = "com.docker.stack.namespace"

// Stack is what a deploy makes, named and labelled for Namespace.
type Stack struct {
	Namespace string
	Services  []*shoalv1.ServiceSpec // by name
	Networks  []Network              // by name
	Secrets   []File                 // by name
	Configs   []File                 // by name
	// Warnings are docker's, for keys Swarm ignores.
	Warnings []string
}

// Network is a network the stack uses.
type Network struct {
	Name     string // NAMESPACE_key, name:, or the external name
	External bool   // must exist; never created or removed
	Spec     *shoalv1.NetworkSpec
}

// File is a secret or a config the stack uses.
type File struct {
	Name     string
	External bool
	Data     []byte
	Labels   map[string]string
}

// unsupported are the service keys docker's stack deploy ignores with a
// warning ("Ignoring unsupported options: …"), depends_on added: Swarm
// starts no service before another either.
var unsupported = []struct {
	key string
	set func(s *types.ServiceConfig) bool
}{
	{"build", func(s *types.ServiceConfig) bool { return s.Build != nil }},
	{"cgroup_parent", func(s *types.ServiceConfig) bool { return s.CgroupParent != "" }},
	{"cgroup", func(s *types.ServiceConfig) bool { return s.Cgroup != "" }}, // docker's cgroupns_mode, compose's name
	{"depends_on", func(s *types.ServiceConfig) bool { return len(s.DependsOn) > 0 }},
	{"devices", func(s *types.ServiceConfig) bool { return len(s.Devices) > 0 }},
	{"domainname", func(s *types.ServiceConfig) bool { return s.DomainName != "" }},
	{"external_links", func(s *types.ServiceConfig) bool { return len(s.ExternalLinks) > 0 }},
	{"ipc", func(s *types.ServiceConfig) bool { return s.Ipc != "" }},
	{"links", func(s *types.ServiceConfig) bool { return len(s.Links) > 0 }},
	{"mac_address", func(s *types.ServiceConfig) bool { return s.MacAddress != "" }},
	{"network_mode", func(s *types.ServiceConfig) bool { return s.NetworkMode != "" }},
	{"pid", func(s *types.ServiceConfig) bool { return s.Pid != "" }},
	{"privileged", func(s *types.ServiceConfig) bool { return s.Privileged }},
	{"restart", func(s *types.ServiceConfig) bool { return s.Restart != "" }},
	{"security_opt", func(s *types.ServiceConfig) bool { return len(s.SecurityOpt) > 0 }},
	{"shm_size", func(s *types.ServiceConfig) bool { return s.ShmSize != 0 }},
	{"userns_mode", func(s *types.ServiceConfig) bool { return s.UserNSMode != "" }},
}

// deprecated are docker's "Ignoring deprecated options" and their words.
var deprecated = []struct {
	key, why string
	set      func(s *types.ServiceConfig) bool
}{
	{"container_name", "Setting the container name is not supported.", func(s *types.ServiceConfig) bool { return s.ContainerName != "" }},
	{"expose", "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.", func(s *types.ServiceConfig) bool { return len(s.Expose) > 0 }},
}

// forbidden are the keys docker's stack deploy refuses, in its words.
var forbidden = []struct {
	key, why string
	set      func(s *types.ServiceConfig) bool
}{
	{"volume_driver", "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.", func(s *types.ServiceConfig) bool { return s.VolumeDriver != "" }},
	{"volumes_from", "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.", func(s *types.ServiceConfig) bool { return len(s.VolumesFrom) > 0 }},
	{"cpu_quota", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.CPUQuota != 0 }},
	{"cpu_shares", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.CPUShares != 0 }},
	{"cpuset", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.CPUSet != "" }},
	{"cpus", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.CPUS != 0 }},
	{"mem_limit", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.MemLimit != 0 }},
	{"mem_reservation", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.MemReservation != 0 }},
	{"memswap_limit", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.MemSwapLimit != 0 }},
	{"pids_limit", "Set resource limits using deploy.resources", func(s *types.ServiceConfig) bool { return s.PidsLimit != 0 }},
}

// notSwarm are keys compose accepts that no Swarm service can express:
// refused, naming the key, rather than dropped.
var notSwarm = []struct {
	key string
	set func(s *types.ServiceConfig) bool
}{
	{"blkio_config", func(s *types.ServiceConfig) bool { return s.BlkioConfig != nil }},
	{"cpu_count", func(s *types.ServiceConfig) bool { return s.CPUCount != 0 }},
	{"cpu_percent", func(s *types.ServiceConfig) bool { return s.CPUPercent != 0 }},
	{"cpu_period", func(s *types.ServiceConfig) bool { return s.CPUPeriod != 0 }},
	{"cpu_rt_period", func(s *types.ServiceConfig) bool { return s.CPURTPeriod != 0 }},
	{"cpu_rt_runtime", func(s *types.ServiceConfig) bool { return s.CPURTRuntime != 0 }},
	{"device_cgroup_rules", func(s *types.ServiceConfig) bool { return len(s.DeviceCgroupRules) > 0 }},
	{"gpus", func(s *types.ServiceConfig) bool { return len(s.Gpus) > 0 }},
	{"oom_kill_disable", func(s *types.ServiceConfig) bool { return s.OomKillDisable }},
	{"oom_score_adj", func(s *types.ServiceConfig) bool { return s.OomScoreAdj != 0 }},
	{"runtime", func(s *types.ServiceConfig) bool { return s.Runtime != "" }},
	{"storage_opt", func(s *types.ServiceConfig) bool { return len(s.StorageOpt) > 0 }},
	{"uts", func(s *types.ServiceConfig) bool { return s.Uts != "" }},
	{"volumes (image)", func(s *types.ServiceConfig) bool {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeImage || v.Type == types.VolumeTypeNamedPipe || v.Type == types.VolumeTypeCluster {
				return true
			}
		}
		return false
	}},
}

// Convert maps a loaded project to the stack's specs, docker's way. It
// reads the secret and config files but asks no server. A field Shoal
// cannot express is an error naming it; keys Swarm ignores are warnings.
func Convert(p *types.Project, namespace string) (*Stack, error) {
	st := &Stack{Namespace: namespace}
	// The loader names every resource: its name:, else the key for an
	// external one, else PROJECT_key (the project is the namespace).
	name := func(key, named string, external bool) string {
		switch {
		case named != "":
			return named
		case external:
			return key
		}
		return namespace + "_" + key
	}
	if err := st.warn(p); err != nil {
		return nil, err
	}
	nets, err := st.networks(p, name)
	if err != nil {
		return nil, err
	}
	secrets, err := st.files(p.WorkingDir, "secret", secretConfigs(p), name)
	if err != nil {
		return nil, err
	}
	st.Secrets = secrets
	configs, err := st.files(p.WorkingDir, "config", configConfigs(p), name)
	if err != nil {
		return nil, err
	}
	st.Configs = configs
	keys := make([]string, 0, len(p.Services))
	for k := range p.Services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	used := map[string]bool{}
	for _, k := range keys {
		svc := p.Services[k]
		spec, err := convertService(p, namespace, k, svc, nets, name)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", k, err)
		}
		for _, a := range spec.GetNetworks() {
			used[a.GetTarget()] = true
		}
		st.Services = append(st.Services, spec)
	}
	for _, n := range nets {
		if used[n.Name] {
			st.Networks = append(st.Networks, n)
		}
	}
	sort.Slice(st.Networks, func(i, j int) bool { return st.Networks[i].Name < st.Networks[j].Name })
	return st, nil
}

// warn collects docker's warnings and refusals over every service.
func (st *Stack) warn(p *types.Project) error {
	ignored, old := map[string]bool{}, map[string]string{}
	for _, k := range sortedKeys(p.Services) {
		s := p.Services[k]
		for _, f := range forbidden {
			if f.set(&s) {
				return fmt.Errorf("compose file contains unsupported options:\n\n%s: %s", f.key, f.why)
			}
		}
		for _, f := range notSwarm {
			if f.set(&s) {
				return fmt.Errorf("service %s: %s is not supported by Swarm services; remove it from the compose file", k, f.key)
			}
		}
		for _, u := range unsupported {
			if u.set(&s) {
				ignored[u.key] = true
			}
		}
		for _, d := range deprecated {
			if d.set(&s) {
				old[d.key] = d.why
			}
		}
	}
	if len(ignored) > 0 {
		st.Warnings = append(st.Warnings, "Ignoring unsupported options: "+strings.Join(sortedKeys(ignored), ", ")+"\n")
	}
	if len(old) > 0 {
		var lines []string
		for _, k := range sortedKeys(old) {
			lines = append(lines, k+": "+old[k])
		}
		st.Warnings = append(st.Warnings, "Ignoring deprecated options:\n\n"+strings.Join(lines, "\n\n")+"\n")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func stackLabels(namespace string, in map[string]string) map[string]string {
	out := map[string]string{NamespaceLabel: namespace}
	for k, v := range in {
		out[k] = v
	}
	return out
}

// networks are the project's networks by key, and NAMESPACE_default.
func (st *Stack) networks(p *types.Project, name func(key, named string, external bool) string) (map[string]Network, error) {
	out := map[string]Network{}
	nets := p.Networks
	if _, ok := nets["default"]; !ok {
		nets = types.Networks{"default": types.NetworkConfig{}}
		for k, v := range p.Networks {
			nets[k] = v
		}
	}
	for _, k := range sortedKeys(nets) {
		n := nets[k]
		full := name(k, n.Name, bool(n.External))
		if n.External {
			out[k] = Network{Name: full, External: true}
			continue
		}
		if n.Driver != "" && n.Driver != "overlay" {
			return nil, fmt.Errorf("network %s: driver %q is not supported: use overlay", k, n.Driver)
		}
		if n.Internal {
			return nil, fmt.Errorf("network %s: internal networks are not supported: leave internal: true out", k)
		}
		if n.EnableIPv6 != nil && *n.EnableIPv6 {
			return nil, fmt.Errorf("network %s: enable_ipv6 is not supported: Shoal's overlay networks are IPv4", k)
		}
		spec := &shoalv1.NetworkSpec{Name: full, Driver: "overlay", Attachable: n.Attachable, Labels: stackLabels(st.Namespace, n.Labels)}
		if len(n.DriverOpts) > 0 {
			spec.Options = map[string]string{}
			for k, v := range n.DriverOpts {
				spec.Options[k] = v
			}
		}
		if d := n.Ipam.Driver; d != "" && d != "default" {
			return nil, fmt.Errorf("network %s: ipam driver %q is not supported: leave it out", k, d)
		}
		switch pools := n.Ipam.Config; {
		case len(pools) > 1:
			return nil, fmt.Errorf("network %s: ipam.config has %d subnets; a network has one", k, len(pools))
		case len(pools) == 1:
			if pools[0].IPRange != "" || len(pools[0].AuxiliaryAddresses) > 0 {
				return nil, fmt.Errorf("network %s: ipam.config: ip_range and aux_addresses are not supported; give subnet and gateway only", k)
			}
			spec.Subnet, spec.Gateway = pools[0].Subnet, pools[0].Gateway
		}
		out[k] = Network{Name: full, Spec: spec}
	}
	return out, nil
}

type fileObject struct {
	key string
	obj types.FileObjectConfig
}

func secretConfigs(p *types.Project) []fileObject {
	var out []fileObject
	for _, k := range sortedKeys(p.Secrets) {
		out = append(out, fileObject{k, types.FileObjectConfig(p.Secrets[k])})
	}
	return out
}

func configConfigs(p *types.Project) []fileObject {
	var out []fileObject
	for _, k := range sortedKeys(p.Configs) {
		out = append(out, fileObject{k, types.FileObjectConfig(p.Configs[k])})
	}
	return out
}

// files reads the stack's secrets or configs: a file's content, an
// environment variable's, or inline content; external ones must exist.
func (st *Stack) files(dir, word string, objs []fileObject, name func(key, named string, external bool) string) ([]File, error) {
	var out []File
	for _, o := range objs {
		f := File{Name: name(o.key, o.obj.Name, bool(o.obj.External)), External: bool(o.obj.External)}
		if !f.External {
			f.Labels = stackLabels(st.Namespace, o.obj.Labels)
			switch {
			case o.obj.File != "":
				path := o.obj.File
				if !filepath.IsAbs(path) {
					path = filepath.Join(dir, path)
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("%s %s: cannot read its file %s: %v", word, o.key, path, unwrapPath(err))
				}
				f.Data = data
			case o.obj.Environment != "":
				v, ok := os.LookupEnv(o.obj.Environment)
				if !ok {
					return nil, fmt.Errorf("%s %s: environment variable %s is not set", word, o.key, o.obj.Environment)
				}
				f.Data = []byte(v)
			case o.obj.Content != "":
				f.Data = []byte(o.obj.Content)
			default:
				return nil, fmt.Errorf("%s %s: give it a file:, an environment: or external: true", word, o.key)
			}
			if o.obj.Driver != "" || o.obj.TemplateDriver != "" {
				return nil, fmt.Errorf("%s %s: drivers and template drivers are not supported: leave driver and template_driver out", word, o.key)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func dur(d *types.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(time.Duration(*d))
}

// convertService is docker's convertService, onto Shoal's spec.
func convertService(p *types.Project, namespace, key string, s types.ServiceConfig, nets map[string]Network, name func(string, string, bool) string) (*shoalv1.ServiceSpec, error) {
	if s.Image == "" {
		return nil, fmt.Errorf("image is required: Swarm services run images (build is not supported)")
	}
	c := &shoalv1.ContainerSpec{
		Image: s.Image, Args: s.Command, Dir: s.WorkingDir, User: s.User, Hostname: s.Hostname,
		Labels: stackLabels(namespace, s.Labels), StopGracePeriod: dur(s.StopGracePeriod), StopSignal: s.StopSignal,
		ReadOnly: s.ReadOnly, CapAdd: s.CapAdd, CapDrop: s.CapDrop, Groups: s.GroupAdd, Tty: s.Tty,
	}
	if s.Entrypoint != nil {
		c.Command, c.CommandSet = s.Entrypoint, true
	}
	if s.Init != nil {
		c.Init = *s.Init
	}
	for _, k := range sortedKeys(s.Environment) {
		if v := s.Environment[k]; v != nil {
			c.Env = append(c.Env, k+"="+*v)
		}
	}
	if len(s.Sysctls) > 0 {
		c.Sysctls = map[string]string(s.Sysctls)
	}
	for _, k := range sortedKeys(s.Ulimits) {
		u := s.Ulimits[k]
		soft, hard := u.Soft, u.Hard
		if u.Single != 0 {
			soft, hard = u.Single, u.Single
		}
		c.Ulimits = append(c.Ulimits, &shoalv1.Ulimit{Name: k, Soft: int64(soft), Hard: int64(hard)})
	}
	if len(s.DNS)+len(s.DNSSearch)+len(s.DNSOpts) > 0 {
		c.DnsConfig = &shoalv1.DNSConfig{Nameservers: s.DNS, Search: s.DNSSearch, Options: s.DNSOpts}
	}
	for _, host := range sortedKeys(s.ExtraHosts) {
		for _, ip := range s.ExtraHosts[host] {
			c.Hosts = append(c.Hosts, ip+" "+host)
		}
	}
	hc, err := healthcheck(s.HealthCheck)
	if err != nil {
		return nil, err
	}
	c.Healthcheck = hc
	if c.Mounts, err = mounts(p, namespace, s, name); err != nil {
		return nil, err
	}
	for _, r := range s.Secrets {
		ref, err := fileRef(p, "secret", r.Source, types.FileReferenceConfig(r), name, func(k string) (types.FileObjectConfig, bool) {
			o, ok := p.Secrets[k]
			return types.FileObjectConfig(o), ok
		})
		if err != nil {
			return nil, err
		}
		c.Secrets = append(c.Secrets, &shoalv1.SecretReference{SecretName: ref.name, File: ref.target})
	}
	for _, r := range s.Configs {
		ref, err := fileRef(p, "config", r.Source, types.FileReferenceConfig(r), name, func(k string) (types.FileObjectConfig, bool) {
			o, ok := p.Configs[k]
			return types.FileObjectConfig(o), ok
		})
		if err != nil {
			return nil, err
		}
		if ref.target.Name == r.Source {
			ref.target.Name = "/" + r.Source
		}
		c.Configs = append(c.Configs, &shoalv1.ConfigReference{ConfigName: ref.name, File: ref.target})
	}
	task := &shoalv1.TaskSpec{Container: c, Placement: &shoalv1.Placement{}}
	if l := s.Logging; l != nil {
		if l.Driver != "" && l.Driver != "json-file" {
			return nil, fmt.Errorf("logging.driver %q is not supported: use json-file (with max-size and max-file)", l.Driver)
		}
		task.LogDriver = &shoalv1.Driver{Name: "json-file", Options: map[string]string(l.Options)}
	}
	spec := &shoalv1.ServiceSpec{Name: namespace + "_" + key, Task: task, Endpoint: &shoalv1.EndpointSpec{}}
	d := s.Deploy
	if d == nil {
		d = &types.DeployConfig{}
	}
	spec.Labels = stackLabels(namespace, d.Labels)
	if err := mode(spec, d); err != nil {
		return nil, err
	}
	if task.Restart, err = restartPolicy(s.Restart, d.RestartPolicy); err != nil {
		return nil, err
	}
	task.Placement = &shoalv1.Placement{Constraints: d.Placement.Constraints, MaxReplicas: int64(d.Placement.MaxReplicas)}
	for _, pref := range d.Placement.Preferences {
		task.Placement.Preferences = append(task.Placement.Preferences, &shoalv1.PlacementPreference{SpreadDescriptor: pref.Spread})
	}
	if task.Resources, err = resources(d.Resources); err != nil {
		return nil, err
	}
	spec.Update, spec.Rollback = updateConfig(d.UpdateConfig), updateConfig(d.RollbackConfig)
	switch d.EndpointMode {
	case "", "vip":
		spec.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_VIP
	case "dnsrr":
		spec.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
	default:
		return nil, fmt.Errorf("deploy.endpoint_mode %q: use vip or dnsrr", d.EndpointMode)
	}
	if spec.Endpoint.Ports, err = ports(s.Ports); err != nil {
		return nil, err
	}
	if spec.Networks, err = attachments(key, s, nets); err != nil {
		return nil, err
	}
	return spec, nil
}

// mode is deploy.mode and replicas.
func mode(spec *shoalv1.ServiceSpec, d *types.DeployConfig) error {
	replicas := int64(1)
	if d.Replicas != nil {
		replicas = int64(*d.Replicas)
	}
	switch d.Mode {
	case "", "replicated":
		spec.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: replicas}}
	case "global":
		if d.Replicas != nil {
			return fmt.Errorf("deploy.replicas: a global service has no replicas; leave it out or use mode: replicated")
		}
		spec.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
	case "replicated-job":
		// docker's: replicas is both the total and how many at once.
		spec.Mode = &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalv1.ReplicatedJob{TotalCompletions: replicas, MaxConcurrent: replicas}}
	case "global-job":
		spec.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}
	default:
		return fmt.Errorf("deploy.mode %q: use replicated, global, replicated-job or global-job", d.Mode)
	}
	return nil
}

// restartPolicy is deploy.restart_policy, or, without one, the service's
// restart: as docker maps it.
func restartPolicy(restart string, rp *types.RestartPolicy) (*shoalv1.RestartPolicy, error) {
	if rp == nil {
		switch {
		case restart == "":
			return nil, nil
		case restart == "no":
			return &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_NONE}, nil
		case restart == "always" || restart == "unless-stopped":
			return &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ANY}, nil
		case strings.HasPrefix(restart, "on-failure"):
			out := &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE}
			if _, n, ok := strings.Cut(restart, ":"); ok {
				v, err := strconv.ParseInt(n, 10, 64)
				if err != nil || v < 0 {
					return nil, fmt.Errorf("restart %q: the attempts must be a number", restart)
				}
				out.MaxAttempts = v
			}
			return out, nil
		}
		return nil, fmt.Errorf("restart %q: use no, always, unless-stopped or on-failure[:N]", restart)
	}
	out := &shoalv1.RestartPolicy{Delay: dur(rp.Delay), Window: dur(rp.Window)}
	switch rp.Condition {
	case "":
	case "none":
		out.Condition = shoalv1.RestartCondition_RESTART_CONDITION_NONE
	case "on-failure":
		out.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
	case "any":
		out.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ANY
	default:
		return nil, fmt.Errorf("deploy.restart_policy.condition %q: use none, on-failure or any", rp.Condition)
	}
	if rp.MaxAttempts != nil {
		out.MaxAttempts = int64(*rp.MaxAttempts)
	}
	return out, nil
}

func resources(r types.Resources) (*shoalv1.ResourceRequirements, error) {
	conv := func(what string, x *types.Resource, limits bool) (*shoalv1.Resources, error) {
		if x == nil {
			return nil, nil
		}
		if len(x.Devices) > 0 || len(x.GenericResources) > 0 {
			return nil, fmt.Errorf("deploy.resources.%s: devices and generic_resources are not supported", what)
		}
		if !limits && x.Pids != 0 {
			return nil, fmt.Errorf("deploy.resources.reservations.pids: a pids count is a limit; put it under limits")
		}
		// compose-go keeps cpus as a float32 ("0.1" is 0.100000001…):
		// rounded to a millionth of a CPU, as it was written.
		nano := int64(math.Round(float64(x.NanoCPUs)*1e6)) * 1e3
		return &shoalv1.Resources{NanoCpus: nano, MemoryBytes: int64(x.MemoryBytes), Pids: x.Pids}, nil
	}
	lim, err := conv("limits", r.Limits, true)
	if err != nil {
		return nil, err
	}
	res, err := conv("reservations", r.Reservations, false)
	if err != nil {
		return nil, err
	}
	if lim == nil && res == nil {
		return nil, nil
	}
	return &shoalv1.ResourceRequirements{Limits: lim, Reservations: res}, nil
}

// updateConfig is an update_config (or rollback_config) over docker's
// defaults, as docker's convertUpdateConfig.
func updateConfig(u *types.UpdateConfig) *shoalv1.UpdateConfig {
	if u == nil {
		return nil
	}
	out := &shoalv1.UpdateConfig{Parallelism: 1, Delay: durationpb.New(time.Duration(u.Delay)), Monitor: durationpb.New(time.Duration(u.Monitor)),
		MaxFailureRatio: u.MaxFailureRatio}
	if u.Parallelism != nil {
		out.Parallelism = *u.Parallelism
	}
	if u.Monitor == 0 {
		out.Monitor = durationpb.New(5 * time.Second)
	}
	switch u.FailureAction {
	case "", "pause":
		out.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	case "continue":
		out.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE
	case "rollback":
		out.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
	}
	switch u.Order {
	case "", "stop-first":
		out.Order = shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST
	case "start-first":
		out.Order = shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST
	}
	return out
}

// healthcheck is docker's: a string test is CMD-SHELL, disable is NONE.
func healthcheck(h *types.HealthCheckConfig) (*shoalv1.HealthConfig, error) {
	if h == nil {
		return nil, nil
	}
	if h.Disable {
		return &shoalv1.HealthConfig{Test: []string{"NONE"}}, nil
	}
	out := &shoalv1.HealthConfig{Test: h.Test, Interval: dur(h.Interval), Timeout: dur(h.Timeout), StartPeriod: dur(h.StartPeriod), StartInterval: dur(h.StartInterval)}
	if h.Retries != nil {
		out.Retries = int32(*h.Retries)
	}
	return out, nil
}

// mounts are the service's volumes and tmpfs, docker's way.
func mounts(p *types.Project, namespace string, s types.ServiceConfig, name func(string, string, bool) string) ([]*shoalv1.Mount, error) {
	var out []*shoalv1.Mount
	for _, v := range s.Volumes {
		m := &shoalv1.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			m.Type = shoalv1.MountType_MOUNT_TYPE_VOLUME
			opts := &shoalv1.VolumeOptions{}
			if v.Volume != nil {
				opts.NoCopy = v.Volume.NoCopy
				if len(v.Volume.Labels) > 0 {
					opts.Labels = map[string]string(v.Volume.Labels)
				}
				if v.Volume.Subpath != "" {
					return nil, fmt.Errorf("volumes: %s: volume.subpath is not supported", v.Target)
				}
			}
			if v.Source != "" {
				vol, ok := p.Volumes[v.Source]
				if !ok {
					return nil, fmt.Errorf("volumes: %s: volume %q is not declared in the top-level volumes", v.Target, v.Source)
				}
				m.Source = name(v.Source, vol.Name, bool(vol.External))
				if !vol.External {
					opts.Labels = stackLabels(namespace, mergeMaps(vol.Labels, opts.Labels))
					if vol.Driver != "" || len(vol.DriverOpts) > 0 {
						driver := vol.Driver
						if driver == "" {
							driver = "local"
						}
						opts.DriverConfig = &shoalv1.Driver{Name: driver, Options: map[string]string(vol.DriverOpts)}
					}
				}
			}
			m.VolumeOptions = opts
		case types.VolumeTypeBind:
			m.Type, m.Source = shoalv1.MountType_MOUNT_TYPE_BIND, v.Source
			if !filepath.IsAbs(m.Source) {
				m.Source = filepath.Join(p.WorkingDir, m.Source)
			}
			if v.Bind != nil && v.Bind.Propagation != "" {
				m.BindOptions = &shoalv1.BindOptions{Propagation: v.Bind.Propagation}
			}
		case types.VolumeTypeTmpfs:
			m.Type = shoalv1.MountType_MOUNT_TYPE_TMPFS
			if v.Tmpfs != nil {
				m.TmpfsOptions = &shoalv1.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size), Mode: v.Tmpfs.Mode}
			}
		default:
			return nil, fmt.Errorf("volumes: %s: type %q is not supported: use volume, bind or tmpfs", v.Target, v.Type)
		}
		out = append(out, m)
	}
	for _, t := range s.Tmpfs {
		path, opts, _ := strings.Cut(t, ":")
		if opts != "" {
			return nil, fmt.Errorf("tmpfs %q: options are not supported here: use the long volumes syntax (type: tmpfs, tmpfs.size)", t)
		}
		out = append(out, &shoalv1.Mount{Type: shoalv1.MountType_MOUNT_TYPE_TMPFS, Target: path})
	}
	return out, nil
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

type ref struct {
	name   string
	target *shoalv1.FileTarget
}

// fileRef is a service's use of a secret or config: its full name, and
// the file's target, owner and mode (docker's defaults: the source's
// name, 0, 0, 0444).
func fileRef(_ *types.Project, word, source string, r types.FileReferenceConfig, name func(string, string, bool) string, lookup func(string) (types.FileObjectConfig, bool)) (ref, error) {
	obj, ok := lookup(source)
	if !ok {
		return ref{}, fmt.Errorf("%ss: %s %q is not declared in the top-level %ss", word, word, source, word)
	}
	t := &shoalv1.FileTarget{Name: r.Target, Uid: r.UID, Gid: r.GID, Mode: 0o444}
	if t.Name == "" {
		t.Name = source
	}
	if t.Uid == "" {
		t.Uid = "0"
	}
	if t.Gid == "" {
		t.Gid = "0"
	}
	if r.Mode != nil {
		t.Mode = uint32(*r.Mode)
	}
	return ref{name: name(source, obj.Name, bool(obj.External)), target: t}, nil
}

// ports are the service's published ports.
func ports(in []types.ServicePortConfig) ([]*shoalv1.PortConfig, error) {
	var out []*shoalv1.PortConfig
	for _, p := range in {
		pc := &shoalv1.PortConfig{Name: p.Name, TargetPort: p.Target}
		switch p.Protocol {
		case "", "tcp":
			pc.Protocol = shoalv1.PortProtocol_PORT_PROTOCOL_TCP
		case "udp":
			pc.Protocol = shoalv1.PortProtocol_PORT_PROTOCOL_UDP
		default:
			return nil, fmt.Errorf("ports: %d: protocol %q is not supported: use tcp or udp", p.Target, p.Protocol)
		}
		switch p.Mode {
		case "", "ingress":
			pc.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_INGRESS
		case "host":
			pc.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_HOST
		default:
			return nil, fmt.Errorf("ports: %d: mode %q: use ingress or host", p.Target, p.Mode)
		}
		if p.HostIP != "" && p.HostIP != "0.0.0.0" {
			return nil, fmt.Errorf("ports: %d: a host IP (%s) is not supported by Swarm services: publish on every address", p.Target, p.HostIP)
		}
		if p.Published != "" {
			n, err := strconv.ParseUint(p.Published, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("ports: published %q: give one port (a range expands to one port per target)", p.Published)
			}
			pc.PublishedPort = uint32(n)
		}
		out = append(out, pc)
	}
	return out, nil
}

// attachments are the service's networks with their aliases, the
// service's key among them (docker's), or NAMESPACE_default.
func attachments(key string, s types.ServiceConfig, nets map[string]Network) ([]*shoalv1.NetworkAttachment, error) {
	if len(s.Networks) == 0 {
		n := nets["default"]
		return []*shoalv1.NetworkAttachment{{Target: n.Name, Aliases: []string{key}}}, nil
	}
	var out []*shoalv1.NetworkAttachment
	for _, k := range sortedKeys(s.Networks) {
		n, ok := nets[k]
		if !ok {
			return nil, fmt.Errorf("networks: network %q is not declared in the top-level networks", k)
		}
		a := &shoalv1.NetworkAttachment{Target: n.Name, Aliases: []string{key}}
		if cfg := s.Networks[k]; cfg != nil {
			if cfg.Ipv4Address != "" || cfg.Ipv6Address != "" {
				return nil, fmt.Errorf("networks: %s: fixed addresses (ipv4_address, ipv6_address) are not supported by Swarm services", k)
			}
			for _, al := range cfg.Aliases {
				if al != key {
					a.Aliases = append(a.Aliases, al)
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}
