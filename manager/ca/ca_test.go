package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/auth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

var t0 = time.Date(2030, 5, 17, 12, 0, 0, 0, time.UTC)

func newRoot(t *testing.T) (*RootCA, []byte) {
	t.Helper()
	root, keyPEM, err := NewRootCA(t0)
	if err != nil {
		t.Fatalf("NewRootCA: %v", err)
	}
	return root, keyPEM
}

func newCSR(t *testing.T) (keyPEM, csrPEM []byte) {
	t.Helper()
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	return keyPEM, csrPEM
}

func sign(t *testing.T, root *RootCA, nodeID string, role shoalv1.NodeRole, expiry time.Duration) *x509.Certificate {
	t.Helper()
	_, csr := newCSR(t)
	certPEM, err := root.Sign(csr, nodeID, "cluster-1", role, expiry, t0)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	cert, err := tlsutil.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatalf("ParseCertPEM(signed): %v", err)
	}
	return cert
}

func TestNewRootCA(t *testing.T) {
	root, keyPEM := newRoot(t)
	c := root.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("root IsCA=%v BasicConstraintsValid=%v; want a CA", c.IsCA, c.BasicConstraintsValid)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("root MaxPathLen=%d MaxPathLenZero=%v; want it to sign only leaves", c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("root KeyUsage %v lacks CertSign", c.KeyUsage)
	}
	if c.Subject.CommonName != "shoal-root-ca" {
		t.Errorf("root CN = %q", c.Subject.CommonName)
	}
	if !c.NotBefore.Before(t0) || c.NotBefore.Before(t0.Add(-time.Hour)) {
		t.Errorf("root NotBefore = %v; want a little before %v", c.NotBefore, t0)
	}
	if got, want := c.NotAfter.Sub(t0), 20*365*24*time.Hour; got != want {
		t.Errorf("root lifetime = %v; want %v", got, want)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0}); err != nil {
		t.Errorf("root does not verify against itself at %v: %v", t0, err)
	}
	if !bytes.Equal(c.Raw, mustPEMBlock(t, root.CertPEM, "CERTIFICATE")) {
		t.Error("root.CertPEM does not hold root.Cert")
	}
	if root.Digest != Digest(c.Raw) {
		t.Errorf("root.Digest = %q; want Digest(cert) = %q", root.Digest, Digest(c.Raw))
	}
	if !root.Key.PublicKey.Equal(c.PublicKey) {
		t.Error("root key does not match root certificate")
	}

	// Reloading the PEM gives the same CA.
	again, err := ParseRootCA(root.CertPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseRootCA: %v", err)
	}
	if again.Digest != root.Digest || !again.Key.Equal(root.Key) || !again.Cert.Equal(root.Cert) {
		t.Error("ParseRootCA(NewRootCA()) differs from the original")
	}

	// Two roots are different roots.
	other, _ := newRoot(t)
	if other.Digest == root.Digest {
		t.Error("two new roots have the same digest")
	}
}

func mustPEMBlock(t *testing.T, data []byte, typ string) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		t.Fatalf("no %s PEM block", typ)
	}
	return b.Bytes
}

func TestParseRootCAErrors(t *testing.T) {
	root, keyPEM := newRoot(t)
	_, csr := newCSR(t)
	for _, tc := range []struct {
		name            string
		certPEM, keyPEM []byte
	}{
		{"empty cert", nil, keyPEM},
		{"garbage cert", []byte("hello"), keyPEM},
		{"csr as cert", csr, keyPEM},
		{"empty key", root.CertPEM, nil},
		{"garbage key", root.CertPEM, []byte("-----BEGIN EC PRIVATE KEY-----\naGVsbG8=\n-----END EC PRIVATE KEY-----\n")},
	} {
		if _, err := ParseRootCA(tc.certPEM, tc.keyPEM); err == nil {
			t.Errorf("%s: ParseRootCA succeeded; want an error", tc.name)
		}
	}
}

// A root whose key is not the certificate's must not issue certificates
// that claim to come from it.
func TestSignWithMismatchedKeyFails(t *testing.T) {
	a, _ := newRoot(t)
	_, bKey := newRoot(t)
	mixed, err := ParseRootCA(a.CertPEM, bKey)
	if err != nil {
		return // refusing at load time is fine too
	}
	_, csr := newCSR(t)
	if _, err := mixed.Sign(csr, "n1", "c1", shoalv1.NodeRole_NODE_ROLE_WORKER, 0, t0); err == nil {
		t.Error("a root with another root's key signed a certificate")
	}
}

