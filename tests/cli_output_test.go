package tests

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/tests/harness"
)

// decodeJSON decodes CLI JSON keeping numbers as json.Number, so a test
// can tell a number from a string of digits.
func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%v:\n%s", err, s)
	}
	return v
}

// --format templates, JSON numbers and usage errors through the real
// binary against a real daemon.
func TestCLIOutputFormats(t *testing.T) {
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	m.MustCLI("network", "create", "123") // a name that looks like a number
	id := strings.TrimSpace(m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "2", "--network", "123",
		"-p", "8080:80", "127.0.0.1:1/nginx:1.25"))

	if got := m.MustCLI("service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Ports}}"); got != "web replicated 0/2 *:8080->80/tcp\n" {
		t.Errorf("service ls --format '{{.Name}} {{.Mode}} {{.Replicas}} {{.Ports}}' = %q", got)
	}
	lines := strings.Split(strings.TrimSuffix(m.MustCLI("service", "ls", "--format", `table {{.ID}}\t{{.Name}}\t{{.Image}}`), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], id[:12]+" ") ||
		strings.Index(lines[0], "NAME") != strings.Index(lines[1], "web") || strings.Index(lines[0], "IMAGE") != strings.Index(lines[1], "127.0.0.1:1/nginx") {
		t.Errorf("service ls --format 'table {{.ID}}\\t{{.Name}}\\t{{.Image}}' = %q; want an aligned header and one row", lines)
	}
	row, _ := decodeJSON(t, m.MustCLI("service", "ls", "--format", "{{json .}}")).(map[string]any)
	if row["Name"] != "web" || row["ID"] != id[:12] || row["Replicas"] != "0/2" || row["Ports"] != "*:8080->80/tcp" {
		t.Errorf("service ls --format '{{json .}}' = %v", row)
	}
	ps := m.MustCLI("service", "ps", "--format", `{{.Name}}\t{{.Image}}\t{{.DesiredState}}`, "web")
	if !regexp.MustCompile(`^(( \\_ )?web\.[12]\t127\.0\.0\.1:1/nginx:1\.25\t(Running|Shutdown)\n){2,}$`).MatchString(ps) ||
		!strings.Contains(ps, "web.1\t") || !strings.Contains(ps, "web.2\t") {
		t.Errorf("service ps --format '{{.Name}}\\t{{.Image}}\\t{{.DesiredState}}' = %q; want a line per task of web.1 and web.2", ps)
	}
	if got := m.MustCLI("node", "ls", "--format", "{{.Self}} {{.Status}} {{.Availability}} {{.ManagerStatus}}"); got != "true Ready Active Leader\n" {
		t.Errorf("node ls --format = %q", got)
	}
	if got := m.MustCLI("network", "ls", "--format", "{{.Name}}/{{.Scope}}"); !strings.Contains(got, "123/swarm\n") {
		t.Errorf("network ls --format = %q; want 123/swarm", got)
	}
	if got := m.MustCLI("image", "ls", "--format", `table {{.Repository}}\t{{.Tag}}`); got != "REPOSITORY   TAG\n" {
		t.Errorf("image ls on a node without images = %q; want the header only", got)
	}
	if got := m.MustCLI("ps", "-a", "--format", "{{.Names}}"); got != "" {
		t.Errorf("ps --format on a node without containers = %q", got)
	}

	// inspect: the template runs on the object's JSON.
	netID := strings.TrimSpace(m.MustCLI("network", "inspect", "--format", "{{.ID}}", "123"))
	if got := m.MustCLI("service", "inspect", "--format", "{{.Spec.Name}} {{.Spec.Replicated.Replicas}} {{range .Spec.Networks}}{{.Target}}{{end}}", "web"); got != "web 2 "+netID+"\n" {
		t.Errorf("service inspect --format = %q; want web 2 %s", got, netID)
	}

	// JSON: 64-bit integers are numbers, digit strings stay strings.
	svc := decodeJSON(t, m.MustCLI("service", "inspect", "web")).([]any)[0].(map[string]any)
	if v, ok := svc["meta"].(map[string]any)["version"].(json.Number); !ok || v == "" {
		t.Errorf("service inspect: meta.version = %#v; want a JSON number", svc["meta"].(map[string]any)["version"])
	}
	if r := svc["spec"].(map[string]any)["replicated"].(map[string]any)["replicas"]; r != json.Number("2") {
		t.Errorf("service inspect: spec.replicated.replicas = %#v; want the number 2", r)
	}
	for _, task := range decodeJSON(t, m.MustCLI("service", "ps", "--format", "json", "web")).([]any) {
		if s, ok := task.(map[string]any)["slot"].(json.Number); !ok || (s != "1" && s != "2") {
			t.Errorf("service ps --format json: slot = %#v; want the number 1 or 2", task.(map[string]any)["slot"])
		}
	}
	nets := decodeJSON(t, m.MustCLI("network", "inspect", "123")).([]any)
	if name := nets[0].(map[string]any)["spec"].(map[string]any)["name"]; name != "123" {
		t.Errorf("network inspect 123: spec.name = %#v; want the string \"123\"", name)
	}

	// Mistakes: docker's wording and a failing exit status, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "ls", "--format", "{{.Name"}, "exit status 1: Error: template parsing error: template: :1: unclosed action"},
		{[]string{"service", "inspect", "--format", "{{.Spec.Nmae}}", "web"}, `map has no entry for key "Nmae"`},
		{[]string{"service", "frobnicate", "web"}, "exit status 1: shoal: unknown command: shoal service frobnicate\n\nUsage:  shoal service\n\nRun 'shoal service --help' for more information"},
		{[]string{"service", "logs", "nosuch"}, "no such task or service: nosuch"},
		{[]string{"node", "frobnicate"}, "exit status 1: shoal: unknown command: shoal node frobnicate"},
		{[]string{"service", "ls", "--bogus"}, "exit status 125: unknown flag: --bogus"},
		{[]string{"service", "update"}, "exit status 1: shoal: 'shoal service update' requires 1 argument"},
	} {
		out, err := m.CLI(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("shoal %q = %v; want an error containing %q", tc.args, err, tc.want)
		}
		if out != "" {
			t.Errorf("shoal %q printed %q; want nothing on stdout", tc.args, out)
		}
	}
}

