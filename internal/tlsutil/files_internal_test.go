package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/keys"
)

// testSet is a CA and a node certificate with its key, as PEM.
type testSet struct{ ca, cert, key []byte }

func newTestSet(t *testing.T, node string) testSet {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: node, OrganizationalUnit: []string{WorkerOU}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testSet{
		ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// TestSaveCrashLeavesAMatchingSet stops a renewal (a new CA, certificate
// and key) after each step, as a crash would, and checks that what is on
// disk then loads as the old set or the new one, never a mix, and that
// the next save cleans up and succeeds.
func TestSaveCrashLeavesAMatchingSet(t *testing.T) {
	for _, tc := range []struct {
		step string
		want string // the node that loads afterwards
	}{
		{stepStaged, "old"},
		{stepExchanged, "new"},
	} {
		t.Run(tc.step, func(t *testing.T) {
			f := Files{Dir: filepath.Join(t.TempDir(), "certificates")}
			old, next := newTestSet(t, "old"), newTestSet(t, "new")
			if err := f.Save(old.ca, old.cert, old.key, nil); err != nil {
				t.Fatal(err)
			}
			if err := f.save(next.ca, next.cert, next.key, nil, func(s string) bool { return s == tc.step }); err != nil {
				t.Fatal(err)
			}
			id, err := f.Load()
			if err != nil {
				t.Fatalf("Load after a crash at %s: %v", tc.step, err)
			}
			if id.NodeID() != tc.want {
				t.Errorf("Load after a crash at %s = node %q; want %q", tc.step, id.NodeID(), tc.want)
			}
			third := newTestSet(t, "third")
			if err := f.Save(third.ca, third.cert, third.key, nil); err != nil {
				t.Fatalf("Save after the crash: %v", err)
			}
			if id, err := f.Load(); err != nil || id.NodeID() != "third" {
				t.Fatalf("Load after the next Save = %v, %v; want node third", id, err)
			}
			ents, err := os.ReadDir(filepath.Dir(f.Dir))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("beside the set: %q; want only certificates (the crashed save's leftovers removed)", names)
			}
		})
	}
}

// TestLoadSeesOneSet reads while another goroutine keeps replacing the
// set with new CAs, certificates, keys and key material: every load must
// succeed, and the material it reads must be the one saved with the
// certificate it reads.
func TestLoadSeesOneSet(t *testing.T) {
	f := Files{Dir: filepath.Join(t.TempDir(), "certificates")}
	sets := []testSet{newTestSet(t, "a"), newTestSet(t, "b")}
	mats := map[string]*keys.Material{}
	for _, n := range []string{"a", "b"} {
		m, err := keys.New()
		if err != nil {
			t.Fatal(err)
		}
		mats[n] = m
	}
	if err := f.Save(sets[0].ca, sets[0].cert, sets[0].key, mats["a"]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for i := range 200 {
			s := sets[i%2]
			if err := f.Save(s.ca, s.cert, s.key, mats[[]string{"a", "b"}[i%2]]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for loads := 0; ; loads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if loads == 0 {
				t.Log("no load overlapped a save")
			}
			return
		default:
		}
		id, m, err := f.LoadSet("")
		if err != nil {
			<-done
			t.Fatalf("Load during saves: %v", err)
		}
		if !m.SameDEK(mats[id.NodeID()]) {
			<-done
			t.Fatalf("Load during saves read node %s with the material of the other set", id.NodeID())
		}
	}
}

func newUnlockKey(t *testing.T) string {
	t.Helper()
	k, err := keys.NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A manager's set: the material is saved and read back with it; under
// autolock the key on disk is sealed, Load says locked, LoadSet needs the
// right key; a renewal keeps the material and the seal; a demotion's
// save without material removes it.
func TestSaveLoadWithMaterial(t *testing.T) {
	f := Files{Dir: filepath.Join(t.TempDir(), "certificates")}
	s := newTestSet(t, "m1")
	plain, err := keys.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(s.ca, s.cert, s.key, plain); err != nil {
		t.Fatal(err)
	}
	id, m, err := f.LoadSet("")
	if err != nil || m == nil || !m.SameDEK(plain) || id.NodeID() != "m1" {
		t.Fatalf("LoadSet of a set with local material = %v, %v, %v; want m1 with the same DEK", id, m, err)
	}
	if onDisk, _ := os.ReadFile(f.Key()); !bytes.Equal(onDisk, s.key) {
		t.Error("without autolock the node key is not stored as given")
	}
	if st, err := os.Stat(f.Material()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", f.Material(), st, err)
	}

	key := newUnlockKey(t)
	locked, err := plain.Rewrap(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(s.ca, s.cert, s.key, locked); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(f.Key())
	block, _ := pem.Decode(s.key)
	if bytes.Contains(onDisk, s.key) || bytes.Contains(onDisk, block.Bytes) {
		t.Fatal("under autolock the node key is on disk in the clear")
	}
	if _, err := f.Load(); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("Load of a sealed set = %v; want keys.ErrLocked", err)
	}
	if _, m, err := f.LoadSet(""); !errors.Is(err, keys.ErrLocked) || m == nil || !m.Locked() {
		t.Fatalf("LoadSet(\"\") of a sealed set = %v, %v; want the locked material and keys.ErrLocked", m, err)
	}
	if _, _, err := f.LoadSet(newUnlockKey(t)); !errors.Is(err, keys.ErrInvalidKey) {
		t.Fatalf("LoadSet(wrong key) = %v; want keys.ErrInvalidKey", err)
	}
	id, m, err = f.LoadSet(key)
	if err != nil || m.Locked() || !m.SameDEK(plain) {
		t.Fatalf("LoadSet(key) = %v, %v; want unlocked material with the same DEK", m, err)
	}
	if c, k := id.PEM(); !bytes.Equal(c, s.cert) || !bytes.Equal(k, s.key) {
		t.Error("the identity of the unlocked set has another certificate or key")
	}

	// Renewal: a new certificate and key, the same material.
	renewed := newTestSet(t, "m1-renewed")
	if err := f.Save(renewed.ca, renewed.cert, renewed.key, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("after a renewal, Load = %v; want the key still sealed", err)
	}
	if id, m2, err := f.LoadSet(key); err != nil || !m2.SameDEK(plain) || id.NodeID() != "m1-renewed" {
		t.Fatalf("after a renewal, LoadSet(key) = %v, %v, %v", id, m2, err)
	}

	// Locked material cannot seal: the save is refused, nothing changes.
	_, stillLocked, _ := f.LoadSet("")
	if err := f.Save(s.ca, s.cert, s.key, stillLocked); !errors.Is(err, keys.ErrLocked) {
		t.Fatalf("Save with locked material = %v; want keys.ErrLocked", err)
	}
	if id, _, err := f.LoadSet(key); err != nil || id.NodeID() != "m1-renewed" {
		t.Fatalf("a refused save changed the set: %v, %v", id, err)
	}

	// Demotion: no material, the key in the clear.
	if err := f.Save(renewed.ca, renewed.cert, renewed.key, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Material()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a save without material, %s: %v; want it gone", f.Material(), err)
	}
	if id, m, err := f.LoadSet(""); err != nil || m != nil || id.NodeID() != "m1-renewed" {
		t.Fatalf("LoadSet of a worker's set = %v, %v, %v", id, m, err)
	}
}

// A rotation of the unlock key (Rewrap, then one Save) stopped at each
// step as a crash would: what is on disk unlocks with the old key or the
// new one, whichever the step left in place, and always with one of them.
func TestRotationCrashLeavesAnUnlockableSet(t *testing.T) {
	for _, tc := range []struct {
		step string
		new  bool // the new key unlocks (else the old one)
	}{
		{stepStaged, false},
		{stepExchanged, true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			f := Files{Dir: filepath.Join(t.TempDir(), "certificates")}
			s := newTestSet(t, "m1")
			base, err := keys.New()
			if err != nil {
				t.Fatal(err)
			}
			oldKey, newKey := newUnlockKey(t), newUnlockKey(t)
			old, err := base.Rewrap(oldKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Save(s.ca, s.cert, s.key, old); err != nil {
				t.Fatal(err)
			}
			rotated, err := old.Rewrap(newKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.save(s.ca, s.cert, s.key, rotated, func(st string) bool { return st == tc.step }); err != nil {
				t.Fatal(err)
			}
			works, refused := oldKey, newKey
			if tc.new {
				works, refused = newKey, oldKey
			}
			if _, _, err := f.LoadSet(refused); !errors.Is(err, keys.ErrInvalidKey) {
				t.Errorf("after a crash at %s, the other key: %v; want keys.ErrInvalidKey", tc.step, err)
			}
			id, m, err := f.LoadSet(works)
			if err != nil {
				t.Fatalf("after a crash at %s, LoadSet = %v; want the set to unlock", tc.step, err)
			}
			if !m.SameDEK(base) || id.NodeID() != "m1" {
				t.Fatalf("after a crash at %s: same DEK %v, node %s", tc.step, m.SameDEK(base), id.NodeID())
			}
		})
	}
}
