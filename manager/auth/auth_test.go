package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/internal/methodtest"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func (a access) String() string {
	switch a {
	case accessAnyone:
		return "anyone"
	case accessNode:
		return "node"
	case accessManager:
		return "manager"
	}
	return "?"
}

func TestAccessFor(t *testing.T) {
	// Every method of the manager's services, with who may call it. A new
	// method fails here until it is given an access level on purpose.
	want := map[string]access{
		"/shoal.v1.CAService/GetRootCACertificate":     accessAnyone,
		"/shoal.v1.CAService/IssueNodeCertificate":     accessAnyone, // a joining node has only a token
		"/shoal.v1.CAService/RenewNodeCertificate":     accessNode,
		"/shoal.v1.DispatcherService/Heartbeat":        accessNode,
		"/shoal.v1.DispatcherService/Assignments":      accessNode,
		"/shoal.v1.DispatcherService/UpdateTaskStatus": accessNode,
		"/shoal.v1.DispatcherService/AttachNetwork":    accessNode, // for its own containers only
		"/shoal.v1.DispatcherService/DetachNetwork":    accessNode,
		// A node's own log subscriptions; the broker checks each publish.
		"/shoal.v1.DispatcherService/ListenLogSubscriptions": accessNode,
		"/shoal.v1.DispatcherService/PublishLogs":            accessNode,
		"/shoal.v1.RaftService/JoinRaft":                     accessManager,
		"/shoal.v1.RaftService/LeaveRaft":                    accessManager,
	}
	for _, m := range methodtest.Of(t, "shoal.v1.ControlService") {
		want[m] = accessManager
	}
	methodtest.Covers(t, want, func(string) bool { return true }, accessFor)

	// Names that only look like a privileged service fall to the default.
	for _, m := range []string{
		"/shoal.v1.ControlServiceX/ListNodes",
		"/shoal.v1.CAService/GetRootCACertificateX",
		"/other.v1.CAService/GetRootCACertificate",
		"/shoal.v1.SwarmService/Init",
		"",
	} {
		if got := accessFor(m); got != accessNode {
			t.Errorf("accessFor(%q) = %v; want %v", m, got, accessNode)
		}
	}
}

func TestLeaderOnly(t *testing.T) {
	for _, svc := range methodtest.ManagerServices {
		for _, m := range methodtest.Of(t, svc) {
			// Only the CA certificate may be answered by any manager: it
			// is the same on all and a node without a cluster asks it.
			want := m != "/shoal.v1.CAService/GetRootCACertificate"
			if got := LeaderOnly(m); got != want {
				t.Errorf("LeaderOnly(%q) = %v; want %v", m, got, want)
			}
		}
	}
}

// peerCtx makes the context of a call over mutual TLS from a node whose
// verified certificate names id, role and cluster.
func peerCtx(id, ou, cluster string) context.Context {
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}}
	if id != "" {
		leaf := &x509.Certificate{Subject: pkix.Name{CommonName: id, OrganizationalUnit: []string{ou}, Organization: []string{cluster}}}
		p.AuthInfo = credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}}
	}
	return peer.NewContext(context.Background(), p)
}

