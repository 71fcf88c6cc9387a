package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// execApplets are busybox applets the exec tests need beyond the shared
// layer's.
var execApplets = []string{"ps", "readlink", "stat"}

// startLong starts a container that runs until it is stopped, with a
// file only its own upper layer holds, and waits until it is ready.
func startLong(t *testing.T, r *Runtime, imgs *fakeImages, spec Spec) State {
	t.Helper()
	for _, a := range execApplets {
		p := filepath.Join(imgs.img.LayerDirs[0], "bin", a)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink("busybox", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	spec.Image = "test:1"
	if spec.Cmd == nil {
		spec.Cmd = []string{"sh", "-c", "echo made-by-init > /tmp/only-here; echo ready; exec sleep 1000"}
	}
	st, err := r.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, st.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, r, st.ID, "ready")
	st, err = r.Get(st.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func execOK(t *testing.T, r *Runtime, id string, p ExecSpec) ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.Exec(ctx, id, p)
	if err != nil {
		t.Fatalf("exec %q: %v (output %q)", p.Args, err, res.Output)
	}
	return res
}

// An exec'd process is inside the container: its namespaces, root,
// files, hostname, cgroup, user and privileges are the init's.
func TestExecJoinsTheContainer(t *testing.T) {
	r, imgs := newRuntime(t)
	st := startLong(t, r, imgs, Spec{Hostname: "box", User: "app", WorkingDir: "/home/app", Env: []string{"FROM_SPEC=1"}})

	// Every namespace but the user namespace is the init's.
	nsList := []string{"mnt", "uts", "ipc", "net", "pid", "cgroup"}
	var script []string
	for _, ns := range nsList {
		script = append(script, "readlink /proc/self/ns/"+ns)
	}
	res := execOK(t, r, st.ID, ExecSpec{Args: []string{"sh", "-c", strings.Join(script, "; ")}})
	got := strings.Fields(string(res.Output))
	if len(got) != len(nsList) {
		t.Fatalf("namespaces: exit %d output %q", res.ExitCode, res.Output)
	}
	for i, ns := range nsList {
		want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if got[i] != want || got[i] == host {
			t.Errorf("%s namespace: exec has %s, the init %s, the host %s", ns, got[i], want, host)
		}
	}

	for _, tc := range []struct {
		name     string
		p        ExecSpec
		wantCode int
		want     []string
	}{
		{"hostname", ExecSpec{Args: []string{"hostname"}}, 0, []string{"box\n"}},
		{"a file only in the container", ExecSpec{Args: []string{"cat", "/tmp/only-here"}}, 0, []string{"made-by-init\n"}},
		{"the container's root", ExecSpec{Args: []string{"sh", "-c", "ls /; cat /etc/hostname"}}, 0, []string{"bin\n", "home\n", "box\n"}},
		// Its own PID is small and ps shows the container's init as 1.
		{"pid namespace", ExecSpec{Args: []string{"sh", "-c", "echo pid=$$; ps -o pid,args"}}, 0, []string{"1 sleep 1000"}},
		{"the container's user", ExecSpec{Args: []string{"id"}}, 0, []string{"uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"}},
		{"the container's working directory", ExecSpec{Args: []string{"pwd"}}, 0, []string{"/home/app\n"}},
		{"the container's environment", ExecSpec{Args: []string{"env"}}, 0, []string{"FROM_IMAGE=1", "FROM_SPEC=1", "HOSTNAME=box", "HOME=/home/app"}},
		{"env laid over", ExecSpec{Args: []string{"env"}, Env: []string{"FROM_IMAGE=exec", "NEW=2"}}, 0, []string{"FROM_IMAGE=exec", "NEW=2", "FROM_SPEC=1"}},
		{"another user", ExecSpec{Args: []string{"id"}, User: "0"}, 0, []string{"uid=0(root) gid=0(root)"}},
		{"another directory", ExecSpec{Args: []string{"pwd"}, Dir: "/tmp"}, 0, []string{"/tmp\n"}},
		{"no privileges as app", ExecSpec{Args: []string{"grep", "-E", "NoNewPrivs|CapEff|CapBnd", "/proc/self/status"}}, 0, []string{"NoNewPrivs:\t1", "CapEff:\t0000000000000000", "CapBnd:\t00000000a80425fb"}},
		{"root has the container's capabilities", ExecSpec{User: "root", Args: []string{"grep", "-E", "NoNewPrivs|CapEff|CapBnd", "/proc/self/status"}}, 0, []string{"NoNewPrivs:\t1", "CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb"}},
		{"exit code", ExecSpec{Args: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}}, 7, []string{"out\n", "err\n"}},
		{"killed by a signal", ExecSpec{Args: []string{"sh", "-c", "kill -9 $$"}}, 137, nil},
		{"not found", ExecSpec{Args: []string{"nosuchcmd"}}, 127, []string{`"nosuchcmd": executable file not found in $PATH`}},
		{"not executable", ExecSpec{Args: []string{"/etc/passwd"}}, 126, []string{"permission denied"}},
		{"no host descriptors", ExecSpec{Args: []string{"ls", "/proc/self/fd"}}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := execOK(t, r, st.ID, tc.p)
			if res.ExitCode != tc.wantCode {
				t.Fatalf("exit code %d, want %d; output:\n%s", res.ExitCode, tc.wantCode, res.Output)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(res.Output), w) {
					t.Errorf("output lacks %q:\n%s", w, res.Output)
				}
			}
			if tc.name == "pid namespace" {
				pid := 0
				fmt.Sscanf(string(res.Output), "pid=%d", &pid)
				if pid <= 1 || pid > 50 {
					t.Errorf("the exec's PID in the container is %d; want a small one, not the host's\n%s", pid, res.Output)
				}
			}
			if tc.name == "no host descriptors" {
				// ls opens the directory itself: 0 1 2 and ls's own.
				if fds := strings.Fields(string(res.Output)); len(fds) > 4 {
					t.Errorf("the command inherited descriptors: %v", fds)
				}
			}
		})
	}

	// Its cgroup, seen from inside (through the init's cgroup
	// namespace), is the init's.
	res = execOK(t, r, st.ID, ExecSpec{User: "root", Args: []string{"sh", "-c", "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup"}})
	self, init, _ := strings.Cut(string(res.Output), "---\n")
	if self == "" || self != init {
		t.Fatalf("/proc/self/cgroup of the exec:\n%s\nthe init's:\n%s", self, init)
	}
}

