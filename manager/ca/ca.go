// Package ca is the cluster's certificate authority: the root made at
// `swarm init`, node certificates whose role is written inside them, and
// join tokens that pin the root by its digest. It is pure crypto and
// formatting; the gRPC service that uses it lives in server.go.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/auth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// DefaultNodeCertExpiry is the validity of node certificates, as in Docker.
const DefaultNodeCertExpiry = 90 * 24 * time.Hour

// MinNodeCertExpiry is the shortest validity accepted; short lifetimes are
// for tests of renewal.
const MinNodeCertExpiry = 5 * time.Second

// backdate tolerates clocks a little behind the CA's.
const backdate = time.Minute

// RootCA signs node certificates.
type RootCA struct {
	CertPEM []byte
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	Digest  string
}

// NewRootCA makes a self-signed root valid for 20 years.
func NewRootCA(now time.Time) (*RootCA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "shoal-root-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	root, err := ParseRootCA(certPEM, keyPEM)
	return root, keyPEM, err
}

// ParseRootCA loads a root from PEM data.
func ParseRootCA(certPEM, keyPEM []byte) (*RootCA, error) {
	cert, err := tlsutil.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("root CA certificate: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("root CA key: no PEM data")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("root CA key: %w", err)
	}
	return &RootCA{CertPEM: certPEM, Cert: cert, Key: key, Digest: Digest(cert.Raw)}, nil
}

// Digest is the sha256 of a DER certificate in base36, 50 characters, as
// written in join tokens.
func Digest(der []byte) string {
	sum := sha256.Sum256(der)
	return fmt.Sprintf("%050s", new(big.Int).SetBytes(sum[:]).Text(36))
}

// Sign issues a certificate for the key in csrPEM. The subject is the CA's
// choice: CN is the node ID, OU the role, O the cluster ID.
func (r *RootCA) Sign(csrPEM []byte, nodeID, clusterID string, role shoalv1.NodeRole, expiry time.Duration, now time.Time) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("csr: no PEM certificate request: %w", errdefs.ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %v: %w", err, errdefs.ErrInvalid)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: bad signature: %w", errdefs.ErrInvalid)
	}
	if expiry < MinNodeCertExpiry {
		expiry = DefaultNodeCertExpiry
	}
	names := []string{nodeID}
	if role == shoalv1.NodeRole_NODE_ROLE_MANAGER {
		names = append(names, tlsutil.ManagerServerName)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:         nodeID,
			OrganizationalUnit: []string{tlsutil.OUForRole(auth.RoleFromProto(role))},
			Organization:       []string{clusterID},
		},
		DNSNames:    names,
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(expiry),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, csr.PublicKey, r.Key)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// SignServer issues a server-only certificate for pub, valid for names
// (DNS names or IP addresses): no role, so it can never act as a node.
// A manager serves the Docker API's TLS port with one.
func (r *RootCA) SignServer(pub crypto.PublicKey, cn string, names []string, expiry time.Duration, now time.Time) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(expiry),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, pub, r.Key)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	return der, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

// RenewAt is when a certificate valid from notBefore to notAfter should be
// renewed: once two thirds of its life (counted from issue) have passed.
func RenewAt(notBefore, notAfter time.Time) time.Time {
	issued := notBefore.Add(backdate)
	return issued.Add(notAfter.Sub(issued) * 2 / 3)
}
