package convert

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// DataPathPort is the overlay's VXLAN port, which Shoal does not let a
// cluster change.
const DataPathPort = 4789

// Node converts a Shoal node into Docker's. rootCA is the cluster's CA
// certificate (PEM), shown as the node's trust root.
func Node(in *shoalv1.Node, rootCA []byte) swarm.Node {
	d := in.GetDescription()
	out := swarm.Node{
		ID: in.GetId(), Meta: Meta(in.GetMeta()),
		Spec: swarm.NodeSpec{
			Annotations:  swarm.Annotations{Labels: labels(in.GetSpec().GetLabels())},
			Role:         role(in.GetSpec().GetDesiredRole()),
			Availability: availability(in.GetSpec().GetAvailability()),
		},
		Description: swarm.NodeDescription{
			Hostname:  d.GetHostname(),
			Platform:  swarm.Platform{Architecture: d.GetPlatform().GetArchitecture(), OS: d.GetPlatform().GetOs()},
			Resources: swarm.Resources{NanoCPUs: d.GetResources().GetNanoCpus(), MemoryBytes: d.GetResources().GetMemoryBytes()},
			Engine:    swarm.EngineDescription{EngineVersion: d.GetVersion(), Labels: copyMap(d.GetEngineLabels())},
			TLSInfo:   TLSInfo(rootCA),
		},
		Status: swarm.NodeStatus{Message: in.GetStatus().GetMessage(), Addr: in.GetStatus().GetAddr()},
	}
	out.Description.Engine.Plugins = []swarm.PluginDescription{
		{Type: "Log", Name: "json-file"}, {Type: "Network", Name: "overlay"}, {Type: "Volume", Name: "local"},
	}
	switch in.GetStatus().GetState() {
	case shoalv1.NodeState_NODE_STATE_READY:
		out.Status.State = swarm.NodeStateReady
	case shoalv1.NodeState_NODE_STATE_DOWN:
		out.Status.State = swarm.NodeStateDown
	case shoalv1.NodeState_NODE_STATE_DISCONNECTED:
		out.Status.State = swarm.NodeStateDisconnected
	default:
		out.Status.State = swarm.NodeStateUnknown
	}
	if m := in.GetManagerStatus(); m != nil {
		ms := &swarm.ManagerStatus{Leader: m.GetLeader(), Addr: m.GetAddr(), Reachability: swarm.ReachabilityUnknown}
		switch m.GetReachability() {
		case shoalv1.Reachability_REACHABILITY_REACHABLE:
			ms.Reachability = swarm.ReachabilityReachable
		case shoalv1.Reachability_REACHABILITY_UNREACHABLE:
			ms.Reachability = swarm.ReachabilityUnreachable
		}
		out.ManagerStatus = ms
	}
	return out
}

func role(r shoalv1.NodeRole) swarm.NodeRole {
	if r == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		return swarm.NodeRoleManager
	}
	return swarm.NodeRoleWorker
}

func availability(a shoalv1.NodeAvailability) swarm.NodeAvailability {
	switch a {
	case shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE:
		return swarm.NodeAvailabilityPause
	case shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
		return swarm.NodeAvailabilityDrain
	}
	return swarm.NodeAvailabilityActive
}

// NodeSpec converts Docker's NodeSpec into Shoal's.
func NodeSpec(in swarm.NodeSpec) (*shoalv1.NodeSpec, error) {
	if in.Name != "" {
		return nil, unsupported("Name", "a node is named by its hostname")
	}
	out := &shoalv1.NodeSpec{Labels: copyMap(in.Labels)}
	switch in.Role {
	case swarm.NodeRoleWorker:
		out.DesiredRole = shoalv1.NodeRole_NODE_ROLE_WORKER
	case swarm.NodeRoleManager:
		out.DesiredRole = shoalv1.NodeRole_NODE_ROLE_MANAGER
	default:
		return nil, invalid("Role", "%q: use worker or manager", in.Role)
	}
	switch in.Availability {
	case swarm.NodeAvailabilityActive:
		out.Availability = shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	case swarm.NodeAvailabilityPause:
		out.Availability = shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE
	case swarm.NodeAvailabilityDrain:
		out.Availability = shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	default:
		return nil, invalid("Availability", "%q: use active, pause or drain", in.Availability)
	}
	return out, nil
}

// TLSInfo is Docker's view of a CA certificate (PEM).
func TLSInfo(rootCA []byte) swarm.TLSInfo {
	info := swarm.TLSInfo{TrustRoot: string(rootCA)}
	if b, _ := pem.Decode(rootCA); b != nil {
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			info.CertIssuerSubject = c.RawSubject
			info.CertIssuerPublicKey = c.RawSubjectPublicKeyInfo
		}
	}
	return info
}

