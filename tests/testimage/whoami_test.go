package testimage

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// whoamiBin is the static whoami binary packed in the image.
func whoamiBin(t *testing.T) string {
	t.Helper()
	p, err := BuildWhoami("")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is a whoami process on the host, killed when the test ends.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	mu     sync.Mutex
	out    []string // every stdout line so far
	stderr bytes.Buffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(whoamiBin(t), args...), lines: make(chan string, 1024), exited: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// waitLine waits for a stdout line containing s and returns it.
func (p *proc) waitLine(t *testing.T, s string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return l
			}
		case <-p.exited:
			// Lines may still be buffered.
			for {
				select {
				case l := <-p.lines:
					if strings.Contains(l, s) {
						return l
					}
				default:
					t.Fatalf("whoami %q exited (%v) before printing %q; stderr: %s", p.cmd.Args[1:], p.err, s, p.stderr.String())
				}
			}
		case <-deadline:
			t.Fatalf("whoami %q printed no %q in 30s", p.cmd.Args[1:], s)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("whoami %q still running after 30s", p.cmd.Args[1:])
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("whoami %q: %v", p.cmd.Args[1:], p.err)
	return -1
}

func (p *proc) stdout() string {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.out, "\n") + "\n"
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: direct}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestWhoamiServe(t *testing.T) {
	t.Parallel()
	p := start(t, "serve", "-listen", "127.0.0.1:0", "-name", "web")
	l := p.waitLine(t, "listening on ")
	addr := strings.TrimSpace(l[strings.Index(l, "listening on ")+len("listening on "):])
	base := "http://" + addr

	code, body := get(t, base+"/some/path?q=1")
	host, _ := os.Hostname()
	for _, want := range []string{"Name: web\n", "Hostname: " + host + "\n", "RemoteAddr: 127.0.0.1:", "GET /some/path?q=1 HTTP/1.1\n", "Host: " + addr + "\n", "User-Agent: Go-http-client/1.1\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / = %d %q; want %q in it", code, body, want)
		}
	}
	if strings.Contains(body, "IP: 127.0.0.1\n") {
		t.Errorf("GET / lists the loopback address: %q", body)
	}
	p.waitLine(t, "GET /some/path?q=1")

	if code, body := get(t, base+"/health"); code != 200 || body != "ok" {
		t.Errorf("GET /health = %d %q; want 200 ok", code, body)
	}
	if code, body := get(t, base+"/env"); code != 200 || !strings.Contains(body, "PATH=") {
		t.Errorf("GET /env = %d %q; want the environment", code, body)
	}
	if code, _ := get(t, base+"/crash?code=x"); code != http.StatusBadRequest {
		t.Errorf("GET /crash?code=x = %d, want 400", code)
	}
	if code, body := get(t, base+"/crash?code=3"); code != 200 || !strings.Contains(body, "exit code 3") {
		t.Errorf("GET /crash?code=3 = %d %q", code, body)
	}
	if got := p.wait(t); got != 3 {
		t.Errorf("after /crash?code=3 whoami exited %d, want 3", got)
	}
}

func TestWhoamiSIGTERM(t *testing.T) {
	t.Parallel()
	p := start(t, "serve", "-listen", "127.0.0.1:0")
	p.waitLine(t, "listening on ")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := p.wait(t); got != 0 {
		t.Errorf("after SIGTERM whoami exited %d, want 0", got)
	}
	if out := p.stdout(); !strings.Contains(out, "shutting down") {
		t.Errorf("stdout %q; want it to say shutting down", out)
	}
}

func TestWhoamiModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		args     []string
		code     int
		stdout   string // a substring
		stderr   string
		lines    int // when > 0, the number of stdout lines
		lineSize int // when > 0, every stdout line's size with its newline
	}{
		{args: []string{"exit", "7"}, code: 7},
		{args: []string{"exit", "0"}, code: 0},
		{args: []string{"exit"}, code: 2, stderr: "one integer"},
		{args: []string{"echo", "hello", "world"}, stdout: "hello world\n", lines: 1},
		{args: []string{"stderr", "oops", "here"}, stderr: "oops here\n"},
		{args: []string{"sleep", "10ms"}, code: 0},
		{args: []string{"sleep", "0.01"}, code: 0},
		{args: []string{"crashloop"}, code: 1},
		{args: []string{"ids"}, stdout: "uid=" + strconv.Itoa(os.Getuid()) + "\n", lines: 8},
		{args: []string{"caps"}, stdout: "CapEff:\t", lines: 2},
		{args: []string{"write", filepath.Join(dir, "f")}, stdout: "ok\n"},
		{args: []string{"write", filepath.Join(dir, "missing", "f")}, code: 1, stdout: "error: "},
		{args: []string{"logspam", "50"}, stdout: "logspam 00000050 ", lines: 50, lineSize: 100},
		{args: []string{"fork", "3"}, stdout: "started 3 of 3\n"},
		{args: []string{"nonsense"}, code: 2, stderr: "unknown mode"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			p := start(t, tc.args...)
			if got := p.wait(t); got != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", got, tc.code, p.stderr.String())
			}
			out := p.stdout()
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q; want %q in it", out, tc.stdout)
			}
			if !strings.Contains(p.stderr.String(), tc.stderr) {
				t.Errorf("stderr %q; want %q in it", p.stderr.String(), tc.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if tc.lines > 0 && len(lines) != tc.lines {
				t.Errorf("%d stdout lines, want %d: %q", len(lines), tc.lines, out)
			}
			for _, l := range lines {
				if tc.lineSize > 0 && len(l)+1 != tc.lineSize {
					t.Errorf("line %q is %d bytes, want %d", l, len(l)+1, tc.lineSize)
					break
				}
			}
		})
	}

	t.Run("ids", func(t *testing.T) {
		p := start(t, "ids")
		p.wait(t)
		kv := map[string]string{}
		for _, l := range strings.Split(p.stdout(), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = v
			}
		}
		host, _ := os.Hostname()
		want := map[string]string{
			"uid": strconv.Itoa(os.Getuid()), "gid": strconv.Itoa(os.Getgid()),
			"euid": strconv.Itoa(os.Geteuid()), "egid": strconv.Itoa(os.Getegid()),
			"hostname": host, "pid": strconv.Itoa(p.cmd.Process.Pid), "ppid": strconv.Itoa(os.Getpid()),
		}
		for k, v := range want {
			if kv[k] != v {
				t.Errorf("ids: %s=%q, want %q", k, kv[k], v)
			}
		}
		if _, ok := kv["groups"]; !ok {
			t.Error("ids printed no groups")
		}
	})

	t.Run("alloc", func(t *testing.T) {
		p := start(t, "alloc", "8")
		p.waitLine(t, "allocated 8 MiB")
		p.cmd.Process.Signal(syscall.SIGTERM)
		if got := p.wait(t); got != 0 {
			t.Errorf("alloc after SIGTERM exited %d, want 0", got)
		}
	})

	t.Run("hang", func(t *testing.T) {
		p := start(t, "hang")
		p.waitLine(t, "ignoring SIGTERM")
		if !sigIgnored(t, p.cmd.Process.Pid, syscall.SIGTERM) {
			t.Error("hang does not ignore SIGTERM")
		}
		p.cmd.Process.Kill()
		p.wait(t)
	})
}

// sigIgnored reports whether sig is in the SigIgn mask of /proc/PID/status.
func sigIgnored(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	t.Fatalf("no SigIgn in /proc/%d/status", pid)
	return false
}

func TestAnswerHostname(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		ok         bool
	}{
		{"Name: web\nHostname: 3e7c6ad27641\nIP: 10.0.1.3\n", "3e7c6ad27641", true},
		{"Hostname: last", "last", true},
		{"Name: web\n", "", false},
		{"", "", false},
	} {
		if got, ok := AnswerHostname([]byte(tc.body)); got != tc.want || ok != tc.ok {
			t.Errorf("AnswerHostname(%q) = %q, %v; want %q, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

// SIGTERM while a request is in flight: whoami stops accepting at once,
// answers the request in flight, and exits 0.
func TestWhoamiGracefulShutdown(t *testing.T) {
	t.Parallel()
	p := start(t, "serve", "-listen", "127.0.0.1:0")
	l := p.waitLine(t, "listening on ")
	addr := strings.TrimSpace(l[strings.Index(l, "listening on ")+len("listening on "):])
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second, Transport: direct}
		resp, err := c.Get("http://" + addr + "/slow?ms=2000")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(body), err}
	}()
	p.waitLine(t, "GET /slow?ms=2000")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "shutting down")
	// The listener closes: a new connection is refused while the slow
	// answer is still under way.
	refused := false
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
	}
	if !refused {
		t.Error("whoami still accepted connections 1s after SIGTERM")
	}
	select {
	case a := <-got:
		t.Fatalf("the slow request ended before the listener closed: %+v", a)
	default:
	}
	a := <-got
	if a.err != nil || a.code != 200 || !strings.Contains(a.body, "Hostname: ") {
		t.Errorf("the request in flight at SIGTERM got %d %q, %v; want whoami's answer", a.code, a.body, a.err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("after SIGTERM whoami exited %d, want 0", code)
	}
}