// The output is cut at MaxExecOutput bytes, and says so.
func TestExecOutputCut(t *testing.T) {
	r, imgs := newRuntime(t)
	st := startLong(t, r, imgs, Spec{})
	res := execOK(t, r, st.ID, ExecSpec{Args: []string{"seq", "1", "5000"}})
	if len(res.Output) != MaxExecOutput || !res.Truncated || !strings.HasPrefix(string(res.Output), "1\n2\n3\n") {
		t.Fatalf("5000 lines: %d bytes kept, truncated %v", len(res.Output), res.Truncated)
	}
	res = execOK(t, r, st.ID, ExecSpec{Args: []string{"echo", "short"}})
	if string(res.Output) != "short\n" || res.Truncated {
		t.Fatalf("short output: %q truncated %v", res.Output, res.Truncated)
	}
}

// procsIn lists the host PIDs of live processes whose command line is
// cmdline and whose cgroups are those of process like.
func procsIn(t *testing.T, like int, cmdline string) (pids []int) {
	t.Helper()
	want, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", like))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.ReplaceAll(strings.TrimRight(string(cl), "\x00"), "\x00", " ") != cmdline {
			continue
		}
		if alive(pid) {
			cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
			if string(cg) != string(want) {
				t.Errorf("%q (pid %d) is in cgroups\n%s\nnot the init's\n%s", cmdline, pid, cg, want)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive says pid exists and is no zombie.
func alive(pid int) bool {
	state, _, ok := procSession(pid)
	return ok && state != "Z" && state != "X"
}

// When ctx ends, the exec'd process and what it started are killed and
// Exec returns ctx's error.
func TestExecContextEndKills(t *testing.T) {
	r, imgs := newRuntime(t)
	st := startLong(t, r, imgs, Spec{})
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		res ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := r.Exec(ctx, st.ID, ExecSpec{Args: []string{"sh", "-c", "sleep 100 & echo started; sleep 101"}})
		done <- result{res, err}
	}()
	var pids []int
	deadline := time.Now().Add(20 * time.Second)
	for len(pids) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the exec's sleeps never appeared in the container's cgroup: %v", pids)
		}
		select {
		case x := <-done:
			t.Fatalf("exec ended early: %+v %v", x.res, x.err)
		default:
		}
		time.Sleep(10 * time.Millisecond)
		pids = append(procsIn(t, st.Pid, "sleep 100"), procsIn(t, st.Pid, "sleep 101")...)
	}
	cancel()
	x := <-done
	if !errors.Is(x.err, context.Canceled) {
		t.Fatalf("exec after cancel: %+v, %v; want context.Canceled", x.res, x.err)
	}
	if !strings.Contains(string(x.res.Output), "started") {
		t.Errorf("the output so far is lost: %q", x.res.Output)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d outlived its exec", pid)
		}
	}
	// The container itself runs on.
	if got, _ := r.Get(st.ID); got.Status != Running || !alive(got.Pid) {
		t.Fatalf("the container is %s after its exec was killed", got.Status)
	}
}