func TestSign(t *testing.T) {
	root, _ := newRoot(t)
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)

	for _, tc := range []struct {
		role      shoalv1.NodeRole
		wantRole  shoalv1.NodeRole
		wantOU    string
		canServer bool // may answer for tlsutil.ManagerServerName
	}{
		{shoalv1.NodeRole_NODE_ROLE_MANAGER, shoalv1.NodeRole_NODE_ROLE_MANAGER, tlsutil.ManagerOU, true},
		{shoalv1.NodeRole_NODE_ROLE_WORKER, shoalv1.NodeRole_NODE_ROLE_WORKER, tlsutil.WorkerOU, false},
		// An unspecified role must never yield a manager certificate.
		{shoalv1.NodeRole_NODE_ROLE_UNSPECIFIED, shoalv1.NodeRole_NODE_ROLE_WORKER, tlsutil.WorkerOU, false},
	} {
		t.Run(tc.role.String(), func(t *testing.T) {
			nodeKeyPEM, csr := newCSR(t)
			certPEM, err := root.Sign(csr, "node-abc", "cluster-xyz", tc.role, time.Hour, t0)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			cert, err := tlsutil.ParseCertPEM(certPEM)
			if err != nil {
				t.Fatalf("ParseCertPEM: %v", err)
			}
			if cert.Subject.CommonName != "node-abc" {
				t.Errorf("CN = %q; want node ID %q", cert.Subject.CommonName, "node-abc")
			}
			if got := auth.RoleToProto(tlsutil.RoleOf(cert)); got != tc.wantRole {
				t.Errorf("RoleOf = %v; want %v", got, tc.wantRole)
			}
			if len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != tc.wantOU {
				t.Errorf("OU = %q; want [%q]", cert.Subject.OrganizationalUnit, tc.wantOU)
			}
			if len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "cluster-xyz" {
				t.Errorf("O = %q; want [cluster-xyz]", cert.Subject.Organization)
			}
			// The CSR's own subject ("shoal-node") must not leak in.
			if strings.Contains(cert.Subject.String(), "shoal-node") {
				t.Errorf("subject %q carries the CSR's subject", cert.Subject)
			}
			hasManagerName := false
			for _, n := range cert.DNSNames {
				if n == tlsutil.ManagerServerName {
					hasManagerName = true
				}
			}
			if hasManagerName != tc.canServer {
				t.Errorf("DNSNames = %q; has %q = %v, want %v", cert.DNSNames, tlsutil.ManagerServerName, hasManagerName, tc.canServer)
			}

			// The certificate is for the key in the CSR.
			block := mustPEMBlock(t, nodeKeyPEM, "EC PRIVATE KEY")
			nodeKey, err := x509.ParseECPrivateKey(block)
			if err != nil {
				t.Fatal(err)
			}
			if !nodeKey.PublicKey.Equal(cert.PublicKey.(*ecdsa.PublicKey)) {
				t.Error("signed certificate does not carry the CSR's public key")
			}
			if cert.IsCA {
				t.Error("node certificate is a CA")
			}

			// It chains to the root, for both TLS directions.
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("Verify(usage %v): %v", usage, err)
				}
			}
			_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0, DNSName: tlsutil.ManagerServerName})
			if tc.canServer && err != nil {
				t.Errorf("manager certificate does not verify as %q: %v", tlsutil.ManagerServerName, err)
			}
			if !tc.canServer && err == nil {
				t.Errorf("%v certificate verifies as %q", tc.role, tlsutil.ManagerServerName)
			}

			// But not against another root.
			other, _ := newRoot(t)
			otherPool := x509.NewCertPool()
			otherPool.AddCert(other.Cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: otherPool, CurrentTime: t0}); err == nil {
				t.Error("node certificate verifies against an unrelated root")
			}
		})
	}
}

func TestSignValidity(t *testing.T) {
	root, _ := newRoot(t)
	for _, tc := range []struct {
		name   string
		expiry time.Duration
		want   time.Duration
	}{
		{"explicit", 12 * time.Hour, 12 * time.Hour},
		{"minimum", MinNodeCertExpiry, MinNodeCertExpiry},
		{"zero means default", 0, DefaultNodeCertExpiry},
		{"below minimum means default", MinNodeCertExpiry - time.Second, DefaultNodeCertExpiry},
		{"negative means default", -time.Hour, DefaultNodeCertExpiry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := sign(t, root, "n1", shoalv1.NodeRole_NODE_ROLE_WORKER, tc.expiry)
			if got := cert.NotAfter.Sub(t0); got != tc.want {
				t.Errorf("NotAfter - now = %v; want %v", got, tc.want)
			}
			if !cert.NotBefore.Before(t0) || t0.Sub(cert.NotBefore) > 5*time.Minute {
				t.Errorf("NotBefore = %v; want slightly before %v to tolerate skew", cert.NotBefore, t0)
			}
			pool := x509.NewCertPool()
			pool.AddCert(root.Cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0.Add(tc.want + time.Second)}); err == nil {
				t.Error("certificate still verifies after it expired")
			}
		})
	}
}

func TestSignDistinctSerials(t *testing.T) {
	root, _ := newRoot(t)
	a := sign(t, root, "n1", shoalv1.NodeRole_NODE_ROLE_WORKER, time.Hour)
	b := sign(t, root, "n1", shoalv1.NodeRole_NODE_ROLE_WORKER, time.Hour)
	if a.SerialNumber.Cmp(b.SerialNumber) == 0 {
		t.Error("two certificates got the same serial number")
	}
	if a.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v is not positive", a.SerialNumber)
	}
}

