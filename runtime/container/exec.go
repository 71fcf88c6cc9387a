package container

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// ExecSpec is a process to run in a running container.
type ExecSpec struct {
	Args []string // the command and its arguments; required
	// Env is laid over the container's environment (KEY=VALUE); empty
	// means the container's as it is.
	Env []string
	// User is USER[:GROUP] resolved in the container's /etc/passwd and
	// /etc/group; empty means the container's user.
	User string
	// Dir is the working directory inside the container; empty means the
	// container's.
	Dir string
}

// MaxExecOutput is how much of an exec's output Exec keeps.
const MaxExecOutput = 4096

// ExecResult is how an exec ended.
type ExecResult struct {
	// ExitCode is the command's exit status, 128+N when signal N ended
	// it, 127 when the command was not found and 126 when it could not
	// be run (the reason is then in Output).
	ExitCode int
	// Output is the command's stdout and stderr together, in the order
	// written, at most its first MaxExecOutput bytes.
	Output []byte
	// Truncated says the command wrote more than Output holds.
	Truncated bool
}

// Exec runs p in the running container ref, as docker exec does: the
// process is in the container's cgroup(s) before it runs, joins the
// init's mount (with its root), UTS, IPC, network, PID and cgroup
// namespaces, and runs as the container's user with its supplementary
// groups, capability set and no_new_privs. It returns once the command
// has exited; whatever the command left running in the background then
// is killed, so a check repeated every few seconds cannot pile up
// processes in the container. When ctx ends first, the command and
// everything it started are killed and Exec returns ctx's error (with the
// output so far).
//
// The helpers that get the process there are described in
// runtime/shim/exec.go; they need util-linux nsenter on the node and a
// static shim binary (make build gives one).
func (r *Runtime) Exec(ctx context.Context, ref string, p ExecSpec) (ExecResult, error) {
	if err := ctx.Err(); err != nil {
		return ExecResult{}, err
	}
	c, err := r.find(ref)
	if err != nil {
		return ExecResult{}, err
	}
	st := c.snapshot()
	if st.Status != Running || procStart(st.Pid) != st.PidStart {
		return ExecResult{}, fmt.Errorf("container %s is not running: %w", st.ID[:12], errdefs.ErrFailedPrecond)
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return ExecResult{}, fmt.Errorf("exec in container %s: no command given; give the command to run: %w", st.ID[:12], errdefs.ErrInvalid)
	}
	for _, kv := range p.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return ExecResult{}, fmt.Errorf("exec in container %s: environment variable %q is not KEY=VALUE: %w", st.ID[:12], kv, errdefs.ErrInvalid)
		}
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in container %s needs util-linux nsenter on this node (apt-get install util-linux): %v: %w", st.ID[:12], err, errdefs.ErrUnavailable)
	}
	if err := checkStatic(r.opts.ShimBinary); err != nil {
		return ExecResult{}, err
	}
	cfg, err := shim.ReadConfig(c.dir)
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in container %s: %w", st.ID[:12], err)
	}
	ec := shim.ExecConfig{Args: p.Args, Env: mergeEnv(cfg.Env, p.Env), Cwd: cfg.Cwd, User: cfg.User, Hostname: cfg.Hostname, Caps: cfg.Caps}
	if p.User != "" {
		ec.User = p.User
	}
	if p.Dir != "" {
		ec.Cwd = p.Dir
	}
	if c.cg == nil {
		return ExecResult{}, fmt.Errorf("exec in container %s: its cgroup %s is gone: %w", st.ID[:12], st.Cgroup, errdefs.ErrFailedPrecond)
	}
	return r.runExec(ctx, c, st, nsenter, &ec)
}

// execFiles are the pipes between the daemon and an exec's helpers.
type execFiles struct {
	goR, goW, statusR, statusW, cfgR, cfgW, outR, outW, bin *os.File
}

func openExecFiles(binary string) (*execFiles, error) {
	f := &execFiles{}
	var err error
	pipes := []*[2]**os.File{{&f.goR, &f.goW}, {&f.statusR, &f.statusW}, {&f.cfgR, &f.cfgW}, {&f.outR, &f.outW}}
	for _, p := range pipes {
		if *p[0], *p[1], err = os.Pipe(); err != nil {
			f.closeAll()
			return nil, err
		}
	}
	if f.bin, err = os.Open(binary); err != nil {
		f.closeAll()
		return nil, fmt.Errorf("open the shim binary: %w", err)
	}
	return f, nil
}

func (f *execFiles) closeAll() {
	for _, x := range []*os.File{f.goR, f.goW, f.statusR, f.statusW, f.cfgR, f.cfgW, f.outR, f.outW, f.bin} {
		if x != nil {
			x.Close()
		}
	}
}

// closeChildEnds closes what only the helper needs once it has started.
func (f *execFiles) closeChildEnds() {
	for _, x := range []*os.File{f.goR, f.statusW, f.cfgR, f.outW, f.bin} {
		x.Close()
	}
}

