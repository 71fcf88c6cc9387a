package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// sortedLines is a command's output as sorted, trimmed, non-empty lines.
func sortedLines(out string) []string {
	var ls []string
	for _, l := range lines(out) {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	sort.Strings(ls)
	return ls
}

// docker's --filter on the lists, applied by the managers; node ps of
// this node and of another; "self" is the node whose socket the CLI uses.
func TestFilters(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "filters"})
	c := harness.StartCluster(t, 1, 1)
	m, w := c.Managers[0], c.Workers[0]
	mid, wid := nodeID(t, m), nodeID(t, w)
	m.MustCLI("service", "create", "-d", "--name", "web", "--label", "tier=front", "--replicas", "2", "--constraint", "node.role==worker", img.Ref)
	m.MustCLI("service", "create", "-d", "--name", "agent", "--mode", "global", img.Ref)
	m.MustCLI("network", "create", "--driver", "overlay", "--label", "team=x", "appnet")
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, []byte("x-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := func(name string) { m.MustCLI("secret", "create", name, file) }
	secret("db_password")
	secret("api_key")
	harness.Eventually(t, 60*time.Second, func() error {
		out, err := m.CLI("service", "ps", "-q", "-f", "desired-state=running", "web", "agent")
		if err != nil || len(sortedLines(out)) != 4 {
			return fmt.Errorf("running tasks: %q %v; want 4", out, err)
		}
		return nil
	})

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"service", "ls", "--format", "{{.Name}}", "-f", "mode=global"}, []string{"agent"}},
		{[]string{"service", "ls", "--format", "{{.Name}}", "-f", "label=tier=front"}, []string{"web"}},
		{[]string{"service", "ls", "--format", "{{.Name}}", "-f", "name=we", "-f", "name=ag"}, []string{"agent", "web"}},
		{[]string{"service", "ls", "--format", "{{.Name}}", "-f", "name=web", "-f", "mode=global"}, nil},
		{[]string{"node", "ls", "-q", "-f", "role=manager"}, []string{mid}},
		{[]string{"node", "ls", "-q", "-f", "role=worker"}, []string{wid}},
		{[]string{"network", "ls", "--format", "{{.Name}}", "-f", "type=builtin"}, []string{"ingress"}},
		{[]string{"network", "ls", "--format", "{{.Name}}", "-f", "label=team"}, []string{"appnet"}},
		{[]string{"secret", "ls", "--format", "{{.Name}}", "-f", "name=db"}, []string{"db_password"}},
		{[]string{"node", "inspect", "--format", "{{.ID}}", "self"}, []string{mid}},
		// node ps: this node's tasks by default (the manager runs agent).
		{[]string{"node", "ps", "--format", "{{.Name}}"}, []string{"agent." + mid}},
		{[]string{"node", "ps", "--format", "{{.Name}}", "-f", "name=web", wid}, []string{"web.1", "web.2"}},
		{[]string{"service", "ps", "--format", "{{.Name}}", "-f", "node=" + mid, "agent"}, []string{"agent." + mid}},
	} {
		out, err := m.CLI(tc.args...)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if got := sortedLines(out); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%v = %q; want %q", tc.args, got, tc.want)
		}
	}
	pretty := m.MustCLI("node", "inspect", "--pretty", "self")
	for _, want := range []string{"ID:\t\t\t" + mid + "\n", "Status:\n State:\t\t\tReady\n", "Manager Status:\n", " Leader:\t\tYes\n"} {
		if !strings.Contains(pretty, want) {
			t.Errorf("node inspect --pretty self lacks %q:\n%s", want, pretty)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "ls", "-f", "colour=red"}, "invalid filter 'colour': use id, label, mode, name"},
		{[]string{"service", "ls", "-f", "mode=both"}, "invalid filter 'mode=both'"},
		{[]string{"node", "ls", "-f", "role"}, "bad format of filter (expected name=value): role"},
		{[]string{"service", "ps", "-f", "desired-state=dead", "web"}, "invalid filter 'desired-state=dead'"},
	} {
		if _, err := m.CLI(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want %q", tc.args, err, tc.want)
		}
	}
}
