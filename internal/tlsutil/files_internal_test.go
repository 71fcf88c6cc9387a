package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
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
// set with new CAs, certificates and keys: every load must succeed.
func TestLoadSeesOneSet(t *testing.T) {
	f := Files{Dir: filepath.Join(t.TempDir(), "certificates")}
	sets := []testSet{newTestSet(t, "a"), newTestSet(t, "b")}
	if err := f.Save(sets[0].ca, sets[0].cert, sets[0].key, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for i := range 200 {
			s := sets[i%2]
			if err := f.Save(s.ca, s.cert, s.key, nil); err != nil {
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
		if _, err := f.Load(); err != nil {
			<-done
			t.Fatalf("Load during saves: %v", err)
		}
	}
}
