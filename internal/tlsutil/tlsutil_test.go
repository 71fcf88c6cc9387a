package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/ca"
)

const (
	manager = tlsutil.RoleManager
	worker  = tlsutil.RoleWorker
)

// testCA is a cluster root that issues node identities.
type testCA struct {
	t    *testing.T
	root *ca.RootCA
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	root, _, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatalf("NewRootCA: %v", err)
	}
	return &testCA{t: t, root: root}
}

// issue makes a key, has the CA sign it and returns the PEM files.
func (c *testCA) issue(nodeID string, role tlsutil.Role) (certPEM, keyPEM []byte) {
	c.t.Helper()
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		c.t.Fatalf("NewKeyAndCSR: %v", err)
	}
	certPEM, err = c.root.Sign(csrPEM, nodeID, "cluster-1", auth.RoleToProto(role), time.Hour, time.Now())
	if err != nil {
		c.t.Fatalf("Sign: %v", err)
	}
	return certPEM, keyPEM
}

func (c *testCA) identity(nodeID string, role tlsutil.Role) *tlsutil.Identity {
	c.t.Helper()
	certPEM, keyPEM := c.issue(nodeID, role)
	id, err := tlsutil.NewIdentity(c.root.CertPEM, certPEM, keyPEM)
	if err != nil {
		c.t.Fatalf("NewIdentity: %v", err)
	}
	return id
}

