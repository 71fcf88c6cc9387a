package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/runtime/logs"
)

// shimBinary is the small shim built once for the tests (without the race
// detector, whose start-up would dominate every container start).
var shimBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-shim-")
	if err != nil {
		panic(err)
	}
	shimBinary = filepath.Join(dir, "shoal-shim")
	cmd := exec.Command("go", "build", "-o", shimBinary, "github.com/shoal-run/shoal/runtime/shim/cmd/shoal-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build shim: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var applets = []string{"sh", "cat", "echo", "id", "hostname", "sleep", "true", "false", "env", "ls", "dd", "touch", "kill", "pwd", "grep", "head", "wc", "seq", "trap", "mount", "test"}

// busyboxLayer makes an image layer directory from the host's static
// busybox.
func busyboxLayer(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs busybox-static (apt-get install busybox-static): %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	os.Chown(filepath.Join(dir, "home/app"), 1000, 1000)
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type fakeImages struct {
	img    *Image
	leases map[string]string
}

func (f *fakeImages) Resolve(ref string) (*Image, error) {
	if ref != f.img.Ref {
		return nil, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	return f.img, nil
}
func (f *fakeImages) Lease(owner, id string) error { f.leases[owner] = id; return nil }
func (f *fakeImages) Release(owner string) error   { delete(f.leases, owner); return nil }

func newRuntime(t *testing.T) (*Runtime, *fakeImages) {
	t.Helper()
	return newRuntimeWith(t, Options{})
}

// newRuntimeWith is newRuntime with opts' Events.
func newRuntimeWith(t *testing.T, opts Options) (*Runtime, *fakeImages) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	imgs := &fakeImages{leases: map[string]string{}, img: &Image{
		ID: "sha256:test", Ref: "test:1", LayerDirs: []string{busyboxLayer(t)},
		Config: ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "FROM_IMAGE=1", "OVERRIDE=image"}},
	}}
	parent := fmt.Sprintf("shoal-test-%d", os.Getpid())
	r, err := Open(Options{Root: t.TempDir(), CgroupParent: parent, ShimBinary: shimBinary, Images: imgs, Events: opts.Events})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range r.List() {
			_ = r.Delete(context.Background(), c.ID, true)
		}
		cgroup.RemoveParent(parent)
	})
	return r, imgs
}