func TestAuthenticate(t *testing.T) {
	const (
		control   = "/shoal.v1.ControlService/ListNodes"
		heartbeat = "/shoal.v1.DispatcherService/Heartbeat"
		rootCA    = "/shoal.v1.CAService/GetRootCACertificate"
	)
	forwarded := func(ctx context.Context, id string, role shoalv1.NodeRole) context.Context {
		return metadata.NewIncomingContext(ctx, metadata.Pairs(mdForwarded, "1", mdNodeID, id, mdNodeRole, role.String(), mdNodeAddr, "10.9.9.9:1234"))
	}
	mgr, wrk := tlsutil.ManagerOU, tlsutil.WorkerOU
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		method   string
		cat      error // nil means allowed
		wantID   string
		wantRole shoalv1.NodeRole
		wantAddr string
	}{
		{name: "manager on control", ctx: peerCtx("m1", mgr, "c1"), method: control, wantID: "m1", wantRole: shoalv1.NodeRole_NODE_ROLE_MANAGER, wantAddr: "10.0.0.7:40000"},
		{name: "worker on control", ctx: peerCtx("w1", wrk, "c1"), method: control, cat: errdefs.ErrPermissionDenied},
		{name: "worker heartbeat", ctx: peerCtx("w1", wrk, "c1"), method: heartbeat, wantID: "w1", wantRole: shoalv1.NodeRole_NODE_ROLE_WORKER, wantAddr: "10.0.0.7:40000"},
		{name: "no certificate on control", ctx: peerCtx("", "", ""), method: control, cat: errdefs.ErrUnauthenticated},
		{name: "no certificate heartbeat", ctx: peerCtx("", "", ""), method: heartbeat, cat: errdefs.ErrUnauthenticated},
		{name: "no certificate root CA", ctx: peerCtx("", "", ""), method: rootCA, wantAddr: "10.0.0.7:40000"},
		{name: "no peer at all", ctx: context.Background(), method: heartbeat, cat: errdefs.ErrUnauthenticated},
		{name: "other cluster's manager", ctx: peerCtx("m9", mgr, "c2"), method: control, cat: errdefs.ErrUnauthenticated},
		{name: "other cluster's worker", ctx: peerCtx("w9", wrk, "c2"), method: heartbeat, cat: errdefs.ErrUnauthenticated},
		{name: "forwarded by a manager", ctx: forwarded(peerCtx("m2", mgr, "c1"), "w1", shoalv1.NodeRole_NODE_ROLE_WORKER), method: heartbeat,
			wantID: "w1", wantRole: shoalv1.NodeRole_NODE_ROLE_WORKER, wantAddr: "10.9.9.9:1234"},
		{name: "forwarded worker on control", ctx: forwarded(peerCtx("m2", mgr, "c1"), "w1", shoalv1.NodeRole_NODE_ROLE_WORKER), method: control,
			cat: errdefs.ErrPermissionDenied},
		{name: "forwarded anonymous join", ctx: forwarded(peerCtx("m2", mgr, "c1"), "", shoalv1.NodeRole_NODE_ROLE_UNSPECIFIED), method: heartbeat,
			cat: errdefs.ErrUnauthenticated},
		// Only a manager may vouch for someone else.
		{name: "worker claiming to forward", ctx: forwarded(peerCtx("w1", wrk, "c1"), "m1", shoalv1.NodeRole_NODE_ROLE_MANAGER), method: control,
			cat: errdefs.ErrPermissionDenied},
		{name: "anonymous claiming to forward", ctx: forwarded(peerCtx("", "", ""), "m1", shoalv1.NodeRole_NODE_ROLE_MANAGER), method: control,
			cat: errdefs.ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Authenticate(tc.ctx, tc.method, "c1")
			if tc.cat != nil {
				if !errdefs.Is(err, tc.cat) {
					t.Errorf("Authenticate(%s, %s) = %+v, %v; want %v", tc.name, tc.method, c, err, tc.cat)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate(%s, %s) = %v; want success", tc.name, tc.method, err)
			}
			if c.NodeID != tc.wantID || c.Role != tc.wantRole || c.Addr != tc.wantAddr {
				t.Errorf("Authenticate(%s, %s) = %+v; want {%s %v %s}", tc.name, tc.method, c, tc.wantID, tc.wantRole, tc.wantAddr)
			}
		})
	}

	// A worker refused on the control API is told what to do.
	_, err := Authenticate(peerCtx("w1", wrk, "c1"), control, "c1")
	if err == nil || !strings.Contains(err.Error(), "run the command on a manager") {
		t.Errorf("Authenticate(worker, control) = %v; want a hint to use a manager", err)
	}
}

func TestHostOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.7:4242", "10.0.0.7"},
		{"[fd00::1]:4242", "fd00::1"},
		{"node-1:80", "node-1"},
		{"10.0.0.7", "10.0.0.7"},
		{"@", "@"}, // a unix socket peer
		{"", ""},
	} {
		if got := (Caller{Addr: tc.in}).Host(); got != tc.want {
			t.Errorf("Caller{Addr: %q}.Host() = %q; want %q", tc.in, got, tc.want)
		}
	}
}
