package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containers need root")
	}
}

// runtimeNode starts one unclustered daemon with its own cgroup parent and
// an image served from a loopback registry.
func runtimeNode(t *testing.T) (*harness.Node, testimage.Served) {
	t.Helper()
	needRoot(t)
	img := testimage.Serve(t, testimage.Options{Tag: "1"})
	n := harness.NewNode(t, "node1")
	n.Start()
	t.Cleanup(func() {
		// Remove what the test's containers left, even after a failure.
		if out, err := n.CLI("ps", "-a", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = n.CLI("rm", "-f", id)
			}
		}
		n.Stop()
	})
	n.MustCLI("image", "pull", img.Ref)
	return n, img
}

// runOut runs `shoal run ARGS` and returns stdout, stderr and the exit code.
func runOut(t *testing.T, n *harness.Node, args ...string) (string, string, int) {
	t.Helper()
	return cliOut(t, n, append([]string{"run"}, args...)...)
}

// cliOut runs `shoal ARGS` and returns stdout, stderr and the exit code.
func cliOut(t *testing.T, n *harness.Node, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(n.Bin, append([]string{"-H", "unix://" + n.Socket}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestShoalRun(t *testing.T) {
	n, img := runtimeNode(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string
		stderr   []string
	}{
		{"exit code", []string{"--rm", img.Ref, "exit", "3"}, 3, nil, nil},
		{"echo", []string{"--rm", img.Ref, "echo", "hello", "world"}, 0, []string{"hello world"}, nil},
		{"stderr", []string{"--rm", img.Ref, "stderr", "oops"}, 0, nil, []string{"oops"}},
		{"pid 1 and hostname", []string{"--rm", "--hostname", "box1", img.Ref, "ids"}, 0, []string{"pid=1", "hostname=box1"}, nil},
		{"user by name", []string{"--rm", "-u", "app", img.Ref, "ids"}, 0, []string{"uid=1000", "gid=1000", "groups=1000,2000"}, nil},
		{"user and group", []string{"--rm", "-u", "1000:2000", img.Ref, "ids"}, 0, []string{"uid=1000", "gid=2000"}, nil},
		{"env precedence", []string{"--rm", "-e", "WHOAMI_IMAGE=override", "-e", "NEW=1", "--entrypoint", "/bin/env", img.Ref}, 0, []string{"WHOAMI_IMAGE=override", "NEW=1", "PATH="}, nil},
		{"entrypoint", []string{"--rm", "--entrypoint", "/bin/echo", img.Ref, "from", "entrypoint"}, 0, []string{"from entrypoint"}, nil},
		{"workdir", []string{"--rm", "-w", "/tmp/x", "--entrypoint", "/bin/pwd", img.Ref}, 0, []string{"/tmp/x"}, nil},
		{"read-only root", []string{"--rm", "--read-only", img.Ref, "write", "/x"}, 1, nil, []string{"read-only file system"}},
		{"writable root", []string{"--rm", img.Ref, "write", "/x"}, 0, nil, nil},
		{"caps and no_new_privs", []string{"--rm", img.Ref, "caps"}, 0, []string{"CapEff:\t00000000a80425fb", "NoNewPrivs:\t1"}, nil},
		{"oom kill", []string{"--rm", "--memory", "16m", img.Ref, "alloc", "64"}, 137, nil, []string{"OOMKilled"}},
		{"pids limit", []string{"--rm", "--pids-limit", "10", img.Ref, "fork", "30"}, 0, []string{"started"}, []string{"resource temporarily unavailable"}},
		{"not found", []string{"--rm", img.Ref[:strings.LastIndex(img.Ref, ":")] + ":nope", "x"}, 1, nil, []string{"not found"}},
		{"bad command", []string{"--rm", "--entrypoint", "nosuch", img.Ref}, 127, nil, []string{"executable file not found"}},
		{"init reaper", []string{"--rm", "--init", img.Ref, "ids"}, 0, []string{"ppid=1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runOut(t, n, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.stderr {
				// The workload may print its errors on either stream.
				if !strings.Contains(errOut+out, w) {
					t.Errorf("output lacks %q:\n%s", w, errOut+out)
				}
			}
		})
	}
	// --rm left nothing behind.
	if out := n.MustCLI("ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("--rm left containers: %s", out)
	}
	// A CPU quota reaches the cgroup.
	id := strings.TrimSpace(n.MustCLI("run", "-d", "--cpus", "0.5", img.Ref, "sleep", "30s"))
	var cs []struct {
		ID  string `json:"id"`
		Pid int    `json:"pid"`
	}
	if err := json.Unmarshal([]byte(n.MustCLI("ps", "--format", "json")), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("ps json: %v %v", cs, err)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cs[0].Pid))
	if err != nil {
		t.Fatal(err)
	}
	var cpuPath string
	for _, l := range strings.Split(string(cg), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, ctl := range strings.Split(f[1], ",") {
			if ctl == "cpu" {
				cpuPath = filepath.Join("/sys/fs/cgroup", f[1], f[2], "cpu.cfs_quota_us")
				if _, err := os.Stat(cpuPath); err != nil {
					cpuPath = filepath.Join("/sys/fs/cgroup", "cpu", f[2], "cpu.cfs_quota_us")
				}
			}
		}
		if cpuPath == "" && f[0] == "0" && f[1] == "" {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", f[2], "cpu.max")); err == nil {
				cpuPath = filepath.Join("/sys/fs/cgroup", f[2], "cpu.max")
			}
		}
	}
	q, err := os.ReadFile(cpuPath)
	if err != nil || !strings.HasPrefix(string(q), "50000") {
		t.Fatalf("cpu quota at %s = %q (%v); want 50000", cpuPath, q, err)
	}
	n.MustCLI("rm", "-f", id)
}

