package netoverlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// The lab: every device of these tests lives in network namespaces the test
// makes and deletes. A "switch" namespace holds a bridge; each host
// namespace has one veth (eth0, 192.168.77.N/24) whose other end is a port
// of that bridge; each container namespace starts empty and gets its
// interface from Plane.Attach. Nothing is created in, routed through or
// sent from the machine's own namespace.

const netnsDir = "/run/netns"

// labSeq makes each lab's namespace names unique within the process.
var labSeq atomic.Int32

type lab struct {
	t      *testing.T
	prefix string
	sw     string // the switch namespace's path
	hosts  []*host
}

// host is a node: a namespace on the switch with a Plane.
type host struct {
	name  string
	ns    string // path
	ip    netip.Addr
	plane *Plane
	lab   *lab
}

// ctr is a container namespace attached to one network.
type ctr struct {
	name string
	ns   string // path
	ip   netip.Prefix
	mac  net.HardwareAddr
	host *host
	net  string // network ID
}

func (c *ctr) addr(port int) string { return netip.AddrPortFrom(c.ip.Addr(), uint16(port)).String() }

func (c *ctr) peer() Peer { return Peer{IP: c.ip.Addr(), MAC: c.mac, Host: c.host.ip} }

// newLab makes the switch and two hosts, hostA (192.168.77.1) and hostB
// (192.168.77.2), each with a Plane. It skips the test when not root.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the data plane tests need root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the data plane tests need ip(8) to make network namespaces")
	}
	sweepStale()
	l := &lab{t: t, prefix: fmt.Sprintf("shoal-t%d-ov%d", os.Getpid(), labSeq.Add(1))}
	l.sw = l.netns("sw")
	sw := nsHandle(t, l.sw)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "br0"
	must(t, sw.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}))
	br, err := sw.LinkByName("br0")
	must(t, err)
	must(t, sw.LinkSetUp(br))
	for i, name := range []string{"hostA", "hostB"} {
		h := &host{name: name, ns: l.netns(name), ip: netip.AddrFrom4([4]byte{192, 168, 77, byte(i + 1)}), lab: l}
		hns, err := netns.GetFromPath(h.ns)
		must(t, err)
		port := netlink.NewLinkAttrs()
		port.Name = "p" + name
		port.MasterIndex = br.Attrs().Index
		err = sw.LinkAdd(&netlink.Veth{LinkAttrs: port, PeerName: "eth0", PeerNamespace: netlink.NsFd(hns), PeerTxQLen: -1})
		hns.Close()
		must(t, err)
		p, err := sw.LinkByName(port.Name)
		must(t, err)
		must(t, sw.LinkSetMaster(p, br))
		must(t, sw.LinkSetUp(p))
		hh := nsHandle(t, h.ns)
		eth, err := hh.LinkByName("eth0")
		must(t, err)
		must(t, hh.AddrAdd(eth, nlAddr(netip.PrefixFrom(h.ip, 24))))
		must(t, hh.LinkSetUp(eth))
		lo, err := hh.LinkByName("lo")
		must(t, err)
		must(t, hh.LinkSetUp(lo))
		h.plane, err = New(h.ns, zaptest.NewLogger(t).Named(name))
		must(t, err)
		t.Cleanup(func() { _ = h.plane.Close() })
		l.hosts = append(l.hosts, h)
	}
	return l
}

func (l *lab) A() *host { return l.hosts[0] }
func (l *lab) B() *host { return l.hosts[1] }

// netns makes a namespace and returns its path; the test's cleanup deletes
// it, however the test ends.
func (l *lab) netns(name string) string {
	l.t.Helper()
	full := l.prefix + "-" + name
	if out, err := exec.Command("ip", "netns", "add", full).CombinedOutput(); err != nil {
		l.t.Fatalf("ip netns add %s: %v: %s", full, err, strings.TrimSpace(string(out)))
	}
	l.t.Cleanup(func() { deleteNetns(l.t, full) })
	return filepath.Join(netnsDir, full)
}

func deleteNetns(t *testing.T, name string) {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
}

// sweepStale deletes the namespaces of earlier runs of these tests whose
// process is gone (killed before its cleanups ran). Nothing runs inside
// them: these tests start no processes.
var sweepOnce sync.Once

