package raftnode

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shoal-run/shoal/internal/tlsutil"
)

// tlsStream is a raft.StreamLayer over mutual TLS: both ends must hold a
// manager certificate of the cluster.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	id        *tlsutil.Identity
}

func newTLSStream(bind string, advertise net.Addr, id *tlsutil.Identity) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	cfg := id.StrictServerConfig()
	cfg.VerifyConnection = requireManager
	return &tlsStream{Listener: tls.NewListener(ln, cfg), advertise: advertise, id: id}, nil
}

func requireManager(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 || tlsutil.RoleOf(cs.PeerCertificates[0]) != tlsutil.RoleManager {
		return errors.New("raft peers must hold a manager certificate")
	}
	return nil
}

func (s *tlsStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(addr), s.id.ClientConfig())
}
