// Package eventfilter is docker's events --filter, in one place for both
// event sources: the managers' cluster events (scope swarm) and a node's
// container events (scope local). Each key given must match; a key's
// values match any of them, except label, whose values must all match.
package eventfilter

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Event is what a filter looks at (the API's Event has these getters).
type Event interface {
	GetType() string
	GetAction() string
	GetActorId() string
	GetAttributes() map[string]string
}

// Pair is one --filter key with its values (the API's Filter).
type Pair interface {
	GetKey() string
	GetValues() []string
}

// Scopes of the events.
const (
	Swarm = "swarm" // the cluster's, from the managers
	Local = "local" // a node's own containers
)

// Types and actions of events.
var (
	SwarmTypes   = []string{"service", "node", "task", "network", "secret", "config"}
	LocalTypes   = []string{"container"}
	SwarmActions = []string{"create", "update", "remove"}
	// LocalActions are docker's container actions that Shoal records;
	// health_status matches its "health_status: healthy" and
	// "health_status: unhealthy".
	LocalActions = []string{"create", "start", "kill", "die", "oom", "stop", "destroy", "health_status", "health_status: healthy", "health_status: unhealthy"}
)

// keys are the filters taken, with the values each allows (nil: any).
var keys = map[string][]string{
	"type":      append(append([]string{}, SwarmTypes...), LocalTypes...),
	"event":     union(SwarmActions, LocalActions),
	"scope":     {Swarm, Local},
	"service":   nil,
	"node":      nil,
	"network":   nil,
	"secret":    nil,
	"config":    nil,
	"container": nil,
	"image":     nil,
	"label":     nil,
}

func union(a, b []string) []string {
	out := append([]string{}, a...)
	for _, v := range b {
		if !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Filter is a parsed --filter set.
type Filter map[string][]string

// Parse checks filters, refusing a key or a value docker's events do not
// take, in docker's words.
func Parse[P Pair](in []P) (Filter, error) {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	f := Filter{}
	for _, p := range in {
		k, vals := p.GetKey(), p.GetValues()
		allowed, ok := keys[k]
		if !ok {
			return nil, fmt.Errorf("invalid filter '%s': use %s: %w", k, strings.Join(names, ", "), errdefs.ErrInvalid)
		}
		for _, v := range vals {
			if allowed != nil && !contains(allowed, v) {
				return nil, fmt.Errorf("invalid filter '%s=%s': use %s: %w", k, v, strings.Join(allowed, ", "), errdefs.ErrInvalid)
			}
		}
		f[k] = append(f[k], vals...)
	}
	return f, nil
}

// Wants reports whether events of scope can match at all: the stream of
// that scope is worth reading.
func (f Filter) Wants(scope string) bool {
	types := SwarmTypes
	if scope == Local {
		types = LocalTypes
	}
	return f.any("scope", func(v string) bool { return v == scope }) &&
		f.any("type", func(v string) bool { return contains(types, v) })
}

func (f Filter) any(key string, match func(string) bool) bool {
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

// named is docker's match of an object by ID prefix or name, for events
// of its type.
func named(e Event, typ, v string) bool {
	return e.GetType() == typ && (strings.HasPrefix(e.GetActorId(), v) || e.GetAttributes()["name"] == v)
}

// imageName is a reference without its tag or digest.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// Match reports whether e, of scope, passes the filter. service and node
// match their own events and their tasks'; container events of a task's
// container match its service too (through the container's labels).
func (f Filter) Match(scope string, e Event) bool {
	a, typ, action := e.GetAttributes(), e.GetType(), e.GetAction()
	return f.any("type", func(v string) bool { return typ == v }) &&
		f.any("event", func(v string) bool {
			return action == v || (v == "health_status" && strings.HasPrefix(action, "health_status"))
		}) &&
		f.any("scope", func(v string) bool { return scope == v }) &&
		f.any("service", func(v string) bool {
			return named(e, "service", v) || (typ == "task" && (strings.HasPrefix(a["service.id"], v) || a["service.name"] == v)) ||
				(typ == "container" && v != "" && (strings.HasPrefix(a["shoal.service.id"], v) || a["shoal.service.name"] == v))
		}) &&
		f.any("node", func(v string) bool {
			return named(e, "node", v) || (typ == "task" && v != "" && strings.HasPrefix(a["node.id"], v))
		}) &&
		f.any("network", func(v string) bool { return named(e, "network", v) }) &&
		f.any("secret", func(v string) bool { return named(e, "secret", v) }) &&
		f.any("config", func(v string) bool { return named(e, "config", v) }) &&
		f.any("container", func(v string) bool { return named(e, "container", v) }) &&
		f.any("image", func(v string) bool {
			img, ok := a["image"]
			return ok && (img == v || imageName(img) == imageName(v))
		}) &&
		f.labels(a)
}

// labels is docker's label filter on an event's attributes: every value,
// "key" (present) or "key=value", must hold.
func (f Filter) labels(a map[string]string) bool {
	for _, v := range f["label"] {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := a[k]
		if !ok || (hasValue && got != want) {
			return false
		}
	}
	return true
}