var taskStates = map[shoalv1.TaskState]swarm.TaskState{
	shoalv1.TaskState_TASK_STATE_NEW:       swarm.TaskStateNew,
	shoalv1.TaskState_TASK_STATE_PENDING:   swarm.TaskStatePending,
	shoalv1.TaskState_TASK_STATE_ASSIGNED:  swarm.TaskStateAssigned,
	shoalv1.TaskState_TASK_STATE_ACCEPTED:  swarm.TaskStateAccepted,
	shoalv1.TaskState_TASK_STATE_PREPARING: swarm.TaskStatePreparing,
	shoalv1.TaskState_TASK_STATE_STARTING:  swarm.TaskStateStarting,
	shoalv1.TaskState_TASK_STATE_RUNNING:   swarm.TaskStateRunning,
	shoalv1.TaskState_TASK_STATE_COMPLETE:  swarm.TaskStateComplete,
	shoalv1.TaskState_TASK_STATE_SHUTDOWN:  swarm.TaskStateShutdown,
	shoalv1.TaskState_TASK_STATE_FAILED:    swarm.TaskStateFailed,
	shoalv1.TaskState_TASK_STATE_REJECTED:  swarm.TaskStateRejected,
	shoalv1.TaskState_TASK_STATE_REMOVE:    swarm.TaskStateRemove,
	shoalv1.TaskState_TASK_STATE_ORPHANED:  swarm.TaskStateOrphaned,
}

// TaskState is a Shoal task state in Docker's words.
func TaskState(s shoalv1.TaskState) swarm.TaskState {
	if v, ok := taskStates[s]; ok {
		return v
	}
	return swarm.TaskStateNew
}

// Task converts a Shoal task into Docker's. containerID is its
// container's ID where the caller knows it.
func Task(in *shoalv1.Task, containerID string) swarm.Task {
	st := in.GetStatus()
	out := swarm.Task{
		ID: in.GetId(), Meta: Meta(in.GetMeta()), Annotations: swarm.Annotations{Labels: map[string]string{}},
		Spec: FromTaskSpec(in.GetSpec()), ServiceID: in.GetServiceId(), Slot: int(in.GetSlot()), NodeID: in.GetNodeId(),
		DesiredState: TaskState(in.GetDesiredState()),
		Status: swarm.TaskStatus{
			Timestamp: ts(st.GetTimestamp()), State: TaskState(st.GetState()), Message: st.GetMessage(), Err: st.GetErr(),
			PortStatus: swarm.PortStatus{Ports: hostPorts(in)},
		},
	}
	if st.GetState() >= shoalv1.TaskState_TASK_STATE_STARTING || containerID != "" {
		out.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: containerID, ExitCode: int(st.GetExitCode())}
	}
	for _, n := range in.GetNetworks() {
		na := swarm.NetworkAttachment{Network: swarm.Network{ID: n.GetNetworkId(), Spec: swarm.NetworkSpec{
			Annotations: swarm.Annotations{Name: n.GetNetworkName(), Labels: map[string]string{}},
			Ingress:     n.GetIngress(), DriverConfiguration: &swarm.Driver{Name: "overlay"},
		}}}
		if p, err := netip.ParsePrefix(n.GetAddr()); err == nil {
			na.Addresses = []netip.Prefix{p}
		}
		out.NetworksAttachments = append(out.NetworksAttachments, na)
	}
	if it := in.GetJobIteration(); it != 0 {
		out.JobIteration = &swarm.Version{Index: it}
	}
	return out
}

// hostPorts are a running task's host-mode published ports, as Docker
// shows them in the task's port status.
func hostPorts(t *shoalv1.Task) []swarm.PortConfig {
	var host []*shoalv1.PortConfig
	for _, p := range t.GetEndpoint().GetPorts() {
		if p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_HOST {
			host = append(host, p)
		}
	}
	return fromPorts(host)
}

