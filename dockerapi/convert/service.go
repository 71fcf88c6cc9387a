package convert

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// LabelPlacementStrategy is the service label that carries Shoal's
// placement strategy (spread, binpack) through Docker's ServiceSpec,
// which has no field for it: a service inspected through the Docker API
// shows it, and a spec that sets it chooses the strategy.
const LabelPlacementStrategy = "io.shoal.placement.strategy"

// Health check tests for the node's probes from outside the container,
// which Docker's HealthConfig has no fields for.
const (
	TestHTTP = "HTTP" // ["HTTP", "http://:8080/healthz"]
	TestTCP  = "TCP"  // ["TCP", "5432"]
)

// ServiceSpec converts Docker's ServiceSpec into Shoal's, refusing any
// field Shoal does not support. registryAuth is the request's
// X-Registry-Auth header ("" for none).
func ServiceSpec(in swarm.ServiceSpec, registryAuth string) (*shoalv1.ServiceSpec, error) {
	out := &shoalv1.ServiceSpec{Name: in.Name, Labels: copyMap(in.Labels)}
	if s, ok := in.Labels[LabelPlacementStrategy]; ok {
		delete(out.Labels, LabelPlacementStrategy)
		if len(out.Labels) == 0 {
			out.Labels = nil
		}
		switch s {
		case "spread", "":
		case "binpack":
		default:
			return nil, invalid("Labels."+LabelPlacementStrategy, "%q: use spread or binpack", s)
		}
	}
	task, err := TaskSpec(in.TaskTemplate, registryAuth)
	if err != nil {
		return nil, err
	}
	if in.Labels[LabelPlacementStrategy] == "binpack" {
		if task.Placement == nil {
			task.Placement = &shoalv1.Placement{}
		}
		task.Placement.Strategy = shoalv1.PlacementStrategy_PLACEMENT_STRATEGY_BINPACK
	}
	out.Task = task
	if err := mode(in.Mode, out); err != nil {
		return nil, err
	}
	if out.Update, err = updateConfig("UpdateConfig", in.UpdateConfig); err != nil {
		return nil, err
	}
	if out.Rollback, err = updateConfig("RollbackConfig", in.RollbackConfig); err != nil {
		return nil, err
	}
	if e := in.EndpointSpec; e != nil {
		ep := &shoalv1.EndpointSpec{}
		switch e.Mode {
		case "":
		case swarm.ResolutionModeVIP:
			ep.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_VIP
		case swarm.ResolutionModeDNSRR:
			ep.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR
		default:
			return nil, invalid("EndpointSpec.Mode", "%q: use vip or dnsrr", e.Mode)
		}
		for i, p := range e.Ports {
			pc, err := port(fmt.Sprintf("EndpointSpec.Ports[%d]", i), p)
			if err != nil {
				return nil, err
			}
			ep.Ports = append(ep.Ports, pc)
		}
		out.Endpoint = ep
	}
	// Docker's older clients put the networks on the service.
	for i, n := range in.TaskTemplate.Networks {
		if len(n.DriverOpts) > 0 {
			return nil, unsupported(fmt.Sprintf("TaskTemplate.Networks[%d].DriverOpts", i), "a task's network options are the network's")
		}
		out.Networks = append(out.Networks, &shoalv1.NetworkAttachment{Target: n.Target, Aliases: n.Aliases})
	}
	return out, nil
}

func mode(m swarm.ServiceMode, out *shoalv1.ServiceSpec) error {
	n := 0
	for _, set := range []bool{m.Replicated != nil, m.Global != nil, m.ReplicatedJob != nil, m.GlobalJob != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return invalid("Mode", "set only one of Replicated, Global, ReplicatedJob and GlobalJob")
	}
	switch {
	case m.Global != nil:
		out.Mode = &shoalv1.ServiceSpec_Global{Global: &shoalv1.GlobalService{}}
	case m.ReplicatedJob != nil:
		j := &shoalv1.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}
		if v := m.ReplicatedJob.MaxConcurrent; v != nil {
			j.MaxConcurrent = int64(*v)
		}
		if v := m.ReplicatedJob.TotalCompletions; v != nil {
			j.TotalCompletions = int64(*v)
		}
		out.Mode = &shoalv1.ServiceSpec_ReplicatedJob{ReplicatedJob: j}
	case m.GlobalJob != nil:
		out.Mode = &shoalv1.ServiceSpec_GlobalJob{GlobalJob: &shoalv1.GlobalJob{}}
	default:
		r := int64(1)
		if m.Replicated != nil && m.Replicated.Replicas != nil {
			r = int64(*m.Replicated.Replicas)
		}
		out.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: r}}
	}
	return nil
}