func (r *Runtime) runExec(ctx context.Context, c *ctr, st State, nsenter string, ec *shim.ExecConfig) (ExecResult, error) {
	cfgJSON, err := json.Marshal(ec)
	if err != nil {
		return ExecResult{}, err
	}
	f, err := openExecFiles(r.opts.ShimBinary)
	if err != nil {
		return ExecResult{}, err
	}
	args := shim.ExecHelperArgs(st.Pid, nsenter)
	cmd := exec.Command(r.opts.ShimBinary, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Stdout, cmd.Stderr = f.outW, f.outW
	cmd.ExtraFiles = []*os.File{f.goR, f.statusW, f.cfgR, f.bin}
	// A session of its own: the exec and everything it starts are found
	// by their session ID when they must be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = []string{}
	cmd.Dir = "/"
	err = cmd.Start()
	f.closeChildEnds()
	if err != nil {
		f.goW.Close()
		f.statusR.Close()
		f.cfgW.Close()
		f.outR.Close()
		return ExecResult{}, fmt.Errorf("start the exec helper: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		// Wait on the poller, without reaping: the helper's PID is
		// the session ID that finds its processes until Wait reaps it.
		_ = waitExit(pid)
		close(exited)
	}()
	go func() {
		_, _ = f.cfgW.Write(cfgJSON)
		f.cfgW.Close()
	}()
	out := &capped{max: MaxExecOutput}
	outDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, f.outR)
		close(outDone)
	}()
	var status []shim.Message
	statusDone := make(chan struct{})
	go func() {
		rd := bufio.NewReader(f.statusR)
		for {
			m, err := shim.ReadMessage(rd)
			if err != nil {
				break
			}
			status = append(status, m)
		}
		close(statusDone)
	}()
	finish := func() {
		killSession(pid)
		_ = cmd.Wait()
		// The command's output is in the pipe by now unless something
		// that left the session still holds it open.
		select {
		case <-outDone:
		case <-time.After(time.Second):
		}
		f.outR.Close()
		<-outDone
		<-statusDone
		f.statusR.Close()
	}
	if err := c.cg.Add(pid); err != nil {
		f.goW.Close()
		finish()
		return ExecResult{}, fmt.Errorf("exec in container %s: join its cgroup: %w", st.ID[:12], err)
	}
	_ = shim.WriteMessage(f.goW, shim.Go)
	f.goW.Close()

	select {
	case <-exited:
	case <-ctx.Done():
		finish()
		return out.result(-1), ctx.Err()
	}
	finish()
	code := exitCode(cmd.ProcessState)
	res := out.result(code)
	var ready bool
	for _, m := range status {
		switch m.Kind {
		case shim.KindReady:
			ready = true
		case shim.KindError:
			return res, fmt.Errorf("exec in container %s: %s: %w", st.ID[:12], m.Err, errdefs.ErrInvalid)
		}
	}
	if !ready {
		// The output is the helpers' (nsenter's, or a Go runtime's
		// crash with its stacks), not the command's: the error says
		// what matters in one line.
		out := string(res.Output)
		switch {
		case c.snapshot().Status != Running:
			return ExecResult{}, fmt.Errorf("container %s is not running: %w", st.ID[:12], errdefs.ErrFailedPrecond)
		case st.PidsLimit > 0 && (strings.Contains(out, "failed to create new OS thread") || strings.Contains(out, "Resource temporarily unavailable")):
			return ExecResult{}, fmt.Errorf("exec in container %s: its pids limit (%d) leaves no room to start another process; raise the limit: %w", st.ID[:12], st.PidsLimit, errdefs.ErrFailedPrecond)
		}
		msg, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		if msg == "" {
			msg = fmt.Sprintf("the exec helper exited with code %d", code)
		}
		return ExecResult{}, fmt.Errorf("exec in container %s: could not enter the container: %s", st.ID[:12], msg)
	}
	return res, nil
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return ps.ExitCode()
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	extra int64
}

func (w *capped) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.max - len(w.buf)
	if room > len(p) {
		room = len(p)
	}
	w.buf = append(w.buf, p[:room]...)
	w.extra += int64(len(p) - room)
	return len(p), nil
}

func (w *capped) result(code int) ExecResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	return ExecResult{ExitCode: code, Output: append([]byte(nil), w.buf...), Truncated: w.extra > 0}
}

// killSession SIGKILLs every live process of session sid, again until
// none is left (one may fork while the others are killed), waiting a
// little when only processes already killed remain, until they are gone
// (at most about a second). The session leader is not reaped yet, so its
// PID, the session ID, cannot have been reused.
func killSession(sid int) {
	killed := map[int]bool{}
	for i := 0; i < 1000; i++ {
		pids := sessionMembers(sid)
		if len(pids) == 0 {
			return
		}
		fresh := false
		for _, p := range pids {
			if !killed[p] {
				killed[p], fresh = true, true
			}
			_ = unix.Kill(p, unix.SIGKILL)
		}
		if !fresh {
			time.Sleep(time.Millisecond)
		}
	}
}

// sessionMembers lists the processes of session sid that are not
// zombies, from /proc.
func sessionMembers(sid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, session, ok := procSession(pid)
		if ok && session == sid && state != "Z" && state != "X" {
			out = append(out, pid)
		}
	}
	return out
}

// procSession reads the state and session ID of pid (fields 3 and 6 of
// /proc/PID/stat).
func procSession(pid int) (state string, session int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 4 {
		return "", 0, false
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		return "", 0, false
	}
	return f[0], n, true
}

var staticChecks sync.Map // binary path → error (nil: static)

// checkStatic refuses a dynamically linked shim binary: the exec init
// runs it inside the container's root, where the host's loader and libc
// are not.
func checkStatic(binary string) error {
	if v, ok := staticChecks.Load(binary); ok {
		err, _ := v.(error)
		return err
	}
	var err error
	ef, oerr := elf.Open(binary)
	if oerr != nil {
		err = fmt.Errorf("read the shim binary %s: %w", binary, oerr)
	} else {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				err = fmt.Errorf("exec needs a statically linked shim, and %s is dynamically linked: build shoal with CGO_ENABLED=0 (make build): %w", binary, errdefs.ErrFailedPrecond)
				break
			}
		}
		ef.Close()
	}
	if errors.Is(err, errdefs.ErrFailedPrecond) || err == nil {
		staticChecks.Store(binary, err)
	}
	return err
}
