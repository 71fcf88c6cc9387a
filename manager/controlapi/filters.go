package controlapi

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// filters are docker's --filter of a list: each key with every value
// given for it. An object matches when, for each key given, it matches
// one of that key's values.
type filters map[string][]string

// filterKey is one key a list takes: the values it allows (nil: any).
type filterKey struct {
	name   string
	values []string
}

// parseFilters reads a request's filters, refusing a key the list does
// not take and a value outside a key's set, in docker's words.
func parseFilters(in []*shoalv1.Filter, keys ...filterKey) (filters, error) {
	allowed := map[string][]string{}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		allowed[k.name] = k.values
		names = append(names, k.name)
	}
	sort.Strings(names)
	f := filters{}
	for _, x := range in {
		vals, ok := allowed[x.GetKey()]
		if !ok {
			return nil, fmt.Errorf("invalid filter '%s': use %s: %w", x.GetKey(), strings.Join(names, ", "), errdefs.ErrInvalid)
		}
		for _, v := range x.GetValues() {
			if vals != nil && !contains(vals, v) {
				return nil, fmt.Errorf("invalid filter '%s=%s': use %s: %w", x.GetKey(), v, strings.Join(vals, ", "), errdefs.ErrInvalid)
			}
			f[x.GetKey()] = append(f[x.GetKey()], v)
		}
	}
	return f, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// any is true when key was not given, or match holds for one of its
// values.
func (f filters) any(key string, match func(v string) bool) bool {
	vals, ok := f[key]
	if !ok {
		return true
	}
	for _, v := range vals {
		if match(v) {
			return true
		}
	}
	return false
}

// prefix is docker's id and name match: all or the start of s.
func prefix(s string) func(string) bool {
	return func(v string) bool { return strings.HasPrefix(s, v) }
}

// labelMatch is docker's label filter: "key" (present) or "key=value".
func labelMatch(labels map[string]string) func(string) bool {
	return func(v string) bool {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := labels[k]
		return ok && (!hasValue || got == want)
	}
}

var (
	serviceFilters = []filterKey{{"id", nil}, {"name", nil}, {"label", nil}, {"mode", []string{"replicated", "global", "replicated-job", "global-job"}}}
	nodeFilters    = []filterKey{{"id", nil}, {"name", nil}, {"label", nil}, {"node.label", nil},
		{"role", []string{"manager", "worker"}}, {"membership", []string{"accepted", "pending"}}}
	networkFilters = []filterKey{{"id", nil}, {"name", nil}, {"label", nil}, {"driver", nil},
		{"scope", []string{"swarm", "global", "local"}}, {"type", []string{"custom", "builtin"}}}
	fileFilters = []filterKey{{"id", nil}, {"name", nil}, {"label", nil}}
	taskFilters = []filterKey{{"id", nil}, {"name", nil}, {"node", nil}, {"service", nil},
		{"desired-state", []string{"running", "shutdown", "accepted"}}, {"label", nil}}
)

func (f filters) service(s *shoalv1.Service) bool {
	return f.any("id", prefix(s.GetId())) && f.any("name", prefix(s.GetSpec().GetName())) &&
		f.any("label", labelMatch(s.GetSpec().GetLabels())) &&
		f.any("mode", func(v string) bool { return modeName(s.GetSpec()) == v })
}

func (f filters) node(n *shoalv1.Node) bool {
	return f.any("id", prefix(n.GetId())) && f.any("name", prefix(n.GetDescription().GetHostname())) &&
		f.any("label", labelMatch(n.GetDescription().GetEngineLabels())) &&
		f.any("node.label", labelMatch(n.GetSpec().GetLabels())) &&
		f.any("role", func(v string) bool { return nodeRoleWord(n) == v }) &&
		// A node in the store has joined with a token: accepted.
		f.any("membership", func(v string) bool { return v == "accepted" })
}

func nodeRoleWord(n *shoalv1.Node) string {
	if n.GetRole() == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		return "manager"
	}
	return "worker"
}

func (f filters) network(n *shoalv1.Network) bool {
	kind := "custom"
	if n.GetSpec().GetIngress() {
		kind = "builtin"
	}
	driver := n.GetSpec().GetDriver()
	if driver == "" {
		driver = "overlay"
	}
	// docker matches all or part of a network's ID and name.
	return f.any("id", func(v string) bool { return strings.Contains(n.GetId(), v) }) &&
		f.any("name", func(v string) bool { return strings.Contains(n.GetSpec().GetName(), v) }) &&
		f.any("label", labelMatch(n.GetSpec().GetLabels())) && f.any("driver", func(v string) bool { return v == driver }) &&
		f.any("scope", func(v string) bool { return v == "swarm" }) && f.any("type", func(v string) bool { return v == kind })
}

func (f filters) file(id, name string, labels map[string]string) bool {
	return f.any("id", prefix(id)) && f.any("name", prefix(name)) && f.any("label", labelMatch(labels))
}

// task matches a task; hostOf names its node, serviceOf its service.
func (f filters) task(t *shoalv1.Task, hostOf func(string) string) bool {
	name := taskName(t)
	return f.any("id", prefix(t.GetId())) && f.any("name", prefix(name)) &&
		f.any("node", func(v string) bool {
			return v == t.GetNodeId() || v == hostOf(t.GetNodeId()) || strings.HasPrefix(t.GetNodeId(), v) && len(v) >= 5
		}) &&
		f.any("service", func(v string) bool { return v == t.GetServiceName() || strings.HasPrefix(t.GetServiceId(), v) }) &&
		f.any("desired-state", func(v string) bool { return desiredWord(t.GetDesiredState()) == v }) &&
		f.any("label", labelMatch(t.GetSpec().GetContainer().GetLabels()))
}

// taskName is docker's task name: service.slot, or service.node for a
// global service's task.
func taskName(t *shoalv1.Task) string {
	if t.GetSlot() == 0 {
		return t.GetServiceName() + "." + t.GetNodeId()
	}
	return fmt.Sprintf("%s.%d", t.GetServiceName(), t.GetSlot())
}

// desiredWord is docker's desired-state filter word of a task.
func desiredWord(s shoalv1.TaskState) string {
	switch {
	case s == shoalv1.TaskState_TASK_STATE_RUNNING:
		return "running"
	case s < shoalv1.TaskState_TASK_STATE_RUNNING:
		return "accepted"
	}
	return "shutdown"
}

// keep is the items match holds for, in order.
func keep[T any](items []T, match func(T) bool) []T {
	out := items[:0:0]
	for _, x := range items {
		if match(x) {
			out = append(out, x)
		}
	}
	return out
}
