// Package harness runs real `shoal daemon` processes for end-to-end tests:
// it builds the binary once, gives each node its own data dir, socket and
// loopback ports, forms clusters with real join tokens, and kills what it
// started (by PID) when the test ends, pass or fail.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/cgroup"
)

// TB is the part of testing.TB the harness uses, so programs (the demo,
// benchmarks) can drive it too.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

var builds struct {
	sync.Mutex
	paths map[string]string // package -> binary
	errs  map[string]error
}

// Binary builds cmd/shoal once per test process and returns its path.
// SHOAL_BIN overrides it with a prebuilt binary.
func Binary(t TB) string {
	t.Helper()
	if p := os.Getenv("SHOAL_BIN"); p != "" {
		return p
	}
	return build(t, "./cmd/shoal", "shoal")
}

// build compiles a main package of this module once per process.
func build(t TB, pkg, name string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if builds.paths == nil {
		builds.paths, builds.errs = map[string]string{}, map[string]error{}
	}
	if err := builds.errs[pkg]; err != nil {
		t.Fatal(err)
	}
	if p, ok := builds.paths[pkg]; ok {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir, err := os.MkdirTemp("", "shoal-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	// Static, as `make build` makes it: the daemon without an embedded
	// shim runs itself as the shim, and an exec (a CMD health check) runs
	// that binary inside the container's root, where no libc may be.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		builds.errs[pkg] = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		t.Fatal(builds.errs[pkg])
	}
	builds.paths[pkg] = bin
	return bin
}

// RemoveBinary deletes the binaries the harness built; call it from
// TestMain.
func RemoveBinary() {
	builds.Lock()
	defer builds.Unlock()
	for pkg, p := range builds.paths {
		os.RemoveAll(filepath.Dir(p))
		delete(builds.paths, pkg)
	}
}

// Node is one daemon process.
type Node struct {
	t    TB
	Name string
	Bin  string
	Dir  string
	// ExecRoot is the daemon's --exec-root, in Dir and not in its data
	// dir: the tmpfs of its tasks' secrets and configs are mounted under
	// ExecRoot/secrets.
	ExecRoot   string
	Socket     string
	Addr       string // gRPC address
	RaftAddr   string
	GossipAddr string
	// CgroupParent is unique per node so its containers can be found and
	// removed after the test.
	CgroupParent string
	Args         []string // extra daemon flags
	// Exec runs the daemon; nil means directly. The netns harness wraps
	// it with nsenter.
	Exec func(bin string, args ...string) *exec.Cmd
	// Host is the network namespace the node runs in; nil for loopback.
	Host *Host

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// NewNode prepares a node on loopback; Start runs it.
func NewNode(t TB, name string, args ...string) *Node {
	t.Helper()
	sweepStaleOnce()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Node{
		t: t, Name: name, Bin: Binary(t), Dir: dir,
		CgroupParent: fmt.Sprintf("%s%d-%s-%d", cgroupPrefix, os.Getpid(), name, time.Now().UnixNano()%1e9),
		Socket:       filepath.Join(dir, "shoal.sock"),
		ExecRoot:     filepath.Join(dir, "exec"),
		Addr:         fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		RaftAddr:     fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		GossipAddr:   FreeAddr(t),
		Args:         args,
	}
	t.Cleanup(func() {
		n.Kill()
		n.reapContainers()
		if t.Failed() {
			n.dumpLog()
		}
	})
	return n
}

// KillHost kills the daemon and every container it ran, as if the
// machine died.
func (n *Node) KillHost() {
	n.Kill()
	n.reapContainers()
}

// reapContainers kills the containers the node's daemon left running (they
// outlive the daemon by design), and removes their mounts and cgroups.
func (n *Node) reapContainers() {
	// Shims of containers caught half-started have no state file yet:
	// every process whose command line names this node's directory is
	// this node's.
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if pid, err := strconv.Atoi(p.Name()); err == nil && pid != os.Getpid() &&
			strings.Contains(readFile(fmt.Sprintf("/proc/%d/cmdline", pid)), n.Dir+"/") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	root := filepath.Join(n.Dir, "data", "runtime", "containers")
	dirs, _ := os.ReadDir(root)
	for _, d := range dirs {
		var st struct {
			Pid     int `json:"pid"`
			ShimPid int `json:"shim_pid"`
		}
		data, err := os.ReadFile(filepath.Join(root, d.Name(), "state.json"))
		if err == nil && json.Unmarshal(data, &st) == nil {
			// Only processes that are provably this node's: the
			// workload by its cgroup, the shim by its command line.
			if st.Pid > 0 && strings.Contains(readFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid)), n.CgroupParent) {
				_ = syscall.Kill(st.Pid, syscall.SIGKILL)
			}
			if st.ShimPid > 0 && strings.Contains(readFile(fmt.Sprintf("/proc/%d/cmdline", st.ShimPid)), n.Dir) {
				_ = syscall.Kill(st.ShimPid, syscall.SIGKILL)
			}
		}
		_ = syscall.Unmount(filepath.Join(root, d.Name(), "rootfs"), syscall.MNT_DETACH)
	}
	// The tmpfs of its tasks' secrets and configs.
	tmpfs, _ := filepath.Glob(filepath.Join(n.ExecRoot, "secrets", "*"))
	for _, p := range tmpfs {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
	// The groups empty as the processes die.
	deadline := time.Now().Add(5 * time.Second)
	for _, sub := range cgroup.ParentDirs(n.CgroupParent) {
		kids, _ := os.ReadDir(sub)
		for _, k := range kids {
			if k.IsDir() {
				for os.Remove(filepath.Join(sub, k.Name())) != nil && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
		_ = os.Remove(sub)
	}
}

// DaemonLog is what the daemon logged so far.
func (n *Node) DaemonLog() string { return readFile(filepath.Join(n.Dir, "daemon.log")) }

// LogCount counts the daemon's log lines containing s, across restarts.
func (n *Node) LogCount(s string) int { return strings.Count(n.DaemonLog(), s) }

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func (n *Node) dumpLog() {
	data, err := os.ReadFile(filepath.Join(n.Dir, "daemon.log"))
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	n.t.Logf("--- last lines of %s's log ---\n%s", n.Name, strings.Join(lines, "\n"))
}

// Start runs the daemon and waits until its socket answers.
func (n *Node) Start() {
	n.t.Helper()
	if err := n.StartErr(); err != nil {
		n.t.Fatal(err)
	}
}

// StartErr is Start returning its error.
func (n *Node) StartErr(extra ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done: // it exited by itself: start it again
		default:
			return fmt.Errorf("%s already running", n.Name)
		}
	}
	args := append([]string{"daemon", "--data-dir", filepath.Join(n.Dir, "data"), "--exec-root", n.ExecRoot, "--socket", n.Socket,
		"--listen-addr", n.Addr, "--raft-addr", n.RaftAddr, "--gossip-addr", n.GossipAddr, "--log-level", "debug", "--cgroup-parent", n.CgroupParent}, n.Args...)
	args = append(args, extra...)
	var cmd *exec.Cmd
	if n.Exec != nil {
		cmd = n.Exec(n.Bin, args...)
	} else {
		cmd = exec.Command(n.Bin, args...)
	}
	f, err := os.OpenFile(filepath.Join(n.Dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	n.cmd, n.log, n.done = cmd, f, make(chan struct{})
	done := n.done
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			n.cmd = nil
			data, _ := os.ReadFile(filepath.Join(n.Dir, "daemon.log"))
			return fmt.Errorf("%s exited at start:\n%s", n.Name, tail(string(data), 20))
		default:
		}
		if c, err := net.Dial("unix", n.Socket); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not open its socket in time", n.Name)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PID is the daemon's process ID, 0 when stopped or when it exited by
// itself (crashed).
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	select {
	case <-n.done:
		return 0
	default:
		return n.cmd.Process.Pid
	}
}

// Running reports whether the process runs: started, not stopped, and
// not exited by itself.
func (n *Node) Running() bool { return n.PID() != 0 }

// Kill sends SIGKILL to the process this harness started and waits.
func (n *Node) Kill() { n.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop() { n.signal(syscall.SIGTERM) }

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Freeze stops the process with SIGSTOP; Thaw resumes it.
func (n *Node) Freeze() { n.sendOnly(syscall.SIGSTOP) }

// Thaw resumes a frozen process.
func (n *Node) Thaw() { n.sendOnly(syscall.SIGCONT) }

func (n *Node) sendOnly(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(sig)
	}
}

// CLI runs a shoal command against this node's socket.
func (n *Node) CLI(args ...string) (string, error) {
	out, _, err := n.CLIOut(args...)
	return out, err
}

// CLIOut is CLI with the command's standard error apart too.
func (n *Node) CLIOut(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, append([]string{"-H", "unix://" + n.Socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("shoal %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), nil
}

// MustCLI is CLI failing the test on error.
func (n *Node) MustCLI(args ...string) string {
	n.t.Helper()
	out, err := n.CLI(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// ID is the node's ID in its cluster, from its state file; empty before
// it joined or after it left.
func (n *Node) ID() string {
	var st struct {
		NodeID string `json:"node_id"`
	}
	_ = json.Unmarshal([]byte(readFile(filepath.Join(n.Dir, "data", "state.json"))), &st)
	return st.NodeID
}

// CertDir is where the node keeps its certificates.
func (n *Node) CertDir() string { return filepath.Join(n.Dir, "data", "certificates") }

// Conn dials the node's gRPC address with its own certificate, or, for a
// node in a network namespace the test process cannot route to or one
// whose key is sealed (autolock), its local socket, which relays to the
// same API.
func (n *Node) Conn() *grpc.ClientConn {
	n.t.Helper()
	if n.Host != nil || n.keySealed() {
		return n.LocalConn()
	}
	return n.DialWithCert(n.Addr)
}

// keySealed reports whether the node's TLS key is sealed (autolock): only
// its daemon can open it, so the test reaches the node through its local
// socket.
func (n *Node) keySealed() bool {
	return strings.Contains(readFile(filepath.Join(n.CertDir(), "node.key")), "SEALED PRIVATE KEY")
}

// LocalConn dials the node's local socket, as the CLI does by default.
func (n *Node) LocalConn() *grpc.ClientConn {
	n.t.Helper()
	c, err := grpc.NewClient("unix://"+n.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

// DialWithCert dials addr presenting this node's certificate.
func (n *Node) DialWithCert(addr string) *grpc.ClientConn {
	n.t.Helper()
	id, err := tlsutil.Files{Dir: n.CertDir()}.Load()
	if err != nil {
		n.t.Fatalf("%s certificates: %v", n.Name, err)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(id.ClientConfig())))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

// Control is a ControlService client over mutual TLS with the node's
// certificate (which must be a manager's to be allowed).
func (n *Node) Control() shoalv1.ControlServiceClient {
	return shoalv1.NewControlServiceClient(n.Conn())
}

// Cluster is a set of nodes joined together.
type Cluster struct {
	t        TB
	Managers []*Node
	Workers  []*Node
}

// StartCluster starts managers+workers daemons and joins them.
func StartCluster(t TB, managers, workers int, args ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for i := 0; i < managers; i++ {
		n := NewNode(t, fmt.Sprintf("manager%d", i+1), args...)
		n.Start()
		c.Managers = append(c.Managers, n)
	}
	for i := 0; i < workers; i++ {
		n := NewNode(t, fmt.Sprintf("worker%d", i+1), args...)
		n.Start()
		c.Workers = append(c.Workers, n)
	}
	c.join()
	return c
}

// NewCluster forms a cluster of started nodes: swarm init on the first
// manager, swarm join with the manager or worker token on the others.
func NewCluster(t TB, managers, workers []*Node) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Managers: managers, Workers: workers}
	c.join()
	return c
}

// join initializes the swarm on the first manager and joins the others
// with real tokens.
func (c *Cluster) join() {
	first := c.Managers[0]
	first.MustCLI("swarm", "init", "--advertise-addr", first.Addr)
	mtok := strings.TrimSpace(first.MustCLI("swarm", "join-token", "-q", "manager"))
	wtok := strings.TrimSpace(first.MustCLI("swarm", "join-token", "-q", "worker"))
	for _, n := range c.Managers[1:] {
		n.MustCLI("swarm", "join", "--token", mtok, "--advertise-addr", n.Addr, first.Addr)
	}
	for _, n := range c.Workers {
		n.MustCLI("swarm", "join", "--token", wtok, "--advertise-addr", n.Addr, first.Addr)
	}
}

// Nodes returns every node.
func (c *Cluster) Nodes() []*Node { return append(append([]*Node{}, c.Managers...), c.Workers...) }

// Except lists the cluster's nodes but some.
func (c *Cluster) Except(skip ...*Node) []*Node {
	var out []*Node
next:
	for _, n := range c.Nodes() {
		for _, s := range skip {
			if n == s {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// Leader finds the manager that leads, waiting up to timeout.
func (c *Cluster) Leader(timeout time.Duration) *Node {
	c.t.Helper()
	var leader *Node
	Eventually(c.t, timeout, func() error {
		for _, m := range c.Managers {
			if !m.Running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := m.Control().ListNodes(ctx, &shoalv1.ListNodesRequest{})
			cancel()
			if err != nil {
				continue
			}
			for _, n := range resp.GetNodes() {
				if n.GetManagerStatus().GetLeader() {
					for _, mm := range c.Managers {
						if mm.Addr == n.GetManagerStatus().GetAddr() && mm.Running() {
							leader = mm
							return nil
						}
					}
				}
			}
		}
		return errors.New("no running leader")
	})
	return leader
}

// Eventually retries fn until it returns nil or timeout passes.
func Eventually(t TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Holds checks that fn keeps returning nil for d, polling as Eventually
// does: an absence (nothing new started) shown for a bounded time. Keep d
// short, a few times the delay after which the absent thing would appear.
func Holds(t TB, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := fn(); err != nil {
			t.Fatalf("after %s of %s: %v", d-time.Until(deadline).Round(time.Millisecond), d, err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
