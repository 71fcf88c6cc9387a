package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-run/shoal/tests/testimage"
)

// A Net is a test network of hosts on one machine: a "switch" network
// namespace holding a Linux bridge, and per host a network namespace with
// one veth (eth0, 10.99.0.N/24) whose peer is a port of the bridge. Every
// device and address lives in namespaces the test made; the machine's own
// namespace, its routes and its uplink are never touched, so test traffic
// cannot leave. Daemons run in their host's namespace through
// `nsenter --net` (not `ip netns exec`, which remounts /sys and hides the
// cgroup mounts).
//
// Namespaces are named shoal-t<pid>-...; a stale-leftover sweep at NewNet
// removes those of test processes that no longer run, killing the
// processes still inside them first.
type Net struct {
	t      TB
	prefix string
	sw     string // switch namespace
	hosts  []*Host

	regOnce sync.Once
	reg     *testimage.Registry
}

// Host is one namespace on a Net.
type Host struct {
	Name string
	NS   string // namespace name under /run/netns
	IP   string
	net  *Net
}

const netnsDir = "/run/netns"

// hostSubnet is the hosts' subnet; each Net has its own switch namespace,
// so Nets never see each other's addresses.
const hostSubnet = "10.99.0"

// RegistryAddr is where every host reaches the Net's image registry: an
// address of the switch namespace's bridge. Daemons the harness starts on
// a Net list it as an insecure (plain HTTP) registry.
const RegistryAddr = hostSubnet + ".254:5000"

// NewNet makes the switch namespace and its bridge.
func NewNet(t TB) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root")
	}
	sweepStaleOnce()
	n := &Net{t: t, prefix: fmt.Sprintf("shoal-t%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)}
	n.sw = n.prefix + "-sw"
	t.Cleanup(n.remove)
	n.ip("netns", "add", n.sw)
	n.ip("-n", n.sw, "link", "set", "lo", "up")
	n.ip("-n", n.sw, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.sw, "link", "set", "br0", "up")
	n.ip("-n", n.sw, "addr", "add", strings.Split(RegistryAddr, ":")[0]+"/24", "dev", "br0")
	return n
}

// Registry is the Net's image registry, started on first use: one
// in-process registry serving on loopback (where the test pushes) and,
// through a listener opened inside the switch namespace, at RegistryAddr
// (where the hosts pull). It stops when the test ends.
func (n *Net) Registry() *testimage.Registry {
	n.t.Helper()
	n.regOnce.Do(func() {
		reg, err := testimage.StartRegistry()
		if err != nil {
			n.t.Fatal(err)
		}
		n.t.Cleanup(func() { reg.Close() })
		ln, err := (&Host{NS: n.sw}).Listen("tcp", RegistryAddr)
		if err != nil {
			n.t.Fatalf("registry in the switch namespace: %v", err)
		}
		reg.Also(ln)
		n.reg = reg
	})
	if n.reg == nil {
		n.t.Fatal("the Net's registry did not start")
	}
	return n.reg
}

// Push uploads img as repoTag and returns the reference the hosts pull,
// "10.99.0.254:5000/whoami:1".
func (n *Net) Push(img testimage.Built, repoTag string) string {
	n.t.Helper()
	reg := n.Registry()
	ref, err := reg.Push(img.Image, repoTag)
	if err != nil {
		n.t.Fatal(err)
	}
	return RegistryAddr + strings.TrimPrefix(ref, reg.Addr())
}

// ServeImage builds the whoami image with opts and pushes it as
// whoami:TAG; it returns the reference the hosts pull.
func (n *Net) ServeImage(opts testimage.Options) string {
	n.t.Helper()
	b, err := testimage.Build("", opts)
	if err != nil {
		n.t.Fatalf("%v", err)
	}
	return n.Push(b, "whoami:"+b.Tag)
}

func (n *Net) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// AddHost makes a host namespace plugged into the bridge.
func (n *Net) AddHost(name string) *Host {
	n.t.Helper()
	i := len(n.hosts) + 1
	h := &Host{Name: name, NS: fmt.Sprintf("%s-h%d", n.prefix, i), IP: fmt.Sprintf("%s.%d", hostSubnet, i), net: n}
	n.hosts = append(n.hosts, h)
	port := fmt.Sprintf("h%d", i)
	n.ip("netns", "add", h.NS)
	n.ip("-n", h.NS, "link", "set", "lo", "up")
	n.ip("-n", n.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	n.ip("-n", n.sw, "link", "set", port, "master", "br0")
	n.ip("-n", n.sw, "link", "set", port, "up")
	n.ip("-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.ip("-n", h.NS, "link", "set", "eth0", "up")
	return h
}

// Hosts lists the hosts in the order they were added.
func (n *Net) Hosts() []*Host { return append([]*Host{}, n.hosts...) }

// Command runs a program in the host's network namespace.
func (h *Host) Command(bin string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + filepath.Join(netnsDir, h.NS), "--", bin}, args...)...)
}

