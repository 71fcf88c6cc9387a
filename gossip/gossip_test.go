package gossip

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// TestMain checks that no goroutine outlives the tests. memberlist's
// Shutdown does not wait for a probe already in flight: that goroutine ends
// by itself once its ack timer fires, which the health awareness can stretch
// to nine probe intervals (2.7 s here). So the check waits, up to a deadline
// well past that, for the leftovers to go before it reports them.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// freeAddr finds a loopback port free for both tcp and udp.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

func start(t *testing.T, id string, keys [][]byte, meta *shoalv1.GossipMeta) *Gossip {
	t.Helper()
	g, err := Start(Config{NodeID: id, BindAddr: freeAddr(t), Keys: keys, Meta: meta})
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			g.Close()
		}
	})
	return g
}

func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(ms []Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.NodeID)
	}
	return strings.Join(out, ",")
}

func TestMembersMetaAndFailure(t *testing.T) {
	keys := [][]byte{key(1)}
	mgr := &shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_MANAGER, ManagerAddr: "10.0.0.1:4242"}
	wk := &shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_WORKER}
	a := start(t, "a", keys, mgr)
	b := start(t, "b", keys, wk)
	c := start(t, "c", keys, wk)
	if n, err := b.Join([]string{a.Addr()}); err != nil || n != 1 {
		t.Fatalf("b.Join(a) = %d, %v; want 1, nil", n, err)
	}
	if _, err := c.Join([]string{b.Addr()}); err != nil {
		t.Fatalf("c.Join(b): %v", err)
	}
	for _, g := range []*Gossip{a, b, c} {
		eventually(t, "every member sees a,b,c", func() error {
			if got := ids(g.Members()); got != "a,b,c" {
				return fmt.Errorf("Members() = %s", got)
			}
			return nil
		})
	}
	var seen *shoalv1.GossipMeta
	for _, m := range c.Members() {
		if m.NodeID == "a" {
			seen = m.Meta
		}
	}
	if seen.GetRole() != shoalv1.NodeRole_NODE_ROLE_MANAGER || seen.GetManagerAddr() != "10.0.0.1:4242" {
		t.Errorf("c sees a's meta as %v; want manager at 10.0.0.1:4242", seen)
	}

	// A promotion spreads as a meta change.
	if err := b.SetMeta(&shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_MANAGER, ManagerAddr: "10.0.0.2:4242"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b promoted", func() error {
		for _, m := range a.Members() {
			if m.NodeID == "b" && m.Meta.GetManagerAddr() == "10.0.0.2:4242" {
				return nil
			}
		}
		return fmt.Errorf("members %v", a.Members())
	})

	// c fails without a goodbye: the others declare it dead.
	c.Close()
	for _, g := range []*Gossip{a, b} {
		eventually(t, "c declared failed", func() error {
			if _, ok := g.Failed()["c"]; !ok {
				return fmt.Errorf("Failed() = %v, members %s", g.Failed(), ids(g.Members()))
			}
			if got := ids(g.Members()); got != "a,b" {
				return fmt.Errorf("Members() = %s", got)
			}
			return nil
		})
	}

	// b leaves on purpose: a hears it at once, with no suspicion.
	if err := b.Leave(); err != nil {
		t.Fatalf("b.Leave: %v", err)
	}
	eventually(t, "b gone from a", func() error {
		if got := ids(a.Members()); got != "a" {
			return fmt.Errorf("Members() = %s", got)
		}
		if _, ok := a.Failed()["b"]; !ok {
			return fmt.Errorf("Failed() = %v", a.Failed())
		}
		return nil
	})
}

func TestFailedNodeComesBack(t *testing.T) {
	keys := [][]byte{key(1)}
	a := start(t, "a", keys, nil)
	b, err := Start(Config{NodeID: "b", BindAddr: freeAddr(t), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b", func() error {
		if ids(a.Members()) != "a,b" {
			return fmt.Errorf("members %s", ids(a.Members()))
		}
		return nil
	})
	b.Close()
	eventually(t, "b failed", func() error {
		if _, ok := a.Failed()["b"]; !ok {
			return fmt.Errorf("failed %v", a.Failed())
		}
		return nil
	})
	// The same node restarts on the same address (a daemon restart).
	b2, err := Start(Config{NodeID: "b", BindAddr: addr, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := b2.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b back and no longer failed", func() error {
		if _, ok := a.Failed()["b"]; ok || ids(a.Members()) != "a,b" {
			return fmt.Errorf("failed %v, members %s", a.Failed(), ids(a.Members()))
		}
		return nil
	})
}

func TestEncryption(t *testing.T) {
	a := start(t, "a", [][]byte{key(1)}, nil)
	stranger := start(t, "x", [][]byte{key(2)}, nil)
	if _, err := stranger.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a member with another key joined")
	}
	if got := ids(a.Members()); got != "a" {
		t.Errorf("after a refused join a sees %s; want a", got)
	}

	// New keys: a encrypts with the new primary and still reads the old
	// key, so a node that knows both joins whichever it prefers; once the
	// old key is dropped, a node with only the old key is refused.
	if err := a.SetKeys([][]byte{key(3), key(1)}); err != nil {
		t.Fatal(err)
	}
	old := start(t, "old", [][]byte{key(1), key(3)}, nil)
	if _, err := old.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("node with the previous primary: %v", err)
	}
	fresh := start(t, "new", [][]byte{key(3)}, nil)
	if _, err := fresh.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("node with the new key: %v", err)
	}
	if err := a.SetKeys([][]byte{key(3)}); err != nil {
		t.Fatal(err)
	}
	late := start(t, "late", [][]byte{key(1)}, nil)
	if _, err := late.Join([]string{a.Addr()}); err == nil {
		t.Error("a node with a dropped key joined")
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key", Config{NodeID: "a", BindAddr: "127.0.0.1:0"}, "no key"},
		{"short key", Config{NodeID: "a", BindAddr: "127.0.0.1:0", Keys: [][]byte{[]byte("short")}}, "key 0 is 5 bytes, want 32"},
		{"bad bind", Config{NodeID: "a", BindAddr: "127.0.0.1", Keys: [][]byte{key(1)}}, "gossip bind address"},
		{"bad port", Config{NodeID: "a", BindAddr: "127.0.0.1:99999", Keys: [][]byte{key(1)}}, "bad port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Start(tc.cfg)
			if err == nil {
				g.Close()
				t.Fatalf("Start(%+v) succeeded; want an error with %q", tc.cfg, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start() error = %q; want it to contain %q", err, tc.want)
			}
		})
	}
}
