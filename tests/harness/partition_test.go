package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
)

// cutTimeout is how long a dial to a cut-off host is given. A dropped SYN
// is never answered, so the dial ends by this deadline and not sooner;
// a refusal (RST) or an unreachable error would end it early and with
// another error.
const cutTimeout = 300 * time.Millisecond

// partitionNet makes a Net of three hosts, each running a TCP echo server
// on its eth0 address; it returns the hosts and their servers' addresses.
func partitionNet(t *testing.T) (a, b, c *Host, echo map[*Host]string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partitions need root for network namespaces and nftables")
	}
	n := NewNet(t)
	a, b, c = n.AddHost("a"), n.AddHost("b"), n.AddHost("c")
	echo = map[*Host]string{}
	for _, h := range []*Host{a, b, c} {
		echo[h] = startEcho(t, h)
	}
	return a, b, c, echo
}

// startEcho serves TCP echo on the host's address until the test ends; the
// cleanup closes the listener and every accepted connection and waits for
// all the goroutines it started.
func startEcho(t *testing.T, h *Host) string {
	t.Helper()
	ln, err := h.Listen("tcp", net.JoinHostPort(h.IP, "0"))
	if err != nil {
		t.Fatalf("echo listener on %s: %v", h.Name, err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener was closed
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// roundTrip connects from h to addr within timeout and checks that a
// message comes back.
func roundTrip(h *Host, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoOnce(c, "ping from "+h.Name, time.Now().Add(5*time.Second))
}

// echoOnce writes msg on c and reads it back by deadline.
func echoOnce(c net.Conn, msg string, deadline time.Time) error {
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo = %q, want %q", buf, msg)
	}
	return nil
}

func mustReach(t *testing.T, from, to *Host, addr string) {
	t.Helper()
	if err := roundTrip(from, addr, 5*time.Second); err != nil {
		t.Fatalf("%s -> %s (%s): %v", from.Name, to.Name, addr, err)
	}
}

// mustBeCut checks that a dial from one host to the other runs into its
// deadline: the SYN (or the SYN-ACK) is dropped, neither refused nor
// reported unreachable.
func mustBeCut(t *testing.T, from, to *Host, addr string) {
	t.Helper()
	start := time.Now()
	err := roundTrip(from, addr, cutTimeout)
	// The dialer reports the context's deadline as context.DeadlineExceeded
	// or as a net.Error whose Timeout is true ("i/o timeout"), depending on
	// where in the connect it fell.
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("%s -> %s (%s) connected through the partition", from.Name, to.Name, addr)
	case !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()):
		t.Fatalf("%s -> %s (%s) failed with %v after %v; want the dial to time out (packets dropped silently)", from.Name, to.Name, addr, err, time.Since(start))
	}
}

func mustHaveNoTable(t *testing.T, h *Host) {
	t.Helper()
	var names []string
	err := withNftables(h, func(c *nftables.Conn) error {
		tables, err := c.ListTables()
		for _, tb := range tables {
			names = append(names, tb.Name)
		}
		return err
	})
	if err != nil {
		t.Fatalf("list nftables tables in %s: %v", h.Name, err)
	}
	if slices.Contains(names, partitionTable) {
		t.Fatalf("table %s still in %s's namespace after heal (tables: %v)", partitionTable, h.Name, names)
	}
	if ok, err := h.hasPartitionTable(); err != nil || ok {
		t.Fatalf("hasPartitionTable(%s) = %v, %v after heal; want false, nil", h.Name, ok, err)
	}
}

// cutAddrs reads back the addresses in the host's partition set, sorted.
func cutAddrs(t *testing.T, h *Host) []string {
	t.Helper()
	var addrs []string
	err := withNftables(h, func(c *nftables.Conn) error {
		table := &nftables.Table{Family: nftables.TableFamilyINet, Name: partitionTable}
		set, err := c.GetSetByName(table, partitionSet)
		if err != nil {
			return err
		}
		elems, err := c.GetSetElements(set)
		for _, e := range elems {
			addrs = append(addrs, net.IP(e.Key).String())
		}
		return err
	})
	if err != nil {
		t.Fatalf("read set %s in %s: %v", partitionSet, h.Name, err)
	}
	slices.Sort(addrs)
	return addrs
}

