package shim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// oldRoot is where the host's root stays reachable between pivot_root
// and the end of setup.
const oldRoot = "/.shoal-oldroot"

// InitMain runs as the first process in the container's namespaces: it
// sets up the root filesystem, says Ready on fd 4, then waits for the
// shim's Go on fd 3 (sent once the process is in its cgroup and its
// network is wired), takes on the workload's identity and execs it. A
// setup error goes to fd 4 as an Error message and the exit code is 127
// (not found), 126 (not executable) or 125 (setup).
func InitMain(dir string) int {
	// Credentials, capabilities and the mount namespace view are set on
	// this thread, and exec happens from it.
	runtime.LockOSThread()
	setupErr := os.NewFile(4, "setup-error")
	unix.CloseOnExec(4)
	fail := func(code int, err error) int {
		_ = WriteMessage(setupErr, ErrorMessage(err.Error()))
		return code
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return fail(125, err)
	}
	if cfg.Network != NetworkHost {
		if err := loopbackUp(); err != nil {
			return fail(125, fmt.Errorf("loopback: %w", err))
		}
	}
	if err := setupRootfs(cfg); err != nil {
		return fail(125, fmt.Errorf("set up the root filesystem: %w", err))
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fail(125, fmt.Errorf("hostname: %w", err))
	}
	id, err := resolveUser(cfg.User)
	if err != nil {
		return fail(125, err)
	}
	if id, err = withGroups(id, cfg.Groups); err != nil {
		return fail(125, err)
	}
	env := withDefaults(cfg.Env, cfg.Hostname, id.home)
	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil && !cfg.ReadOnly {
		return fail(125, fmt.Errorf("working directory %s: %w", cwd, err))
	}
	if err := os.Chdir(cwd); err != nil {
		return fail(125, fmt.Errorf("working directory %s: %w", cwd, err))
	}
	if len(cfg.Args) == 0 {
		return fail(125, errors.New("no command: the image has no entrypoint or cmd; give one"))
	}
	path, err := lookPath(cfg.Args[0], env)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fail(126, err)
		}
		return fail(127, err)
	}
	// Everything above overlaps with the daemon moving us into our
	// cgroup and wiring the network; nothing of the workload runs
	// before its Go. From Ready on, this process starts no thread, so
	// the daemon may now apply a pids limit.
	_ = WriteMessage(setupErr, Ready)
	if m, err := ReadMessage(bufio.NewReader(os.NewFile(3, "go"))); err != nil || m.Kind != KindGo {
		return fail(125, errors.New("start aborted"))
	}
	unix.CloseOnExec(3)
	// A cgroup namespace rooted at the cgroup we were moved into.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil && !errors.Is(err, unix.EINVAL) {
		return fail(125, fmt.Errorf("cgroup namespace: %w", err))
	}
	if err := setRlimits(cfg.Rlimits); err != nil {
		return fail(125, err)
	}
	if err := dropPrivileges(id, cfg.Caps); err != nil {
		return fail(125, err)
	}
	if cfg.Init {
		setupErr.Close()
		return reap(path, cfg.Args, env)
	}
	err = unix.Exec(path, cfg.Args, env)
	if errors.Is(err, unix.EACCES) {
		return fail(126, fmt.Errorf("exec %s: permission denied", cfg.Args[0]))
	}
	return fail(127, fmt.Errorf("exec %s: %w", cfg.Args[0], err))
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// maskedPaths and readonlyPaths are Docker's defaults.
var (
	maskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

type device struct {
	name         string
	major, minor uint32
}

var devices = []device{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}

// setupRootfs pivots into the container's root first and mounts
// everything after, so every target path resolves inside the new root
// and a hostile symlink in the image cannot point a mount at the host.
func setupRootfs(cfg *Config) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	put := filepath.Join(cfg.Rootfs, oldRoot)
	if st, err := os.Lstat(put); err == nil && !st.IsDir() {
		return fmt.Errorf("%s exists in the image and is not a directory", oldRoot)
	}
	if err := os.Mkdir(put, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := unix.PivotRoot(cfg.Rootfs, put); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := mountSpecial(cfg.Network == NetworkHost); err != nil {
		return err
	}
	for _, m := range cfg.Mounts {
		if err := userMount(m); err != nil {
			if m.Kind == KindTmpfs {
				return fmt.Errorf("mount tmpfs on %s: %w", m.Target, err)
			}
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Target, err)
		}
	}
	if err := setSysctls(cfg.Sysctls); err != nil {
		return err
	}
	if err := unix.Unmount(oldRoot, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host root: %w", err)
	}
	if err := os.Remove(oldRoot); err != nil {
		return err
	}
	for _, p := range maskedPaths {
		if err := mask(p); err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		if err := bindReadonly(p); err != nil {
			return fmt.Errorf("read-only %s: %w", p, err)
		}
	}
	if cfg.ReadOnly {
		if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("read-only root: %w", err)
		}
	}
	return nil
}