func updateConfig(field string, u *swarm.UpdateConfig) (*shoalv1.UpdateConfig, error) {
	if u == nil {
		return nil, nil
	}
	out := &shoalv1.UpdateConfig{Parallelism: u.Parallelism, Delay: dur(u.Delay), Monitor: dur(u.Monitor), MaxFailureRatio: u.MaxFailureRatio}
	switch u.FailureAction {
	case "":
	case swarm.UpdateFailureActionPause:
		out.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	case swarm.UpdateFailureActionContinue:
		out.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE
	case swarm.UpdateFailureActionRollback:
		out.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
	default:
		return nil, invalid(field+".FailureAction", "%q: use pause, continue or rollback", u.FailureAction)
	}
	switch u.Order {
	case "":
	case swarm.UpdateOrderStopFirst:
		out.Order = shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST
	case swarm.UpdateOrderStartFirst:
		out.Order = shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST
	default:
		return nil, invalid(field+".Order", "%q: use stop-first or start-first", u.Order)
	}
	return out, nil
}

func port(field string, p swarm.PortConfig) (*shoalv1.PortConfig, error) {
	out := &shoalv1.PortConfig{Name: p.Name, TargetPort: p.TargetPort, PublishedPort: p.PublishedPort}
	switch p.Protocol {
	case "", network.TCP:
		out.Protocol = shoalv1.PortProtocol_PORT_PROTOCOL_TCP
	case network.UDP:
		out.Protocol = shoalv1.PortProtocol_PORT_PROTOCOL_UDP
	default:
		return nil, unsupported(field+".Protocol "+strconv.Quote(string(p.Protocol)), "use tcp or udp")
	}
	switch p.PublishMode {
	case "", swarm.PortConfigPublishModeIngress:
		out.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_INGRESS
	case swarm.PortConfigPublishModeHost:
		out.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_HOST
	default:
		return nil, invalid(field+".PublishMode", "%q: use ingress or host", p.PublishMode)
	}
	return out, nil
}

// TaskSpec converts Docker's TaskSpec into Shoal's.
func TaskSpec(in swarm.TaskSpec, registryAuth string) (*shoalv1.TaskSpec, error) {
	switch in.Runtime {
	case "", swarm.RuntimeContainer:
	default:
		return nil, unsupported("TaskTemplate.Runtime "+strconv.Quote(string(in.Runtime)), "Shoal's tasks are containers")
	}
	if in.PluginSpec != nil {
		return nil, unsupported("TaskTemplate.PluginSpec", "Shoal has no plugins")
	}
	if in.NetworkAttachmentSpec != nil {
		return nil, unsupported("TaskTemplate.NetworkAttachmentSpec", "attach a container with `shoal run --network`")
	}
	if in.ContainerSpec == nil {
		return nil, invalid("TaskTemplate.ContainerSpec", "missing: a service runs a container; give its Image")
	}
	out := &shoalv1.TaskSpec{ForceUpdate: in.ForceUpdate}
	c, err := containerSpec(*in.ContainerSpec)
	if err != nil {
		return nil, err
	}
	if registryAuth != "" {
		c.PullOptions = &shoalv1.PullOptions{RegistryAuth: registryAuth}
	}
	out.Container = c
	if r := in.Resources; r != nil {
		if r.SwapBytes != nil {
			return nil, unsupported("TaskTemplate.Resources.SwapBytes", "")
		}
		if r.MemorySwappiness != nil {
			return nil, unsupported("TaskTemplate.Resources.MemorySwappiness", "")
		}
		rr := &shoalv1.ResourceRequirements{}
		if l := r.Limits; l != nil && (l.NanoCPUs != 0 || l.MemoryBytes != 0 || l.Pids != 0) {
			rr.Limits = &shoalv1.Resources{NanoCpus: l.NanoCPUs, MemoryBytes: l.MemoryBytes, Pids: l.Pids}
		}
		if v := r.Reservations; v != nil {
			if len(v.GenericResources) > 0 {
				return nil, unsupported("TaskTemplate.Resources.Reservations.GenericResources", "reserve CPUs and memory")
			}
			if v.NanoCPUs != 0 || v.MemoryBytes != 0 {
				rr.Reservations = &shoalv1.Resources{NanoCpus: v.NanoCPUs, MemoryBytes: v.MemoryBytes}
			}
		}
		if rr.Limits != nil || rr.Reservations != nil {
			out.Resources = rr
		}
	}
	if p := in.RestartPolicy; p != nil {
		rp := &shoalv1.RestartPolicy{Delay: durPtr(p.Delay), Window: durPtr(p.Window)}
		switch p.Condition {
		case "":
		case swarm.RestartPolicyConditionNone:
			rp.Condition = shoalv1.RestartCondition_RESTART_CONDITION_NONE
		case swarm.RestartPolicyConditionOnFailure:
			rp.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
		case swarm.RestartPolicyConditionAny:
			rp.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ANY
		default:
			return nil, invalid("TaskTemplate.RestartPolicy.Condition", "%q: use none, on-failure or any", p.Condition)
		}
		if p.MaxAttempts != nil {
			rp.MaxAttempts = int64(*p.MaxAttempts)
		}
		out.Restart = rp
	}
	if p := in.Placement; p != nil {
		pl := &shoalv1.Placement{Constraints: p.Constraints, MaxReplicas: int64(p.MaxReplicas)}
		for i, pref := range p.Preferences {
			if pref.Spread == nil {
				return nil, invalid(fmt.Sprintf("TaskTemplate.Placement.Preferences[%d]", i), "only Spread preferences exist")
			}
			pl.Preferences = append(pl.Preferences, &shoalv1.PlacementPreference{SpreadDescriptor: pref.Spread.SpreadDescriptor})
		}
		for _, pf := range p.Platforms {
			pl.Platforms = append(pl.Platforms, &shoalv1.Platform{Os: pf.OS, Architecture: pf.Architecture})
		}
		if len(pl.Constraints) > 0 || len(pl.Preferences) > 0 || len(pl.Platforms) > 0 || pl.MaxReplicas > 0 {
			out.Placement = pl
		}
	}
	if d := in.LogDriver; d != nil {
		out.LogDriver = &shoalv1.Driver{Name: d.Name, Options: copyMap(d.Options)}
	}
	return out, nil
}

