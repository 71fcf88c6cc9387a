package shoal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The dependency direction of DESIGN.md: cmd → daemon → manager, worker
// → scheduler, runtime, netoverlay → proto, and everything may use
// internal. Each rule names packages and import path prefixes they must
// not depend on (directly or through others), save the allowed ones.
var depRules = []struct {
	pkgs      string
	forbidden []string
	allowed   []string
	why       string
}{
	{"./scheduler/...", []string{"google.golang.org/grpc", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist", "go.uber.org/zap", "github.com/shoal-run/shoal/proto", "github.com/shoal-run/shoal/manager"}, nil, "the scheduler is pure: snapshots in, placements out"},
	{"./manager/...", []string{"github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/runtimeapi", "github.com/shoal-run/shoal/gossip", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "managers do not run containers, see gossip only through GossipView, and do not know the composition root"},
	{"./worker/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/gossip", "github.com/shoal-run/shoal/runtimeapi", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "workers talk to managers over the API only and get what they need of the node through their own small interfaces"},
	{"./runtime/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/proto", "github.com/shoal-run/shoal/runtimeapi", "github.com/shoal-run/shoal/daemon"}, nil, "the runtime runs container specs and knows nothing of tasks"},
	{"./runtimeapi/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/gossip", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "the node-local runtime API converts between the wire and the runtime, and nothing else"},
	{"./netoverlay/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/gossip", "github.com/shoal-run/shoal/daemon"}, nil, "networking is below the manager and worker, and gets gossip through its Records interface"},
	{"./gossip/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/netoverlay", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "gossip is a subsystem below the manager, the worker and the overlay"},
	{"./proto/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal", "github.com/shoal-run/shoal/worker"}, nil, "the wire schema depends on nothing of ours"},
	{"./internal/...", []string{"github.com/shoal-run/shoal/"}, []string{"github.com/shoal-run/shoal/internal/"}, "internal/ is ground: it imports nothing of the product"},
	{"./internal/errdefs/...", []string{"github.com/shoal-run/shoal/"}, nil, "error categories are a leaf"},
	{"./internal/errdefs/...", []string{"google.golang.org/grpc"}, nil, "error categories know no wire protocol; internal/errgrpc maps them to status codes at the servers' and clients' edges"},
	{"./runtime/...", []string{"google.golang.org/grpc"}, nil, "the runtime speaks Go errors; the gRPC API in front of it converts them"},
	{"./internal/tlsutil/...", []string{"github.com/shoal-run/shoal/proto"}, nil, "TLS helpers carry their own role type; manager/ca converts it to the API's"},
}

func TestDependencyDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, r := range depRules {
		args := append([]string{"list", "-e", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`}, strings.Fields(r.pkgs)...)
		out, err := exec.Command("go", args...).CombinedOutput()
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
				if under(dep, r.forbidden) && !under(dep, r.allowed) {
					t.Errorf("%s depends on %s: %s", fields[0], dep, r.why)
				}
			}
		}
	}
}

// under reports whether the package path is one of prefixes or below
// one; a prefix ending in "/" matches what starts with it.
func under(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
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
			root := []string{"github.com/shoal-run/shoal/daemon"}
			if under(imp, root) && !under(fields[0], root) && !strings.HasPrefix(fields[0], "github.com/shoal-run/shoal/cmd/") {
				t.Errorf("%s imports daemon; only cmd may", fields[0])
			}
		}
	}
}
