package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/bootstrap"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// newManagerSet saves a first manager's certificate set (material
// wrapped with unlockKey, "" for none) in a daemon's data dir.
func newManagerSet(t *testing.T, unlockKey string) (*Daemon, *tlsutil.Identity) {
	t.Helper()
	b, err := bootstrap.New(bootstrap.Config{Request: &shoalv1.InitRequest{}, Addr: "127.0.0.1:4242", RaftAddr: "127.0.0.1:4243", Host: "127.0.0.1", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsutil.NewIdentity(b.Cluster.GetRootCa().GetCertPem(), b.CertPEM, b.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	mat, err := keys.New()
	if err == nil && unlockKey != "" {
		mat, err = mat.Rewrap(unlockKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: Config{DataDir: t.TempDir()}, log: zap.NewNop()}
	if err := d.certs().Save(id.CAPEM, b.CertPEM, b.KeyPEM, mat); err != nil {
		t.Fatal(err)
	}
	d.setKeys(mat)
	return d, id
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := keys.NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The rewrap loop's view of the material: what it is wrapped with, and a
// re-wrap that is on disk at once, readable with the new key only.
func TestManagerKeysRewrap(t *testing.T) {
	d, id := newManagerSet(t, "")
	k := &managerKeys{d: d, id: id}
	one, two := newKey(t), newKey(t)
	if !k.WrappedWith("") || k.WrappedWith(one) {
		t.Fatal("fresh material: want wrapped with a local key only")
	}
	steps := []string{one, two, "", one}
	for i, key := range steps {
		before, _ := os.ReadFile(d.certs().Material())
		if err := k.Rewrap(key); err != nil {
			t.Fatalf("step %d: Rewrap = %v", i, err)
		}
		if !k.WrappedWith(key) {
			t.Fatalf("step %d: not wrapped with the key just used", i)
		}
		if after, _ := os.ReadFile(d.certs().Material()); bytes.Equal(before, after) {
			t.Fatalf("step %d: the material on disk did not change", i)
		}
		got, mat, err := d.certs().LoadSet("")
		switch {
		case key == "" && (err != nil || mat.Autolocked()):
			t.Fatalf("step %d: autolock off: LoadSet = %v, autolocked %v; want the set readable without a key", i, err, mat.Autolocked())
		case key != "" && !errors.Is(err, keys.ErrLocked):
			t.Fatalf("step %d: LoadSet without a key = %v; want ErrLocked", i, err)
		}
		if key == "" {
			if !mat.SameDEK(d.keys) || !bytes.Equal(got.Leaf().Raw, id.Leaf().Raw) {
				t.Fatalf("step %d: the set on disk lost the data key or the certificate", i)
			}
			continue
		}
		for j, other := range steps {
			if other == "" || other == key {
				continue
			}
			if _, _, err := d.certs().LoadSet(other); !errors.Is(err, keys.ErrInvalidKey) {
				t.Fatalf("step %d: LoadSet with the key of step %d = %v; want ErrInvalidKey", i, j, err)
			}
		}
		_, mat, err = d.certs().LoadSet(key)
		if err != nil || !mat.SameDEK(d.keys) {
			t.Fatalf("step %d: LoadSet with the new key = %v; want the same data key", i, err)
		}
	}
}

// A worker's set has no material: nothing to wrap.
func TestManagerKeysWithoutMaterial(t *testing.T) {
	d, id := newManagerSet(t, "")
	d.setKeys(nil)
	k := &managerKeys{d: d, id: id}
	if !k.WrappedWith(newKey(t)) || k.Rewrap(newKey(t)) != nil {
		t.Fatal("no material: want nothing to do")
	}
}

// Unlock refuses what it must, and changes nothing when it does.
func TestUnlockRefusals(t *testing.T) {
	key := newKey(t)
	d, _ := newManagerSet(t, key)
	srv := &swarmServer{d: d}
	ctx := context.Background()
	unlock := func(k string) error {
		_, err := srv.Unlock(ctx, &shoalv1.UnlockRequest{UnlockKey: k})
		return err
	}
	if err := unlock(key); !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "not part of a swarm") {
		t.Fatalf("Unlock outside a swarm = %v", err)
	}
	d.st = &state{ClusterID: "c", NodeID: "n"}
	if err := unlock(key); !errdefs.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "swarm is not locked") {
		t.Fatalf("Unlock of an unlocked node = %v; want swarm is not locked", err)
	}
	_, mat, err := d.certs().LoadSet("")
	if !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("LoadSet = %v; want ErrLocked", err)
	}
	d.lock(d.st, mat)
	before, _ := os.ReadFile(filepath.Join(d.certs().Dir, "manager.keys"))
	for _, tc := range []struct {
		key, want string
	}{
		{"", "malformed"},
		{"SHOALKEY-1-" + strings.Repeat("A", 10), "malformed"},
		{newKey(t), "invalid key"},
	} {
		err := unlock(tc.key)
		if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Unlock(%q) = %v; want ErrInvalid with %q", tc.key, err, tc.want)
		}
		if tc.key != "" && strings.Contains(err.Error(), strings.TrimPrefix(tc.key, "SHOALKEY-1-")) {
			t.Fatalf("Unlock's error repeats the key: %v", err)
		}
		if !d.isLocked() || d.id != nil || d.mgr != nil {
			t.Fatalf("a refused Unlock(%q) changed the node's state", tc.key)
		}
		info, _ := srv.Info(ctx, &shoalv1.InfoRequest{})
		if info.GetState() != "locked" || info.GetNodeId() != "n" {
			t.Fatalf("Info after a refused unlock = %v; want locked", info)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(d.certs().Dir, "manager.keys")); !bytes.Equal(before, after) {
		t.Fatal("refused unlocks changed the material on disk")
	}
	if _, err := d.managerConn(); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("managerConn while locked = %v; want ErrLocked", err)
	}
	if _, err := srv.Init(ctx, &shoalv1.InitRequest{}); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("Init while locked = %v; want ErrLocked", err)
	}
	if _, err := srv.Join(ctx, &shoalv1.JoinRequest{Token: "x", RemoteAddr: "127.0.0.1:1"}); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("Join while locked = %v; want ErrLocked", err)
	}
	if _, _, err := (lockGuard{d: d}).Join(ctx, "appnet", "c1"); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("an overlay attachment while locked = %v; want ErrLocked", err)
	}
}
