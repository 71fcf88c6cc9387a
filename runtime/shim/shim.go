package shim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/runtime/logs"
)

// Hidden first arguments that make the shoal binary run as a shim or as
// a container init.
const (
	ShimArg = "__shim"
	InitArg = "__init"
)

// The shim talks to the daemon over two pipes: fd 3 carries the daemon's
// "go" (or its end of file, meaning abort), fd 4 carries the shim's
// reports: "pid N", "ready" once the init has prepared the container,
// then "started" or "error MESSAGE". After the start
// both are closed: the shim needs nothing more from the daemon, which may
// die and come back.

// Main runs the shim for the container in dir and returns its exit code.
func Main(dir string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	_ = os.Chdir("/")
	fromDaemon, toDaemon := os.NewFile(3, "from-daemon"), os.NewFile(4, "to-daemon")
	report := func(format string, a ...any) { fmt.Fprintf(toDaemon, format+"\n", a...) }
	fail := func(err error) int {
		report("error %s", oneLine(err.Error()))
		_ = WriteJSON(filepath.Join(dir, ExitFile), &Exit{Code: 127, Error: err.Error(), ExitedAt: time.Now().UTC()})
		return 1
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return fail(err)
	}
	lw, err := logs.NewWriter(cfg.Log.Path, cfg.Log.MaxSize, cfg.Log.MaxFiles)
	if err != nil {
		return fail(fmt.Errorf("open log: %w", err))
	}
	defer lw.Close()

	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	goR, goW, err := os.Pipe() // shim -> init: "go"
	if err != nil {
		return fail(err)
	}
	setupR, setupW, err := os.Pipe() // init -> shim: a setup error; closed by exec
	if err != nil {
		return fail(err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if cfg.Network != NetworkHost {
		flags |= unix.CLONE_NEWNET
	}
	cmd := exec.Command("/proc/self/exe", InitArg, dir)
	cmd.Args[0] = "shoal-init"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, outW, errW
	cmd.ExtraFiles = []*os.File{goR, setupW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}
	cmd.Env = []string{}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start container init: %w", err))
	}
	for _, f := range []*os.File{outW, errW, goR, setupW, devnull} {
		f.Close()
	}
	report("pid %d", cmd.Process.Pid)

	// The init prepares the root filesystem while the daemon moves it
	// into its cgroup, then says "ready" (or why it failed).
	setup := bufio.NewReader(setupR)
	first, _ := setup.ReadString('\n')
	if strings.TrimSpace(first) != "ready" {
		rest, _ := io.ReadAll(setup)
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		msg := strings.TrimSpace(first + string(rest))
		if msg == "" {
			msg = "the container init ended during setup"
		}
		return fail(errors.New(msg))
	}
	report("ready")
	line, _ := bufio.NewReader(fromDaemon).ReadString('\n')
	if strings.TrimSpace(line) != "go" {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		return fail(errors.New("the daemon aborted the start"))
	}
	// A write error means the init already ended; what it wrote to the
	// setup pipe says why.
	_, goErr := goW.Write([]byte("go\n"))
	goW.Close()
	msg, _ := io.ReadAll(setup)
	setupR.Close()
	if goErr != nil && len(msg) == 0 {
		msg = []byte("the container init ended before it could start: " + goErr.Error())
	}
	if len(msg) > 0 {
		report("error %s", oneLine(string(msg)))
	} else {
		report("started")
	}
	fromDaemon.Close()
	toDaemon.Close()

	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		r    *os.File
	}{{"stdout", outR}, {"stderr", errR}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = lw.Copy(s.name, s.r)
			s.r.Close()
		}()
	}
	ps, werr := cmd.Process.Wait()
	wg.Wait()
	exit := &Exit{ExitedAt: time.Now().UTC()}
	if len(msg) > 0 {
		exit.Error = strings.TrimSpace(string(msg))
	}
	switch {
	case werr != nil:
		exit.Code, exit.Error = 255, werr.Error()
	default:
		ws := ps.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			exit.Code = 128 + int(ws.Signal())
			exit.Signal = unix.SignalName(ws.Signal())
		} else {
			exit.Code = ws.ExitStatus()
		}
	}
	if err := WriteJSON(filepath.Join(dir, ExitFile), exit); err != nil {
		fmt.Fprintln(os.Stderr, "write exit status:", err)
		return 1
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ") }

// Dispatch runs the shim or the init when args (os.Args) ask for one of
// them, and reports whether it did and the exit code.
func Dispatch(args []string) (code int, ok bool) {
	if len(args) != 3 {
		return 0, false
	}
	switch args[1] {
	case ShimArg:
		return Main(args[2]), true
	case InitArg:
		return InitMain(args[2]), true
	}
	return 0, false
}
