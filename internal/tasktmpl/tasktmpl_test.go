package tasktmpl

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	c := &Context{}
	c.Service.ID, c.Service.Name, c.Service.Labels = "s1", "web", map[string]string{"tier": "front"}
	c.Node.ID, c.Node.Hostname = "n1", "host2"
	c.Node.Platform.Architecture, c.Node.Platform.OS = "amd64", "linux"
	c.Task.ID, c.Task.Name, c.Task.Slot = "t1", "web.3.t1", "3"
	for _, tc := range []struct {
		in, want, err string
	}{
		{"plain", "plain", ""},
		{"{{.Service.Name}}-{{.Task.Slot}}", "web-3", ""},
		{"{{.Node.Hostname}}/{{.Node.ID}}/{{.Node.Platform.OS}}-{{.Node.Platform.Architecture}}", "host2/n1/linux-amd64", ""},
		{"{{.Task.Name}} {{.Task.ID}} {{.Service.ID}}", "web.3.t1 t1 s1", ""},
		{`{{index .Service.Labels "tier"}}`, "front", ""},
		{"{{.Service.Labels.tier}}", "front", ""},
		{"{{.Service.Labels.nope}}", "", "map has no entry"},
		{"{{.Task.Nope}}", "", "can't evaluate field Nope"},
		{"{{.Service.Name", "", "unclosed action"},
		{"{{nosuchfunc}}", "", "not defined"},
	} {
		got, err := c.Expand(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	env, err := c.ExpandEnv([]string{"A={{.Task.Slot}}", "B=x={{.Node.Hostname}}", "NOVALUE", "{{.Task.Slot}}=kept"})
	if err != nil || strings.Join(env, " ") != "A=3 B=x=host2 NOVALUE {{.Task.Slot}}=kept" {
		t.Errorf("ExpandEnv = %q, %v", env, err)
	}
	if _, err := c.ExpandEnv([]string{"A={{.Bad}}"}); err == nil || !strings.Contains(err.Error(), "env A") {
		t.Errorf("ExpandEnv of a bad template: %v", err)
	}
	if got, err := Check("{{.Service.Name}}-{{.Task.Slot}}"); err != nil || got != "service-1" {
		t.Errorf("Check = %q, %v", got, err)
	}
}