func TestOUForRoleAndRoleOf(t *testing.T) {
	for _, tc := range []struct {
		role tlsutil.Role
		ou   string
		back tlsutil.Role
	}{
		{manager, tlsutil.ManagerOU, manager},
		{worker, tlsutil.WorkerOU, worker},
		{tlsutil.RoleNone, tlsutil.WorkerOU, worker},
	} {
		ou := tlsutil.OUForRole(tc.role)
		if ou != tc.ou {
			t.Errorf("OUForRole(%v) = %q; want %q", tc.role, ou, tc.ou)
		}
		cert := &x509.Certificate{Subject: pkix.Name{OrganizationalUnit: []string{ou}}}
		if got := tlsutil.RoleOf(cert); got != tc.back {
			t.Errorf("RoleOf(OU=%q) = %v; want %v", ou, got, tc.back)
		}
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want tlsutil.Role
	}{
		{"nil", nil, tlsutil.RoleNone},
		{"no OU", &x509.Certificate{}, tlsutil.RoleNone},
		{"foreign OU", &x509.Certificate{Subject: pkix.Name{OrganizationalUnit: []string{"admins"}}}, tlsutil.RoleNone},
		{"role after another OU", &x509.Certificate{Subject: pkix.Name{OrganizationalUnit: []string{"x", tlsutil.ManagerOU}}}, manager},
		// The role is only in the OU; a manager-looking CN means nothing.
		{"role in CN", &x509.Certificate{Subject: pkix.Name{CommonName: tlsutil.ManagerOU}}, tlsutil.RoleNone},
	} {
		if got := tlsutil.RoleOf(tc.cert); got != tc.want {
			t.Errorf("%s: RoleOf = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewKeyAndCSR(t *testing.T) {
	keyPEM, csrPEM, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(keyPEM), "BEGIN EC PRIVATE KEY") {
		t.Errorf("key PEM is not an EC private key:\n%s", keyPEM)
	}
	if !strings.Contains(string(csrPEM), "BEGIN CERTIFICATE REQUEST") {
		t.Errorf("CSR PEM is not a certificate request:\n%s", csrPEM)
	}
	k2, _, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	if string(k2) == string(keyPEM) {
		t.Error("two calls returned the same key")
	}
}

func TestNewIdentity(t *testing.T) {
	c := newCA(t)
	for _, tc := range []struct {
		nodeID string
		role   tlsutil.Role
	}{
		{"mgr1", manager},
		{"wrk1", worker},
	} {
		id := c.identity(tc.nodeID, tc.role)
		if id.NodeID() != tc.nodeID {
			t.Errorf("NodeID() = %q; want %q", id.NodeID(), tc.nodeID)
		}
		if id.Role() != tc.role {
			t.Errorf("Role() = %v; want %v", id.Role(), tc.role)
		}
		if id.Cert() == nil || id.Leaf() == nil || id.Leaf() != id.Cert().Leaf {
			t.Error("Cert()/Leaf() not set")
		}
		if string(id.CAPEM) != string(c.root.CertPEM) {
			t.Error("CAPEM is not the root")
		}
		if _, err := id.Leaf().Verify(x509.VerifyOptions{Roots: id.Pool}); err != nil {
			t.Errorf("leaf does not verify against Pool: %v", err)
		}
	}
}

func TestNewIdentityErrors(t *testing.T) {
	c := newCA(t)
	other := newCA(t)
	certPEM, keyPEM := c.issue("n1", worker)
	_, otherKey := c.issue("n2", worker)
	otherCert, otherCertKey := other.issue("n1", worker)
	for _, tc := range []struct {
		name             string
		caPEM, cert, key []byte
		wantMsg          string
	}{
		{"no CA", nil, certPEM, keyPEM, "no CA certificate"},
		{"garbage CA", []byte("nope"), certPEM, keyPEM, "no CA certificate"},
		{"no cert", c.root.CertPEM, nil, keyPEM, "load node certificate"},
		{"key of another node", c.root.CertPEM, certPEM, otherKey, "load node certificate"},
		{"cert of another cluster", c.root.CertPEM, otherCert, otherCertKey, "not signed by the cluster CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tlsutil.NewIdentity(tc.caPEM, tc.cert, tc.key)
			if err == nil {
				t.Fatalf("NewIdentity succeeded (node %q); want an error", id.NodeID())
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("NewIdentity error %q; want it to mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestIdentitySet(t *testing.T) {
	c := newCA(t)
	id := c.identity("n1", worker)
	before := id.Cert()

	// A certificate from another CA is refused and the old one stays.
	other := newCA(t)
	foreignCert, foreignKey := other.issue("n1", manager)
	err := id.Set(foreignCert, foreignKey)
	if err == nil {
		t.Fatal("Set accepted a certificate from another CA")
	}
	if !strings.Contains(err.Error(), "not signed by the cluster CA") {
		t.Errorf("Set error %q does not say why", err)
	}
	if id.Cert() != before || id.Role() != worker {
		t.Error("a refused Set changed the identity")
	}

	// A mismatched pair is refused too.
	goodCert, _ := c.issue("n1", manager)
	_, wrongKey := c.issue("n1", manager)
	if err := id.Set(goodCert, wrongKey); err == nil {
		t.Error("Set accepted a certificate with another certificate's key")
	}
	if id.Cert() != before {
		t.Error("a refused Set changed the identity")
	}

	// A renewal from the same CA (here a promotion) replaces it.
	newCert, newKey := c.issue("n1", manager)
	if err := id.Set(newCert, newKey); err != nil {
		t.Fatalf("Set(renewed): %v", err)
	}
	if id.Cert() == before || id.Role() != manager || id.NodeID() != "n1" {
		t.Errorf("after Set: role %v node %q; want manager n1", id.Role(), id.NodeID())
	}
}

type handshakeResult struct {
	serverErr, clientErr error
	serverSaw, clientSaw *x509.Certificate // the peer's leaf, if any
}

// handshake runs a TLS handshake over loopback TCP and then one byte of
// data from server to client, so that a client certificate refused by the
// server surfaces on the client too (in TLS 1.3 the client finishes its
// handshake before the server has checked its certificate).
func handshake(t *testing.T, server, client *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(30 * time.Second)

	type srv struct {
		err  error
		peer *x509.Certificate
	}
	done := make(chan srv, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- srv{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		tc := tls.Server(conn, server)
		var r srv
		if r.err = tc.Handshake(); r.err == nil {
			if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
				r.peer = certs[0]
			}
			_, r.err = tc.Write([]byte{42})
		}
		done <- r
	}()

	var res handshakeResult
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(deadline)
	tc := tls.Client(conn, client)
	if res.clientErr = tc.Handshake(); res.clientErr == nil {
		res.clientSaw = tc.ConnectionState().PeerCertificates[0]
		var b [1]byte
		if _, res.clientErr = io.ReadFull(tc, b[:]); res.clientErr == nil && b[0] != 42 {
			res.clientErr = errors.New("garbled byte")
		}
	}
	conn.Close()
	s := <-done
	res.serverErr, res.serverSaw = s.err, s.peer
	return res
}

func TestHandshake(t *testing.T) {
	c := newCA(t)
	mgr := c.identity("mgr1", manager)
	wrk := c.identity("wrk1", worker)
	mgr2 := c.identity("mgr2", manager)

	t.Run("worker dials manager", func(t *testing.T) {
		r := handshake(t, mgr.ServerConfig(), wrk.ClientConfig())
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("server err %v, client err %v", r.serverErr, r.clientErr)
		}
		if r.clientSaw.Subject.CommonName != "mgr1" || tlsutil.RoleOf(r.clientSaw) != manager {
			t.Errorf("client saw %q (%v); want manager mgr1", r.clientSaw.Subject.CommonName, tlsutil.RoleOf(r.clientSaw))
		}
		if r.serverSaw == nil || r.serverSaw.Subject.CommonName != "wrk1" || tlsutil.RoleOf(r.serverSaw) != worker {
			t.Errorf("server saw %v; want worker wrk1", r.serverSaw)
		}
	})

	t.Run("manager dials manager strictly", func(t *testing.T) {
		r := handshake(t, mgr.StrictServerConfig(), mgr2.ClientConfig())
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("server err %v, client err %v", r.serverErr, r.clientErr)
		}
		if r.serverSaw == nil || r.serverSaw.Subject.CommonName != "mgr2" {
			t.Errorf("server saw %v; want mgr2", r.serverSaw)
		}
	})

	t.Run("worker cannot pose as a manager", func(t *testing.T) {
		r := handshake(t, wrk.ServerConfig(), mgr.ClientConfig())
		var hostErr x509.HostnameError
		if !errors.As(r.clientErr, &hostErr) {
			t.Fatalf("client err = %v; want a hostname error for %q", r.clientErr, tlsutil.ManagerServerName)
		}
		if hostErr.Host != tlsutil.ManagerServerName {
			t.Errorf("hostname error for %q; want %q", hostErr.Host, tlsutil.ManagerServerName)
		}
		if r.serverErr == nil {
			t.Error("server finished a handshake the client refused")
		}
	})

	t.Run("manager of another cluster is refused", func(t *testing.T) {
		foreign := newCA(t).identity("mgrX", manager)
		r := handshake(t, foreign.ServerConfig(), wrk.ClientConfig())
		var unknown x509.UnknownAuthorityError
		if !errors.As(r.clientErr, &unknown) {
			t.Fatalf("client err = %v; want unknown authority", r.clientErr)
		}
	})

	t.Run("client of another cluster is refused", func(t *testing.T) {
		foreign := newCA(t).identity("wrkX", worker)
		client := foreign.ClientConfig()
		client.RootCAs = mgr.Pool // it trusts us, we must not trust it
		r := handshake(t, mgr.ServerConfig(), client)
		if r.serverErr == nil {
			t.Fatal("server accepted a client certificate from another CA")
		}
		if r.clientErr == nil {
			t.Error("client read data from a server that refused it")
		}
	})

	t.Run("client without certificate", func(t *testing.T) {
		anon := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: mgr.Pool, ServerName: tlsutil.ManagerServerName}
		// Allowed by ServerConfig (for the join methods) ...
		r := handshake(t, mgr.ServerConfig(), anon)
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("anonymous client: server err %v, client err %v", r.serverErr, r.clientErr)
		}
		if r.serverSaw != nil {
			t.Errorf("server saw a client certificate %q", r.serverSaw.Subject.CommonName)
		}
		// ... refused by StrictServerConfig.
		r = handshake(t, mgr.StrictServerConfig(), anon)
		if r.serverErr == nil {
			t.Error("StrictServerConfig accepted a client without certificate")
		}
		if r.clientErr == nil {
			t.Error("anonymous client read data from a strict server")
		}
	})

	t.Run("TLS 1.2 is refused", func(t *testing.T) {
		old := wrk.ClientConfig()
		old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		r := handshake(t, mgr.ServerConfig(), old)
		if r.clientErr == nil || r.serverErr == nil {
			t.Errorf("TLS 1.2 handshake: server err %v, client err %v; want both to fail", r.serverErr, r.clientErr)
		}
	})
}

// TestHandshakeAfterRenewal checks that a listener's config picks up a
// certificate replaced by Set without being rebuilt.
func TestHandshakeAfterRenewal(t *testing.T) {
	c := newCA(t)
	srv := c.identity("node1", worker)
	cli := c.identity("wrk1", worker)
	serverCfg, clientCfg := srv.ServerConfig(), cli.ClientConfig()

	if r := handshake(t, serverCfg, clientCfg); r.clientErr == nil {
		t.Fatal("worker certificate served as a manager")
	}
	// Promote node1: same config objects, new certificate.
	certPEM, keyPEM := c.issue("node1", manager)
	if err := srv.Set(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	r := handshake(t, serverCfg, clientCfg)
	if r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("after promotion: server err %v, client err %v", r.serverErr, r.clientErr)
	}
	if tlsutil.RoleOf(r.clientSaw) != manager {
		t.Errorf("client saw role %v; want manager", tlsutil.RoleOf(r.clientSaw))
	}
	// The client side picks up its own renewal too.
	certPEM, keyPEM = c.issue("wrk1-renewed", worker)
	if err := cli.Set(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	r = handshake(t, serverCfg, clientCfg)
	if r.serverErr != nil || r.serverSaw == nil || r.serverSaw.Subject.CommonName != "wrk1-renewed" {
		t.Errorf("server saw %v (err %v); want the renewed client certificate", r.serverSaw, r.serverErr)
	}
}

func TestParseCertPEMAndPoolOf(t *testing.T) {
	c := newCA(t)
	_, csr, err := tlsutil.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsutil.ParseCertPEM(c.root.CertPEM)
	if err != nil || !cert.Equal(c.root.Cert) {
		t.Errorf("ParseCertPEM(root) = %v, %v", cert, err)
	}
	for _, bad := range [][]byte{nil, []byte("junk"), csr} {
		if _, err := tlsutil.ParseCertPEM(bad); err == nil {
			t.Errorf("ParseCertPEM(%.20q) succeeded", bad)
		}
		if _, err := tlsutil.PoolOf(bad); err == nil {
			t.Errorf("PoolOf(%.20q) succeeded", bad)
		}
	}
	if _, err := tlsutil.PoolOf(c.root.CertPEM); err != nil {
		t.Errorf("PoolOf(root): %v", err)
	}
}

func TestFilesSaveLoad(t *testing.T) {
	c := newCA(t)
	dir := filepath.Join(t.TempDir(), "certs", "nested")
	f := tlsutil.Files{Dir: dir}
	if f.Exists() {
		t.Fatal("Exists() before Save")
	}
	if _, err := f.Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load() before Save = %v; want not exist", err)
	}

	certPEM, keyPEM := c.issue("n1", manager)
	if err := f.Save(c.root.CertPEM, certPEM, keyPEM, nil); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if !f.Exists() {
		t.Error("Exists() after Save = false")
	}
	for _, tc := range []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{f.CA(), c.root.CertPEM, 0o644},
		{f.Cert(), certPEM, 0o644},
		{f.Key(), keyPEM, 0o600},
	} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != tc.mode {
			t.Errorf("%s mode = %v; want %v", filepath.Base(tc.path), st.Mode().Perm(), tc.mode)
		}
		got, err := os.ReadFile(tc.path)
		if err != nil || string(got) != string(tc.data) {
			t.Errorf("%s holds %q (err %v); want what was saved", filepath.Base(tc.path), got, err)
		}
		if filepath.Dir(tc.path) != dir {
			t.Errorf("%s is not in %s", tc.path, dir)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("certificate dir mode = %v (err %v); want no access for group and others", st.Mode().Perm(), err)
	}

	id, err := f.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if id.NodeID() != "n1" || id.Role() != manager || string(id.CAPEM) != string(c.root.CertPEM) {
		t.Errorf("Load() = node %q role %v; want n1 manager", id.NodeID(), id.Role())
	}

	// Saving again (a renewal) replaces the files and leaves no temporary
	// files behind.
	certPEM2, keyPEM2 := c.issue("n1", worker)
	if err := f.Save(c.root.CertPEM, certPEM2, keyPEM2, nil); err != nil {
		t.Fatalf("Save again: %v", err)
	}
	id, err = f.Load()
	if err != nil || id.Role() != worker {
		t.Fatalf("Load after renewal = %v, %v; want the worker certificate", id, err)
	}
	if st, _ := os.Stat(f.Key()); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode after renewal = %v; want 0600", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 3 {
		t.Errorf("dir holds %q; want only ca.crt, node.crt and node.key", names)
	}

	// A damaged file is an error, not a half-loaded identity.
	if err := os.WriteFile(f.Cert(), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil {
		t.Error("Load succeeded with a damaged certificate file")
	}
}
