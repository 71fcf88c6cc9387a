package shoal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The dependency direction of DESIGN.md: cmd → daemon → manager,
// worker → scheduler, runtime, netoverlay → proto. Each rule names
// packages and import path prefixes they must not depend on (directly or
// through others).
var depRules = []struct {
	pkgs      string
	forbidden []string
	why       string
}{
	{"./scheduler/...", []string{"google.golang.org/grpc", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist", "go.uber.org/zap", "github.com/shoal-run/shoal/proto", "github.com/shoal-run/shoal/manager"}, "the scheduler is pure: snapshots in, placements out"},
	{"./manager/...", []string{"github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, "managers do not run containers and do not know the composition root"},
	{"./worker/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, "workers talk to managers over the API only"},
	{"./runtime/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/proto", "github.com/shoal-run/shoal/daemon"}, "the runtime runs container specs and knows nothing of tasks"},
	{"./netoverlay/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/daemon"}, "networking is below the manager and worker"},
	{"./proto/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal", "github.com/shoal-run/shoal/worker"}, "the wire schema depends on nothing of ours"},
	{"./internal/errdefs/...", []string{"github.com/shoal-run/shoal/"}, "error categories are a leaf"},
}

func TestDependencyDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, r := range depRules {
		out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, r.pkgs).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "matched no packages") {
				continue
			}
			t.Fatalf("go list %s: %v\n%s", r.pkgs, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || strings.HasPrefix(fields[0], "warning:") {
				continue
			}
			for _, dep := range fields[1:] {
				for _, f := range r.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
						t.Errorf("%s depends on %s: %s", fields[0], dep, r.why)
					}
				}
			}
		}
	}
}

// Only cmd may import the composition root.
func TestOnlyCmdImportsDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			if imp == "github.com/shoal-run/shoal/daemon" && !strings.HasPrefix(fields[0], "github.com/shoal-run/shoal/cmd/") {
				t.Errorf("%s imports daemon; only cmd may", fields[0])
			}
		}
	}
}
