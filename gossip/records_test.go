package gossip

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func recordOf(g *Gossip, origin string) string {
	return string(g.Records()[origin])
}

// Records spread to every member at once, updates replace them, a member
// joining later gets them by push/pull, and a failed member's record is no
// longer listed.
func TestRecordsSpreadAndVanish(t *testing.T) {
	keys := [][]byte{key(3)}
	wk := &shoalv1.GossipMeta{Role: shoalv1.NodeRole_NODE_ROLE_WORKER}
	a := start(t, "a", keys, wk)
	b := start(t, "b", keys, wk)
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a and b see each other", func() error {
		if ids(a.Members()) != "a,b" || ids(b.Members()) != "a,b" {
			return fmt.Errorf("%s / %s", ids(a.Members()), ids(b.Members()))
		}
		return nil
	})
	a.Publish([]byte("a1"))
	b.Publish([]byte("b1"))
	if got := recordOf(a, "a"); got != "a1" {
		t.Fatalf("own record = %q", got)
	}
	eventually(t, "b has a's record", func() error {
		if got := recordOf(b, "a"); got != "a1" {
			return fmt.Errorf("b sees a's record as %q", got)
		}
		return nil
	})
	a.Publish([]byte("a2"))
	eventually(t, "b has a's update", func() error {
		if got := recordOf(b, "a"); got != "a2" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})
	// A latecomer gets everything in the join's push/pull.
	c := start(t, "c", keys, wk)
	if _, err := c.Join([]string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c has a's and b's records", func() error {
		if recordOf(c, "a") != "a2" || recordOf(c, "b") != "b1" {
			return fmt.Errorf("c: %q %q", recordOf(c, "a"), recordOf(c, "b"))
		}
		return nil
	})
	// a dies without a goodbye: its record goes with it.
	a.ml.Shutdown()
	eventually(t, "a's record gone from b and c", func() error {
		for _, g := range []*Gossip{b, c} {
			if _, ok := g.Records()["a"]; ok {
				return fmt.Errorf("still listed")
			}
		}
		return nil
	})
	if _, ok := c.Records()["b"]; !ok {
		t.Error("b's record vanished with a's")
	}
}

// An older version never replaces a newer one, and nobody else can
// overwrite a node's own record.
func TestRecordsMergeKeepsNewest(t *testing.T) {
	a := start(t, "a", [][]byte{key(4)}, &shoalv1.GossipMeta{})
	a.Publish([]byte("mine"))
	enc := func(rs ...*shoalv1.GossipRecord) []byte {
		b, _ := proto.Marshal(&shoalv1.GossipRecords{Records: rs})
		return b
	}
	if !a.merge(enc(&shoalv1.GossipRecord{Origin: "x", Version: 5, Data: []byte("x5")})) {
		t.Fatal("a new origin was not taken")
	}
	if a.merge(enc(&shoalv1.GossipRecord{Origin: "x", Version: 4, Data: []byte("x4")})) {
		t.Error("an older version was taken")
	}
	if a.merge(enc(&shoalv1.GossipRecord{Origin: "a", Version: 1 << 62, Data: []byte("forged")})) {
		t.Error("a remote copy replaced a's own record")
	}
	if a.merge([]byte("garbage")) {
		t.Error("garbage merged")
	}
	a.mu.Lock()
	x, own := string(a.records["x"].data), string(a.records["a"].data)
	a.mu.Unlock()
	if x != "x5" || own != "mine" {
		t.Errorf("records x=%q a=%q", x, own)
	}
	// Republishing always raises the version.
	a.mu.Lock()
	v1 := a.records["a"].version
	a.mu.Unlock()
	a.Publish([]byte("again"))
	a.mu.Lock()
	v2 := a.records["a"].version
	a.mu.Unlock()
	if v2 <= v1 {
		t.Errorf("version %d after %d", v2, v1)
	}
}