func containerSpec(in swarm.ContainerSpec) (*shoalv1.ContainerSpec, error) {
	const f = "TaskTemplate.ContainerSpec."
	// Privileges.NoNewPrivileges is taken either way: Shoal's containers
	// always run with no_new_privs.
	if p := in.Privileges; p != nil {
		switch {
		case p.CredentialSpec != nil && *p.CredentialSpec != (swarm.CredentialSpec{}):
			return nil, unsupported(f+"Privileges.CredentialSpec", "it is for Windows")
		case p.SELinuxContext != nil && *p.SELinuxContext != (swarm.SELinuxContext{}):
			return nil, unsupported(f+"Privileges.SELinuxContext", "")
		case p.Seccomp != nil && p.Seccomp.Mode != "" && p.Seccomp.Mode != swarm.SeccompModeDefault:
			return nil, unsupported(f+"Privileges.Seccomp", "Shoal applies no seccomp profile of its own")
		case p.AppArmor != nil && p.AppArmor.Mode != "" && p.AppArmor.Mode != swarm.AppArmorModeDefault:
			return nil, unsupported(f+"Privileges.AppArmor", "")
		}
	}
	if in.OpenStdin {
		return nil, unsupported(f+"OpenStdin", "a service's tasks read no input")
	}
	switch in.Isolation {
	case container.IsolationEmpty, container.IsolationDefault:
	default:
		return nil, unsupported(f+"Isolation "+strconv.Quote(string(in.Isolation)), "Shoal's containers use Linux namespaces")
	}
	if in.OomScoreAdj != 0 {
		return nil, unsupported(f+"OomScoreAdj", "")
	}
	out := &shoalv1.ContainerSpec{
		Image: in.Image, Labels: copyMap(in.Labels), Command: in.Command, Args: in.Args, Hostname: in.Hostname,
		Env: in.Env, Dir: in.Dir, User: in.User, Groups: in.Groups, StopSignal: in.StopSignal, Tty: in.TTY,
		ReadOnly: in.ReadOnly, StopGracePeriod: durPtr(in.StopGracePeriod), Hosts: in.Hosts, Sysctls: copyMap(in.Sysctls),
		CapAdd: in.CapabilityAdd, CapDrop: in.CapabilityDrop,
	}
	if in.Init != nil {
		out.Init = *in.Init
	}
	for i, m := range in.Mounts {
		sm, err := mountFrom(fmt.Sprintf(f+"Mounts[%d]", i), m)
		if err != nil {
			return nil, err
		}
		out.Mounts = append(out.Mounts, sm)
	}
	if h := in.Healthcheck; h != nil {
		hc, err := healthFrom(f+"Healthcheck", h)
		if err != nil {
			return nil, err
		}
		out.Healthcheck = hc
	}
	if d := in.DNSConfig; d != nil && (len(d.Nameservers) > 0 || len(d.Search) > 0 || len(d.Options) > 0) {
		dc := &shoalv1.DNSConfig{Search: d.Search, Options: d.Options}
		for _, a := range d.Nameservers {
			dc.Nameservers = append(dc.Nameservers, a.String())
		}
		out.DnsConfig = dc
	}
	for i, s := range in.Secrets {
		if s == nil {
			return nil, invalid(fmt.Sprintf(f+"Secrets[%d]", i), "null")
		}
		out.Secrets = append(out.Secrets, &shoalv1.SecretReference{SecretId: s.SecretID, SecretName: s.SecretName, File: fileTarget(s.File)})
	}
	for i, c := range in.Configs {
		if c == nil {
			return nil, invalid(fmt.Sprintf(f+"Configs[%d]", i), "null")
		}
		if c.Runtime != nil {
			return nil, unsupported(fmt.Sprintf(f+"Configs[%d].Runtime", i), "it is for Windows credential specs; mount the config as a file")
		}
		var ft *shoalv1.FileTarget
		if c.File != nil {
			ft = fileTarget(&swarm.SecretReferenceFileTarget{Name: c.File.Name, UID: c.File.UID, GID: c.File.GID, Mode: c.File.Mode})
		}
		out.Configs = append(out.Configs, &shoalv1.ConfigReference{ConfigId: c.ConfigID, ConfigName: c.ConfigName, File: ft})
	}
	for i, u := range in.Ulimits {
		if u == nil {
			return nil, invalid(fmt.Sprintf(f+"Ulimits[%d]", i), "null")
		}
		out.Ulimits = append(out.Ulimits, &shoalv1.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return out, nil
}

func fileTarget(t *swarm.SecretReferenceFileTarget) *shoalv1.FileTarget {
	if t == nil {
		return nil
	}
	return &shoalv1.FileTarget{Name: t.Name, Uid: t.UID, Gid: t.GID, Mode: uint32(t.Mode.Perm())}
}

func mountFrom(field string, m mount.Mount) (*shoalv1.Mount, error) {
	out := &shoalv1.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	switch m.Type {
	case mount.TypeBind:
		out.Type = shoalv1.MountType_MOUNT_TYPE_BIND
	case mount.TypeVolume:
		out.Type = shoalv1.MountType_MOUNT_TYPE_VOLUME
	case mount.TypeTmpfs:
		out.Type = shoalv1.MountType_MOUNT_TYPE_TMPFS
	default:
		return nil, unsupported(field+".Type "+strconv.Quote(string(m.Type)), "use bind, volume or tmpfs")
	}
	switch m.Consistency {
	case "", mount.ConsistencyDefault, mount.ConsistencyFull:
	default:
		return nil, unsupported(field+".Consistency "+strconv.Quote(string(m.Consistency)), "it is for Docker Desktop")
	}
	if m.ImageOptions != nil {
		return nil, unsupported(field+".ImageOptions", "")
	}
	if m.ClusterOptions != nil {
		return nil, unsupported(field+".ClusterOptions", "Shoal has no cluster volumes")
	}
	if b := m.BindOptions; b != nil {
		switch {
		case b.NonRecursive:
			return nil, unsupported(field+".BindOptions.NonRecursive", "")
		case b.CreateMountpoint:
			return nil, unsupported(field+".BindOptions.CreateMountpoint", "create the host path first")
		case b.ReadOnlyNonRecursive || b.ReadOnlyForceRecursive:
			return nil, unsupported(field+".BindOptions.ReadOnly*", "use ReadOnly")
		}
		if b.Propagation != "" {
			out.BindOptions = &shoalv1.BindOptions{Propagation: string(b.Propagation)}
		}
	}
	if v := m.VolumeOptions; v != nil {
		if v.Subpath != "" {
			return nil, unsupported(field+".VolumeOptions.Subpath", "")
		}
		vo := &shoalv1.VolumeOptions{NoCopy: v.NoCopy, Labels: copyMap(v.Labels)}
		if d := v.DriverConfig; d != nil && (d.Name != "" || len(d.Options) > 0) {
			vo.DriverConfig = &shoalv1.Driver{Name: d.Name, Options: copyMap(d.Options)}
		}
		if vo.NoCopy || vo.Labels != nil || vo.DriverConfig != nil {
			out.VolumeOptions = vo
		}
	}
	if t := m.TmpfsOptions; t != nil {
		if len(t.Options) > 0 {
			return nil, unsupported(field+".TmpfsOptions.Options", "give SizeBytes and Mode")
		}
		if t.SizeBytes != 0 || t.Mode != 0 {
			out.TmpfsOptions = &shoalv1.TmpfsOptions{SizeBytes: t.SizeBytes, Mode: modeBits(t.Mode)}
		}
	}
	return out, nil
}

// modeBits is a Go file mode's permission, setuid, setgid and sticky bits
// as the Unix mode number Shoal keeps.
func modeBits(m os.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// fileMode is the inverse of modeBits.
func fileMode(b uint32) os.FileMode {
	m := os.FileMode(b & 0o777)
	if b&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if b&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if b&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func healthFrom(field string, h *container.HealthConfig) (*shoalv1.HealthConfig, error) {
	out := &shoalv1.HealthConfig{
		Interval: dur(h.Interval), Timeout: dur(h.Timeout), StartPeriod: dur(h.StartPeriod),
		StartInterval: dur(h.StartInterval), Retries: int32(h.Retries),
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case TestHTTP:
			if len(h.Test) != 2 {
				return nil, invalid(field+".Test", `["HTTP", URL] takes one URL`)
			}
			out.Http = h.Test[1]
			return out, nil
		case TestTCP:
			p, err := strconv.ParseUint(strings.Join(h.Test[1:], ""), 10, 16)
			if len(h.Test) != 2 || err != nil || p == 0 {
				return nil, invalid(field+".Test", `["TCP", PORT] takes one port number`)
			}
			out.TcpPort = uint32(p)
			return out, nil
		}
	}
	out.Test = h.Test
	return out, nil
}

// FromServiceSpec converts Shoal's ServiceSpec into Docker's.
func FromServiceSpec(in *shoalv1.ServiceSpec) swarm.ServiceSpec {
	out := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: in.GetName(), Labels: labels(in.GetLabels())}}
	if in.GetTask().GetPlacement().GetStrategy() == shoalv1.PlacementStrategy_PLACEMENT_STRATEGY_BINPACK {
		out.Labels[LabelPlacementStrategy] = "binpack"
	}
	out.TaskTemplate = FromTaskSpec(in.GetTask())
	for _, n := range in.GetNetworks() {
		out.TaskTemplate.Networks = append(out.TaskTemplate.Networks, swarm.NetworkAttachmentConfig{Target: n.GetTarget(), Aliases: n.GetAliases()})
	}
	switch m := in.GetMode().(type) {
	case *shoalv1.ServiceSpec_Global:
		out.Mode.Global = &swarm.GlobalService{}
	case *shoalv1.ServiceSpec_ReplicatedJob:
		out.Mode.ReplicatedJob = &swarm.ReplicatedJob{
			MaxConcurrent: u64(uint64(m.ReplicatedJob.GetMaxConcurrent())), TotalCompletions: u64(uint64(m.ReplicatedJob.GetTotalCompletions())),
		}
	case *shoalv1.ServiceSpec_GlobalJob:
		out.Mode.GlobalJob = &swarm.GlobalJob{}
	default:
		out.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(uint64(in.GetReplicated().GetReplicas()))}
	}
	out.UpdateConfig = fromUpdateConfig(in.GetUpdate())
	out.RollbackConfig = fromUpdateConfig(in.GetRollback())
	if e := in.GetEndpoint(); e != nil {
		es := &swarm.EndpointSpec{Ports: fromPorts(e.GetPorts())}
		switch e.GetMode() {
		case shoalv1.EndpointMode_ENDPOINT_MODE_VIP:
			es.Mode = swarm.ResolutionModeVIP
		case shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR:
			es.Mode = swarm.ResolutionModeDNSRR
		}
		out.EndpointSpec = es
	}
	return out
}

