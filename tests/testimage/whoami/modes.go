package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// oneInt parses the single integer argument of a mode.
func oneInt(mode string, args []string) (int, bool) {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "whoami: %s takes one integer argument\n", mode)
		return 0, false
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "whoami: %s: %q is not a non-negative integer\n", mode, args[0])
		return 0, false
	}
	return n, true
}

func exitMode(args []string) int {
	n, ok := oneInt("exit", args)
	if !ok {
		return 2
	}
	return n
}

// sleepMode sleeps for its argument (a Go duration such as "1.5s", or a
// number of seconds). SIGTERM or SIGINT ends it early with exit code 143,
// as a shell would report, whether or not it runs as PID 1.
func sleepMode(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "whoami: sleep takes one duration")
		return 2
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		secs, err2 := strconv.ParseFloat(args[0], 64)
		if err2 != nil {
			fmt.Fprintf(os.Stderr, "whoami: sleep: %v\n", err)
			return 2
		}
		d = time.Duration(secs * float64(time.Second))
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	select {
	case <-time.After(d):
		return 0
	case s := <-sigs:
		fmt.Printf("sleep: %v\n", s)
		return 143
	}
}

func crashloop() int {
	fmt.Println("crashloop: exiting with code 1 in 100ms")
	time.Sleep(100 * time.Millisecond)
	return 1
}

func echo(args []string) int {
	fmt.Println(strings.Join(args, " "))
	return 0
}

func stderrMode(args []string) int {
	fmt.Fprintln(os.Stderr, strings.Join(args, " "))
	return 0
}

// ids prints one key=value per line: uid, gid, groups (comma separated,
// empty when there are none), euid, egid, hostname, pid, ppid.
func ids() int {
	groups, err := os.Getgroups()
	if err != nil {
		fmt.Fprintf(os.Stderr, "whoami: getgroups: %v\n", err)
		return 1
	}
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.Itoa(g)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "error: " + err.Error()
	}
	fmt.Printf("uid=%d\ngid=%d\ngroups=%s\neuid=%d\negid=%d\nhostname=%s\npid=%d\nppid=%d\n",
		os.Getuid(), os.Getgid(), strings.Join(gs, ","), os.Geteuid(), os.Getegid(),
		host, os.Getpid(), os.Getppid())
	return 0
}

// caps prints the CapEff and NoNewPrivs lines of /proc/self/status as they
// are ("CapEff:\t00000000a80425fb").
func caps() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintf(os.Stderr, "whoami: %v\n", err)
		return 1
	}
	found := 0
	for _, line := range bytes.Split(status, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("CapEff:")) || bytes.HasPrefix(line, []byte("NoNewPrivs:")) {
			fmt.Printf("%s\n", line)
			found++
		}
	}
	if found != 2 {
		fmt.Fprintln(os.Stderr, "whoami: CapEff or NoNewPrivs missing from /proc/self/status")
		return 1
	}
	return 0
}

// alloc allocates MB MiB one MiB at a time, writing to every page so the
// memory is resident, prints "allocated N MiB" and waits for SIGTERM or
// SIGINT (exit 0). Under a memory limit the kernel kills it on the way.
func alloc(args []string) int {
	n, ok := oneInt("alloc", args)
	if !ok {
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	const mib = 1 << 20
	held := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		b := make([]byte, mib)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		held = append(held, b)
		if (i+1)%64 == 0 && i+1 < n {
			fmt.Printf("allocating: %d MiB\n", i+1)
		}
	}
	fmt.Printf("allocated %d MiB\n", len(held))
	<-sigs
	runtime.KeepAlive(held) // resident until the end, not just until the last use
	fmt.Println("alloc: shutting down")
	return 0
}

// fork starts up to N children running `whoami sleep 10s`, stopping at the
// first failure, prints "started K of N" (and "error: ..." on a failure),
// then kills and reaps the children. It exits 0 either way.
func fork(args []string) int {
	n, ok := oneInt("fork", args)
	if !ok {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	var children []*exec.Cmd
	var startErr error
	for i := 0; i < n; i++ {
		c := exec.Command(self, "sleep", "10s")
		if err := c.Start(); err != nil {
			startErr = err
			break
		}
		children = append(children, c)
	}
	fmt.Printf("started %d of %d\n", len(children), n)
	if startErr != nil {
		fmt.Printf("error: %v\n", startErr)
	}
	for _, c := range children {
		c.Process.Kill()
		c.Wait()
	}
	return 0
}

// write creates PATH. It prints "ok", or "error: ..." and exits 1.
func write(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "whoami: write takes one path")
		return 2
	}
	if err := os.WriteFile(args[0], []byte("whoami\n"), 0o644); err != nil {
		fmt.Printf("error: %v\n", err)
		return 1
	}
	fmt.Println("ok")
	return 0
}

// logspam writes N lines of exactly 100 bytes (newline included) to stdout:
// "logspam 00000001 xxx...".
func logspam(args []string) int {
	n, ok := oneInt("logspam", args)
	if !ok {
		return 2
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	pad := strings.Repeat("x", 100)
	for i := 1; i <= n; i++ {
		head := fmt.Sprintf("logspam %08d ", i)
		w.WriteString(head)
		w.WriteString(pad[:99-len(head)])
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(os.Stderr, "whoami: %v\n", err)
		return 1
	}
	return 0
}

// lograte writes n numbered lines a second to stdout, paced by the
// clock in 10 ms steps, until killed: "lograte 000000001 xxx...". A
// writer held back by its stdout falls behind the clock and stays
// behind, which the numbers show.
func lograte(args []string) int {
	n, ok := oneInt("lograte", args)
	if !ok || n == 0 {
		return 2
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	pad := strings.Repeat("x", 100)
	start := time.Now()
	seq := 0
	for {
		due := int(time.Since(start).Seconds() * float64(n))
		for ; seq < due; seq++ {
			head := fmt.Sprintf("lograte %09d ", seq+1)
			w.WriteString(head)
			w.WriteString(pad[:99-len(head)])
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintf(os.Stderr, "whoami: %v\n", err)
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hang ignores SIGTERM and SIGINT and blocks until it is killed, for tests
// of the stop grace period.
func hang() int {
	signal.Ignore(syscall.SIGTERM, os.Interrupt)
	fmt.Println("hang: ignoring SIGTERM")
	// Not select{}: with no other goroutine the runtime would call that a
	// deadlock and exit.
	for {
		time.Sleep(time.Hour)
	}
}
