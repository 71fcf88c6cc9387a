package shoal_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
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
	{"./containerspec/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/runtimeapi", "github.com/shoal-run/shoal/netoverlay", "github.com/shoal-run/shoal/gossip", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "the wire's container pieces to the runtime's and back, below the worker and the runtime API that share it"},
	{"./netoverlay/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/gossip", "github.com/shoal-run/shoal/daemon"}, nil, "networking is below the manager and worker, and gets gossip through its Records interface"},
	{"./dockerapi/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/netoverlay", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd", "github.com/shoal-run/shoal/stack"}, nil, "the Docker API is a client of the node's gRPC services: Docker's types in, Shoal's specs out, nothing of the parts behind them"},
	{"./stack/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "a compose file becomes specs in the client: it knows no manager, node or runtime"},
	{"./gossip/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/netoverlay", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/daemon", "github.com/shoal-run/shoal/cmd"}, nil, "gossip is a subsystem below the manager, the worker and the overlay"},
	{"./proto/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal", "github.com/shoal-run/shoal/worker"}, nil, "the wire schema depends on nothing of ours"},
	{"./internal/...", []string{"github.com/shoal-run/shoal/"}, []string{"github.com/shoal-run/shoal/internal/"}, "internal/ is ground: it imports nothing of the product"},
	{"./internal/errdefs/...", []string{"github.com/shoal-run/shoal/"}, nil, "error categories are a leaf"},
	{"./internal/errdefs/...", []string{"google.golang.org/grpc"}, nil, "error categories know no wire protocol; internal/errgrpc maps them to status codes at the servers' and clients' edges"},
	{"./runtime/...", []string{"google.golang.org/grpc"}, nil, "the runtime speaks Go errors; the gRPC API in front of it converts them"},
	{"./internal/tlsutil/...", []string{"github.com/shoal-run/shoal/proto"}, nil, "TLS helpers carry their own role type; manager/ca converts it to the API's"},
	{"./manager/store/...", []string{"github.com/shoal-run/shoal/manager/allocator"}, nil, "the store holds objects and indexes them; the allocator asks it, not the other way round (manager/addrs says what an object holds)"},
	{"./manager/addrs/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal/"}, nil, "what an object holds is a leaf under the store and the allocator"},
	{"./manager/quorum/...", []string{"github.com/shoal-run/shoal/manager", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist"}, nil, "quorum rules are pure: the members come in as values"},
	{"./manager/auth/...", []string{"github.com/shoal-run/shoal/manager"}, nil, "who may call what is decided from the call alone"},
	{"./manager/dispatcher/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/ca"}, nil, "the dispatcher sees the store and Raft through the small views it needs (Store, Proposer)"},
	{"./manager/caserver/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/dispatcher"}, nil, "the CA server sees the store and Raft through the small views it needs"},
	{"./manager/membership/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/dispatcher"}, nil, "membership sees Raft through the small view it needs; quorum rules are manager/quorum's"},
	{"./manager/forward/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/dispatcher"}, nil, "forwarding sees Raft's leadership through the small view it needs"},
	{"./manager/allocator/...", []string{"github.com/shoal-run/shoal/manager/store", "github.com/shoal-run/shoal/manager/controlapi", "github.com/hashicorp/raft"}, nil, "allocation is pure: what is used comes in as a function"},
}

// directImports are the rules above for what a package imports itself,
// where depending on it through others is allowed: cmd reaches the whole
// product through the composition root, but names none of its parts.
var directImports = []struct {
	pkgs      string
	forbidden []string
	why       string
}{
	{"./dockerapi/convert/...", []string{"google.golang.org/grpc", "net/http", "os/exec", "github.com/shoal-run/shoal/dockerapi"}, "the translation layer is pure: types in, types out, no calls"},
	{"./cmd/shoal/cli/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/netoverlay", "github.com/shoal-run/shoal/scheduler"}, "the CLI configures the daemon through its Config; defaults of the parts reach it through the daemon"},
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

func TestDirectImports(t *testing.T) {
	for _, r := range directImports {
		out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, r.pkgs).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", r.pkgs, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(line)
			for _, imp := range fields[1:] {
				for _, f := range r.forbidden {
					if imp == f || strings.HasPrefix(imp, f+"/") {
						t.Errorf("%s imports %s: %s", fields[0], imp, r.why)
					}
				}
			}
		}
	}
}

// The manager's root wires the control API (it constructs its Server)
// and takes nothing else from it: network allocation lives in
// manager/allocator, quorum rules in manager/quorum, and controlapi only
// validates and proposes.
func TestManagerRootOnlyWiresControlAPI(t *testing.T) {
	allowed := map[string]bool{"Server": true}
	files, err := filepath.Glob("manager/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) == "github.com/shoal-run/shoal/manager/controlapi" {
				local = "controlapi"
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		if local == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && !allowed[sel.Sel.Name] {
				t.Errorf("%s: the manager root uses controlapi.%s; only the Server is the control API's: move the rule to the room it belongs to (allocator, quorum)", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
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
			root := []string{"github.com/shoal-run/shoal/daemon"}
			if under(imp, root) && !under(fields[0], root) && !strings.HasPrefix(fields[0], "github.com/shoal-run/shoal/cmd/") {
				t.Errorf("%s imports daemon; only cmd may", fields[0])
			}
		}
	}
}