func run(t *testing.T, r *Runtime, spec Spec) (State, string) {
	t.Helper()
	st, out, err := tryRun(t, r, spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return st, out
}

// tryRun runs spec to its end and returns the start error, if any.
func tryRun(t *testing.T, r *Runtime, spec Spec) (State, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if spec.Image == "" {
		spec.Image = "test:1"
	}
	st, err := r.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	_, startErr := r.Start(ctx, st.ID, nil)
	st, err = r.Wait(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st, output(t, r, st.ID), startErr
}

func output(t *testing.T, r *Runtime, id string) string {
	var b strings.Builder
	if err := r.Logs(context.Background(), id, false, func(e logs.Entry) error { b.WriteString(e.Log); return nil }); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRunBasics(t *testing.T) {
	r, _ := newRuntime(t)
	for _, tc := range []struct {
		name     string
		spec     Spec
		wantCode int
		want     []string
	}{
		{"echo", Spec{Cmd: []string{"echo", "hello"}}, 0, []string{"hello\n"}},
		{"exit code", Spec{Cmd: []string{"sh", "-c", "exit 3"}}, 3, nil},
		{"pid 1", Spec{Cmd: []string{"sh", "-c", "echo pid=$$"}}, 0, []string{"pid=1\n"}},
		{"hostname", Spec{Hostname: "box", Cmd: []string{"hostname"}}, 0, []string{"box\n"}},
		{"env precedence", Spec{Env: []string{"OVERRIDE=spec", "NEW=1"}, Cmd: []string{"env"}}, 0, []string{"FROM_IMAGE=1", "OVERRIDE=spec", "NEW=1", "HOSTNAME="}},
		{"user by name", Spec{User: "app", Cmd: []string{"id"}}, 0, []string{"uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"}},
		{"user and group", Spec{User: "1000:2000", Cmd: []string{"id"}}, 0, []string{"uid=1000(app) gid=2000(extra) groups=1000(app),2000(extra)"}},
		{"workdir", Spec{WorkingDir: "/tmp/work", Cmd: []string{"pwd"}}, 0, []string{"/tmp/work\n"}},
		{"stderr", Spec{Cmd: []string{"sh", "-c", "echo oops >&2"}}, 0, []string{"oops\n"}},
		{"read-only root", Spec{ReadOnly: true, Cmd: []string{"sh", "-c", "touch /x || echo refused"}}, 0, []string{"refused"}},
		{"not found", Spec{Cmd: []string{"nosuchcmd"}}, 127, []string{"executable file not found"}},
		{"entrypoint override", Spec{Entrypoint: []string{"echo", "ep"}}, 0, []string{"ep\n"}},
		{"network none has lo", Spec{Network: "none", Cmd: []string{"cat", "/sys/class/net/lo/operstate"}}, 0, []string{"unknown"}},
		{"masked keys", Spec{Cmd: []string{"sh", "-c", "wc -c /proc/keys"}}, 0, []string{"0 /proc/keys"}},
		{"read-only proc/sys", Spec{Cmd: []string{"sh", "-c", "echo 1 > /proc/sys/kernel/domainname || echo refused"}}, 0, []string{"refused"}},
		{"no_new_privs and caps", Spec{Cmd: []string{"grep", "-E", "NoNewPrivs|CapEff", "/proc/self/status"}}, 0, []string{"NoNewPrivs:\t1", "CapEff:\t00000000a80425fb"}},
		{"non-root has no caps", Spec{User: "app", Cmd: []string{"grep", "CapEff", "/proc/self/status"}}, 0, []string{"CapEff:\t0000000000000000"}},
		{"init", Spec{Init: true, Cmd: []string{"sh", "-c", "echo $$"}}, 0, []string{"\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, out, err := tryRun(t, r, tc.spec)
			if err != nil {
				if tc.wantCode == 0 {
					t.Fatalf("start: %v", err)
				}
				out += err.Error()
			}
			if st.ExitCode != tc.wantCode {
				t.Fatalf("exit code %d, want %d (error %q); output:\n%s", st.ExitCode, tc.wantCode, st.Error, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestSignalsStopAndKill(t *testing.T) {
	r, _ := newRuntime(t)
	ctx := context.Background()
	// Stop with a grace period: the workload traps TERM and exits 0.
	st, err := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, st.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, r, st.ID, "ready")
	st, err = r.Stop(ctx, st.ID, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 0 || !strings.Contains(output(t, r, st.ID), "bye") {
		t.Fatalf("graceful stop: code %d output %q", st.ExitCode, output(t, r, st.ID))
	}
	// A workload that ignores TERM is killed after the grace period.
	st, _ = r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"}})
	r.Start(ctx, st.ID, nil)
	waitOutput(t, r, st.ID, "ready")
	start := time.Now()
	st, _ = r.Stop(ctx, st.ID, 300*time.Millisecond)
	if st.ExitCode != 137 || st.Signal != "SIGKILL" {
		t.Fatalf("stop of a TERM-ignoring workload: code %d signal %q", st.ExitCode, st.Signal)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("killed before the grace period ended")
	}
	// kill -s USR1 reaches the workload.
	st, _ = r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sh", "-c", "trap 'echo got usr1; exit 7' USR1; echo ready; while true; do sleep 0.05; done"}})
	r.Start(ctx, st.ID, nil)
	waitOutput(t, r, st.ID, "ready")
	if err := r.Signal(st.ID, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	st, _ = r.Wait(ctx, st.ID)
	if st.ExitCode != 7 {
		t.Fatalf("after USR1: code %d", st.ExitCode)
	}
}

// eventLog records a runtime's events.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(e Event) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }

// of is the container's events as "action" or "action attr=value".
func (l *eventLog) of(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.evs {
		if e.Container.ID != id {
			continue
		}
		s := e.Action
		for _, k := range []string{"signal", "exitCode"} {
			if v, ok := e.Attributes[k]; ok {
				s += " " + k + "=" + v
			}
		}
		out = append(out, s)
	}
	return out
}

// The life of a container is told as docker's container events, in
// order.
func TestEvents(t *testing.T) {
	var log eventLog
	r, _ := newRuntimeWith(t, Options{Events: log.add})
	ctx := context.Background()
	st, err := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, st.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, r, st.ID, "ready")
	if _, err := r.Stop(ctx, st.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, st.ID, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"create", "start", "kill signal=15", "die exitCode=0", "stop", "destroy"}
	if got := log.of(st.ID); !slices.Equal(got, want) {
		t.Fatalf("events %q; want %q", got, want)
	}
	// An OOM kill is told before the death it causes.
	oom, _ := run(t, r, Spec{MemoryBytes: 16 << 20, Cmd: []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"}})
	want = []string{"create", "start", "oom", "die exitCode=137"}
	if got := log.of(oom.ID); !slices.Equal(got, want) {
		t.Fatalf("events of an OOM kill %q; want %q", got, want)
	}
	for _, e := range log.evs {
		if e.Time.IsZero() || e.Container.Image != "test:1" {
			t.Fatalf("event without time or image: %+v", e)
		}
	}
}

func waitOutput(t *testing.T, r *Runtime, id, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(output(t, r, id), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q: %q", want, output(t, r, id))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResources(t *testing.T) {
	r, _ := newRuntime(t)
	// A real OOM kill.
	st, out := run(t, r, Spec{MemoryBytes: 16 << 20, Cmd: []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"}})
	if !st.OOMKilled || st.ExitCode != 137 {
		t.Fatalf("memory hog: oom %v code %d out %q", st.OOMKilled, st.ExitCode, out)
	}
	// An ordinary kill is not an OOM.
	ctx := context.Background()
	st, err := r.Create(ctx, Spec{Image: "test:1", MemoryBytes: 64 << 20, Cmd: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, st.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Signal(st.ID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, _ = r.Wait(ctx, st.ID)
	if st.OOMKilled || st.ExitCode != 137 {
		t.Fatalf("killed: oom %v code %d", st.OOMKilled, st.ExitCode)
	}
	// Pids limit.
	st, out = run(t, r, Spec{PidsLimit: 5, Cmd: []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo done"}})
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Fatalf("pids limit not enforced: %q", out)
	}
	// CPU quota written to the cgroup.
	st, err = r.Create(ctx, Spec{Image: "test:1", NanoCPUs: 5e8, Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	q := readCgroupFile(t, st.Cgroup, "cpu", "cpu.cfs_quota_us", "cpu.max")
	if !strings.HasPrefix(q, "50000") {
		t.Fatalf("cpu quota for 0.5 CPUs = %q; want 50000", q)
	}
}

func readCgroupFile(t *testing.T, path, v1sub, v1file, v2file string) string {
	t.Helper()
	p := filepath.Join("/sys/fs/cgroup", v1sub, path, v1file)
	if cgroup.V2() {
		p = filepath.Join("/sys/fs/cgroup", path, v2file)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestDeleteLeavesNothing(t *testing.T) {
	r, imgs := newRuntime(t)
	st, _ := run(t, r, Spec{Cmd: []string{"true"}})
	dir := filepath.Join(r.opts.Root, st.ID)
	if err := r.Delete(context.Background(), st.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory left: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), st.ID) {
		t.Error("a mount of the container is left")
	}
	for _, sub := range []string{"memory", "pids", "cpu"} {
		p := filepath.Join("/sys/fs/cgroup", sub, st.Cgroup)
		if cgroup.V2() {
			p = filepath.Join("/sys/fs/cgroup", st.Cgroup)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left", p)
		}
	}
	if len(imgs.leases) != 0 {
		t.Errorf("image lease left: %v", imgs.leases)
	}
	if _, err := r.Get(st.ID); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
}

// A restarted daemon (a second Runtime on the same root) re-adopts a
// running container and still learns its exit status.
func TestReadoptAfterRestart(t *testing.T) {
	r1, imgs := newRuntime(t)
	ctx := context.Background()
	st, err := r1.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sh", "-c", "echo ready; sleep 60"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Start(ctx, st.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, r1, st.ID, "ready")
	r2, err := Open(Options{Root: r1.opts.Root, CgroupParent: r1.opts.CgroupParent, ShimBinary: shimBinary, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.Get(st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Running || got.Pid != st.Pid && st.Pid != 0 {
		t.Fatalf("after restart: %+v", got)
	}
	if err := r2.Signal(st.ID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got, err = r2.Wait(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Exited || got.ExitCode != 137 {
		t.Fatalf("exit after re-adoption: %+v", got)
	}
	if err := r2.Delete(ctx, st.ID, false); err != nil {
		t.Fatal(err)
	}
}

func TestLogRotation(t *testing.T) {
	r, _ := newRuntime(t)
	st, _ := run(t, r, Spec{LogMaxSize: 4096, LogMaxFiles: 3, Cmd: []string{"sh", "-c", "for i in $(seq 1 500); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"}})
	files := logs.Files(st.LogPath, 3)
	if len(files) != 3 {
		t.Fatalf("log files %v; want 3 after rotation", files)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 4096 {
			t.Errorf("%s is %d bytes, over the cap", f, fi.Size())
		}
	}
	var lines []string
	r.Logs(context.Background(), st.ID, false, func(e logs.Entry) error { lines = append(lines, strings.TrimSpace(e.Log)); return nil })
	if len(lines) == 0 || lines[len(lines)-1] != "line-500-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	for i := 1; i < len(lines); i++ {
		var a, b int
		fmt.Sscanf(lines[i-1], "line-%d-", &a)
		fmt.Sscanf(lines[i], "line-%d-", &b)
		if b != a+1 {
			t.Fatalf("lines out of order or missing inside the kept window: %q then %q", lines[i-1], lines[i])
		}
	}
}

// Following a running container's log sees lines as they come and ends
// when the container exits.
func TestLogsFollow(t *testing.T) {
	r, _ := newRuntime(t)
	ctx := context.Background()
	st, _ := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.1; done"}})
	if _, err := r.Start(ctx, st.ID, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := r.Logs(ctx, st.ID, true, func(e logs.Entry) error { got = append(got, strings.TrimSpace(e.Log)); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "n1,n2,n3" {
		t.Fatalf("followed %v", got)
	}
}

// The network hook runs with the init's PID in its own network namespace
// before the workload starts; a failing hook aborts the start.
func TestNetworkHook(t *testing.T) {
	r, _ := newRuntime(t)
	ctx := context.Background()
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"cat", "/etc/hook-was-here"}, Network: ""})
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	_, err = r.Start(ctx, st.ID, func(pid int) error {
		seen, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return err
		}
		// The workload has not run yet: it will read what we write now.
		return os.WriteFile(filepath.Join(r.opts.Root, st.ID, "rootfs", "etc", "hook-was-here"), []byte("yes\n"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = r.Wait(ctx, st.ID)
	if seen == "" || seen == hostNS {
		t.Fatalf("hook saw network namespace %q; host has %q", seen, hostNS)
	}
	if out := output(t, r, st.ID); st.ExitCode != 0 || out != "yes\n" {
		t.Fatalf("workload ran before the hook finished: code %d output %q", st.ExitCode, out)
	}
	st, _ = r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"true"}})
	_, err = r.Start(ctx, st.ID, func(int) error { return errors.New("no veth for you") })
	if err == nil || !strings.Contains(err.Error(), "no veth for you") {
		t.Fatalf("start with a failing hook: %v", err)
	}
	if got, _ := r.Get(st.ID); got.Status != Exited {
		t.Fatalf("after a failed hook the container is %s", got.Status)
	}
}

func threads(t *testing.T) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n := 0
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	return 0
}

// Following running containers costs no OS thread each.
func TestNoThreadPerContainer(t *testing.T) {
	r, _ := newRuntime(t)
	ctx := context.Background()
	before := threads(t)
	for i := 0; i < 20; i++ {
		st, err := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"sleep", "60"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Start(ctx, st.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if after := threads(t); after-before >= 10 {
		t.Fatalf("20 running containers took the process from %d to %d threads", before, after)
	}
}

// A setup failure inside the container is what the start reports.
func TestSetupFailureReported(t *testing.T) {
	r, _ := newRuntime(t)
	ctx := context.Background()
	st, err := r.Create(ctx, Spec{Image: "test:1", User: "nosuchuser", Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Start(ctx, st.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "unable to find user nosuchuser") {
		t.Fatalf("start as a missing user: %v", err)
	}
}
