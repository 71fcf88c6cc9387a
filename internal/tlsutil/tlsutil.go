// Package tlsutil holds what every node needs for mutual TLS: node keys and
// certificate requests, the role carried inside a certificate, TLS
// configurations for servers and clients, and the certificate files a node
// keeps on disk. Signing lives with the CA in manager/ca.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"sync/atomic"
)

// Organizational units that carry a node's role inside its certificate, and
// the DNS names a certificate of that role answers to.
const (
	ManagerOU = "shoal-manager"
	WorkerOU  = "shoal-worker"
	// ManagerServerName is the name clients verify when dialing a manager:
	// only manager certificates carry it.
	ManagerServerName = "shoal-manager"
)

// Role is what a node certificate lets its holder do. Callers that speak
// the API convert it to and from the wire's NodeRole (manager/ca does).
type Role int

// The roles a certificate can carry.
const (
	// RoleNone is no role: a nil certificate or one without a Shoal OU.
	RoleNone Role = iota
	RoleWorker
	RoleManager
)

func (r Role) String() string {
	switch r {
	case RoleWorker:
		return "worker"
	case RoleManager:
		return "manager"
	}
	return "none"
}

// OUForRole returns the organizational unit for role: a manager's, or a
// worker's for any other role.
func OUForRole(role Role) string {
	if role == RoleManager {
		return ManagerOU
	}
	return WorkerOU
}

// RoleOf returns the role written in cert, or RoleNone.
func RoleOf(cert *x509.Certificate) Role {
	if cert == nil {
		return RoleNone
	}
	for _, ou := range cert.Subject.OrganizationalUnit {
		switch ou {
		case ManagerOU:
			return RoleManager
		case WorkerOU:
			return RoleWorker
		}
	}
	return RoleNone
}

// NewKeyAndCSR makes a P-256 key and a certificate request for it. The CA
// decides the subject; the request only proves possession of the key.
func NewKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "shoal-node"},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), nil
}

// ParseCertPEM parses the first certificate in data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// PoolOf returns a pool holding the PEM certificate caPEM.
func PoolOf(caPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate found in PEM data")
	}
	return pool, nil
}

// Identity is a node's current certificate, swapped atomically when it is
// renewed so that open listeners and dialers pick up the new one.
type Identity struct {
	CAPEM []byte
	Pool  *x509.CertPool
	cert  atomic.Pointer[keyPair]
}

// keyPair is a certificate with the PEM it was made from.
type keyPair struct {
	tls             tls.Certificate
	certPEM, keyPEM []byte
}

// NewIdentity builds an identity from PEM data.
func NewIdentity(caPEM, certPEM, keyPEM []byte) (*Identity, error) {
	pool, err := PoolOf(caPEM)
	if err != nil {
		return nil, err
	}
	id := &Identity{CAPEM: caPEM, Pool: pool}
	if err := id.Set(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return id, nil
}

// Set replaces the certificate.
func (id *Identity) Set(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load node certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return err
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: id.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("node certificate is not signed by the cluster CA: %w", err)
	}
	id.cert.Store(&keyPair{tls: c, certPEM: certPEM, keyPEM: keyPEM})
	return nil
}

// Cert returns the current certificate.
func (id *Identity) Cert() *tls.Certificate { return &id.cert.Load().tls }

// PEM returns the current certificate and its private key as PEM, the
// key in the clear: what Files.Save takes to store the set again (with
// re-wrapped key material, say).
func (id *Identity) PEM() (certPEM, keyPEM []byte) {
	p := id.cert.Load()
	return p.certPEM, p.keyPEM
}

// Leaf returns the parsed current certificate.
func (id *Identity) Leaf() *x509.Certificate { return id.cert.Load().tls.Leaf }

// NodeID is the node ID written in the certificate.
func (id *Identity) NodeID() string { return id.Leaf().Subject.CommonName }

// Role is the role written in the certificate.
func (id *Identity) Role() Role { return RoleOf(id.Leaf()) }

// ServerConfig accepts clients with a certificate of the cluster, and
// clients without one (which may only call the join methods).
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      id.Pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.Cert(), nil },
	}
}

// StrictServerConfig requires a client certificate of the cluster.
func (id *Identity) StrictServerConfig() *tls.Config {
	c := id.ServerConfig()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c
}

// ClientConfig dials managers of the cluster with this node's certificate.
func (id *Identity) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    id.Pool,
		ServerName: ManagerServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.Cert(), nil
		},
	}
}
