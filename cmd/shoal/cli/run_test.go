package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/daemon"
)

// noDaemon is a socket path where no daemon runs: a command that gets as
// far as connecting fails naming it.
const noDaemon = "/nonexistent/path/shoal.sock"

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("SHOAL_HOST", "")
	t.Setenv("SHOAL_CERT_PATH", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = Run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestServiceCreateBadFlags checks a bad flag is reported before any
// connection is tried.
func TestServiceCreateBadFlags(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--publish", "nonsense"}, `--publish "nonsense": "nonsense" is not a port number (e.g. 8080:80`},
		{[]string{"-p", "8080:80", "-p", "published=1,target=2,mode=global"}, `mode "global" is not ingress or host`},
		{[]string{"--restart-condition", "sometimes"}, `--restart-condition "sometimes": use none, on-failure or any`},
		{[]string{"--limit-memory", "lots"}, `--limit-memory: "lots" is not a size`},
		{[]string{"--reserve-memory", "-1g"}, `--reserve-memory: "-1g" is not a size`},
		{[]string{"--reserve-cpu", "half"}, `--reserve-cpu: "half" is not a CPU count`},
		{[]string{"--limit-cpu", "-2"}, `--limit-cpu: "-2" is not a CPU count`},
		{[]string{"--mode", "both"}, `--mode "both": use replicated, global, replicated-job or global-job`},
		{[]string{"--mode", "global", "--replicas", "3"}, "--replicas can only be used with replicated or replicated-job mode"},
		{[]string{"--endpoint-mode", "round-robin"}, `--endpoint-mode "round-robin": use vip or dnsrr`},
		{[]string{"--label", "=x"}, `--label "=x": want key=value`},
		{[]string{"--container-label", "=y"}, `--container-label "=y": want key=value`},
		{[]string{"--placement-pref", "node.labels.zone"}, `--placement-pref "node.labels.zone": use spread=node.labels.<key>`},
		{[]string{"--replicas", "many"}, `invalid argument "many" for "--replicas"`},
		{[]string{"--restart-delay", "5"}, `invalid argument "5" for "--restart-delay"`},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
	} {
		args := append([]string{"-H", "unix://" + noDaemon, "service", "create"}, tc.flags...)
		args = append(args, "nginx:1.25")
		stdout, _, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%q) = %v; want an error containing %q", args, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), noDaemon) || strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("Run(%q) = %q; want the flag error before any connection", args, err)
		}
		if stdout != "" {
			t.Errorf("Run(%q) printed %q; want nothing", args, stdout)
		}
	}
}

func TestServiceCreateNoDaemon(t *testing.T) {
	args := []string{"-H", "unix://" + noDaemon, "service", "create", "--name", "web", "-p", "8080:80",
		"--limit-memory", "512m", "--reserve-cpu", "0.5", "--constraint", "node.role==worker", "-e", "A=1", "nginx:1.25", "nginx", "-g", "daemon off;"}
	_, _, err := run(t, args...)
	if err == nil {
		t.Fatalf("Run(%q) = nil; want an error: no daemon runs there", args)
	}
	for _, want := range []string{"cannot reach the daemon at " + noDaemon, "`shoal daemon`", "-H"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run(%q) = %q; want it to contain %q", args, err, want)
		}
	}
}

func TestCommandsWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	// A file that exists but where nobody listens: the dial itself fails.
	deadSocket := filepath.Join(dir, "shoal.sock")
	if err := os.WriteFile(deadSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	emptyCertDir := t.TempDir()

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-H", "unix://" + noDaemon, "service", "ls"}, []string{noDaemon, "`shoal daemon`"}},
		{[]string{"-H", "unix://" + noDaemon, "node", "ls"}, []string{noDaemon, "`shoal daemon`"}},
		{[]string{"-H", "unix://" + deadSocket, "service", "ls"}, []string{"cannot reach the daemon", "is `shoal daemon` running?"}},
		{[]string{"-H", "tcp://127.0.0.1:1", "--cert-dir", emptyCertDir, "service", "ls"}, []string{"tcp hosts need a manager certificate", "--cert-dir"}},
		{[]string{"-H", "http://manager:4242", "service", "ls"}, []string{`host "http://manager:4242": use unix:///path or tcp://HOST:PORT`}},
		{[]string{"-H", "tcp://127.0.0.1:1", "swarm", "init"}, []string{"act on the local daemon"}},
		{[]string{"-H", "unix://" + noDaemon, "service", "ls", "--format", "yaml"}, []string{`--format "yaml": use table, json or a Go template such as '{{.ID}} {{.Name}}'`}},
		{[]string{"-H", "unix://" + noDaemon, "service", "create"}, []string{"requires at least 1 arg"}},
		{[]string{"-H", "unix://" + noDaemon, "swarm", "join", "manager:4242"}, []string{"--token is required"}},
		{[]string{"-H", "unix://" + noDaemon, "nosuchcommand"}, []string{"unknown command: shoal nosuchcommand"}},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil {
			t.Errorf("Run(%q) = nil; want an error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Run(%q) = %q; want it to contain %q", tc.args, err, w)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, stderr, err := run(t, "version")
	if err != nil {
		t.Fatalf("Run(version) = %v", err)
	}
	if want := "shoal " + daemon.Version + "\n"; stdout != want || stderr != "" {
		t.Errorf("Run(version) printed %q, %q; want %q and nothing on stderr", stdout, stderr, want)
	}
	if _, _, err := run(t, "version", "extra"); err == nil {
		t.Errorf("Run(version extra) = nil; want an error: version takes no arguments")
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{exitError{code: 3}, 3},
		{exitError{code: 0}, 0},
		{context.Canceled, 1},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d; want %d", tc.err, got, tc.want)
		}
	}
}
