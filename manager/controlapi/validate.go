package controlapi

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/scheduler"
)

// fieldErrors collects every problem of a spec so the user fixes them in
// one go; each names the field and the fix.
type fieldErrors []string

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, field+": "+fmt.Sprintf(format, args...))
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", strings.Join(f, "; "), errdefs.ErrInvalid)
}

var (
	nameRE     = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
	// imageRE accepts [registry[:port]/]path[:tag][@digest] with a
	// lower-case path, as the Docker reference grammar does.
	imageRE  = regexp.MustCompile(`^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+|/[a-z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	envKeyRE = regexp.MustCompile(`^[^=\s]+$`)
	userRE   = regexp.MustCompile(`^[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)?$`)
)

// validName checks an object name: 1-63 characters, letters, digits and
// _ . - not leading.
func validName(f *fieldErrors, field, name string) {
	switch {
	case name == "":
		f.add(field, "is required")
	case len(name) > 63:
		f.add(field, "must be at most 63 characters, got %d", len(name))
	case !nameRE.MatchString(name):
		f.add(field, "%q may only contain letters, digits, '_', '.' and '-', and must start with a letter or digit", name)
	}
}

func validLabels(f *fieldErrors, field string, labels map[string]string) {
	for k := range labels {
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "= \t\n") {
			f.add(field, "label key %q must be non-empty without '=' or spaces", k)
		}
	}
}

// constraintKeys are the attributes a constraint may test; a trailing dot
// means a label prefix.
var constraintKeys = []string{"node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch", "node.labels.", "engine.labels."}

// ParseConstraint splits "key==value" or "key!=value".
func ParseConstraint(c string) (key, op, value string, err error) {
	for _, o := range []string{"==", "!="} {
		if k, v, ok := strings.Cut(c, o); ok {
			key, op, value = strings.TrimSpace(k), o, strings.TrimSpace(v)
			break
		}
	}
	if op == "" {
		return "", "", "", fmt.Errorf("%q has no == or != operator (e.g. node.role==worker)", c)
	}
	if value == "" {
		return "", "", "", fmt.Errorf("%q has no value after %s", c, op)
	}
	known := false
	for _, ck := range constraintKeys {
		if strings.HasSuffix(ck, ".") {
			if strings.HasPrefix(key, ck) && len(key) > len(ck) {
				known = true
			}
		} else if key == ck {
			known = true
		}
	}
	if !known {
		return "", "", "", fmt.Errorf("%q tests unknown attribute %q; use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<key> or engine.labels.<key>", c, key)
	}
	if key == "node.role" && value != "manager" && value != "worker" {
		return "", "", "", fmt.Errorf("%q: node.role is manager or worker", c)
	}
	return key, op, value, nil
}

// MaxServiceSpecBytes bounds a service spec: every task carries a copy and
// every change is a Raft entry, so a large spec multiplies into the log,
// the snapshots and each worker's assignments.
const MaxServiceSpecBytes = 256 << 10

// ValidateServiceSpec checks every field of a service spec.
func ValidateServiceSpec(s *shoalv1.ServiceSpec) error {
	var f fieldErrors
	if s == nil {
		f.add("service", "a spec is required")
		return f.err()
	}
	if n := proto.Size(s); n > MaxServiceSpecBytes {
		f.add("service", "the spec is %d bytes, over the limit of %d KiB: keep large data (files, long environment values) in the image", n, MaxServiceSpecBytes>>10)
		return f.err()
	}
	validName(&f, "service.name", s.GetName())
	validLabels(&f, "service.labels", s.GetLabels())
	switch m := s.GetMode().(type) {
	case *shoalv1.ServiceSpec_Replicated:
		if r := m.Replicated.GetReplicas(); r < 0 {
			f.add("service.replicas", "must be >= 0, got %d", r)
		}
	case *shoalv1.ServiceSpec_Global, *shoalv1.ServiceSpec_GlobalJob:
	case *shoalv1.ServiceSpec_ReplicatedJob:
		validateJob(&f, m.ReplicatedJob) // jobs.go
	default:
		f.add("service.mode", "must be replicated, global, replicated-job or global-job")
	}
	validateTask(&f, s.GetTask())
	validateEndpoint(&f, s.GetEndpoint())
	validateUpdateConfig(&f, "update", s.GetUpdate())
	validateUpdateConfig(&f, "rollback", s.GetRollback())
	seen := map[string]bool{}
	for i, n := range s.GetNetworks() {
		field := fmt.Sprintf("service.networks[%d]", i)
		if n.GetTarget() == "" {
			f.add(field, "needs a network name or ID")
		} else if seen[n.GetTarget()] {
			f.add(field, "network %q is attached twice", n.GetTarget())
		}
		seen[n.GetTarget()] = true
		for _, a := range n.GetAliases() {
			if !hostnameRE.MatchString(a) {
				f.add(field, "alias %q is not a valid DNS name", a)
			}
		}
	}
	validateHealthConfig(&f, s.GetTask().GetContainer().GetHealthcheck())
	return f.err()
}

func validateTask(f *fieldErrors, t *shoalv1.TaskSpec) {
	c := t.GetContainer()
	switch img := c.GetImage(); {
	case img == "":
		f.add("service.image", "is required")
	case !imageRE.MatchString(img):
		f.add("service.image", "%q is not a valid image reference (e.g. nginx:1.25 or registry.local:5000/team/app@sha256:...)", img)
	}
	for i, e := range c.GetEnv() {
		k, _, _ := strings.Cut(e, "=")
		if !envKeyRE.MatchString(k) {
			f.add(fmt.Sprintf("service.env[%d]", i), "%q must be KEY=VALUE with a non-empty key without spaces", e)
		}
	}
	validLabels(f, "service.container_labels", c.GetLabels())
	if d := c.GetDir(); d != "" && !path.IsAbs(d) {
		f.add("service.workdir", "%q must be an absolute path", d)
	}
	if u := c.GetUser(); u != "" && !userRE.MatchString(u) {
		f.add("service.user", "%q must be USER or USER:GROUP (names or numeric IDs)", u)
	}
	if h := c.GetHostname(); h != "" && !strings.Contains(h, "{{") && (len(h) > 63 || !hostnameRE.MatchString(h)) {
		f.add("service.hostname", "%q is not a valid hostname", h)
	}
	if g := c.GetStopGracePeriod(); g != nil && g.AsDuration() < 0 {
		f.add("service.stop_grace_period", "must be >= 0, got %s", g.AsDuration())
	}
	res := t.GetResources()
	lim, rsv := res.GetLimits(), res.GetReservations()
	for _, r := range []struct {
		field string
		v     int64
	}{
		{"service.limit_cpu", lim.GetNanoCpus()}, {"service.limit_memory", lim.GetMemoryBytes()},
		{"service.reserve_cpu", rsv.GetNanoCpus()}, {"service.reserve_memory", rsv.GetMemoryBytes()},
	} {
		if r.v < 0 {
			f.add(r.field, "must be >= 0, got %d", r.v)
		}
	}
	if lim.GetNanoCpus() > 0 && rsv.GetNanoCpus() > lim.GetNanoCpus() {
		f.add("service.reserve_cpu", "reservation %d nano-CPUs exceeds the limit %d", rsv.GetNanoCpus(), lim.GetNanoCpus())
	}
	if lim.GetMemoryBytes() > 0 && rsv.GetMemoryBytes() > lim.GetMemoryBytes() {
		f.add("service.reserve_memory", "reservation %d bytes exceeds the limit %d", rsv.GetMemoryBytes(), lim.GetMemoryBytes())
	}
	if m := lim.GetMemoryBytes(); m > 0 && m < 6<<20 {
		f.add("service.limit_memory", "must be at least 6 MiB, got %d bytes", m)
	}
	rp := t.GetRestart()
	if _, ok := shoalv1.RestartCondition_name[int32(rp.GetCondition())]; !ok {
		f.add("service.restart_condition", "unknown condition %d; use none, on-failure or any", rp.GetCondition())
	}
	if d := rp.GetDelay(); d != nil && d.AsDuration() < 0 {
		f.add("service.restart_delay", "must be >= 0, got %s", d.AsDuration())
	}
	if w := rp.GetWindow(); w != nil && w.AsDuration() < 0 {
		f.add("service.restart_window", "must be >= 0, got %s", w.AsDuration())
	}
	if n := rp.GetMaxAttempts(); n < 0 {
		f.add("service.restart_max_attempts", "must be >= 0 (0 is unlimited), got %d", n)
	}
	p := t.GetPlacement()
	for i, c := range p.GetConstraints() {
		if _, _, _, err := ParseConstraint(c); err != nil {
			f.add(fmt.Sprintf("service.constraints[%d]", i), "%v", err)
		} else if _, err := scheduler.ParseConstraint(c); err != nil {
			// What the API accepts, the scheduler must be able to use.
			f.add(fmt.Sprintf("service.constraints[%d]", i), "%v", err)
		}
	}
	for i, pref := range p.GetPreferences() {
		d := pref.GetSpreadDescriptor()
		if !strings.HasPrefix(d, "node.labels.") && !strings.HasPrefix(d, "engine.labels.") || strings.HasSuffix(d, ".") {
			f.add(fmt.Sprintf("service.placement_preferences[%d]", i), "spread=%q must name a label: spread=node.labels.<key>", d)
		}
	}
	for i, pl := range p.GetPlatforms() {
		if pl.GetOs() == "" && pl.GetArchitecture() == "" || strings.ContainsAny(pl.GetOs()+pl.GetArchitecture(), "/ ") {
			f.add(fmt.Sprintf("service.placement_platforms[%d]", i), "must be an OS and an architecture such as linux/amd64, got %q", pl.GetOs()+"/"+pl.GetArchitecture())
		}
	}
	if n := p.GetMaxReplicas(); n < 0 {
		f.add("service.replicas_max_per_node", "must be >= 0 (0 is unlimited), got %d", n)
	}
	validateContainer(f, t) // validate_container.go
}

func validateEndpoint(f *fieldErrors, e *shoalv1.EndpointSpec) {
	if _, ok := shoalv1.EndpointMode_name[int32(e.GetMode())]; !ok {
		f.add("service.endpoint_mode", "must be vip or dnsrr")
	}
	seen := map[string]int{}
	for i, p := range e.GetPorts() {
		field := fmt.Sprintf("service.publish[%d]", i)
		if p.GetTargetPort() < 1 || p.GetTargetPort() > 65535 {
			f.add(field, "target port must be 1-65535, got %d", p.GetTargetPort())
		}
		if p.GetPublishedPort() > 65535 {
			f.add(field, "published port must be 0-65535, got %d", p.GetPublishedPort())
		}
		if p.GetProtocol() != shoalv1.PortProtocol_PORT_PROTOCOL_TCP && p.GetProtocol() != shoalv1.PortProtocol_PORT_PROTOCOL_UDP {
			f.add(field, "protocol must be tcp or udp")
		}
		if p.GetPublishMode() != shoalv1.PublishMode_PUBLISH_MODE_INGRESS && p.GetPublishMode() != shoalv1.PublishMode_PUBLISH_MODE_HOST {
			f.add(field, "mode must be ingress or host")
		}
		if p.GetPublishedPort() != 0 {
			key := store.PortString(p)
			if j, dup := seen[key]; dup {
				f.add(field, "published port %s is also given by service.publish[%d]", key, j)
			}
			seen[key] = i
		}
	}
	if e.GetMode() == shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR {
		for i, p := range e.GetPorts() {
			if p.GetPublishMode() == shoalv1.PublishMode_PUBLISH_MODE_INGRESS {
				f.add(fmt.Sprintf("service.publish[%d]", i), "endpoint mode dnsrr cannot publish in ingress mode; use mode=host")
			}
		}
	}
}

// validateUpdateConfig checks a service's update or rollback config
// (which names the field: service.update_delay, service.rollback_delay,
// as the --update-* and --rollback-* flags).
func validateUpdateConfig(f *fieldErrors, which string, c *shoalv1.UpdateConfig) {
	if c == nil {
		return
	}
	field := func(name string) string { return "service." + which + "_" + name }
	if d := c.GetDelay(); d != nil && d.AsDuration() < 0 {
		f.add(field("delay"), "must be >= 0, got %s", d.AsDuration())
	}
	if m := c.GetMonitor(); m != nil && m.AsDuration() < 0 {
		f.add(field("monitor"), "must be >= 0, got %s", m.AsDuration())
	}
	if r := c.GetMaxFailureRatio(); !(r >= 0 && r <= 1) {
		f.add(field("max_failure_ratio"), "must be between 0 and 1, got %v", r)
	}
	switch a := c.GetFailureAction(); {
	case a == shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK && which == "rollback":
		f.add(field("failure_action"), "a rollback cannot roll back; use pause or continue")
	case shoalv1.UpdateFailureAction_name[int32(a)] == "":
		f.add(field("failure_action"), "unknown action %d; use pause, continue or rollback", a)
	}
	if o := c.GetOrder(); shoalv1.UpdateOrder_name[int32(o)] == "" {
		f.add(field("order"), "unknown order %d; use stop-first or start-first", o)
	}
}

// ValidateNodeSpec checks a node spec.
func ValidateNodeSpec(s *shoalv1.NodeSpec) error {
	var f fieldErrors
	if s == nil {
		f.add("node", "a spec is required")
		return f.err()
	}
	switch s.GetAvailability() {
	case shoalv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, shoalv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, shoalv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
	default:
		f.add("node.availability", "must be active, pause or drain")
	}
	switch s.GetDesiredRole() {
	case shoalv1.NodeRole_NODE_ROLE_MANAGER, shoalv1.NodeRole_NODE_ROLE_WORKER:
	default:
		f.add("node.role", "must be manager or worker")
	}
	validLabels(&f, "node.labels", s.GetLabels())
	return f.err()
}