// NewNode prepares a daemon on the host, reachable on the host's address
// at the standard ports.
func (h *Host) NewNode(name string, args ...string) *Node {
	n := NewNode(h.net.t, name, append([]string{"--insecure-registry", RegistryAddr, "--hostname", h.Name, "--dns-upstream", "none"}, args...)...)
	n.Host = h
	n.Addr = h.IP + ":4242"
	n.RaftAddr = h.IP + ":4243"
	n.GossipAddr = h.IP + ":7946"
	n.Exec = h.Command
	return n
}

// remove kills what still runs in the namespaces and deletes them.
func (n *Net) remove() {
	for _, h := range n.hosts {
		RemoveNetns(h.NS)
	}
	RemoveNetns(n.sw)
}

// removeNetns kills the processes inside a namespace (by PID: they are
// provably the test's, being in its namespace) and deletes it; deleting
// it removes its veths, bridge and nftables tables with it.
func RemoveNetns(name string) {
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

// SweepNetns removes the namespaces of earlier test processes that died
// without cleaning up.
func SweepNetns() {
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "shoal-t") {
			continue
		}
		pidPart, _, _ := strings.Cut(strings.TrimPrefix(name, "shoal-t"), "-")
		pid, err := strconv.Atoi(pidPart)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // that test still runs
		}
		RemoveNetns(name)
	}
}

// StartNetCluster is StartCluster with each node on its own host of a new
// Net.
func StartNetCluster(t TB, managers, workers int, args ...string) (*Cluster, *Net) {
	t.Helper()
	net := NewNet(t)
	c := &Cluster{t: t}
	for i := 0; i < managers; i++ {
		n := net.AddHost(fmt.Sprintf("manager%d", i+1)).NewNode(fmt.Sprintf("manager%d", i+1), args...)
		n.Start()
		c.Managers = append(c.Managers, n)
	}
	for i := 0; i < workers; i++ {
		n := net.AddHost(fmt.Sprintf("worker%d", i+1)).NewNode(fmt.Sprintf("worker%d", i+1), args...)
		n.Start()
		c.Workers = append(c.Workers, n)
	}
	c.join()
	return c, net
}

// NetemBinary builds tests/cmd/netem once per test process.
func NetemBinary(t TB) string {
	t.Helper()
	return build(t, "./tests/cmd/netem", "netem")
}

// Impair delays every packet the host sends by delay and drops each with
// probability loss, until heal (also run at cleanup) is called; heal says
// how many packets were delayed and how many dropped. The kernel here has
// no sch_netem, so tests/cmd/netem does it with an nftables queue rule and
// a userspace verdict after the delay.
func (h *Host) Impair(delay time.Duration, loss float64) (heal func() (accepted, dropped int)) {
	t := h.net.t
	t.Helper()
	cmd := h.Command(NetemBinary(t), "-dev", "eth0", "-delay", delay.String(), "-loss", strconv.FormatFloat(loss, 'f', -1, 64), "-seed", strconv.Itoa(len(h.NS)+int(h.IP[len(h.IP)-1])))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok && strings.TrimSpace(sc.Text()) == "ready" {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	var (
		once              sync.Once
		accepted, dropped int
	)
	heal = func() (int, int) {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			// netem's last line: "netem: eth0: N packets accepted after D, M dropped (loss L)".
			for _, line := range strings.Split(stderr.String(), "\n") {
				if i := strings.Index(line, "netem: "); i >= 0 {
					var dev, d string
					if _, err := fmt.Sscanf(line[i:], "netem: %s %d packets accepted after %s %d dropped", &dev, &accepted, &d, &dropped); err != nil {
						accepted, dropped = -1, -1
					}
				}
			}
		})
		return accepted, dropped
	}
	t.Cleanup(func() { heal() })
	select {
	case ok := <-ready:
		if !ok {
			heal()
			t.Fatalf("netem on %s did not start: %s", h.Name, stderr.String())
		}
	case <-time.After(10 * time.Second):
		heal()
		t.Fatalf("netem on %s not ready in 10s: %s", h.Name, stderr.String())
	}
	return heal
}
