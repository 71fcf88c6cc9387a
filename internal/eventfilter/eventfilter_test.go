package eventfilter

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
)

type pair struct {
	k string
	v []string
}

func (p pair) GetKey() string      { return p.k }
func (p pair) GetValues() []string { return p.v }

type event struct {
	typ, action, id string
	attrs           map[string]string
}

func (e event) GetType() string                  { return e.typ }
func (e event) GetAction() string                { return e.action }
func (e event) GetActorId() string               { return e.id }
func (e event) GetAttributes() map[string]string { return e.attrs }

func filter(t *testing.T, kv ...string) Filter {
	t.Helper()
	var in []pair
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		in = append(in, pair{k, []string{v}})
	}
	f, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var (
	svc  = event{"service", "create", "s1abc", map[string]string{"name": "web"}}
	task = event{"task", "update", "t1", map[string]string{"name": "web.1", "service.id": "s1abc", "service.name": "web", "node.id": "n1xyz"}}
	node = event{"node", "update", "n1xyz", map[string]string{"name": "host1"}}
	ctr  = event{"container", "die", "c0ffee", map[string]string{"name": "web.1.t1", "image": "registry:5000/web:v2", "exitCode": "137",
		"shoal.service.name": "web", "shoal.service.id": "s1abc", "tier": "front"}}
	health = event{"container", "health_status: healthy", "c0ffee", map[string]string{"name": "web.1.t1"}}
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter []string
		scope  string
		e      event
		want   bool
	}{
		{"no filter", nil, Swarm, svc, true},
		{"type", []string{"type=service"}, Swarm, svc, true},
		{"other type", []string{"type=node"}, Swarm, svc, false},
		{"container type", []string{"type=container"}, Local, ctr, true},
		{"event", []string{"event=die"}, Local, ctr, true},
		{"other event", []string{"event=start"}, Local, ctr, false},
		{"health_status matches its states", []string{"event=health_status"}, Local, health, true},
		{"a health state", []string{"event=health_status: unhealthy"}, Local, health, false},
		{"scope", []string{"scope=local"}, Local, ctr, true},
		{"other scope", []string{"scope=swarm"}, Local, ctr, false},
		{"service by name", []string{"service=web"}, Swarm, svc, true},
		{"service by ID prefix", []string{"service=s1"}, Swarm, svc, true},
		{"service's task", []string{"service=web"}, Swarm, task, true},
		{"service's container", []string{"service=web"}, Local, ctr, true},
		{"other service's container", []string{"service=api"}, Local, ctr, false},
		{"service filter drops nodes", []string{"service=web"}, Swarm, node, false},
		{"node's task", []string{"node=n1"}, Swarm, task, true},
		{"node by name", []string{"node=host1"}, Swarm, node, true},
		{"container by name", []string{"container=web.1.t1"}, Local, ctr, true},
		{"container by ID prefix", []string{"container=c0f"}, Local, ctr, true},
		{"container filter drops services", []string{"container=c0f"}, Swarm, svc, false},
		{"image with tag", []string{"image=registry:5000/web:v2"}, Local, ctr, true},
		{"image without tag", []string{"image=registry:5000/web"}, Local, ctr, true},
		{"other image", []string{"image=registry:5000/api"}, Local, ctr, false},
		{"label present", []string{"label=tier"}, Local, ctr, true},
		{"label value", []string{"label=tier=front"}, Local, ctr, true},
		{"label other value", []string{"label=tier=back"}, Local, ctr, false},
		{"labels all hold", []string{"label=tier", "label=colour"}, Local, ctr, false},
		{"keys and", []string{"type=container", "event=start"}, Local, ctr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := filter(t, tc.filter...).Match(tc.scope, tc.e); got != tc.want {
				t.Fatalf("%v on %v: %v; want %v", tc.filter, tc.e, got, tc.want)
			}
		})
	}
}

// A key's values match any of them.
func TestValuesOr(t *testing.T) {
	f, err := Parse([]pair{{"type", []string{"node", "service"}}})
	if err != nil || !f.Match(Swarm, svc) || !f.Match(Swarm, node) || f.Match(Swarm, task) {
		t.Fatalf("type=node or service: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   pair
		want string
	}{
		{pair{"colour", []string{"red"}}, "invalid filter 'colour': use config, container, event, image, label, network, node, scope, secret, service, type"},
		{pair{"type", []string{"plugin"}}, "invalid filter 'type=plugin': use service, node, task, network, secret, config, container"},
		{pair{"scope", []string{"global"}}, "invalid filter 'scope=global'"},
	} {
		_, err := Parse([]pair{tc.in})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%v: %v; want %q", tc.in, err, tc.want)
		}
	}
}

// Wants says which sources a filter can match at all.
func TestWants(t *testing.T) {
	for _, tc := range []struct {
		filter       []string
		swarm, local bool
	}{
		{nil, true, true},
		{[]string{"type=container"}, false, true},
		{[]string{"type=service"}, true, false},
		{[]string{"scope=swarm"}, true, false},
		{[]string{"scope=local"}, false, true},
		{[]string{"scope=local", "type=service"}, false, false},
	} {
		f := filter(t, tc.filter...)
		if f.Wants(Swarm) != tc.swarm || f.Wants(Local) != tc.local {
			t.Errorf("%v: swarm %v local %v; want %v %v", tc.filter, f.Wants(Swarm), f.Wants(Local), tc.swarm, tc.local)
		}
	}
}
