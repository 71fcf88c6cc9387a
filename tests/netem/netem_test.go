package netem_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/shoal-run/shoal/tests/harness"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/tests/netem"
)

// nsPrefix names this test's network namespaces: shoal-t<pid>-a/-b.
const nsPrefix = "shoal-t" // harness.SweepNetns removes those of dead test processes

// TestNetem proves the userspace netem really shapes a link: two network
// namespaces of the test's own joined by a veth pair, cmd/netem on A's end
// under nsenter, and UDP round trips from A to an echo server in B.
func TestNetem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces and nftables rules")
	}
	for _, tool := range []string{"ip", "nsenter", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
	}
	harness.SweepNetns()
	bin := harness.NetemBinary(t)
	l := newLink(t)

	echo := l.echoServer(t)
	client := l.client(t, echo)

	// The link works, unshaped.
	waitFor(t, 10*time.Second, "a round trip A->B", func() bool {
		return probe(client, 1, 0, 200*time.Millisecond).lost() == 0
	})
	base := probe(client, 20, 5*time.Millisecond, time.Second)
	t.Logf("no netem:        %s", base)
	if base.lost() != 0 || base.median() >= 50*time.Millisecond {
		t.Fatalf("unshaped link: %s; want no loss and median < 50ms", base)
	}

	// A leftover table (as from a netem that was SIGKILLed) is replaced.
	l.addLeftoverTable(t)

	const delay = 100 * time.Millisecond
	n := startNetem(t, l, bin, "-dev", l.devA, "-delay", delay.String(), "-loss", "0", "-queue", "7")
	if chains := l.tableChains(t); !slices.Equal(chains, []string{netem.ChainName}) {
		t.Fatalf("while netem runs, table inet %s has chains %q; want just %q (the leftover replaced)", netem.TableName, chains, netem.ChainName)
	}
	delayed := probe(client, 50, 10*time.Millisecond, time.Second)
	t.Logf("delay 100ms:     %s", delayed)
	if delayed.lost() != 0 {
		t.Errorf("delay only: lost %d of %d probes; want none", delayed.lost(), delayed.sent)
	}
	if len(delayed.rtts) > 0 {
		if m := delayed.median(); m < delay || m >= 400*time.Millisecond {
			t.Errorf("delay 100ms: median round trip %v; want >= %v and < 400ms", m, delay)
		}
		if m := delayed.min(); m < delay {
			t.Errorf("delay 100ms: fastest round trip %v beat the delay: a packet escaped the queue", m)
		}
	}

	// Stopping netem while it holds packets releases them, loses none.
	inflight := make(chan probes, 1)
	go func() { inflight <- probe(client, 60, 5*time.Millisecond, time.Second) }()
	waitFor(t, 5*time.Second, "probes held in netem's queue", func() bool { return n.queued(t) >= 10 })
	n.stop(t)
	stopped := <-inflight
	t.Logf("stop under load: %s", stopped)
	if stopped.lost() != 0 {
		t.Errorf("stopping netem with probes in its queue lost %d of %d; want none", stopped.lost(), stopped.sent)
	}
	if l.tableExists(t) {
		t.Fatalf("netem exited but table inet %s is still in namespace A", netem.TableName)
	}

	n = startNetem(t, l, bin, "-dev", l.devA, "-delay", delay.String(), "-loss", "0.5", "-queue", "7", "-seed", "42")
	lossy := probe(client, 200, 5*time.Millisecond, 1500*time.Millisecond)
	t.Logf("delay+loss 0.5:  %s", lossy)
	// Binomial(200, 0.5) has sd ~7: 40..160 is ~8.5 sd either way.
	if lossy.lost() == 0 || lossy.lost() == lossy.sent || lossy.lost() < 40 || lossy.lost() > 160 {
		t.Errorf("loss 0.5: lost %d of %d probes; want some but not all (40..160)", lossy.lost(), lossy.sent)
	}
	if len(lossy.rtts) > 0 && lossy.min() < delay {
		t.Errorf("loss 0.5: fastest round trip %v beat the 100ms delay", lossy.min())
	}
	n.stop(t)
	if l.tableExists(t) {
		t.Fatalf("netem exited but table inet %s is still in namespace A", netem.TableName)
	}

	// A SIGKILLed netem cannot clean up, but its rule's bypass flag lets
	// traffic through undelayed, and the next netem clears the table.
	n = startNetem(t, l, bin, "-dev", l.devA, "-delay", delay.String(), "-queue", "7")
	n.kill(t)
	if !l.tableExists(t) {
		t.Fatalf("a SIGKILLed netem left no table inet %s; the bypass check below proves nothing", netem.TableName)
	}
	bypass := probe(client, 20, 5*time.Millisecond, time.Second)
	t.Logf("netem killed:    %s", bypass)
	if bypass.lost() != 0 || bypass.median() >= 50*time.Millisecond {
		t.Errorf("rule left by a killed netem: %s; want no loss and median < 50ms (queue bypass)", bypass)
	}
	startNetem(t, l, bin, "-dev", l.devA, "-queue", "7").stop(t)

	// Nothing left behind: no table, and the link is fast again.
	if l.tableExists(t) {
		t.Fatalf("netem exited but table inet %s is still in namespace A", netem.TableName)
	}
	after := probe(client, 20, 5*time.Millisecond, time.Second)
	t.Logf("netem stopped:   %s", after)
	if after.lost() != 0 || after.median() >= 50*time.Millisecond {
		t.Errorf("after netem: %s; want no loss and median < 50ms", after)
	}
}

