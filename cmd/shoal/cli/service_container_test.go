package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// applySpecFlags parses args as service create's (create) or update's
// flags and applies them to spec.
func applySpecFlags(t *testing.T, spec *shoalv1.ServiceSpec, create bool, args ...string) error {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.register(fs, create)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return f.apply(fs, spec, create)
}

func containerJSON(t *testing.T, s *shoalv1.ServiceSpec) string {
	t.Helper()
	c := proto.Clone(s.GetTask()).(*shoalv1.TaskSpec)
	c.Restart, c.Placement, c.Resources = nil, nil, &shoalv1.ResourceRequirements{Limits: &shoalv1.Resources{Pids: c.GetResources().GetLimits().GetPids()}}
	c.Container.StopGracePeriod = nil
	b, err := protojson.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestContainerFlagsCreateAndUpdate(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nA=1\n\nB=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := &shoalv1.ServiceSpec{Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "img"}}}
	if err := applySpecFlags(t, spec, true,
		"--env-file", envFile, "--init", "--read-only", "--stop-signal", "SIGUSR1", "--limit-pids", "50",
		"--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN", "--sysctl", "net.core.somaxconn=1024",
		"--ulimit", "nofile=100:200", "-t", "--dns", "10.0.0.2", "--dns-search", "corp.example", "--dns-option", "ndots:2",
		"--host", "db:10.0.0.5", "--host", "cache=10.0.0.6", "--group", "audio", "-w", "/srv",
		"--entrypoint", `/bin/sh -c "echo hi"`, "--log-opt", "max-size=1m", "--log-opt", "max-file=2",
		"--mount", "type=volume,source=data,target=/data"); err != nil {
		t.Fatal(err)
	}
	c := spec.Task.Container
	for _, tc := range []struct {
		what string
		ok   bool
	}{
		{"env from file", strings.Join(c.Env, " ") == "A=1 B=from-file"},
		{"init", c.Init}, {"read-only", c.ReadOnly}, {"tty", c.Tty}, {"stop signal", c.StopSignal == "SIGUSR1"},
		{"pids", spec.Task.Resources.Limits.Pids == 50},
		{"caps", strings.Join(c.CapAdd, ",") == "CAP_NET_ADMIN" && strings.Join(c.CapDrop, ",") == "CAP_CHOWN"},
		{"sysctl", c.Sysctls["net.core.somaxconn"] == "1024"},
		{"ulimit", len(c.Ulimits) == 1 && c.Ulimits[0].Name == "nofile" && c.Ulimits[0].Soft == 100 && c.Ulimits[0].Hard == 200},
		{"dns", c.DnsConfig.GetNameservers()[0] == "10.0.0.2" && c.DnsConfig.GetSearch()[0] == "corp.example" && c.DnsConfig.GetOptions()[0] == "ndots:2"},
		{"hosts", strings.Join(c.Hosts, ",") == "10.0.0.5 db,10.0.0.6 cache"},
		{"groups", strings.Join(c.Groups, ",") == "audio"},
		{"workdir", c.Dir == "/srv"},
		{"entrypoint", strings.Join(c.Command, "|") == "/bin/sh|-c|echo hi" && c.CommandSet},
		{"log", spec.Task.LogDriver.GetOptions()["max-size"] == "1m" && spec.Task.LogDriver.GetOptions()["max-file"] == "2"},
		{"mount", len(c.Mounts) == 1 && c.Mounts[0].Target == "/data"},
	} {
		if !tc.ok {
			t.Errorf("create: %s not set: %s", tc.what, containerJSON(t, spec))
		}
	}

	before := containerJSON(t, spec)
	if err := applySpecFlags(t, spec, false); err != nil {
		t.Fatal(err)
	}
	if after := containerJSON(t, spec); after != before {
		t.Fatalf("an update with no flags changed the spec:\n%s\n%s", before, after)
	}

	if err := applySpecFlags(t, spec, false,
		"--init=false", "--cap-add", "chown", "--cap-drop", "net_admin", "--sysctl-rm", "net.core.somaxconn", "--sysctl-add", "kernel.shmmni=100",
		"--ulimit-add", "nofile=300", "--ulimit-add", "nproc=10", "--dns-rm", "10.0.0.2", "--dns-add", "10.0.0.3",
		"--host-rm", "db", "--host-add", "db:10.0.0.9", "--group-rm", "audio", "--group-add", "video",
		"--mount-rm", "/data", "--mount-add", "type=tmpfs,target=/scratch", "--entrypoint", "", "--log-opt", "max-file=4",
		"--limit-pids", "0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		ok   bool
	}{
		{"init off", !c.Init}, {"read-only kept", c.ReadOnly},
		{"caps swapped", strings.Join(c.CapAdd, ",") == "CAP_CHOWN" && strings.Join(c.CapDrop, ",") == "CAP_NET_ADMIN"},
		{"sysctls", len(c.Sysctls) == 1 && c.Sysctls["kernel.shmmni"] == "100"},
		{"ulimits", len(c.Ulimits) == 2 && c.Ulimits[0].Soft == 300 && c.Ulimits[1].Name == "nproc"},
		{"dns", strings.Join(c.DnsConfig.GetNameservers(), ",") == "10.0.0.3" && len(c.DnsConfig.GetSearch()) == 1},
		{"hosts", strings.Join(c.Hosts, ",") == "10.0.0.6 cache,10.0.0.9 db"},
		{"groups", strings.Join(c.Groups, ",") == "video"},
		{"mounts", len(c.Mounts) == 1 && c.Mounts[0].Target == "/scratch"},
		{"entrypoint cleared", len(c.Command) == 0 && c.CommandSet},
		{"log options replaced", len(spec.Task.LogDriver.GetOptions()) == 1 && spec.Task.LogDriver.GetOptions()["max-file"] == "4"},
		{"pids", spec.Task.Resources.Limits.Pids == 0},
	} {
		if !tc.ok {
			t.Errorf("update: %s: %s", tc.what, containerJSON(t, spec))
		}
	}
}

func TestContainerFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ulimit", "nofile"}, "NAME=SOFT[:HARD]"},
		{[]string{"--ulimit", "bogus=1"}, "unknown; use one of"},
		{[]string{"--dns", "dns.example"}, "IP address is not correctly formatted"},
		{[]string{"--host", "db"}, "want HOST:IP"},
		{[]string{"--host", "db:nope"}, "want HOST:IP"},
		{[]string{"--stop-signal", "SIGNOPE"}, "unknown signal"},
		{[]string{"--limit-pids", "-1"}, "give 0 (unlimited) or more"},
		{[]string{"--log-driver", "syslog"}, "not supported"},
		{[]string{"--log-opt", "max-size=tiny"}, "not a size"},
		{[]string{"--log-opt", "compress=true"}, "unknown log opt"},
		{[]string{"--sysctl", "=1"}, "want key=value"},
		{[]string{"--entrypoint", `sh -c "unclosed`}, "--entrypoint"},
		{[]string{"--env-file", "/nonexistent/env"}, "no such file"},
	} {
		spec := &shoalv1.ServiceSpec{Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "img"}}}
		err := applySpecFlags(t, spec, true, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestDisplayImage(t *testing.T) {
	d := "@sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct{ in, want string }{
		{"nginx:1.25", "nginx:1.25"},
		{"nginx:1.25" + d, "nginx:1.25"},
		{"127.0.0.1:5000/app:v1" + d, "127.0.0.1:5000/app:v1"},
		{"127.0.0.1:5000/app" + d, "127.0.0.1:5000/app" + d},
		{"nginx" + d, "nginx" + d},
	} {
		if got := displayImage(tc.in); got != tc.want {
			t.Errorf("displayImage(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestFilterFlag(t *testing.T) {
	got, err := filterFlag{"name=web", "label=a=b", "Name=api"}.parse()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "name" || strings.Join(got[0].Values, ",") != "web,api" || got[1].Key != "label" || got[1].Values[0] != "a=b" {
		t.Fatalf("parse = %v", got)
	}
	for _, bad := range []string{"name", "=x"} {
		if _, err := (filterFlag{bad}).parse(); err == nil || !strings.Contains(err.Error(), "expected name=value") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