func fromUpdateConfig(u *shoalv1.UpdateConfig) *swarm.UpdateConfig {
	if u == nil {
		return nil
	}
	out := &swarm.UpdateConfig{Parallelism: u.GetParallelism(), Delay: fromDur(u.GetDelay()), Monitor: fromDur(u.GetMonitor()), MaxFailureRatio: u.GetMaxFailureRatio()}
	switch u.GetFailureAction() {
	case shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE:
		out.FailureAction = swarm.UpdateFailureActionPause
	case shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE:
		out.FailureAction = swarm.UpdateFailureActionContinue
	case shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK:
		out.FailureAction = swarm.UpdateFailureActionRollback
	}
	switch u.GetOrder() {
	case shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST:
		out.Order = swarm.UpdateOrderStopFirst
	case shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST:
		out.Order = swarm.UpdateOrderStartFirst
	}
	return out
}

func fromPorts(ps []*shoalv1.PortConfig) []swarm.PortConfig {
	var out []swarm.PortConfig
	for _, p := range ps {
		pc := swarm.PortConfig{Name: p.GetName(), TargetPort: p.GetTargetPort(), PublishedPort: p.GetPublishedPort()}
		switch p.GetProtocol() {
		case shoalv1.PortProtocol_PORT_PROTOCOL_UDP:
			pc.Protocol = network.UDP
		default:
			pc.Protocol = network.TCP
		}
		switch p.GetPublishMode() {
		case shoalv1.PublishMode_PUBLISH_MODE_HOST:
			pc.PublishMode = swarm.PortConfigPublishModeHost
		default:
			pc.PublishMode = swarm.PortConfigPublishModeIngress
		}
		out = append(out, pc)
	}
	return out
}

