package raftnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/goleak"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/filescan"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/ca"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func ignoreOpencensus() goleak.Option {
	return goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start")
}

// marker is a random value no file could hold by chance.
func marker(t *testing.T, what string) []byte {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(what + "-" + hex.EncodeToString(b))
}

// filesHolding lists the files under dirs that hold any of markers.
func filesHolding(t *testing.T, markers [][]byte, dirs ...string) []string {
	t.Helper()
	hits, read, err := filescan.Scan(markers, dirs...)
	if err != nil {
		t.Fatal(err)
	}
	if read == 0 {
		t.Fatalf("no files under %v: nothing was checked", dirs)
	}
	var found []string
	for _, h := range hits {
		found = append(found, fmt.Sprintf("%s holds %.12s…", h.Path, markers[h.Needle]))
	}
	return found
}

func createSecret(id string, data []byte) *shoalv1.StoreBatch {
	return &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind:   shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE,
		Object: store.Wrap(&shoalv1.Secret{Id: id, Spec: &shoalv1.SecretSpec{Name: id, Data: data}}),
	}}}
}

func createCluster(caKey, gossipKey []byte, unlockKey string) *shoalv1.StoreBatch {
	return &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
		Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE,
		Object: store.Wrap(&shoalv1.Cluster{Id: "c1", Spec: &shoalv1.ClusterSpec{Name: "default"},
			RootCa: &shoalv1.RootCA{CertPem: []byte("cert"), KeyPem: caKey}, GossipKeys: [][]byte{gossipKey}, UnlockKey: unlockKey}),
	}}}
}

func secretData(s *store.Store, id string) []byte {
	var out []byte
	s.View(func(r store.ReadTx) {
		for _, sec := range store.List[*shoalv1.Secret](r, store.TableSecret) {
			if sec.GetId() == id {
				out = sec.GetSpec().GetData()
			}
		}
	})
	return out
}

func newMember(t *testing.T, root *ca.RootCA, id string) *member {
	return &member{id: id, addr: freeAddr(t), dir: t.TempDir(), ident: identity(t, root, id, shoalv1.NodeRole_NODE_ROLE_MANAGER)}
}

