package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// factsScript is a service's workload that writes what it sees of its
// own container into /out (a bind mount of a directory of the test), then
// waits, and records the signal that stops it.
const factsScript = `
trap 'echo usr1 > /out/stopsig; exit 0' USR1
trap 'echo term > /out/stopsig; exit 0' TERM
cat /proc/self/status > /out/status
cat /proc/self/limits > /out/limits
env > /out/env
hostname > /out/hostname
pwd > /out/pwd
cat /proc/1/comm > /out/pid1
cat /proc/sys/net/core/somaxconn > /out/somaxconn
cat /proc/sys/kernel/shmmni > /out/shmmni
if [ -t 0 ]; then echo tty > /out/tty; else echo notty > /out/tty; fi
touch /rootfs-write 2> /out/rootfs-write || true
touch /ro/x 2> /out/ro-write || true
for i in $(seq 1 300); do echo "log line $i .............................................................."; done
echo done > /out/ready
sleep 1000 & wait
`

// facts waits for the workload's facts in dir and returns them by name.
func facts(t *testing.T, dir string) map[string]string {
	t.Helper()
	harness.Eventually(t, 60*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err != nil {
			return fmt.Errorf("the workload has not written its facts yet: %v", err)
		}
		return nil
	})
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// statusField is one "Name:\tvalue" line of /proc/PID/status.
func statusField(status, name string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// capSet reports whether capability bit n is in a hex capability mask.
func capSet(t *testing.T, mask string, n uint) bool {
	t.Helper()
	v, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", mask, err)
	}
	return v&(1<<n) != 0
}