// FromTaskSpec converts Shoal's TaskSpec into Docker's. Registry
// credentials are never shown.
func FromTaskSpec(in *shoalv1.TaskSpec) swarm.TaskSpec {
	out := swarm.TaskSpec{ForceUpdate: in.GetForceUpdate(), Runtime: swarm.RuntimeContainer}
	c := in.GetContainer()
	cs := &swarm.ContainerSpec{
		Image: c.GetImage(), Labels: copyMap(c.GetLabels()), Command: c.GetCommand(), Args: c.GetArgs(), Hostname: c.GetHostname(),
		Env: c.GetEnv(), Dir: c.GetDir(), User: c.GetUser(), Groups: c.GetGroups(), StopSignal: c.GetStopSignal(), TTY: c.GetTty(),
		ReadOnly: c.GetReadOnly(), StopGracePeriod: fromDurPtr(c.GetStopGracePeriod()), Hosts: c.GetHosts(), Sysctls: copyMap(c.GetSysctls()),
		CapabilityAdd: c.GetCapAdd(), CapabilityDrop: c.GetCapDrop(),
	}
	if c.GetInit() {
		t := true
		cs.Init = &t
	}
	for _, m := range c.GetMounts() {
		cs.Mounts = append(cs.Mounts, fromMount(m))
	}
	if h := c.GetHealthcheck(); h != nil {
		hc := &container.HealthConfig{
			Test: h.GetTest(), Interval: fromDur(h.GetInterval()), Timeout: fromDur(h.GetTimeout()),
			StartPeriod: fromDur(h.GetStartPeriod()), StartInterval: fromDur(h.GetStartInterval()), Retries: int(h.GetRetries()),
		}
		switch {
		case h.GetHttp() != "":
			hc.Test = []string{TestHTTP, h.GetHttp()}
		case h.GetTcpPort() != 0:
			hc.Test = []string{TestTCP, strconv.FormatUint(uint64(h.GetTcpPort()), 10)}
		}
		cs.Healthcheck = hc
	}
	if d := c.GetDnsConfig(); d != nil {
		dc := &swarm.DNSConfig{Search: d.GetSearch(), Options: d.GetOptions()}
		for _, a := range d.GetNameservers() {
			if ip, err := netip.ParseAddr(a); err == nil {
				dc.Nameservers = append(dc.Nameservers, ip)
			}
		}
		cs.DNSConfig = dc
	}
	for _, s := range c.GetSecrets() {
		cs.Secrets = append(cs.Secrets, &swarm.SecretReference{SecretID: s.GetSecretId(), SecretName: s.GetSecretName(), File: fromFileTarget(s.GetFile())})
	}
	for _, s := range c.GetConfigs() {
		ref := &swarm.ConfigReference{ConfigID: s.GetConfigId(), ConfigName: s.GetConfigName()}
		if f := fromFileTarget(s.GetFile()); f != nil {
			ref.File = &swarm.ConfigReferenceFileTarget{Name: f.Name, UID: f.UID, GID: f.GID, Mode: f.Mode}
		}
		cs.Configs = append(cs.Configs, ref)
	}
	for _, u := range c.GetUlimits() {
		cs.Ulimits = append(cs.Ulimits, &container.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	out.ContainerSpec = cs
	if r := in.GetResources(); r != nil {
		rr := &swarm.ResourceRequirements{}
		if l := r.GetLimits(); l != nil {
			rr.Limits = &swarm.Limit{NanoCPUs: l.GetNanoCpus(), MemoryBytes: l.GetMemoryBytes(), Pids: l.GetPids()}
		}
		if v := r.GetReservations(); v != nil {
			rr.Reservations = &swarm.Resources{NanoCPUs: v.GetNanoCpus(), MemoryBytes: v.GetMemoryBytes()}
		}
		out.Resources = rr
	}
	if p := in.GetRestart(); p != nil {
		rp := &swarm.RestartPolicy{Delay: fromDurPtr(p.GetDelay()), Window: fromDurPtr(p.GetWindow())}
		switch p.GetCondition() {
		case shoalv1.RestartCondition_RESTART_CONDITION_NONE:
			rp.Condition = swarm.RestartPolicyConditionNone
		case shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE:
			rp.Condition = swarm.RestartPolicyConditionOnFailure
		case shoalv1.RestartCondition_RESTART_CONDITION_ANY:
			rp.Condition = swarm.RestartPolicyConditionAny
		}
		if p.GetMaxAttempts() != 0 {
			rp.MaxAttempts = u64(uint64(p.GetMaxAttempts()))
		}
		out.RestartPolicy = rp
	}
	if p := in.GetPlacement(); p != nil {
		pl := &swarm.Placement{Constraints: p.GetConstraints(), MaxReplicas: uint64(p.GetMaxReplicas())}
		for _, pref := range p.GetPreferences() {
			pl.Preferences = append(pl.Preferences, swarm.PlacementPreference{Spread: &swarm.SpreadOver{SpreadDescriptor: pref.GetSpreadDescriptor()}})
		}
		for _, pf := range p.GetPlatforms() {
			pl.Platforms = append(pl.Platforms, swarm.Platform{OS: pf.GetOs(), Architecture: pf.GetArchitecture()})
		}
		out.Placement = pl
	}
	if d := in.GetLogDriver(); d != nil {
		out.LogDriver = &swarm.Driver{Name: d.GetName(), Options: copyMap(d.GetOptions())}
	}
	return out
}

func fromFileTarget(t *shoalv1.FileTarget) *swarm.SecretReferenceFileTarget {
	if t == nil {
		return nil
	}
	return &swarm.SecretReferenceFileTarget{Name: t.GetName(), UID: t.GetUid(), GID: t.GetGid(), Mode: os.FileMode(t.GetMode()) & os.ModePerm}
}

func fromMount(m *shoalv1.Mount) mount.Mount {
	out := mount.Mount{Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadOnly()}
	switch m.GetType() {
	case shoalv1.MountType_MOUNT_TYPE_BIND:
		out.Type = mount.TypeBind
	case shoalv1.MountType_MOUNT_TYPE_VOLUME:
		out.Type = mount.TypeVolume
	case shoalv1.MountType_MOUNT_TYPE_TMPFS:
		out.Type = mount.TypeTmpfs
	}
	if b := m.GetBindOptions(); b != nil {
		out.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(b.GetPropagation())}
	}
	if v := m.GetVolumeOptions(); v != nil {
		vo := &mount.VolumeOptions{NoCopy: v.GetNoCopy(), Labels: copyMap(v.GetLabels())}
		if d := v.GetDriverConfig(); d != nil {
			vo.DriverConfig = &mount.Driver{Name: d.GetName(), Options: copyMap(d.GetOptions())}
		}
		out.VolumeOptions = vo
	}
	if t := m.GetTmpfsOptions(); t != nil {
		out.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: t.GetSizeBytes(), Mode: fileMode(t.GetMode())}
	}
	return out
}