func propose(t *testing.T, n *Node, b *shoalv1.StoreBatch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Propose(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// Secret values do not reach the disk: secrets and the cluster object
// (its CA key, gossip key and unlock key) are applied, a snapshot is
// taken, more is appended; no file under the raft directory or the
// certificates directory (with the member's key material) holds any of
// them, while the in-memory store does, and a restart with the same DEK
// replays them all.
func TestSecretsNotOnDisk(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreOpencensus())
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mat, err := keys.New()
	if err != nil {
		t.Fatal(err)
	}
	m := newMember(t, root, "m0")
	if m.dek, err = mat.DEK(); err != nil {
		t.Fatal(err)
	}
	certs := tlsutil.Files{Dir: filepath.Join(t.TempDir(), "certificates")}
	certPEM, keyPEM := m.ident.PEM()
	if err := certs.Save(m.ident.CAPEM, certPEM, keyPEM, mat); err != nil {
		t.Fatal(err)
	}
	m.start(t, true)
	defer func() {
		if m.node != nil {
			m.node.Shutdown()
		}
	}()
	waitFor(t, "leader", m.node.IsLeader)

	before, caKey, gossipKey, after := marker(t, "secret-before"), marker(t, "ca-key"), marker(t, "gossip"), marker(t, "secret-after")
	unlockKey, err := keys.NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	unlockSecret := []byte(strings.TrimPrefix(unlockKey, "SHOALKEY-1-"))
	propose(t, m.node, createCluster(caKey, gossipKey, unlockKey))
	propose(t, m.node, createSecret("s-before", before))
	for i := range 30 {
		propose(t, m.node, createSvc(fmt.Sprintf("svc%d", i)))
	}
	if err := m.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	propose(t, m.node, createSecret("s-after", after))

	// The control: the values are there, in memory.
	if !bytes.Equal(secretData(m.store, "s-before"), before) || !bytes.Equal(secretData(m.store, "s-after"), after) {
		t.Fatal("the secrets are not in the in-memory store")
	}
	if err := m.node.Shutdown(); err != nil {
		t.Fatal(err)
	}
	m.node = nil

	snaps, _ := filepath.Glob(filepath.Join(m.dir, "snapshots", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot on disk: the snapshot half of the test checked nothing")
	}
	markers := [][]byte{before, after, caKey, gossipKey, unlockSecret, []byte(unlockKey)}
	if found := filesHolding(t, markers, m.dir, certs.Dir); len(found) > 0 {
		t.Fatalf("secret values on disk:\n%s", strings.Join(found, "\n"))
	}
	// The DEK itself is on disk only wrapped.
	if found := filesHolding(t, [][]byte{m.dek}, m.dir, certs.Dir); len(found) > 0 {
		t.Fatalf("the DEK on disk in the clear:\n%s", strings.Join(found, "\n"))
	}

	// Restart from disk with the same DEK: snapshot and log replay.
	m.start(t, false)
	waitFor(t, "replay", func() bool {
		return bytes.Equal(secretData(m.store, "s-before"), before) && bytes.Equal(secretData(m.store, "s-after"), after)
	})
	var caBack []byte
	m.store.View(func(r store.ReadTx) {
		for _, c := range store.List[*shoalv1.Cluster](r, store.TableCluster) {
			caBack = c.GetRootCa().GetKeyPem()
		}
	})
	if !bytes.Equal(caBack, caKey) {
		t.Fatal("the cluster's CA key did not replay")
	}
}

// writeSome starts a one-member cluster in m.dir, writes a secret, takes
// a snapshot, writes more, and stops.
func writeSome(t *testing.T, m *member) {
	t.Helper()
	m.start(t, true)
	waitFor(t, "leader", m.node.IsLeader)
	propose(t, m.node, createSecret("s1", []byte("v1")))
	if err := m.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		propose(t, m.node, createSvc(fmt.Sprintf("svc%d", i)))
	}
	if err := m.node.Shutdown(); err != nil {
		t.Fatal(err)
	}
	m.node = nil
}

// startFails starts m and wants an error of category ErrFailedPrecond
// that says each of want.
func startFails(t *testing.T, m *member, want ...string) {
	t.Helper()
	n, err := m.try(false)
	if err == nil {
		n.Shutdown()
		t.Fatalf("started; want an error saying %q", want)
	}
	t.Logf("start refused: %v", err)
	if !errdefs.Is(err, errdefs.ErrFailedPrecond) {
		t.Errorf("error %q is not of category ErrFailedPrecond", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// A restart with another DEK is refused before raft reads anything, and
// the right DEK still works afterwards.
func TestStartWithWrongDEKFails(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreOpencensus())
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := newMember(t, root, "m0")
	writeSome(t, m)
	right := m.dek
	m.dek = make([]byte, keys.KeySize)
	_, _ = rand.Read(m.dek)
	startFails(t, m, "another data encryption key", m.dir)
	m.dek = []byte("short")
	if _, err := m.try(false); err == nil || !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a 5-byte DEK: %v; want an invalid-argument error", err)
	}
	m.dek = right
	m.start(t, false)
	defer m.node.Shutdown()
	waitFor(t, "replay", func() bool { return bytes.Equal(secretData(m.store, "s1"), []byte("v1")) })
}

// sealedEntry returns the sealed bytes of the last log entry in dir, as
// raft-boltdb stores them.
func sealedEntry(t *testing.T, dir string) (uint64, []byte) {
	t.Helper()
	disk, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	last, err := disk.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := disk.GetLog(last, &l); err != nil {
		t.Fatal(err)
	}
	return last, l.Data
}

func flipIn(t *testing.T, path string, at func([]byte) int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := at(data)
	if i < 0 {
		t.Fatalf("nothing to flip in %s", path)
	}
	data[i] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A byte flipped inside a sealed log entry in raft.db, or inside a
// snapshot (with or without its CRC fixed to match), stops the member
// from starting with an error that says what and where.
func TestTamperedRaftDataIsDetected(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreOpencensus())
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("log entry", func(t *testing.T) {
		m := newMember(t, root, "m0")
		writeSome(t, m)
		index, sealed := sealedEntry(t, m.dir)
		flipIn(t, filepath.Join(m.dir, "raft.db"), func(db []byte) int {
			at := bytes.Index(db, sealed)
			if at < 0 || bytes.Contains(db[at+1:], sealed) {
				return -1 // not found once: the test would prove nothing
			}
			return at + len(sealed)/2
		})
		startFails(t, m, fmt.Sprintf("raft log entry %d", index), "failed authentication", "raft.db")
	})
	snapshotFile := func(t *testing.T, m *member) (state, meta string) {
		t.Helper()
		states, _ := filepath.Glob(filepath.Join(m.dir, "snapshots", "snapshots", "*", "state.bin"))
		if len(states) != 1 {
			t.Fatalf("snapshots: %v; want one", states)
		}
		return states[0], filepath.Join(filepath.Dir(states[0]), "meta.json")
	}
	t.Run("snapshot", func(t *testing.T) {
		m := newMember(t, root, "m0")
		writeSome(t, m)
		state, _ := snapshotFile(t, m)
		flipIn(t, state, func(b []byte) int { return len(b) / 2 })
		startFails(t, m, "snapshot", "CRC mismatch")
	})
	// rewrite replaces a snapshot's state and fixes its CRC and size, so
	// that only the encryption can tell.
	rewrite := func(t *testing.T, state, meta string, data []byte) {
		t.Helper()
		if err := os.WriteFile(state, data, 0o600); err != nil {
			t.Fatal(err)
		}
		h := crc64.New(crc64.MakeTable(crc64.ECMA))
		h.Write(data)
		var mj map[string]any
		raw, _ := os.ReadFile(meta)
		if err := json.Unmarshal(raw, &mj); err != nil {
			t.Fatal(err)
		}
		mj["CRC"], mj["Size"] = h.Sum(nil), len(data)
		raw, _ = json.Marshal(mj)
		if err := os.WriteFile(meta, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("snapshot with its CRC fixed", func(t *testing.T) {
		m := newMember(t, root, "m0")
		writeSome(t, m)
		state, meta := snapshotFile(t, m)
		flipIn(t, state, func(b []byte) int { return len(b) / 2 })
		data, _ := os.ReadFile(state)
		rewrite(t, state, meta, data)
		startFails(t, m, "snapshot", "failed authentication")
	})
	t.Run("snapshot in the clear", func(t *testing.T) {
		m := newMember(t, root, "m0")
		writeSome(t, m)
		state, meta := snapshotFile(t, m)
		// What the FSM persists, unsealed.
		plain := &store.FSM{Store: store.New()}
		data, err := store.EncodeBatch(createSecret("s1", []byte("v1")))
		if err != nil {
			t.Fatal(err)
		}
		if res := plain.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data}); res != nil {
			t.Fatal(res)
		}
		snap, err := plain.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var buf plainSink
		if err := snap.Persist(&buf); err != nil {
			t.Fatal(err)
		}
		rewrite(t, state, meta, buf.Bytes())
		startFails(t, m, "snapshot", "not encrypted")
	})
}

// A raft directory written without encryption (an older Shoal) is
// refused with what to do, not read as plaintext.
func TestPlaintextRaftDirIsRefused(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreOpencensus())
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := newMember(t, root, "m0")
	disk, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(m.dir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	data, err := store.EncodeBatch(createSecret("s1", []byte("plaintext")))
	if err != nil {
		t.Fatal(err)
	}
	if err := disk.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
		t.Fatal(err)
	}
	if err := disk.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	disk.Close()
	startFails(t, m, "is not encrypted", "move "+m.dir+" away")
}

// Snapshot install between members, each sealing with its own DEK: the
// leader compacts its log past what a new member needs, so the member
// catches up from a snapshot streamed in the clear over mutual TLS (of
// the plaintext size) and stores it sealed with its own DEK; it then
// restarts from its own disk.
func TestFollowerInstallsSnapshot(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreOpencensus())
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leader, follower := newMember(t, root, "m0"), newMember(t, root, "m1")
	leader.trailing, follower.trailing = 5, 5
	leader.snapThreshold, follower.snapThreshold = 1<<20, 1<<20 // only forced snapshots
	leader.start(t, true)
	defer func() {
		for _, m := range []*member{leader, follower} {
			if m.node != nil {
				m.node.Shutdown()
			}
		}
	}()
	waitFor(t, "leader", leader.node.IsLeader)
	secret := marker(t, "secret")
	propose(t, leader.node, createSecret("s1", secret))
	// Big enough for several snapshot chunks.
	for i := range 300 {
		propose(t, leader.node, &shoalv1.StoreBatch{Actions: []*shoalv1.StoreAction{{
			Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE,
			Object: store.Wrap(&shoalv1.Service{Id: fmt.Sprintf("svc%d", i), Spec: &shoalv1.ServiceSpec{Name: fmt.Sprintf("svc%d", i),
				Labels: map[string]string{"pad": strings.Repeat("x", 1000)}}}),
		}}})
	}
	if err := leader.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := leader.node.logs.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("the leader's log starts at %d (%v); want it compacted", first, err)
	}
	follower.start(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.node.AddVoter(ctx, follower.id, follower.addr); err != nil {
		t.Fatal(err)
	}
	propose(t, leader.node, createSvc("after-join"))
	waitFor(t, "follower caught up", func() bool {
		return follower.store.Index() >= leader.store.Index() && bytes.Equal(secretData(follower.store, "s1"), secret)
	})
	if got := follower.node.Stats()["last_snapshot_index"]; got == "0" || got == "" {
		t.Fatalf("follower's last_snapshot_index = %q; it did not install a snapshot", got)
	}
	// The installed snapshot is sealed with the follower's own DEK.
	states, _ := filepath.Glob(filepath.Join(follower.dir, "snapshots", "snapshots", "*", "state.bin"))
	if len(states) == 0 {
		t.Fatal("no snapshot on the follower's disk")
	}
	fc, _ := keys.NewCipher(follower.dek)
	lc, _ := keys.NewCipher(leader.dek)
	data, _ := os.ReadFile(states[0])
	if r, err := fc.NewReader(bytes.NewReader(data)); err != nil {
		t.Fatalf("the follower's snapshot does not open with its DEK: %v", err)
	} else if _, err := lc.NewReader(bytes.NewReader(data)); !errors.Is(err, keys.ErrWrongKey) {
		t.Fatalf("the follower's snapshot opens with the leader's DEK (%v)", err)
	} else {
		_ = r
	}
	if found := filesHolding(t, [][]byte{secret}, follower.dir, leader.dir); len(found) > 0 {
		t.Fatalf("the secret on disk:\n%s", strings.Join(found, "\n"))
	}
	// The follower restarts from its own disk: snapshot and log.
	follower.node.Shutdown()
	follower.node = nil
	follower.start(t, false)
	waitFor(t, "follower replayed", func() bool {
		return bytes.Equal(secretData(follower.store, "s1"), secret) && follower.store.Index() >= leader.store.Index()
	})
}

// plainSink is a raft.SnapshotSink in memory.
type plainSink struct{ bytes.Buffer }

func (*plainSink) ID() string    { return "plain" }
func (*plainSink) Cancel() error { return nil }
func (*plainSink) Close() error  { return nil }