// link is two namespaces joined by a veth pair, 10.199.<x>.1 in A and .2
// in B. Nothing is added to the machine's own namespace.
type link struct {
	nsA, nsB   string
	devA, devB string
	ipA, ipB   net.IP
}

func newLink(t *testing.T) *link {
	t.Helper()
	pid := os.Getpid()
	x := pid%250 + 1
	l := &link{
		nsA:  fmt.Sprintf("%s%d-a", nsPrefix, pid),
		nsB:  fmt.Sprintf("%s%d-b", nsPrefix, pid),
		devA: "netem-a",
		devB: "netem-b",
		ipA:  net.IPv4(10, 199, byte(x), 1),
		ipB:  net.IPv4(10, 199, byte(x), 2),
	}
	t.Cleanup(func() { harness.RemoveNetns(l.nsA); harness.RemoveNetns(l.nsB) })
	for _, args := range [][]string{
		{"netns", "add", l.nsA},
		{"netns", "add", l.nsB},
		{"-n", l.nsA, "link", "set", "lo", "up"},
		{"-n", l.nsB, "link", "set", "lo", "up"},
		// Made inside A with its peer put straight into B: the veth never
		// exists in the root namespace.
		{"-n", l.nsA, "link", "add", l.devA, "type", "veth", "peer", "name", l.devB, "netns", l.nsB},
		{"-n", l.nsA, "addr", "add", l.ipA.String() + "/24", "dev", l.devA},
		{"-n", l.nsB, "addr", "add", l.ipB.String() + "/24", "dev", l.devB},
		{"-n", l.nsA, "link", "set", l.devA, "up"},
		{"-n", l.nsB, "link", "set", l.devB, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return l
}

// inNetns runs fn on an OS thread switched into namespace ns; sockets fn
// opens belong to ns and may be used from any goroutine afterwards.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// instead of running others in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// echoServer starts a UDP echo server in B and returns its address.
func (l *link) echoServer(t *testing.T) *net.UDPAddr {
	t.Helper()
	var conn *net.UDPConn
	err := inNetns(l.nsB, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: l.ipB})
		return err
	})
	if err != nil {
		t.Fatalf("echo server in %s: %v", l.nsB, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteToUDP(buf[:n], from)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr)
}

// client opens a UDP socket in A connected to the echo server.
func (l *link) client(t *testing.T, server *net.UDPAddr) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := inNetns(l.nsA, func() (err error) {
		conn, err = net.DialUDP("udp4", &net.UDPAddr{IP: l.ipA}, server)
		return err
	})
	if err != nil {
		t.Fatalf("client in %s: %v", l.nsA, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// nft opens an nftables connection into namespace A.
func (l *link) nft(t *testing.T) *nftables.Conn {
	t.Helper()
	fd, err := unix.Open(filepath.Join("/run/netns", l.nsA), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (l *link) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: netem.TableName}
}

// addLeftoverTable makes a shoal_netem table with a stray chain in A.
func (l *link) addLeftoverTable(t *testing.T) {
	t.Helper()
	c := l.nft(t)
	c.AddChain(&nftables.Chain{Name: "leftover", Table: c.AddTable(l.table())})
	if err := c.Flush(); err != nil {
		t.Fatalf("add leftover table: %v", err)
	}
}

func (l *link) tableExists(t *testing.T) bool {
	t.Helper()
	tables, err := l.nft(t).ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list nftables tables in %s: %v", l.nsA, err)
	}
	return slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == netem.TableName })
}