// Service converts a Shoal service into Docker's, its task counts (the
// ServiceStatus of a list with status=true) given by the caller.
func Service(in *shoalv1.Service, status *swarm.ServiceStatus) swarm.Service {
	out := swarm.Service{ID: in.GetId(), Meta: Meta(in.GetMeta()), Spec: FromServiceSpec(in.GetSpec()), ServiceStatus: status}
	if p := in.GetPreviousSpec(); p != nil {
		ps := FromServiceSpec(p)
		out.PreviousSpec = &ps
	}
	out.Endpoint.Ports = fromPorts(in.GetEndpoint().GetPorts())
	if e := in.GetSpec().GetEndpoint(); e != nil {
		out.Endpoint.Spec = *out.Spec.EndpointSpec
	} else {
		out.Endpoint.Spec.Mode = swarm.ResolutionModeVIP
	}
	if out.Endpoint.Spec.Mode == "" {
		out.Endpoint.Spec.Mode = swarm.ResolutionModeVIP
	}
	for _, v := range in.GetEndpoint().GetVirtualIps() {
		vip := swarm.EndpointVirtualIP{NetworkID: v.GetNetworkId()}
		if p, err := netip.ParsePrefix(v.GetAddr()); err == nil {
			vip.Addr = p
		}
		out.Endpoint.VirtualIPs = append(out.Endpoint.VirtualIPs, vip)
	}
	if u := in.GetUpdateStatus(); u != nil {
		us := &swarm.UpdateStatus{StartedAt: tsPtr(u.GetStartedAt()), CompletedAt: tsPtr(u.GetCompletedAt()), Message: u.GetMessage()}
		us.State = map[shoalv1.UpdateState]swarm.UpdateState{
			shoalv1.UpdateState_UPDATE_STATE_UPDATING:           swarm.UpdateStateUpdating,
			shoalv1.UpdateState_UPDATE_STATE_PAUSED:             swarm.UpdateStatePaused,
			shoalv1.UpdateState_UPDATE_STATE_COMPLETED:          swarm.UpdateStateCompleted,
			shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED:   swarm.UpdateStateRollbackStarted,
			shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED:    swarm.UpdateStateRollbackPaused,
			shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED: swarm.UpdateStateRollbackCompleted,
		}[u.GetState()]
		out.UpdateStatus = us
	}
	if j := in.GetJobStatus(); j != nil {
		out.JobStatus = &swarm.JobStatus{JobIteration: swarm.Version{Index: j.GetIteration()}, LastExecution: ts(j.GetLastExecution())}
	}
	return out
}