// service update's list edits through the real CLI: networks by name and
// by ID, placement preferences appended and removed, published ports
// removed by target port.
func TestCLIServiceUpdateEdits(t *testing.T) {
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("network", "create", "db")
	appID := strings.TrimSpace(m.MustCLI("network", "inspect", "--format", "{{.ID}}", "app"))
	dbID := strings.TrimSpace(m.MustCLI("network", "inspect", "--format", "{{.ID}}", "db"))
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "0", "--network", "app", "--network", "db",
		"-p", "8080:80", "--placement-pref", "spread=node.labels.zone", "127.0.0.1:1/nginx:1.25")
	show := func(what string) string {
		t.Helper()
		return strings.TrimSpace(m.MustCLI("service", "inspect", "--format", what, "web"))
	}
	nets := func() string {
		return show("{{range .Spec.Networks}}{{.Target}} {{end}}")
	}
	if got := nets(); got != appID+" "+dbID {
		t.Fatalf("networks after create = %q; want %s %s", got, appID, dbID)
	}

	m.MustCLI("service", "update", "-d", "--network-rm", "app", "web")
	if got := nets(); got != dbID {
		t.Errorf("after --network-rm app (by name): networks = %q; want %s", got, dbID)
	}
	m.MustCLI("service", "update", "-d", "--network-rm", dbID, "web")
	if got := nets(); got != "" {
		t.Errorf("after --network-rm %s (by ID): networks = %q; want none", dbID, got)
	}
	m.MustCLI("service", "update", "-d", "--network-add", "app", "web")
	if got := nets(); got != appID {
		t.Errorf("after --network-add app: networks = %q; want %s", got, appID)
	}
	before := show("{{.Meta.Version}}")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--network-add", "app"}, "service is already attached to network app"},
		{[]string{"--network-rm", "nosuch"}, `nosuch`},
		{[]string{"--publish-rm", "http"}, `--publish-rm "http": "http" is not a port number`},
		{[]string{"--placement-pref-add", "node.labels.rack"}, `--placement-pref-add "node.labels.rack": use spread=node.labels.<key>`},
	} {
		_, err := m.CLI(append(append([]string{"service", "update"}, tc.args...), "web")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("service update %q = %v; want exit status 1 and %q", tc.args, err, tc.want)
		}
	}
	if after := show("{{.Meta.Version}}"); after != before {
		t.Errorf("refused updates changed the service: version %s -> %s", before, after)
	}

	prefs := func() string { return show("{{range .Spec.Task.Placement.Preferences}}{{.SpreadDescriptor}} {{end}}") }
	m.MustCLI("service", "update", "-d", "--placement-pref-add", "spread=node.labels.rack", "web")
	if got := prefs(); got != "node.labels.zone node.labels.rack" {
		t.Errorf("after --placement-pref-add: %q; want zone then rack", got)
	}
	m.MustCLI("service", "update", "-d", "--placement-pref-rm", "spread=node.labels.zone", "web")
	if got := prefs(); got != "node.labels.rack" {
		t.Errorf("after --placement-pref-rm zone: %q; want rack", got)
	}

	ports := func() string {
		return show("{{range .Spec.Endpoint.Ports}}{{.PublishedPort}}:{{.TargetPort}} {{end}}")
	}
	m.MustCLI("service", "update", "-d", "--publish-add", "9090:90", "--publish-add", "7070:70", "web")
	if got := ports(); got != "8080:80 9090:90 7070:70" {
		t.Fatalf("after --publish-add: ports %q", got)
	}
	m.MustCLI("service", "update", "-d", "--publish-rm", "80", "web")
	m.MustCLI("service", "update", "-d", "--publish-rm", "9090:90", "web")
	m.MustCLI("service", "update", "-d", "--publish-rm", "published=7070,target=70", "web")
	if got := ports(); got != "" {
		t.Errorf("after --publish-rm 80, 9090:90 and published=7070,target=70: ports %q; want none", got)
	}
	if ls := m.MustCLI("service", "ls", "--format", "{{.Name}}[{{.Ports}}]"); ls != "web[]\n" {
		t.Errorf("service ls after the edits = %q", ls)
	}
}
