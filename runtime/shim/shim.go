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

// Main runs the shim for the container in dir and returns its exit code.
// It talks to the daemon and to the init by the start protocol
// (protocol.go).
func Main(dir string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	_ = os.Chdir("/")
	fromDaemon, toDaemon := os.NewFile(3, "from-daemon"), os.NewFile(4, "to-daemon")
	report := func(m Message) { _ = WriteMessage(toDaemon, m) }
	fail := func(err error) int {
		report(ErrorMessage(err.Error()))
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
	goR, goW, err := os.Pipe() // shim -> init: Go
	if err != nil {
		return fail(err)
	}
	setupR, setupW, err := os.Pipe() // init -> shim: Ready or an Error; closed by exec
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
	var terminal *os.File
	if cfg.Tty {
		// The terminal is stdin, stdout and stderr, and the controlling
		// terminal of the new session; its other end replaces the stdout
		// pipe (a terminal has one stream), and stderr's pipe stays empty.
		var controller *os.File
		if controller, terminal, err = openPty(); err != nil {
			return fail(err)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = terminal, terminal, terminal
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
		outR.Close()
		outR = controller
	}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start container init: %w", err))
	}
	for _, f := range []*os.File{outW, errW, goR, setupW, devnull, terminal} {
		if f != nil {
			f.Close()
		}
	}
	report(PidMessage(cmd.Process.Pid))

	// The init prepares the root filesystem while the daemon moves it
	// into its cgroup, then says Ready (or why it failed).
	setup := bufio.NewReader(setupR)
	if err := initSetup(setup); err != nil {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		return fail(err)
	}
	report(Ready)
	if m, err := ReadMessage(bufio.NewReader(fromDaemon)); err != nil || m.Kind != KindGo {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		return fail(errors.New("the daemon aborted the start"))
	}
	// A write error means the init already ended; what it wrote to the
	// setup pipe says why.
	goErr := WriteMessage(goW, Go)
	goW.Close()
	msg := initExec(setup)
	setupR.Close()
	if goErr != nil && msg == "" {
		msg = "the container init ended before it could start: " + goErr.Error()
	}
	if msg != "" {
		report(ErrorMessage(msg))
	} else {
		report(Started)
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
	exit := &Exit{ExitedAt: time.Now().UTC(), Error: msg}
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

// initSetup waits for the init's answer to its setup: nil once it is
// Ready, else why it is not.
func initSetup(setup *bufio.Reader) error {
	m, err := ReadMessage(setup)
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("the container init ended during setup")
	case err != nil:
		return fmt.Errorf("the container init: %w", err)
	case m.Kind == KindError:
		return errors.New(m.Err)
	case m.Kind != KindReady:
		return fmt.Errorf("the container init said %q during setup, not %q", m, Ready)
	}
	return nil
}

// initExec waits for the init to exec the workload after Go: it returns
// "" once the setup pipe closes without a word (the exec closed it), else
// why the exec failed.
func initExec(setup *bufio.Reader) string {
	m, err := ReadMessage(setup)
	switch {
	case errors.Is(err, io.EOF):
		return ""
	case err != nil:
		return "the container init: " + err.Error()
	case m.Kind == KindError:
		return m.Err
	}
	return fmt.Sprintf("the container init said %q after %q, not an error or nothing", m, Go)
}

// Dispatch runs the shim, the init or an exec helper when args (os.Args)
// ask for one of them, and reports whether it did and the exit code.
func Dispatch(args []string) (code int, ok bool) {
	switch {
	case len(args) == 3 && args[1] == ShimArg:
		return Main(args[2]), true
	case len(args) == 3 && args[1] == InitArg:
		return InitMain(args[2]), true
	case len(args) == 4 && args[1] == ExecArg:
		return ExecMain(args[2], args[3]), true
	case len(args) == 2 && args[1] == ExecInitArg:
		return ExecInitMain(), true
	}
	return 0, false
}