func TestSignRefusesBadCSR(t *testing.T) {
	root, _ := newRoot(t)
	_, good := newCSR(t)
	der := mustPEMBlock(t, good, "CERTIFICATE REQUEST")

	// Change one letter of the signed subject: the structure still parses,
	// the signature no longer matches.
	tampered := bytes.Clone(der)
	i := bytes.Index(tampered, []byte("shoal-node"))
	if i < 0 {
		t.Fatal("CSR does not contain its subject")
	}
	tampered[i] ^= 0x01

	// A CSR whose signature bytes are damaged.
	badSig := bytes.Clone(der)
	badSig[len(badSig)-1] ^= 0xff

	toPEM := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	for _, tc := range []struct {
		name string
		csr  []byte
		want string // part of the message
	}{
		{"empty", nil, "no PEM certificate request"},
		{"garbage", []byte("definitely not PEM"), "no PEM certificate request"},
		{"certificate instead of request", root.CertPEM, "no PEM certificate request"},
		{"garbage DER", toPEM("CERTIFICATE REQUEST", []byte("garbage")), "csr:"},
		{"tampered subject", toPEM("CERTIFICATE REQUEST", tampered), "bad signature"},
		{"damaged signature", toPEM("CERTIFICATE REQUEST", badSig), "csr:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := root.Sign(tc.csr, "n1", "c1", shoalv1.NodeRole_NODE_ROLE_MANAGER, time.Hour, t0)
			if err == nil {
				t.Fatalf("Sign accepted a bad CSR and returned %d bytes", len(cert))
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Sign error %q is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Sign error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDigest(t *testing.T) {
	root, _ := newRoot(t)
	inputs := [][]byte{nil, []byte("a"), []byte("b"), root.Cert.Raw}
	seen := map[string]bool{}
	for _, in := range inputs {
		d := Digest(in)
		if len(d) != 50 {
			t.Errorf("len(Digest(%q)) = %d; want 50", in, len(d))
		}
		for _, c := range d {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
				t.Errorf("Digest(%q) = %q holds %q; want only 0-9a-z", in, d, c)
				break
			}
		}
		if Digest(in) != d {
			t.Errorf("Digest(%q) is not stable", in)
		}
		// It is the sha256, in base 36.
		n, ok := new(big.Int).SetString(d, 36)
		sum := sha256.Sum256(in)
		if !ok || n.Cmp(new(big.Int).SetBytes(sum[:])) != 0 {
			t.Errorf("Digest(%q) = %q does not decode to the sha256", in, d)
		}
		if seen[d] {
			t.Errorf("Digest(%q) = %q collides", in, d)
		}
		seen[d] = true
	}
	// A fixed value, so a change of encoding is caught.
	if got, want := Digest(nil), "5oaq0bjhj6un82wg98mgigso5q7qlhc63je4gw7ivixqqhkd3p"; got != want { // want computed independently in Python
		sum := sha256.Sum256(nil)
		t.Errorf("Digest(nil) = %q; want %q (sha256 %x)", got, want, sum)
	}
}

func TestDigestPadsShortValues(t *testing.T) {
	// Find an input whose sha256 is short in base 36; about one in six is.
	for i := 0; i < 10000; i++ {
		in := []byte{byte(i), byte(i >> 8)}
		sum := sha256.Sum256(in)
		if len(new(big.Int).SetBytes(sum[:]).Text(36)) >= 50 {
			continue
		}
		d := Digest(in)
		if len(d) != 50 || d[0] != '0' {
			t.Fatalf("Digest(%x) = %q; want 50 characters, zero padded", in, d)
		}
		if _, err := ParseToken(NewToken(d).String()); err != nil {
			t.Fatalf("token for a zero-padded digest does not parse: %v", err)
		}
		return
	}
	t.Fatal("found no input with a short digest")
}

func TestRenewAt(t *testing.T) {
	for _, tc := range []struct {
		life time.Duration
	}{
		{DefaultNodeCertExpiry},
		{time.Hour},
		{MinNodeCertExpiry},
		{3 * time.Minute},
	} {
		// Sign backdates NotBefore; the life is counted from issue.
		nb, na := t0.Add(-backdate), t0.Add(tc.life)
		got := RenewAt(nb, na)
		want := t0.Add(tc.life * 2 / 3)
		if !got.Equal(want) {
			t.Errorf("RenewAt(%v, %v) = %v; want %v (two thirds of %v after issue)", nb, na, got, want, tc.life)
		}
		if !got.After(nb) || !got.Before(na) {
			t.Errorf("RenewAt(%v, %v) = %v is outside the validity", nb, na, got)
		}
	}

	// On a real certificate: 90 days from issue -> 60 days.
	root, _ := newRoot(t)
	cert := sign(t, root, "n1", shoalv1.NodeRole_NODE_ROLE_WORKER, DefaultNodeCertExpiry)
	if got, want := RenewAt(cert.NotBefore, cert.NotAfter), t0.Add(60*24*time.Hour); !got.Equal(want) {
		t.Errorf("RenewAt(signed cert) = %v; want %v", got, want)
	}
}
