package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-run/shoal/dockerapi"
	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/worker"
)

// DockerSocketNone turns the Docker API's socket off.
const DockerSocketNone = "none"

// DockerSocketFor is the Docker API's default socket: docker.sock beside
// the control socket (/run/shoal/docker.sock by default).
func DockerSocketFor(socket string) string {
	return filepath.Join(filepath.Dir(socket), "docker.sock")
}

// dockerAPI is the Docker Engine API's handler, a client of the node's
// own socket: every call takes the path a shoal CLI call takes.
type dockerAPI struct {
	conn    *grpc.ClientConn
	handler *dockerapi.Server
	srv     *http.Server
}

func (d *Daemon) newDockerAPI() (*dockerAPI, error) {
	conn, err := grpc.NewClient("unix://"+d.cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.MaxRecvMsgSize)))
	if err != nil {
		return nil, err
	}
	cgv := "1"
	if cgroup.V2() {
		cgv = "2"
	}
	h := dockerapi.New(dockerapi.Config{
		Control: shoalv1.NewControlServiceClient(conn), Swarm: shoalv1.NewSwarmServiceClient(conn), Runtime: shoalv1.NewRuntimeServiceClient(conn),
		Host: dockerapi.Host{Version: Version, Hostname: worker.Describe(d.cfg.Hostname, nil, "").GetHostname(), DataDir: d.cfg.DataDir,
			Labels: d.cfg.EngineLabels, CgroupVersion: cgv},
		Log: d.log.Named("dockerapi"),
	})
	return &dockerAPI{conn: conn, handler: h, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// serveDockerSocket serves the Docker API on the root-only socket until
// the returned stop is called.
func (d *Daemon) serveDockerSocket(api *dockerAPI) (stop func(), err error) {
	path := d.cfg.DockerSocket
	ln, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("--docker-socket: %w", err)
	}
	go func() { _ = api.srv.Serve(ln) }()
	d.log.Info("docker api listening", zap.String("socket", path))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if api.srv.Shutdown(ctx) != nil {
			_ = api.srv.Close()
		}
		api.conn.Close()
		os.Remove(path)
	}, nil
}

// dockerTLS serves the Docker API over TLS on --docker-addr while this
// node is a manager, as Docker's --tlsverify does: the client must show
// a manager certificate of the cluster (the files in the certificates
// directory of a manager: ca.crt, node.crt and node.key as Docker's
// ca.pem, cert.pem and key.pem). Its own certificate is signed by the
// cluster's CA for the addresses a client dials it by.
type dockerTLS struct {
	srv *http.Server
	ln  net.Listener
}

func (d *Daemon) startDockerTLS(m *manager.Manager, id *tlsutil.Identity) (*dockerTLS, error) {
	if d.cfg.DockerAddr == "" || d.docker == nil {
		return nil, nil
	}
	cert := &serverCert{m: m, id: id, names: d.dockerCertNames()}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: id.Pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.get() },
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || tlsutil.RoleOf(chains[0][0]) != tlsutil.RoleManager {
				return errors.New("the Docker API takes a manager certificate of the cluster")
			}
			return nil
		},
	}
	ln, err := tls.Listen("tcp", d.cfg.DockerAddr, cfg)
	if err != nil {
		return nil, fmt.Errorf("--docker-addr: %w", err)
	}
	srv := &http.Server{Handler: d.docker.handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(d.log.Named("dockerapi.tls"))}
	go func() { _ = srv.Serve(ln) }()
	d.log.Info("docker api listening", zap.String("addr", ln.Addr().String()))
	return &dockerTLS{srv: srv, ln: ln}, nil
}

func (t *dockerTLS) stop() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if t.srv.Shutdown(ctx) != nil {
		_ = t.srv.Close()
	}
}

// dockerCertNames are the names and addresses a client may dial the
// Docker API's TLS port by.
func (d *Daemon) dockerCertNames() []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(d.cfg.DockerAddr); err == nil && h != "" {
		names = append(names, h)
	}
	if d.st != nil {
		names = append(names, hostOfAddr(d.st.Addr))
	}
	if h := worker.Describe(d.cfg.Hostname, nil, "").GetHostname(); h != "" {
		names = append(names, h)
	}
	return names
}

// serverCert signs, on first use, a server certificate with the cluster's
// CA (which every manager's store holds), and again before it expires.
type serverCert struct {
	m     *manager.Manager
	id    *tlsutil.Identity
	names []string

	mu   sync.Mutex
	cert *tls.Certificate
}

func (c *serverCert) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && time.Now().Before(c.cert.Leaf.NotAfter.Add(-time.Hour)) {
		return c.cert, nil
	}
	root, err := c.m.RootCA()
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := root.SignServer(&key.PublicKey, c.id.NodeID(), c.names, 24*time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return c.cert, nil
}