// limitLine is the "Max open files  SOFT  HARD  files" line of
// /proc/PID/limits, as "SOFT HARD".
func limitLine(limits, name string) string {
	for _, l := range strings.Split(limits, "\n") {
		if strings.HasPrefix(l, name) {
			f := strings.Fields(strings.TrimPrefix(l, name))
			if len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	return ""
}

// Docker's container flags on a service, each observed from inside its
// running container (what the workload itself sees, its /proc, its
// cgroup and its log files on the node), then changed by service update
// and observed again in the replacement; the stop signal is the one the
// workload receives.
func TestServiceContainerSpec(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "spec"})
	c := harness.StartCluster(t, 1, 1)
	m, w := c.Managers[0], c.Workers[0]
	wid := nodeID(t, w)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	out, ro := t.TempDir(), t.TempDir()
	envFile := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(envFile, []byte("# settings\nFROM_FILE=yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.MustCLI("service", "create", "-d", "--name", "spec", "--constraint", "node.id=="+wid,
		"--mount", "type=bind,source="+out+",target=/out",
		"--mount", "type=bind,source="+ro+",target=/ro,readonly",
		"--env-file", envFile, "-e", "NODE={{.Node.Hostname}}", "-e", "SLOT={{.Task.Slot}}",
		"--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
		"--init", "--read-only", "--tty", "--stop-signal", "SIGUSR1", "--limit-pids", "64",
		"--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN",
		"--sysctl", "net.core.somaxconn=1234", "--sysctl", "kernel.shmmni=2048",
		"--ulimit", "nofile=100:200",
		"--dns", "10.9.9.9", "--dns-search", "corp.example", "--dns-option", "ndots:3",
		"--host", "db:10.0.0.5", "--group", "4242", "-w", "/tmp",
		"--log-opt", "max-size=4k", "--log-opt", "max-file=2",
		"--entrypoint", "/bin/sh -c", img.Ref, factsScript)
	ctr := oneContainer(t, w, "spec")
	f := facts(t, out)

	status := f["status"]
	capEff := statusField(status, "CapEff")
	for _, tc := range []struct {
		what string
		ok   bool
		got  string
	}{
		{"--hostname template", strings.TrimSpace(f["hostname"]) == "spec-1", f["hostname"]},
		{"-w", strings.TrimSpace(f["pwd"]) == "/tmp", f["pwd"]},
		{"--init: PID 1 is not the workload", strings.TrimSpace(f["pid1"]) != "sh", f["pid1"]},
		{"--tty", strings.TrimSpace(f["tty"]) == "tty", f["tty"]},
		{"--read-only", strings.Contains(f["rootfs-write"], "Read-only file system"), f["rootfs-write"]},
		{"readonly bind", strings.Contains(f["ro-write"], "Read-only file system"), f["ro-write"]},
		{"--cap-add NET_ADMIN", capSet(t, capEff, 12), capEff},
		{"--cap-drop CHOWN", !capSet(t, capEff, 0), capEff},
		{"a default capability kept (KILL)", capSet(t, capEff, 5), capEff},
		{"--group", strings.Contains(" "+statusField(status, "Groups")+" ", " 4242 "), statusField(status, "Groups")},
		{"--ulimit", limitLine(f["limits"], "Max open files") == "100 200", limitLine(f["limits"], "Max open files")},
		{"--sysctl net.*", strings.TrimSpace(f["somaxconn"]) == "1234", f["somaxconn"]},
		{"--sysctl kernel.shmmni", strings.TrimSpace(f["shmmni"]) == "2048", f["shmmni"]},
	} {
		if !tc.ok {
			t.Errorf("%s: the container shows %q", tc.what, tc.got)
		}
	}
	resolv := inside(t, ctr, "/etc/resolv.conf")
	for _, want := range []string{"nameserver 10.9.9.9", "search corp.example", "options ndots:3"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("/etc/resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if hosts := inside(t, ctr, "/etc/hosts"); !strings.Contains(hosts, "10.0.0.5 db") {
		t.Errorf("/etc/hosts lacks the --host line:\n%s", hosts)
	}
	env := f["env"]
	for _, want := range []string{"FROM_FILE=yes", "NODE=" + hostname, "SLOT=1"} {
		if !strings.Contains("\n"+env+"\n", "\n"+want+"\n") {
			t.Errorf("the container's environment lacks %s:\n%s", want, env)
		}
	}
	// --limit-pids: the container's pids cgroup, on the node.
	if max := pidsMax(t, ctr.Pid); max != "64" {
		t.Errorf("pids.max of the container's cgroup = %q; want 64", max)
	}
	// --log-opt: 300 lines of ~85 bytes rotate at 4 KiB, six times over,
	// and 2 files are kept: the current one (made again at the next line)
	// and .1, never .2.
	logs, _ := filepath.Glob(filepath.Join(w.Dir, "data", "runtime", "containers", ctr.ID, "container.log*"))
	var rotated, beyond bool
	for _, l := range logs {
		rotated = rotated || strings.HasSuffix(l, ".log.1")
		beyond = beyond || strings.HasSuffix(l, ".log.2")
	}
	if !rotated || beyond || len(logs) > 2 {
		t.Errorf("log files of the container: %q; want container.log.1 and no container.log.2 (max-size=4k, max-file=2)", logs)
	}
	for _, l := range logs {
		if st, err := os.Stat(l); err != nil || st.Size() > 8<<10 {
			t.Errorf("log file %s: %v bytes (max-size=4k): %v", l, st.Size(), err)
		}
	}

	// --entrypoint "" clears the image's (/whoami): the arguments are the
	// command. A template in a mount's source names the volume per slot.
	cleared := t.TempDir()
	m.MustCLI("service", "create", "-d", "--name", "noentry", "--constraint", "node.id=="+wid, "--entrypoint", "",
		"--mount", "type=bind,source="+cleared+",target=/out", "--mount", "type=volume,source=data-{{.Task.Slot}},target=/data",
		img.Ref, "/bin/sh", "-c", "echo cleared > /out/ready; exec sleep 1000")
	if got := facts(t, cleared)["ready"]; got != "cleared\n" {
		t.Errorf("--entrypoint \"\": the workload wrote %q", got)
	}
	if vols := w.MustCLI("volume", "ls", "-q"); !strings.Contains("\n"+vols, "\ndata-1\n") {
		t.Errorf("the mount source template made no volume data-1 on the node: %q", vols)
	}

	// An update changes the lists by -add and -rm; the replacement shows it.
	for _, name := range []string{"ready", "status", "limits"} {
		os.Remove(filepath.Join(out, name))
	}
	m.MustCLI("service", "update", "-d", "--ulimit-add", "nofile=300:400", "--host-rm", "db", "--host-add", "cache:10.0.0.6",
		"--group-rm", "4242", "--group-add", "4343", "--cap-drop", "NET_ADMIN", "--sysctl-rm", "kernel.shmmni", "spec")
	// The old task was stopped with its stop signal.
	harness.Eventually(t, 60*time.Second, func() error {
		b, _ := os.ReadFile(filepath.Join(out, "stopsig"))
		if strings.TrimSpace(string(b)) != "usr1" {
			return fmt.Errorf("the old task's workload recorded stop signal %q; want usr1", b)
		}
		return nil
	})
	next := oneContainer(t, w, "spec", ctr.Pid)
	f = facts(t, out)
	capEff = statusField(f["status"], "CapEff")
	if capSet(t, capEff, 12) {
		t.Errorf("--cap-drop NET_ADMIN on update: CapEff %s", capEff)
	}
	if got := limitLine(f["limits"], "Max open files"); got != "300 400" {
		t.Errorf("--ulimit-add: %q", got)
	}
	if g := statusField(f["status"], "Groups"); !strings.Contains(" "+g+" ", " 4343 ") || strings.Contains(" "+g+" ", " 4242 ") {
		t.Errorf("--group-rm/--group-add: Groups %q", g)
	}
	hosts := inside(t, next, "/etc/hosts")
	if strings.Contains(hosts, "10.0.0.5 db") || !strings.Contains(hosts, "10.0.0.6 cache") {
		t.Errorf("--host-rm/--host-add: /etc/hosts:\n%s", hosts)
	}
}

// pidsMax reads pids.max of the pids cgroup of process pid (v1 or v2).
func pidsMax(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case strings.Contains(","+parts[1]+",", ",pids,"):
			file = filepath.Join("/sys/fs/cgroup/pids", parts[2], "pids.max")
		case parts[1] == "" && parts[0] == "0":
			file = filepath.Join("/sys/fs/cgroup", parts[2], "pids.max")
		default:
			continue
		}
		if v, err := os.ReadFile(file); err == nil {
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

// Bad container specs are refused by the managers with the field and the
// reason, and nothing is created; a bind source missing on the node fails
// the task with docker's words.
func TestServiceContainerSpecRefused(t *testing.T) {
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "spec"})
	c := harness.StartCluster(t, 1, 0)
	m := c.Managers[0]
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sysctl", "vm.swappiness=10"}, `sysctl "vm.swappiness" is not allowed: it is not namespaced`},
		{[]string{"--cap-add", "CAP_FLY"}, `unknown capability: "CAP_FLY"`},
		{[]string{"--ulimit", "nofile=20:10"}, "soft limit 20 is above the hard limit 10"},
		{[]string{"--hostname", "{{.Service.Nope}}"}, "service.hostname"},
		{[]string{"-e", "A={{.Task.Slot"}, "service.env[0]"},
		{[]string{"--mount", "type=volume,source=data-{{.Bad}},target=/d"}, "service.mounts[0]"},
		{[]string{"--mount", "type=bind,source=relative,target=/d"}, "must be an absolute path on the node"},
		{[]string{"--log-opt", "max-file=0"}, "max-file"},
		{[]string{"--stop-signal", "SIGNOPE"}, "unknown signal"},
	} {
		_, err := m.CLI(append(append([]string{"service", "create", "-d", "--name", "bad"}, tc.args...), img.Ref, "true")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %v: %v; want %q", tc.args, err, tc.want)
		}
	}
	if ls := m.MustCLI("service", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("refused creates left services: %q", ls)
	}
	// The API itself refuses too, not only the CLI: a sysctl the CLI
	// would pass on.
	if _, err := m.CLI("service", "create", "-d", "--name", "bad", "--sysctl", "kernel.hostname=x", img.Ref, "true"); err == nil || !strings.Contains(err.Error(), "service.sysctls") {
		t.Errorf("kernel.hostname: %v", err)
	}

	m.MustCLI("service", "create", "-d", "--name", "nobind", "--restart-condition", "none",
		"--mount", "type=bind,source=/no/such/dir,target=/x", img.Ref, "true")
	harness.Eventually(t, 60*time.Second, func() error {
		ps, err := m.CLI("service", "ps", "--no-trunc", "--format", "{{.CurrentState}} {{.Error}}", "nobind")
		if err != nil || !strings.Contains(ps, "bind source path does not exist: /no/such/dir") {
			return fmt.Errorf("service ps: %q %v", ps, err)
		}
		return nil
	})
}