// A detached container: ps, logs, kill with a signal, stop with a grace
// period, and rm that leaves nothing on the host.
func TestContainerLifecycle(t *testing.T) {
	n, img := runtimeNode(t)
	id := strings.TrimSpace(n.MustCLI("run", "-d", "--name", "web", img.Ref))
	harness.Eventually(t, 10*time.Second, func() error {
		if out := n.MustCLI("logs", "web"); !strings.Contains(out, "listening") {
			return fmt.Errorf("logs: %q", out)
		}
		return nil
	})
	ps := n.MustCLI("ps")
	for _, want := range []string{"CONTAINER ID", id[:12], "Up", "web"} {
		if !strings.Contains(ps, want) {
			t.Fatalf("ps lacks %q:\n%s", want, ps)
		}
	}
	// whoami exits 0 on SIGTERM: a graceful stop.
	n.MustCLI("stop", "web")
	if out := n.MustCLI("ps", "-a"); !strings.Contains(out, "Exited (0)") {
		t.Fatalf("after stop:\n%s", out)
	}
	if out := n.MustCLI("logs", "web"); !strings.Contains(out, "shutting down") {
		t.Fatalf("no graceful shutdown in logs: %q", out)
	}
	// A workload that ignores SIGTERM is killed after the grace period.
	n.MustCLI("run", "-d", "--name", "stubborn", img.Ref, "hang")
	// Stop only once it ignores SIGTERM (it says so), or the signal could
	// land before its handler and end it at once.
	harness.Eventually(t, 10*time.Second, func() error {
		if out, err := n.CLI("logs", "stubborn"); err != nil || !strings.Contains(out, "ignoring SIGTERM") {
			return fmt.Errorf("stubborn not ready: %q %v", out, err)
		}
		return nil
	})
	start := time.Now()
	n.MustCLI("stop", "-t", "1", "stubborn")
	if d := time.Since(start); d < time.Second {
		t.Fatalf("stop -t 1 returned after %s", d)
	}
	if out := n.MustCLI("ps", "-a"); !strings.Contains(out, "Exited (137)") {
		t.Fatalf("stubborn after stop:\n%s", out)
	}
	// kill -s delivers the signal.
	n.MustCLI("run", "-d", "--name", "sleeper", img.Ref, "sleep", "60s")
	// A SIGTERM that lands before the workload (PID 1 of its namespace)
	// installed its handler is ignored, as for any PID 1: send it again
	// until the workload ends by it.
	harness.Eventually(t, 10*time.Second, func() error {
		if out := n.MustCLI("ps", "-a"); !strings.Contains(out, "Exited (143)") {
			_, _ = n.CLI("kill", "-s", "SIGTERM", "sleeper")
			return fmt.Errorf("after kill -s TERM:\n%s", out)
		}
		return nil
	})
	// And the stopped and killed workloads are really gone from /proc.
	if cs := n.RunningContainers(); len(cs) != 0 {
		t.Fatalf("after stop, stop -t and kill, workloads still run: %+v", cs)
	}
	// logs -f follows a container until it exits.
	n.MustCLI("run", "-d", "--name", "spam", img.Ref, "logspam", "300")
	if out := n.MustCLI("logs", "-f", "spam"); strings.Count(out, "\n") < 300 {
		t.Fatalf("logs -f got %d lines, want 300", strings.Count(out, "\n"))
	}
	n.MustCLI("rm", "spam")
	// rm of a running container needs -f; rm leaves nothing.
	runID := strings.TrimSpace(n.MustCLI("run", "-d", img.Ref, "sleep", "60s"))
	if _, err := n.CLI("rm", runID); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("rm of a running container: %v", err)
	}
	for _, c := range []string{"web", "stubborn", "sleeper"} {
		n.MustCLI("rm", c)
	}
	n.MustCLI("rm", "-f", runID)
	if out := strings.TrimSpace(n.MustCLI("ps", "-a", "-q")); out != "" {
		t.Fatalf("containers left: %s", out)
	}
	entries, _ := os.ReadDir(filepath.Join(n.Dir, "data", "runtime", "containers"))
	if len(entries) != 0 {
		t.Fatalf("container directories left: %v", entries)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), filepath.Join(n.Dir, "data", "runtime", "containers")) {
		t.Fatal("container mounts left")
	}
}