func mountSpecial(hostNet bool) error {
	type mnt struct {
		target, fstype string
		flags          uintptr
		data           string
		mode           os.FileMode
	}
	const nsd = unix.MS_NOSUID | unix.MS_NODEV
	mounts := []mnt{
		{"/proc", "proc", nsd | unix.MS_NOEXEC, "", 0o555},
		{"/dev", "tmpfs", unix.MS_NOSUID | unix.MS_STRICTATIME, "mode=755,size=65536k", 0o755},
		{"/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", 0o755},
		{"/dev/shm", "tmpfs", nsd | unix.MS_NOEXEC, "mode=1777,size=65536k", 0o1777},
		{"/dev/mqueue", "mqueue", nsd | unix.MS_NOEXEC, "", 0o755},
		{"/sys", "sysfs", nsd | unix.MS_NOEXEC | unix.MS_RDONLY, "", 0o555},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, m.mode); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.target, err)
		}
		err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data)
		if err != nil && m.target == "/sys" && hostNet {
			// sysfs of a network namespace we do not own: bind the
			// host's read-only instead.
			err = bindInto(oldRoot+"/sys", "/sys", true)
		}
		if err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
		if m.target == "/dev" {
			if err := populateDev(); err != nil {
				return err
			}
		}
	}
	return nil
}

func populateDev() error {
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range devices {
		if err := unix.Mknod("/dev/"+d.name, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", d.name, err)
		}
	}
	for link, target := range map[string]string{
		"/dev/ptmx": "pts/ptmx", "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2", "/dev/core": "/proc/kcore",
	} {
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}

// bindInto bind-mounts src (a path under the old root) on target inside
// the new root, creating target like src (file or directory).
func bindInto(src, target string, ro bool) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st.IsDir() {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if ro {
		return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	}
	return nil
}

func mask(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
	}
	return unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
}

func bindReadonly(p string) error {
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_REC, "")
}

func withDefaults(env []string, hostname, home string) []string {
	has := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		has[k] = true
	}
	out := append([]string{}, env...)
	if !has["PATH"] {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !has["HOSTNAME"] {
		out = append(out, "HOSTNAME="+hostname)
	}
	if !has["HOME"] {
		out = append(out, "HOME="+home)
	}
	return out
}

func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, checkExec(file)
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	var denied error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := checkExec(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, os.ErrPermission) {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func checkExec(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("exec: %q: no such file or directory", p)
		}
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("exec: %q: %w", p, os.ErrPermission)
	}
	return nil
}

// reap runs the workload as a child and forwards signals to it, reaping
// every orphan, as a minimal init (--init).
func reap(path string, args, env []string) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	cmd := exec.Command(path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	child := cmd.Process.Pid
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			_ = unix.Kill(child, sig.(syscall.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if pid == child {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 0
}
