package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Dev is a running `shoal dev`: a one-node cluster in a directory of its
// own, with this test process as its owner (its cgroup parent names the
// PID and its directory holds the owner file), so SweepStale removes what
// it leaves if the test process is killed.
type Dev struct {
	// Dir is the dev cluster's directory (socket and data).
	Dir string
	// Host is the CLI's -H value.
	Host         string
	CgroupParent string
	cmd          *exec.Cmd
}

var devSock = regexp.MustCompile(`SHOAL_HOST=(unix://\S+)`)

// StartDev runs `shoal dev` on a free loopback port until the test ends.
func StartDev(t TB) *Dev {
	t.Helper()
	sweepStaleOnce()
	bin := Binary(t)
	d := &Dev{CgroupParent: fmt.Sprintf("%s%d-dev-%d", cgroupPrefix, os.Getpid(), time.Now().UnixNano()%1e9)}
	d.cmd = exec.Command(bin, "dev", "--listen-addr", fmt.Sprintf("127.0.0.1:%d", FreePort(t)), "--cgroup-parent", d.CgroupParent)
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		_ = d.cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := devSock.FindStringSubmatch(sc.Text()); m != nil {
			d.Host = m[1]
			break
		}
	}
	if d.Host == "" {
		t.Fatal("shoal dev printed no SHOAL_HOST")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	// shoal dev keeps its data in the socket's directory.
	d.Dir = filepath.Dir(strings.TrimPrefix(d.Host, "unix://"))
	if err := os.WriteFile(filepath.Join(d.Dir, ownerFile), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// PID is the dev process's.
func (d *Dev) PID() int { return d.cmd.Process.Pid }

// Running lists the containers really running in the dev cluster.
func (d *Dev) Running() []Container { return RunningIn(filepath.Join(d.Dir, "data"), d.CgroupParent) }

// CLI runs the shoal CLI against the dev cluster.
func (d *Dev) CLI(args ...string) (string, error) {
	c := exec.Command(d.cmd.Path, append([]string{"-H", d.Host}, args...)...)
	var o, e strings.Builder
	c.Stdout, c.Stderr = &o, &e
	if err := c.Run(); err != nil {
		return o.String(), fmt.Errorf("shoal %s: %v: %s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), nil
}