// The daemon can be restarted, or killed with SIGKILL, without stopping
// containers; it re-adopts them and still learns their exit codes.
func TestDaemonRestartKeepsContainers(t *testing.T) {
	n, img := runtimeNode(t)
	id := strings.TrimSpace(n.MustCLI("run", "-d", img.Ref, "sleep", "300s"))
	short := strings.TrimSpace(n.MustCLI("run", "-d", img.Ref, "sleep", "2s"))
	pidOf := func(id string) int {
		var cs []struct {
			ID  string `json:"id"`
			Pid int    `json:"pid"`
		}
		if err := json.Unmarshal([]byte(n.MustCLI("ps", "--format", "json")), &cs); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.ID == id {
				return c.Pid
			}
		}
		return 0
	}
	// alive is the PID of the container's workload alive in /proc, 0
	// when it does not run.
	alive := func(id string) int {
		for _, c := range n.RunningContainers() {
			if c.ID == id {
				return c.Pid
			}
		}
		return 0
	}
	pid := pidOf(id)
	if pid == 0 || alive(id) != pid {
		t.Fatalf("container not running: ps says pid %d, /proc %d", pid, alive(id))
	}
	for _, restart := range []struct {
		name string
		stop func()
	}{{"SIGTERM", n.Stop}, {"SIGKILL", n.Kill}} {
		restart.stop()
		if got := alive(id); got != pid {
			t.Fatalf("daemon %s killed the container: pid %d no longer runs", restart.name, pid)
		}
		n.Start()
		if got := pidOf(id); got != pid {
			t.Fatalf("after daemon %s restart the container's pid is %d, want %d", restart.name, got, pid)
		}
		if got := alive(id); got != pid {
			t.Fatalf("after daemon %s restart pid %d no longer runs", restart.name, pid)
		}
	}
	// The short container ended while the daemon was away (or around
	// then): its exit code is still known.
	harness.Eventually(t, 10*time.Second, func() error {
		out := n.MustCLI("ps", "-a")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, short[:12]) && strings.Contains(l, "Exited (0)") {
				return nil
			}
		}
		return fmt.Errorf("short-lived container:\n%s", out)
	})
	// And the long one can still be stopped, with its exit learned.
	n.Kill()
	n.Start()
	n.MustCLI("kill", id)
	harness.Eventually(t, 10*time.Second, func() error {
		if out := n.MustCLI("ps", "-a"); !strings.Contains(out, "Exited (137)") {
			return fmt.Errorf("after kill:\n%s", out)
		}
		if alive(id) != 0 {
			return fmt.Errorf("pid %d still runs after kill", pid)
		}
		return nil
	})
}

func TestImageLoadAndRemove(t *testing.T) {
	n, img := runtimeNode(t)
	dir := t.TempDir()
	b2, err := testimage.Build("", testimage.Options{Tag: "2", Files: map[string]string{"/etc/motd": "v2"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "docker.tar")
	if err := b2.WriteDockerArchive(archive, "local/whoami:2"); err != nil {
		t.Fatal(err)
	}
	out := n.MustCLI("image", "load", "-i", archive)
	if !strings.Contains(out, "Loaded image") {
		t.Fatalf("load: %s", out)
	}
	b3, err := testimage.Build("", testimage.Options{Tag: "3", Files: map[string]string{"/etc/motd": "v3"}})
	if err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(dir, "oci.tar")
	if err := b3.WriteOCITarball(oci); err != nil {
		t.Fatal(err)
	}
	n.MustCLI("image", "load", "-i", oci)
	ls := n.MustCLI("image", "ls")
	for _, want := range []string{"local/whoami", "REPOSITORY", "TAG"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("image ls lacks %q:\n%s", want, ls)
		}
	}
	if out, _, code := runOut(t, n, "--rm", "--entrypoint", "/bin/cat", "local/whoami:2", "/etc/motd"); code != 0 || !strings.Contains(out, "v2") {
		t.Fatalf("run of a loaded image: %d %q", code, out)
	}
	// A garbage archive is refused and stores nothing.
	bad := filepath.Join(dir, "bad.tar")
	os.WriteFile(bad, []byte("this is not a tarball"), 0o644)
	before := n.MustCLI("image", "ls", "-q")
	if _, err := n.CLI("image", "load", "-i", bad); err == nil {
		t.Fatal("a garbage archive was loaded")
	}
	if after := n.MustCLI("image", "ls", "-q"); after != before {
		t.Fatalf("a refused load changed the images:\n%s\n->\n%s", before, after)
	}
	// An image in use cannot be removed; once unused it can, and prune
	// frees its layers.
	id := strings.TrimSpace(n.MustCLI("run", "-d", img.Ref, "sleep", "60s"))
	if _, err := n.CLI("image", "rm", img.Ref); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("rm of an image in use: %v", err)
	}
	n.MustCLI("rm", "-f", id)
	n.MustCLI("image", "rm", img.Ref)
	n.MustCLI("image", "rm", "local/whoami:2")
	out = n.MustCLI("image", "prune")
	if !strings.Contains(out, "reclaimed") {
		t.Fatalf("prune: %s", out)
	}
}