// What a finished exec left running in the background is killed; Exec
// returns with the command's status.
func TestExecLeftoversKilled(t *testing.T) {
	r, imgs := newRuntime(t)
	st := startLong(t, r, imgs, Spec{})
	res := execOK(t, r, st.ID, ExecSpec{Args: []string{"sh", "-c", "sleep 102 & echo $! > /tmp/bg; exit 3"}})
	if res.ExitCode != 3 {
		t.Fatalf("exit code %d; output %q", res.ExitCode, res.Output)
	}
	if pids := procsIn(t, st.Pid, "sleep 102"); len(pids) != 0 {
		t.Fatalf("the background sleep outlived its exec: %v", pids)
	}
	// It did run.
	if res := execOK(t, r, st.ID, ExecSpec{Args: []string{"cat", "/tmp/bg"}}); res.ExitCode != 0 || len(strings.TrimSpace(string(res.Output))) == 0 {
		t.Fatalf("the background sleep never started: %q", res.Output)
	}
}

// A container that is not running, bad input and a bad user or directory
// get clear errors.
func TestExecRefused(t *testing.T) {
	r, imgs := newRuntime(t)
	ctx := context.Background()
	created, err := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	exited, _ := run(t, r, Spec{Cmd: []string{"true"}})
	running := startLong(t, r, imgs, Spec{})
	for _, tc := range []struct {
		name string
		id   string
		p    ExecSpec
		cat  error
		want string
	}{
		{"created", created.ID, ExecSpec{Args: []string{"true"}}, errdefs.ErrFailedPrecond, "container " + created.ID[:12] + " is not running"},
		{"exited", exited.ID, ExecSpec{Args: []string{"true"}}, errdefs.ErrFailedPrecond, "container " + exited.ID[:12] + " is not running"},
		{"no such container", "nosuch", ExecSpec{Args: []string{"true"}}, errdefs.ErrNotFound, "no such container: nosuch"},
		{"no command", running.ID, ExecSpec{}, errdefs.ErrInvalid, "no command given"},
		{"bad env", running.ID, ExecSpec{Args: []string{"true"}, Env: []string{"=x"}}, errdefs.ErrInvalid, `environment variable "=x" is not KEY=VALUE`},
		{"no such user", running.ID, ExecSpec{Args: []string{"true"}, User: "nosuchuser"}, errdefs.ErrInvalid, "unable to find user nosuchuser"},
		{"no such directory", running.ID, ExecSpec{Args: []string{"true"}, Dir: "/nonexistent"}, errdefs.ErrInvalid, "working directory /nonexistent: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Exec(ctx, tc.id, tc.p)
			if !errors.Is(err, tc.cat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("exec: %v; want %v saying %q", err, tc.cat, tc.want)
			}
		})
	}
	// A pids limit with no room left for the exec's helpers is named,
	// without the Go runtime's stacks.
	tight := startLong(t, r, imgs, Spec{PidsLimit: 3})
	_, err = r.Exec(ctx, tight.ID, ExecSpec{Args: []string{"true"}})
	if !errors.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "its pids limit (3) leaves no room") || strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("exec under a full pids limit: %v", err)
	}
	// A container stopped under a running exec ends it.
	done := make(chan error, 1)
	go func() {
		_, err := r.Exec(ctx, running.ID, ExecSpec{Args: []string{"sleep", "103"}})
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for len(procsIn(t, running.Pid, "sleep 103")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the exec never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := r.Stop(ctx, running.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Logf("exec in a container stopped under it: %v", err)
	}
	if _, err := r.Exec(ctx, running.ID, ExecSpec{Args: []string{"true"}}); !errors.Is(err, errdefs.ErrFailedPrecond) {
		t.Fatalf("exec in the stopped container: %v", err)
	}
}

// A dynamically linked shim could not run inside an image without the
// host's libc: Exec says so instead of failing obscurely.
func TestExecNeedsStaticShim(t *testing.T) {
	if err := checkStatic(shimBinary); err != nil {
		t.Fatalf("the test shim (CGO_ENABLED=0): %v", err)
	}
	dynamic := "/bin/ls"
	err := checkStatic(dynamic)
	if !errors.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("checkStatic(%s) = %v", dynamic, err)
	}
}