// Defaults fills in what an unset field of a service's spec means, as
// Docker's insertDefaults=true shows it (`docker service inspect`, and
// the base `docker service update` edits).
func Defaults(s *swarm.ServiceSpec) {
	t := &s.TaskTemplate
	if t.ContainerSpec == nil {
		t.ContainerSpec = &swarm.ContainerSpec{}
	}
	if t.ContainerSpec.StopGracePeriod == nil {
		d := 10 * time.Second
		t.ContainerSpec.StopGracePeriod = &d
	}
	if t.ContainerSpec.DNSConfig == nil {
		t.ContainerSpec.DNSConfig = &swarm.DNSConfig{}
	}
	if t.Resources == nil {
		t.Resources = &swarm.ResourceRequirements{Limits: &swarm.Limit{}, Reservations: &swarm.Resources{}}
	}
	if t.RestartPolicy == nil {
		d := 5 * time.Second
		t.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &d, MaxAttempts: u64(0)}
	} else {
		if t.RestartPolicy.Condition == "" {
			t.RestartPolicy.Condition = swarm.RestartPolicyConditionAny
		}
		if t.RestartPolicy.Delay == nil {
			d := 5 * time.Second
			t.RestartPolicy.Delay = &d
		}
		if t.RestartPolicy.MaxAttempts == nil {
			t.RestartPolicy.MaxAttempts = u64(0)
		}
	}
	if t.Placement == nil {
		t.Placement = &swarm.Placement{}
	}
	for _, u := range []**swarm.UpdateConfig{&s.UpdateConfig, &s.RollbackConfig} {
		if *u == nil {
			*u = &swarm.UpdateConfig{Parallelism: 1}
		}
		if (*u).FailureAction == "" {
			(*u).FailureAction = swarm.UpdateFailureActionPause
		}
		if (*u).Monitor == 0 {
			(*u).Monitor = 5 * time.Second
		}
		if (*u).Order == "" {
			(*u).Order = swarm.UpdateOrderStopFirst
		}
	}
	if s.EndpointSpec == nil {
		s.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP}
	}
}