// TestPartition cuts A off from B, checks both directions and an
// established connection, that C is untouched, and that heal restores
// everything and leaves no table behind.
func TestPartition(t *testing.T) {
	a, b, c, echo := partitionNet(t)
	mustReach(t, a, b, echo[b])
	mustReach(t, a, c, echo[c])

	// A connection made before the cut, to show that it stalls.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	est, err := a.DialContext(ctx, "tcp", echo[b])
	if err != nil {
		t.Fatalf("dial %s -> %s: %v", a.Name, b.Name, err)
	}
	defer est.Close()
	if err := echoOnce(est, "before", time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("established %s -> %s before the cut: %v", a.Name, b.Name, err)
	}

	heal := a.Partition(b)
	if ok, err := a.hasPartitionTable(); err != nil || !ok {
		t.Fatalf("hasPartitionTable(%s) = %v, %v after Partition; want true, nil", a.Name, ok, err)
	}
	if got, want := cutAddrs(t, a), []string{b.IP}; !slices.Equal(got, want) {
		t.Fatalf("cut set of %s = %v, want %v", a.Name, got, want)
	}

	// The established connection: the write is buffered, the echo never
	// comes back, and nothing resets the connection.
	if err := est.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(est, "during"); err != nil {
		t.Fatalf("write on the established connection during the cut: %v", err)
	}
	buf := make([]byte, len("during"))
	if n, err := io.ReadFull(est, buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on the established connection during the cut = %d bytes, %v; want a timeout", n, err)
	}

	mustBeCut(t, a, b, echo[b])
	mustBeCut(t, b, a, echo[a])
	mustReach(t, a, c, echo[c])
	mustReach(t, c, a, echo[a])
	mustReach(t, b, c, echo[c])

	heal()
	mustHaveNoTable(t, a)
	heal() // idempotent
	mustReach(t, a, b, echo[b])
	mustReach(t, b, a, echo[a])

	// The stalled connection survived: TCP retransmits once the cut is
	// healed and the echo of what was written during the cut arrives.
	if err := est.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(est, buf); err != nil {
		t.Fatalf("established connection after heal: %v", err)
	}
	if string(buf) != "during" {
		t.Fatalf("established connection after heal echoed %q, want %q", buf, "during")
	}
	if err := echoOnce(est, "after", time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("established connection after heal: %v", err)
	}
}

// TestPartitionAll cuts A off from every other host and the registry
// address.
func TestPartitionAll(t *testing.T) {
	a, b, c, echo := partitionNet(t)
	heal := a.Partition()
	reg, _, _ := net.SplitHostPort(RegistryAddr)
	want := []string{b.IP, c.IP, reg}
	slices.Sort(want)
	if got := cutAddrs(t, a); !slices.Equal(got, want) {
		t.Fatalf("cut set of %s = %v, want %v", a.Name, got, want)
	}
	mustBeCut(t, a, b, echo[b])
	mustBeCut(t, a, c, echo[c])
	mustBeCut(t, b, a, echo[a])
	mustBeCut(t, c, a, echo[a])
	mustReach(t, b, c, echo[c])
	mustReach(t, c, b, echo[b])
	heal()
	mustHaveNoTable(t, a)
	mustReach(t, a, b, echo[b])
	mustReach(t, a, c, echo[c])
}

// TestPartitionAgain cuts A off from B and then from C: the second cut adds
// to the first, and either heal ends both.
func TestPartitionAgain(t *testing.T) {
	a, b, c, echo := partitionNet(t)
	heal := a.Partition(b)
	a.Partition(c)
	a.Partition(b) // an address already cut is no error
	if got, want := cutAddrs(t, a), []string{b.IP, c.IP}; !slices.Equal(got, want) {
		t.Fatalf("cut set of %s = %v, want %v", a.Name, got, want)
	}
	mustBeCut(t, a, b, echo[b])
	mustBeCut(t, a, c, echo[c])
	mustReach(t, b, c, echo[c])
	heal()
	mustHaveNoTable(t, a)
	mustReach(t, a, b, echo[b])
	mustReach(t, a, c, echo[c])
}

// TestPartitionCleanup checks that a cut not healed by the test is healed
// when the test ends, before the Net's namespaces go.
func TestPartitionCleanup(t *testing.T) {
	a, b, _, echo := partitionNet(t)
	t.Run("cut", func(t *testing.T) {
		// Partition's cleanup belongs to the TB of the host's Net, so give
		// this subtest views of A and B on a Net whose TB it is.
		n := &Net{t: t}
		sa := &Host{Name: a.Name, NS: a.NS, IP: a.IP, net: n}
		sb := &Host{Name: b.Name, NS: b.NS, IP: b.IP, net: n}
		n.hosts = []*Host{sa, sb}
		sa.Partition(sb)
		mustBeCut(t, a, b, echo[b])
	})
	mustHaveNoTable(t, a)
	mustReach(t, a, b, echo[b])
}

// fatalRecorder is a TB whose Fatal ends the calling goroutine, recording
// the message, so a test can check that the harness refuses a misuse.
type fatalRecorder struct {
	*testing.T
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// fatalOf runs fn in its own goroutine, as Fatal's Goexit needs, and
// returns what it passed to Fatal ("" if nothing).
func (r *fatalRecorder) fatalOf(fn func()) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := r.msg
	r.msg = ""
	return msg
}

// TestPartitionMisuse checks that cutting a host off from a host of
// another Net, or from itself, fails the test and installs nothing.
func TestPartitionMisuse(t *testing.T) {
	a, b, _, _ := partitionNet(t)
	rec := &fatalRecorder{T: t}
	// A as seen through a Net whose TB is the recorder: b is then on a
	// different Net.
	ra := &Host{Name: a.Name, NS: a.NS, IP: a.IP}
	ra.net = &Net{t: rec, hosts: []*Host{ra}}
	for _, tc := range []struct {
		name string
		from *Host
		want string
	}{
		{"other net", b, "different Net"},
		{"itself", ra, "from itself"},
		{"nil", nil, "nil host"},
	} {
		msg := rec.fatalOf(func() { ra.Partition(tc.from) })
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: Partition's Fatal message = %q, want one containing %q", tc.name, msg, tc.want)
		}
	}
	mustHaveNoTable(t, a)
}