// /health answers 200 until the unhealthy file exists, 500 while it does;
// with -health fail (or WHOAMI_HEALTH=fail) always 500.
func TestWhoamiHealth(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "unhealthy")
	p := start(t, "serve", "-listen", "127.0.0.1:0", "-unhealthy-file", file)
	l := p.waitLine(t, "listening on ")
	base := "http://" + strings.TrimSpace(l[strings.Index(l, "listening on ")+len("listening on "):])
	if code, body := get(t, base+"/health"); code != 200 || body != "ok" {
		t.Errorf("GET /health = %d %q; want 200 ok", code, body)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/health"); code != 500 || !strings.Contains(body, file+" exists") {
		t.Errorf("GET /health with %s = %d %q; want 500 saying it exists", file, code, body)
	}
	if code, _ := get(t, base+"/"); code != 200 {
		t.Errorf("GET / while unhealthy = %d; want 200 (only /health fails)", code)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, base+"/health"); code != 200 {
		t.Errorf("GET /health after removing %s = %d; want 200", file, code)
	}

	for _, args := range [][]string{{"serve", "-listen", "127.0.0.1:0", "-health", "fail"}, {"env:WHOAMI_HEALTH=fail"}} {
		var f *proc
		if strings.HasPrefix(args[0], "env:") {
			f = startEnv(t, []string{strings.TrimPrefix(args[0], "env:")}, "serve", "-listen", "127.0.0.1:0")
		} else {
			f = start(t, args...)
		}
		l := f.waitLine(t, "listening on ")
		base := "http://" + strings.TrimSpace(l[strings.Index(l, "listening on ")+len("listening on "):])
		if code, body := get(t, base+"/health"); code != 500 || !strings.Contains(body, "-health fail") {
			t.Errorf("%v: GET /health = %d %q; want 500", args, code, body)
		}
	}
	bad := start(t, "serve", "-listen", "127.0.0.1:0", "-health", "sometimes")
	if code := bad.wait(t); code != 2 {
		t.Errorf("-health sometimes exited %d; want 2", code)
	}
}

// load counts every request to each URL: a server's answers as ok with
// who answered, a closed port's as failures with their errors; on SIGTERM
// it prints the final totals, writes them to -out and exits 0.
func TestWhoamiLoad(t *testing.T) {
	t.Parallel()
	srv := start(t, "serve", "-listen", "127.0.0.1:0")
	l := srv.waitLine(t, "listening on ")
	up := "http://" + strings.TrimSpace(l[strings.Index(l, "listening on ")+len("listening on "):]) + "/"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/"
	ln.Close()                 // nothing listens there now: connections are refused
	notFound := up + "env"     // a 200 that is not whoami's answer
	bad := up + "crash?code=x" // a 400
	out := filepath.Join(t.TempDir(), "load.json")
	p := start(t, "load", "-every", "5ms", "-timeout", "1s", "-out", out, up, down, notFound, bad)

	var live LoadReport
	deadline := time.Now().Add(20 * time.Second)
	for {
		if data, err := os.ReadFile(out); err == nil {
			if live, err = ParseLoadReport(data); err != nil {
				t.Fatal(err)
			}
			if live.Target(up).OK >= 5 && live.Target(down).Failed >= 5 && live.Target(bad).Failed >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 5 answers and 5 failures in %s after 20s:\n%s", out, live.Summary())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if live.Final {
		t.Error("a report written while running says final")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("load exited %d after SIGTERM; stderr %s", code, p.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(p.stdout()), "\n")
	final, err := ParseLoadReport([]byte(lines[len(lines)-1]))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	onDisk, err := ParseLoadReport(data)
	if err != nil {
		t.Fatal(err)
	}
	if !final.Final || !onDisk.Final || onDisk.OK() != final.OK() || onDisk.Failed() != final.Failed() {
		t.Errorf("final on stdout: %v %d/%d; on disk: %v %d/%d", final.Final, final.OK(), final.Failed(), onDisk.Final, onDisk.OK(), onDisk.Failed())
	}
	host, _ := os.Hostname()
	u := final.Target(up)
	if u.Failed != 0 || u.OK < live.Target(up).OK || u.Answered[host] == nil || u.Answered[host].N != u.OK {
		t.Errorf("%s: %+v; want only ok answers, all by %s", up, u, host)
	}
	if d := final.Target(down); d.OK != 0 || d.Failed < 5 {
		t.Errorf("%s: %+v; want only failures", down, d)
	}
	if n := final.Target(notFound); n.OK == 0 || n.Failed != 0 || n.Answered[""] == nil {
		t.Errorf("%s: %+v; want only ok, by no one known", notFound, n)
	}
	if b := final.Target(bad); b.OK != 0 || b.Failed == 0 {
		t.Errorf("%s: %+v; want only failures (400)", bad, b)
	}
	if len(final.Failures) != final.Failed()-final.FailuresDropped {
		t.Errorf("%d failures kept of %d, %d dropped", len(final.Failures), final.Failed(), final.FailuresDropped)
	}
	var refused, status400 bool
	for _, f := range final.Failures {
		if f.Time.Before(final.Started) || f.Time.After(final.Written) {
			t.Errorf("failure at %s outside the run %s..%s", f.Time, final.Started, final.Written)
		}
		switch {
		case f.Target == down && strings.Contains(f.Error, "connection refused"):
			refused = true
		case f.Target == bad && strings.Contains(f.Error, "400 Bad Request"):
			status400 = true
		}
	}
	if !refused || !status400 {
		t.Errorf("failures do not say connection refused (%v) and 400 (%v):\n%s", refused, status400, final.Summary())
	}
	if code := start(t, "load").wait(t); code != 2 {
		t.Errorf("load with no URL exited %d; want 2", code)
	}
	if code := start(t, "load", "ftp://x/").wait(t); code != 2 {
		t.Errorf("load ftp://x/ exited %d; want 2", code)
	}
}
