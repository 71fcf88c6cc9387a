package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Running a second process in a running container (an exec) takes two
// helpers, because a Go process cannot join a mount namespace (setns
// refuses a process with more than one thread, and the Go runtime always
// has several):
//
//  1. the exec helper (ExecArg), started by the daemon in the host's
//     namespaces, waits on fd 3 for Go, which the daemon sends once it
//     has moved the helper into the container's cgroup(s); every process
//     of the exec is then born in them. It execs util-linux nsenter,
//     a single-threaded C program, which joins the init's mount, UTS,
//     IPC, network, PID and cgroup namespaces and its root and working
//     directory, forks (a PID namespace applies to children), and execs
//  2. the exec init (ExecInitArg): this same binary again, run from the
//     descriptor the daemon passed (fd 6) since the host's path to it
//     is not visible from the container's root. It reads its ExecConfig
//     from fd 5, takes on the container's user, groups, capability set
//     and no_new_privs as the container's init does, and execs the
//     command. It says Ready on fd 4 just before that exec; an Error
//     instead says why the exec could not start. No Ready and no Error
//     means nsenter failed before the exec init ran (its message is in
//     the output).
//
// Both helpers run from the shim binary, which is static (CGO_ENABLED=0),
// so that it runs inside any image's root, even one without a libc.

// Hidden first arguments of the exec helpers.
const (
	ExecArg     = "__exec"
	ExecInitArg = "__exec-init"
)

// The descriptors of the exec helpers.
const (
	execGoFd     = 3 // daemon → exec helper: Go once it is in the cgroup
	execStatusFd = 4 // exec init → daemon: Ready or an Error
	execConfigFd = 5 // daemon → exec init: the ExecConfig as JSON
	execBinaryFd = 6 // the shim binary, for the exec init
)

// ExecConfig is what the exec init needs to run the command: the daemon
// fills it from the container's Config and the exec's own settings.
type ExecConfig struct {
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Cwd      string   `json:"cwd"`
	User     string   `json:"user,omitempty"`
	Hostname string   `json:"hostname"`
	Caps     []string `json:"caps"`
}

// ExecHelperArgs is the command line that starts the exec helper for the
// container whose init is pid, with nsenter at nsenter; the daemon runs
// it from the shim binary with the descriptors above.
func ExecHelperArgs(pid int, nsenter string) []string {
	return []string{"shoal-exec", ExecArg, strconv.Itoa(pid), nsenter}
}

// nsenterArgs is nsenter's command line: every namespace of the init but
// the user namespace (containers have none of their own), its root and
// its working directory (the exec init moves to the exec's own), then the
// exec init from its descriptor.
func nsenterArgs(pid string) []string {
	return []string{"nsenter", "--target", pid, "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup",
		"--root", "--wd", "--", fmt.Sprintf("/proc/self/fd/%d", execBinaryFd), ExecInitArg}
}

// ExecMain is the exec helper: it waits for the daemon's Go on fd 3 (end
// of file: abort), then becomes nsenter.
func ExecMain(pid, nsenter string) int {
	if m, err := ReadMessage(bufio.NewReader(os.NewFile(execGoFd, "go"))); err != nil || m.Kind != KindGo {
		fmt.Fprintln(os.Stderr, "exec aborted by the daemon")
		return 125
	}
	unix.CloseOnExec(execGoFd)
	// nsenter hands its environment to the exec init (the command gets
	// the container's): one P keeps the Go runtime's threads, which the
	// container's pids limit counts, few.
	err := unix.Exec(nsenter, nsenterArgs(pid), []string{"GOMAXPROCS=1"})
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", nsenter, err)
	return 125
}

// ExecInitMain is the exec init, inside the container's namespaces and
// root: it becomes the container's user and execs the command. A command
// that cannot be found or run exits 127 or 126 with the reason on
// stderr, as a shell would; any other failure is an Error on fd 4 and
// exit code 125.
func ExecInitMain() int {
	// Credentials and capabilities are set on this thread, and exec
	// happens from it.
	runtime.LockOSThread()
	// Until it execs, this process is the shoal binary with the host's
	// privileges inside the container's PID namespace: nothing in the
	// container may open its /proc entries (its exe above all).
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	status := os.NewFile(execStatusFd, "status")
	unix.CloseOnExec(execStatusFd)
	fail := func(err error) int {
		_ = WriteMessage(status, ErrorMessage(err.Error()))
		return 125
	}
	cfg, err := readExecConfig(os.NewFile(execConfigFd, "config"))
	if err != nil {
		return fail(err)
	}
	id, err := resolveUser(cfg.User)
	if err != nil {
		return fail(err)
	}
	env := withDefaults(cfg.Env, cfg.Hostname, id.home)
	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.Chdir(cwd); err != nil {
		return fail(fmt.Errorf("working directory %s: %w", cwd, errors.Unwrap(err)))
	}
	// Nothing of the host reaches the command: every descriptor past
	// stdio closes when it execs.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(fmt.Errorf("close descriptors: %w", err))
	}
	if err := dropPrivileges(id, cfg.Caps); err != nil {
		return fail(err)
	}
	if len(cfg.Args) == 0 {
		return fail(errors.New("no command to exec"))
	}
	path, err := lookPath(cfg.Args[0], env)
	_ = WriteMessage(status, Ready)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, os.ErrPermission) {
			return 126
		}
		return 127
	}
	err = unix.Exec(path, cfg.Args, env)
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", cfg.Args[0], err)
	if errors.Is(err, unix.EACCES) {
		return 126
	}
	return 127
}

func readExecConfig(r io.ReadCloser) (*ExecConfig, error) {
	defer r.Close()
	var cfg ExecConfig
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("read the exec's configuration: %w", err)
	}
	return &cfg, nil
}