func (l *link) tableChains(t *testing.T) []string {
	t.Helper()
	chains, err := l.nft(t).ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list nftables chains in %s: %v", l.nsA, err)
	}
	var names []string
	for _, c := range chains {
		if c.Table.Name == netem.TableName {
			names = append(names, c.Name)
		}
	}
	return names
}

// probes is the outcome of one probe run.
type probes struct {
	sent int
	rtts []time.Duration // of the replies, sorted
}

func (p probes) lost() int { return p.sent - len(p.rtts) }

func (p probes) min() time.Duration {
	if len(p.rtts) == 0 {
		return 0
	}
	return p.rtts[0]
}

func (p probes) median() time.Duration {
	if len(p.rtts) == 0 {
		return 0
	}
	return p.rtts[len(p.rtts)/2]
}

func (p probes) String() string {
	if len(p.rtts) == 0 {
		return fmt.Sprintf("%d probes, all lost", p.sent)
	}
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d probes, %d lost; rtt min %v median %v max %v",
		p.sent, p.lost(), r(p.min()), r(p.median()), r(p.rtts[len(p.rtts)-1]))
}

var probeRound uint32

// probe sends n UDP probes, one every interval, and collects the echoes
// until all are back or wait has passed since the last was sent. Each
// probe carries a round number so a late echo from an earlier run is not
// counted.
func probe(conn *net.UDPConn, n int, interval, wait time.Duration) probes {
	probeRound++
	round := probeRound
	var mu sync.Mutex
	sentAt := make([]time.Time, n)
	var rtts []time.Duration

	// A first deadline past the whole run, brought forward to wait after
	// the last send once that is done.
	_ = conn.SetReadDeadline(time.Now().Add(time.Duration(n)*interval + wait + time.Second))
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		got := make([]bool, n)
		buf := make([]byte, 64)
		for len(rtts) < n {
			m, err := conn.Read(buf)
			now := time.Now()
			if err != nil {
				return
			}
			if m != 8 || binary.BigEndian.Uint32(buf[0:4]) != round {
				continue
			}
			i := binary.BigEndian.Uint32(buf[4:8])
			mu.Lock()
			if int(i) < n && !got[i] && !sentAt[i].IsZero() {
				got[i] = true
				rtts = append(rtts, now.Sub(sentAt[i]))
			}
			mu.Unlock()
		}
	}()

	pkt := make([]byte, 8)
	binary.BigEndian.PutUint32(pkt[0:4], round)
	tick := time.NewTicker(max(interval, time.Millisecond))
	for i := range n {
		if i > 0 {
			<-tick.C
		}
		binary.BigEndian.PutUint32(pkt[4:8], uint32(i))
		mu.Lock()
		sentAt[i] = time.Now()
		mu.Unlock()
		_, _ = conn.Write(pkt)
	}
	tick.Stop()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	<-recvDone
	_ = conn.SetReadDeadline(time.Time{})
	slices.Sort(rtts)
	return probes{sent: n, rtts: rtts}
}

// netemProc is a running cmd/netem.
type netemProc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when Wait returned
	err    error         // Wait's result, once done is closed
	stderr *lockedBuffer
}

// startNetem runs cmd/netem in namespace A through nsenter and waits for
// its "ready" line.
func startNetem(t *testing.T, l *link, bin string, args ...string) *netemProc {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + filepath.Join("/run/netns", l.nsA), "--", bin}, args...)...)
	// nsenter execs netem in place (same PID); if the test dies, so does it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &netemProc{cmd: cmd, done: make(chan struct{}), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start netem: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill() // by PID
			<-p.done
		}
		if t.Failed() {
			t.Logf("netem %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("netem exited before ready: %v\n%s", p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("netem not ready after 30s\n%s", p.stderr.String())
	}
	return p
}

// kill sends SIGKILL and waits for the process to go.
func (p *netemProc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("netem still running 10s after SIGKILL")
	}
}

// queued is how many packets the kernel holds in netem's queue awaiting
// a verdict, from netem's own view of /proc/net/netfilter/nfnetlink_queue
// (fields: queue, portid, queue_total, ...).
func (p *netemProc) queued(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_queue", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			n, _ := strconv.Atoi(f[2])
			total += n
		}
	}
	return total
}

// stop sends SIGTERM and requires a clean exit.
func (p *netemProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("netem did not exit 10s after SIGTERM\n%s", p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("netem exited with %v\n%s", p.err, p.stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		t.Logf("netem stderr: %s", line)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}