// The image's HEALTHCHECK is kept with each container created from it
// (a copy: a later image config does not change it) and survives a daemon
// restart; an image without one gives nil; its test runs with Exec.
func TestHealthcheckKeptWithContainer(t *testing.T) {
	r, imgs := newRuntime(t)
	ctx := context.Background()
	hc := &Healthcheck{Test: []string{"CMD-SHELL", "test -f /tmp/only-here"}, Interval: 2 * time.Second,
		Timeout: time.Second, StartPeriod: 3 * time.Second, StartInterval: 500 * time.Millisecond, Retries: 4}
	want := *hc
	want.Test = append([]string(nil), hc.Test...)
	plain, err := r.Create(ctx, Spec{Image: "test:1", Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Healthcheck != nil {
		t.Fatalf("a container of an image without HEALTHCHECK has %+v", plain.Healthcheck)
	}
	imgs.img.Config.Healthcheck = hc
	st := startLong(t, r, imgs, Spec{})
	hc.Test[1], hc.Retries = "changed", 9 // the image store's copy, not the container's
	if st.Healthcheck == nil || !reflectEqual(*st.Healthcheck, want) {
		t.Fatalf("State.Healthcheck = %+v; want %+v", st.Healthcheck, want)
	}
	st.Healthcheck.Test[0] = "CMD" // a caller's copy, not the runtime's
	r2, err := Open(Options{Root: r.opts.Root, CgroupParent: r.opts.CgroupParent, ShimBinary: shimBinary, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.Get(st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Healthcheck == nil || !reflectEqual(*got.Healthcheck, want) {
		t.Fatalf("after a restart State.Healthcheck = %+v; want %+v", got.Healthcheck, want)
	}
	res := execOK(t, r2, st.ID, ExecSpec{Args: []string{"/bin/sh", "-c", got.Healthcheck.Test[1]}})
	if res.ExitCode != 0 {
		t.Fatalf("the image's check in its container: exit %d %q", res.ExitCode, res.Output)
	}
}

func reflectEqual(a, b Healthcheck) bool {
	return strings.Join(a.Test, "\x00") == strings.Join(b.Test, "\x00") && a.Interval == b.Interval && a.Timeout == b.Timeout &&
		a.StartPeriod == b.StartPeriod && a.StartInterval == b.StartInterval && a.Retries == b.Retries
}

func TestCappedOutput(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writes    []string
		max       int
		want      string
		truncated bool
	}{
		{"nothing", nil, 4, "", false},
		{"under", []string{"ab"}, 4, "ab", false},
		{"exactly", []string{"ab", "cd"}, 4, "abcd", false},
		{"over in one write", []string{"abcdef"}, 4, "abcd", true},
		{"over across writes", []string{"abc", "def", "g"}, 4, "abcd", true},
		{"full, then more", []string{"abcd", "e"}, 4, "abcd", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &capped{max: tc.max}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want all of it taken", s, n, err)
				}
			}
			res := w.result(3)
			if string(res.Output) != tc.want || res.Truncated != tc.truncated || res.ExitCode != 3 {
				t.Fatalf("result = %q truncated %v code %d; want %q truncated %v", res.Output, res.Truncated, res.ExitCode, tc.want, tc.truncated)
			}
		})
	}
}
