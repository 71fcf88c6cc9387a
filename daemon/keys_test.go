package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/ca"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func testIdentity(t *testing.T) *tlsutil.Identity {
	t.Helper()
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, csr, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.Sign(csr, "n1", "c1", shoalv1.NodeRole_NODE_ROLE_MANAGER, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsutil.NewIdentity(root.CertPEM, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Which material a renewed certificate is saved with, by role: a new
// manager gets new material (and loses Raft data nothing could read), a
// manager keeps its own, a worker has none unless its manager still runs.
func TestKeysForRole(t *testing.T) {
	own, err := keys.New()
	if err != nil {
		t.Fatal(err)
	}
	manager, worker := shoalv1.NodeRole_NODE_ROLE_MANAGER, shoalv1.NodeRole_NODE_ROLE_WORKER
	for _, tc := range []struct {
		name    string
		role    shoalv1.NodeRole
		have    *keys.Material
		running bool
		want    string // "new", "own" or "none"
	}{
		{"promoted worker", manager, nil, false, "new"},
		{"renewed manager", manager, own, true, "own"},
		{"renewed manager, not running", manager, own, false, "own"},
		{"demoted, manager still running", worker, own, true, "own"},
		{"demoted, manager stopped", worker, own, false, "none"},
		{"renewed worker", worker, nil, false, "none"},
	} {
		d := &Daemon{cfg: Config{DataDir: t.TempDir()}, keys: tc.have}
		if tc.running {
			d.mgr = &mgrRun{}
		}
		leftover := filepath.Join(d.raftDir(), "raft.db")
		if err := os.MkdirAll(d.raftDir(), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(leftover, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := d.keysForRole(tc.role)
		if err != nil {
			t.Fatalf("%s: keysForRole = %v", tc.name, err)
		}
		var what string
		switch {
		case got == nil:
			what = "none"
		case got == tc.have:
			what = "own"
		default:
			what = "new"
		}
		if what != tc.want {
			t.Errorf("%s: keysForRole(%v) gave %s material; want %s", tc.name, tc.role, what, tc.want)
		}
		_, err = os.Stat(leftover)
		if gone := os.IsNotExist(err); gone != (tc.want == "new") {
			t.Errorf("%s: leftover raft data removed = %v; want %v", tc.name, gone, tc.want == "new")
		}
	}
}

// A manager without material (its certificate says manager, its set has
// none) gets new material saved with its certificate set before Raft
// starts; locked material gives keys.ErrLocked.
func TestManagerDEK(t *testing.T) {
	d := &Daemon{cfg: Config{DataDir: t.TempDir()}, id: testIdentity(t)}
	dek, err := d.managerDEK()
	if err != nil || len(dek) != keys.KeySize {
		t.Fatalf("managerDEK = %d bytes, %v", len(dek), err)
	}
	_, m, err := d.certs().LoadSet("")
	if err != nil || m == nil {
		t.Fatalf("the certificate set after managerDEK: material %v, %v; want it saved", m, err)
	}
	if onDisk, _ := m.DEK(); string(onDisk) != string(dek) {
		t.Fatal("the saved material holds another DEK than Raft was given")
	}
	again, err := d.managerDEK()
	if err != nil || string(again) != string(dek) {
		t.Fatalf("managerDEK again = %v; want the same DEK", err)
	}

	locked, err := m.Rewrap(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := locked.Marshal()
	if d.keys, err = keys.Parse(data); err != nil {
		t.Fatal(err)
	}
	if _, err := d.managerDEK(); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("managerDEK with locked material = %v; want keys.ErrLocked", err)
	}
}

func mustKey(t *testing.T) string {
	k, err := keys.NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