// shoal run takes the same container flags, with docker run's names.
func TestRunContainerSpec(t *testing.T) {
	needRoot(t)
	n, img := runtimeNode(t)
	script := `grep -E '^(CapEff|Groups):' /proc/self/status; grep 'Max open files' /proc/self/limits
echo somaxconn=$(cat /proc/sys/net/core/somaxconn); echo pid1=$(cat /proc/1/comm)
cat /etc/resolv.conf /etc/hosts; touch /x 2>&1; [ -t 1 ] && echo tty=yes; true`
	out := n.MustCLI("run", "--rm", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--sysctl", "net.core.somaxconn=1111",
		"--ulimit", "nofile=50:60", "--dns", "10.1.1.1", "--dns-search", "x.example", "--dns-option", "ndots:4",
		"--add-host", "db:10.0.0.7", "--group-add", "777", "--init", "--read-only", "-t",
		"--entrypoint", "/bin/sh", img.Ref, "-c", script)
	var capEff string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			capEff = strings.TrimSpace(v)
		}
	}
	if capEff == "" || !capSet(t, capEff, 12) || capSet(t, capEff, 0) {
		t.Errorf("--cap-add NET_ADMIN --cap-drop CHOWN: CapEff %q", capEff)
	}
	words := " " + strings.Join(strings.Fields(out), " ") + " " // the tty's \r\n and tabs as spaces
	for _, want := range []string{"somaxconn=1111", "nameserver 10.1.1.1", "search x.example", "options ndots:4", " 10.0.0.7 db ", "Read-only file system", "tty=yes"} {
		if !strings.Contains(words, want) {
			t.Errorf("run output lacks %q:\n%s", want, out)
		}
	}
	if l := limitLine(strings.ReplaceAll(out, "\r", ""), "Max open files"); l != "50 60" {
		t.Errorf("--ulimit nofile=50:60: %q", l)
	}
	if !strings.Contains(out, "777") {
		t.Errorf("--group-add 777: %s", out)
	}
	if strings.Contains(out, "pid1=sh") {
		t.Errorf("--init: PID 1 is the workload:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sysctl", "vm.swappiness=1"}, "not namespaced"},
		{[]string{"--ulimit", "nofile"}, "NAME=SOFT[:HARD]"},
		{[]string{"--add-host", "db"}, "want HOST:IP"},
		{[]string{"--log-opt", "max-file=x"}, "max-file"},
		{[]string{"--cap-add", "FLY"}, "unknown capability"},
	} {
		if _, err := n.CLI(append(append([]string{"run", "--rm"}, tc.args...), img.Ref, "true")...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v: %v; want %q", tc.args, err, tc.want)
		}
	}
}