func sweepStale() {
	sweepOnce.Do(func() {
		ents, _ := os.ReadDir(netnsDir)
		for _, e := range ents {
			rest, ok := strings.CutPrefix(e.Name(), "shoal-t")
			if !ok {
				continue
			}
			pidPart, rest, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidPart)
			if err != nil || pid == os.Getpid() || !strings.HasPrefix(rest, "ov") {
				continue
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				continue
			}
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	})
}

// config is network id's Config on host h: VNI vni, subnet 10.77.<n>.0/24,
// gateway 10.77.<n>.1.
func (h *host) config(id string, vni uint32, n byte) Config {
	return Config{
		ID:          id,
		VNI:         vni,
		Subnet:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, n, 0}), 24),
		BridgeAddrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, n, 1}), 24)},
		Underlay:    h.ip,
	}
}

// ensure runs EnsureNetwork for network id on every host.
func (l *lab) ensure(id string, vni uint32, n byte) {
	l.t.Helper()
	for _, h := range l.hosts {
		must(l.t, h.plane.EnsureNetwork(h.config(id, vni, n)))
	}
}

// container makes a container namespace on h and attaches it to network
// id as eth0 with address ip (in 10.77.<n>.0/24) and a default route.
func (h *host) container(name, id, ip string) *ctr {
	t := h.lab.t
	t.Helper()
	c := &ctr{name: name, ns: h.lab.netns(name), ip: netip.MustParsePrefix(ip + "/24"), host: h, net: id}
	a := c.ip.Addr().As4()
	c.mac = net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
	must(t, h.plane.Attach(id, c.ns, "eth0", c.ip, c.mac, true))
	return c
}

// setPeers gives each host's Plane the containers of network id on the
// other hosts (SetPeers skips its own anyway; passing all proves that).
func (l *lab) setPeers(id string, ctrs ...*ctr) {
	l.t.Helper()
	var peers []Peer
	for _, c := range ctrs {
		peers = append(peers, c.peer())
	}
	for _, h := range l.hosts {
		must(l.t, h.plane.SetPeers(id, peers))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// nsHandle is a netlink handle in the namespace at path, closed at cleanup.
func nsHandle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	must(t, err)
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	must(t, err)
	t.Cleanup(h.Close)
	return h
}

// inNetns is InNetns, for the lab.
func inNetns(path string, fn func() error) error { return InNetns(path, fn) }

// echo listens on port inside c and echoes every connection until the
// test ends.
func (c *ctr) echo(port int) {
	t := c.host.lab.t
	t.Helper()
	var ln net.Listener
	must(t, inNetns(c.ns, func() (err error) {
		ln, err = net.Listen("tcp", c.addr(port))
		return err
	}))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// dialTimeout is how long one connection attempt may take. Inside one
// machine a working overlay connects in well under a millisecond.
const dialTimeout = 300 * time.Millisecond

// dial connects from inside c to addr.
func (c *ctr) dial(addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetns(c.ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		defer cancel()
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}

// exchange sends n bytes over conn and checks they come back.
func exchange(conn net.Conn, n int) error {
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	msg := make([]byte, n)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(msg)
		werr <- err
	}()
	got := make([]byte, n)
	_, rerr := io.ReadFull(conn, got)
	if err := errors.Join(<-werr, rerr); err != nil {
		return err
	}
	for i := range got {
		if got[i] != msg[i] {
			return fmt.Errorf("byte %d came back as %d, sent %d", i, got[i], msg[i])
		}
	}
	return nil
}

// reach waits until c can open a connection to addr and exchange n bytes
// over it, retrying failed attempts until a deadline.
func (c *ctr) reach(addr string, n int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := c.dial(addr)
		if err == nil {
			err = exchange(conn, n)
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cannot reach %s: %w", c.name, addr, err)
		}
		time.Sleep(pollInterval)
	}
}

// unreachable checks that c's connection attempt to addr times out: the
// packets are dropped, not refused.
func (c *ctr) unreachable(addr string) error {
	conn, err := c.dial(addr)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s connected to %s, which it should not reach", c.name, addr)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return fmt.Errorf("%s dialing %s: want a timeout, got %w", c.name, addr, err)
		}
	}
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(pollInterval)
	}
}

// pollInterval is how often a condition is checked again.
const pollInterval = 10 * time.Millisecond
