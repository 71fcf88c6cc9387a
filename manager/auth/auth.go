// Package auth decides who makes a call to a manager and what they may
// call: the caller comes from the verified client certificate, or, for a
// call another manager forwards, from what that manager vouches for; each
// method needs anyone, a node, or a manager of the cluster, and all but
// the CA certificate are answered by the leader. It sees no store and no
// Raft.
package auth

import (
	"context"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Caller is who made a call, from the verified client certificate (or, for
// a call forwarded by another manager, from what that manager vouches for).
type Caller struct {
	NodeID string
	Role   shoalv1.NodeRole
	Addr   string
}

// Host is the host part of the caller's address.
func (c Caller) Host() string {
	if h, _, err := net.SplitHostPort(c.Addr); err == nil {
		return h
	}
	return c.Addr
}

type callerKey struct{}

// With returns ctx carrying the authenticated caller c.
func With(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// From returns the authenticated caller of ctx.
func From(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Metadata keys a forwarding manager sets for the caller it vouches for.
const (
	mdForwarded = "shoal-forwarded"
	mdNodeID    = "shoal-node-id"
	mdNodeRole  = "shoal-node-role"
	mdNodeAddr  = "shoal-node-addr"
)

type access int

const (
	accessAnyone  access = iota
	accessNode           // any certificate of the cluster
	accessManager        // manager certificates only
)

func accessFor(method string) access {
	switch {
	case method == "/shoal.v1.CAService/GetRootCACertificate", method == "/shoal.v1.CAService/IssueNodeCertificate":
		return accessAnyone
	case strings.HasPrefix(method, "/shoal.v1.ControlService/"), strings.HasPrefix(method, "/shoal.v1.RaftService/"):
		return accessManager
	}
	return accessNode
}

// LeaderOnly reports whether a follower forwards calls of method to the
// leader.
func LeaderOnly(method string) bool {
	return method != "/shoal.v1.CAService/GetRootCACertificate"
}

// Authenticate finds the caller of a call to method and checks it may make
// it.
func Authenticate(ctx context.Context, method, clusterID string) (Caller, error) {
	var c Caller
	p, _ := peer.FromContext(ctx)
	if p != nil {
		c.Addr = p.Addr.String()
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			leaf := ti.State.VerifiedChains[0][0]
			if clusterID == "" || (len(leaf.Subject.Organization) > 0 && leaf.Subject.Organization[0] == clusterID) {
				c.NodeID = leaf.Subject.CommonName
				c.Role = RoleToProto(tlsutil.RoleOf(leaf))
			}
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && c.Role == shoalv1.NodeRole_NODE_ROLE_MANAGER && len(md.Get(mdForwarded)) > 0 {
		c = Caller{}
		if v := md.Get(mdNodeID); len(v) > 0 {
			c.NodeID = v[0]
		}
		if v := md.Get(mdNodeRole); len(v) > 0 {
			c.Role = shoalv1.NodeRole(shoalv1.NodeRole_value[v[0]])
		}
		if v := md.Get(mdNodeAddr); len(v) > 0 {
			c.Addr = v[0]
		}
	}
	switch accessFor(method) {
	case accessNode:
		if c.NodeID == "" {
			return c, fmt.Errorf("%s needs a node certificate of this cluster: %w", method, errdefs.ErrUnauthenticated)
		}
	case accessManager:
		if c.NodeID == "" {
			return c, fmt.Errorf("the control API needs a manager certificate of this cluster (use the local socket on a manager, or --tlscert/--tlskey): %w", errdefs.ErrUnauthenticated)
		}
		if c.Role != shoalv1.NodeRole_NODE_ROLE_MANAGER {
			return c, fmt.Errorf("node %s holds a worker certificate: worker nodes cannot use the control API; run the command on a manager: %w", c.NodeID, errdefs.ErrPermissionDenied)
		}
	}
	return c, nil
}

// ForwardMetadata is ctx for a call forwarded to the leader on behalf of
// c.
func ForwardMetadata(ctx context.Context, c Caller) context.Context {
	return metadata.AppendToOutgoingContext(ctx, mdForwarded, "1", mdNodeID, c.NodeID, mdNodeRole, c.Role.String(), mdNodeAddr, c.Addr)
}

// IsForwarded reports whether the call of ctx was forwarded by another
// manager.
func IsForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(mdForwarded)) > 0
}