// Network converts a Shoal overlay network into Docker's network.
func Network(in *shoalv1.Network) network.Inspect {
	s := in.GetSpec()
	out := network.Inspect{Network: network.Network{
		Name: s.GetName(), ID: in.GetId(), Created: ts(in.GetMeta().GetCreatedAt()), Scope: "swarm",
		Driver: s.GetDriver(), EnableIPv4: true, Attachable: s.GetAttachable(), Ingress: s.GetIngress(),
		IPAM:    network.IPAM{Driver: "default", Options: map[string]string{}},
		Options: labels(s.GetOptions()), Labels: labels(s.GetLabels()),
	}, Containers: map[string]network.EndpointResource{}}
	if out.Driver == "" {
		out.Driver = "overlay"
	}
	out.Options["com.docker.network.driver.overlay.vxlanid_list"] = fmt.Sprint(in.GetAllocation().GetVni())
	subnet, gateway := in.GetAllocation().GetSubnet(), in.GetAllocation().GetGateway()
	if subnet == "" {
		subnet, gateway = s.GetSubnet(), s.GetGateway()
	}
	if p, err := netip.ParsePrefix(subnet); err == nil {
		c := network.IPAMConfig{Subnet: p}
		if g, err := netip.ParseAddr(strings.Split(gateway, "/")[0]); err == nil {
			c.Gateway = g
		}
		out.IPAM.Config = []network.IPAMConfig{c}
	}
	return out
}

// NetworkSpec converts Docker's network create request into Shoal's
// spec: only overlay networks in the swarm scope.
func NetworkSpec(in network.CreateRequest) (*shoalv1.NetworkSpec, error) {
	switch in.Driver {
	case "", "overlay":
	default:
		return nil, unsupported("Driver "+fmt.Sprintf("%q", in.Driver), "Shoal's networks are overlay networks (-d overlay)")
	}
	switch in.Scope {
	case "", "swarm":
	default:
		return nil, unsupported("Scope "+fmt.Sprintf("%q", in.Scope), "Shoal's networks span the swarm")
	}
	switch {
	case in.EnableIPv6 != nil && *in.EnableIPv6:
		return nil, unsupported("EnableIPv6", "Shoal's overlay networks are IPv4")
	case in.EnableIPv4 != nil && !*in.EnableIPv4:
		return nil, unsupported("EnableIPv4=false", "Shoal's overlay networks are IPv4")
	case in.Internal:
		return nil, unsupported("Internal", "")
	case in.ConfigOnly:
		return nil, unsupported("ConfigOnly", "")
	case in.ConfigFrom != nil && in.ConfigFrom.Network != "":
		return nil, unsupported("ConfigFrom", "")
	}
	out := &shoalv1.NetworkSpec{Name: in.Name, Labels: copyMap(in.Labels), Driver: "overlay", Attachable: in.Attachable, Ingress: in.Ingress, Options: copyMap(in.Options)}
	if ipam := in.IPAM; ipam != nil {
		if ipam.Driver != "" && ipam.Driver != "default" {
			return nil, unsupported("IPAM.Driver "+fmt.Sprintf("%q", ipam.Driver), "Shoal allocates addresses itself")
		}
		if len(ipam.Options) > 0 {
			return nil, unsupported("IPAM.Options", "")
		}
		switch len(ipam.Config) {
		case 0:
		case 1:
			c := ipam.Config[0]
			if c.IPRange.IsValid() || len(c.AuxAddress) > 0 {
				return nil, unsupported("IPAM.Config[0].IPRange and AuxiliaryAddresses", "give a Subnet and a Gateway")
			}
			if c.Subnet.IsValid() {
				out.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				out.Gateway = c.Gateway.String()
			}
		default:
			return nil, unsupported("IPAM.Config with several subnets", "give one subnet")
		}
	}
	return out, nil
}

// Secret converts a Shoal secret into Docker's; its data is never shown.
func Secret(in *shoalv1.Secret) swarm.Secret {
	return swarm.Secret{ID: in.GetId(), Meta: Meta(in.GetMeta()), Spec: swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: in.GetSpec().GetName(), Labels: labels(in.GetSpec().GetLabels())},
	}}
}

// SecretSpec converts Docker's SecretSpec into Shoal's.
func SecretSpec(in swarm.SecretSpec) (*shoalv1.SecretSpec, error) {
	if in.Driver != nil && in.Driver.Name != "" {
		return nil, unsupported("Driver", "Shoal keeps secrets in its Raft store, encrypted")
	}
	if in.Templating != nil && in.Templating.Name != "" {
		return nil, unsupported("Templating", "")
	}
	return &shoalv1.SecretSpec{Name: in.Name, Labels: copyMap(in.Labels), Data: in.Data}, nil
}

// Config converts a Shoal config into Docker's, its data included.
func Config(in *shoalv1.Config) swarm.Config {
	return swarm.Config{ID: in.GetId(), Meta: Meta(in.GetMeta()), Spec: swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: in.GetSpec().GetName(), Labels: labels(in.GetSpec().GetLabels())},
		Data:        in.GetSpec().GetData(),
	}}
}

