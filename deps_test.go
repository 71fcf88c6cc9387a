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

// The dependency direction of DESIGN.md: cmd → internal/daemon → manager,
// worker → scheduler, runtime, netoverlay → proto. Each rule names
// packages and import path prefixes they must not depend on (directly or
// through others).
var depRules = []struct {
	pkgs      string
	forbidden []string
	why       string
}{
	{"./scheduler/...", []string{"google.golang.org/grpc", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist", "go.uber.org/zap", "github.com/shoal-run/shoal/proto", "github.com/shoal-run/shoal/manager"}, "the scheduler is pure: snapshots in, placements out"},
	{"./manager/...", []string{"github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/internal/daemon", "github.com/shoal-run/shoal/cmd"}, "managers do not run containers and do not know the composition root"},
	{"./worker/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal/daemon", "github.com/shoal-run/shoal/cmd"}, "workers talk to managers over the API only"},
	{"./runtime/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/proto", "github.com/shoal-run/shoal/internal/daemon"}, "the runtime runs container specs and knows nothing of tasks"},
	{"./netoverlay/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/internal/daemon"}, "networking is below the manager and worker"},
	{"./proto/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal", "github.com/shoal-run/shoal/worker"}, "the wire schema depends on nothing of ours"},
	{"./internal/errdefs/...", []string{"github.com/shoal-run/shoal/"}, "error categories are a leaf"},
	{"./manager/store/...", []string{"github.com/shoal-run/shoal/manager/allocator"}, "the store holds objects and indexes them; the allocator asks it, not the other way round (manager/addrs says what an object holds)"},
	{"./manager/addrs/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/internal/"}, "what an object holds is a leaf under the store and the allocator"},
	{"./manager/quorum/...", []string{"github.com/shoal-run/shoal/manager", "github.com/hashicorp/raft", "github.com/hashicorp/memberlist"}, "quorum rules are pure: the members come in as values"},
	{"./manager/auth/...", []string{"github.com/shoal-run/shoal/manager"}, "who may call what is decided from the call alone"},
	{"./manager/dispatcher/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/ca"}, "the dispatcher sees the store and Raft through the small views it needs (Store, Proposer)"},
	{"./manager/caserver/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/dispatcher"}, "the CA server sees the store and Raft through the small views it needs"},
	{"./manager/membership/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/dispatcher"}, "membership sees Raft through the small view it needs; quorum rules are manager/quorum's"},
	{"./manager/forward/...", []string{"github.com/shoal-run/shoal/manager/raftnode", "github.com/shoal-run/shoal/manager/controlapi", "github.com/shoal-run/shoal/manager/dispatcher"}, "forwarding sees Raft's leadership through the small view it needs"},
	{"./manager/allocator/...", []string{"github.com/shoal-run/shoal/manager/store", "github.com/shoal-run/shoal/manager/controlapi", "github.com/hashicorp/raft"}, "allocation is pure: what is used comes in as a function"},
}

// directImports are the rules above for what a package imports itself,
// where depending on it through others is allowed: cmd reaches the whole
// product through the composition root, but names none of its parts.
var directImports = []struct {
	pkgs      string
	forbidden []string
	why       string
}{
	{"./cmd/shoal/cli/...", []string{"github.com/shoal-run/shoal/manager", "github.com/shoal-run/shoal/runtime", "github.com/shoal-run/shoal/worker", "github.com/shoal-run/shoal/netoverlay", "github.com/shoal-run/shoal/scheduler"}, "the CLI configures the daemon through its Config; defaults of the parts reach it through the daemon"},
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
			if imp == "github.com/shoal-run/shoal/internal/daemon" && !strings.HasPrefix(fields[0], "github.com/shoal-run/shoal/cmd/") {
				t.Errorf("%s imports internal/daemon; only cmd may", fields[0])
			}
		}
	}
}