// ConfigSpec converts Docker's ConfigSpec into Shoal's.
func ConfigSpec(in swarm.ConfigSpec) (*shoalv1.ConfigSpec, error) {
	if in.Templating != nil && in.Templating.Name != "" {
		return nil, unsupported("Templating", "")
	}
	return &shoalv1.ConfigSpec{Name: in.Name, Labels: copyMap(in.Labels), Data: in.Data}, nil
}

// ClusterInfo converts Shoal's cluster object into Docker's.
func ClusterInfo(c *shoalv1.Cluster) swarm.ClusterInfo {
	s := c.GetSpec()
	out := swarm.ClusterInfo{
		ID: c.GetId(), Meta: Meta(c.GetMeta()), TLSInfo: TLSInfo(c.GetRootCa().GetCertPem()),
		SubnetSize: s.GetSubnetSize(), DataPathPort: DataPathPort,
		Spec: SwarmSpec(s),
	}
	for _, p := range s.GetDefaultAddrPools() {
		if pp, err := netip.ParsePrefix(p); err == nil {
			out.DefaultAddrPool = append(out.DefaultAddrPool, pp)
		}
	}
	if len(out.DefaultAddrPool) == 0 {
		out.DefaultAddrPool = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}
	if out.SubnetSize == 0 {
		out.SubnetSize = 24
	}
	return out
}

// SwarmSpec is the Docker view of a cluster spec.
func SwarmSpec(s *shoalv1.ClusterSpec) swarm.Spec {
	name := s.GetName()
	if name == "" {
		name = "default"
	}
	limit := s.GetTaskHistoryLimit()
	return swarm.Spec{
		Annotations:      swarm.Annotations{Name: name, Labels: map[string]string{}},
		Orchestration:    swarm.OrchestrationConfig{TaskHistoryRetentionLimit: &limit},
		CAConfig:         swarm.CAConfig{NodeCertExpiry: fromDur(s.GetNodeCertExpiry())},
		EncryptionConfig: swarm.EncryptionConfig{AutoLockManagers: s.GetEncryption().GetAutoLockManagers()},
	}
}

// ApplySwarmSpec changes cur (a copy of the cluster's spec) to what
// Docker's swarm update asks, refusing what Shoal does not let a cluster
// set. Fields that equal what SwarmSpec shows are left alone.
func ApplySwarmSpec(cur *shoalv1.ClusterSpec, in swarm.Spec) error {
	shown := SwarmSpec(cur)
	if in.Name != "" && in.Name != shown.Name {
		return unsupported("Name", "a cluster keeps its name")
	}
	if len(in.Labels) > 0 {
		return unsupported("Labels", "")
	}
	if in.Raft != (swarm.RaftConfig{}) {
		return unsupported("Raft", "Raft's timing and snapshots are each manager's daemon flags (--raft-heartbeat-timeout, --raft-snapshot-threshold)")
	}
	if in.Dispatcher != (swarm.DispatcherConfig{}) {
		return unsupported("Dispatcher.HeartbeatPeriod", "the heartbeat period is each daemon's --heartbeat-period")
	}
	ca := in.CAConfig
	if len(ca.ExternalCAs) > 0 || ca.SigningCACert != "" || ca.SigningCAKey != "" || ca.ForceRotate != 0 {
		return unsupported("CAConfig.ExternalCAs, SigningCACert, SigningCAKey and ForceRotate", "Shoal's CA is its own; only NodeCertExpiry can change")
	}
	if in.TaskDefaults.LogDriver != nil && in.TaskDefaults.LogDriver.Name != "" {
		return unsupported("TaskDefaults.LogDriver", "set a service's --log-driver")
	}
	if l := in.Orchestration.TaskHistoryRetentionLimit; l != nil {
		cur.TaskHistoryLimit = *l
	}
	if ca.NodeCertExpiry != 0 {
		cur.NodeCertExpiry = dur(ca.NodeCertExpiry)
	}
	if cur.Encryption == nil {
		cur.Encryption = &shoalv1.EncryptionConfig{}
	}
	cur.Encryption.AutoLockManagers = in.EncryptionConfig.AutoLockManagers
	return nil
}

// Volume converts a node's volume into Docker's.
func Volume(in *shoalv1.Volume) volume.Volume {
	out := volume.Volume{
		Name: in.GetName(), Driver: in.GetDriver(), Mountpoint: in.GetMountpoint(), Scope: "local",
		Labels: labels(in.GetLabels()), Options: labels(in.GetOptions()),
	}
	if out.Driver == "" {
		out.Driver = "local"
	}
	if t := in.GetCreatedAt(); t != nil {
		out.CreatedAt = t.AsTime().Format(time.RFC3339)
	}
	return out
}
