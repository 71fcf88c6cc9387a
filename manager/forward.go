package manager

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// forwarder sends calls a follower cannot answer to the leader, over
// mutual TLS with this manager's certificate, vouching for the caller.
type forwarder struct {
	id    *tlsutil.Identity
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newForwarder(id *tlsutil.Identity) *forwarder {
	return &forwarder{id: id, conns: map[string]*grpc.ClientConn{}}
}

func (f *forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(f.id.ClientConfig())))
	if err != nil {
		return nil, err
	}
	f.conns[addr] = c
	return c, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, c := range f.conns {
		c.Close()
		delete(f.conns, a)
	}
}

// responseFor returns an empty response message for a full method name,
// found through the generated descriptors.
func responseFor(method string) (proto.Message, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("bad method %q", method)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("no method %s", method)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}

// leaderAddr finds the leader's advertised gRPC address.
func (m *Manager) leaderAddr() (string, error) {
	leader := m.raft.Leader()
	if leader == "" {
		return "", fmt.Errorf("no leader: a majority of managers may be down or unreachable; the cluster accepts no changes until a quorum is back: %w", errdefs.ErrUnavailable)
	}
	var n *shoalv1.Node
	m.store.View(func(r store.ReadTx) { n = store.Get[*shoalv1.Node](r, store.TableNode, leader) })
	if addr := n.GetManagerStatus().GetAddr(); addr != "" {
		return addr, nil
	}
	return "", fmt.Errorf("leader %s is not known to this manager yet; retry shortly: %w", leader, errdefs.ErrUnavailable)
}

func (m *Manager) forward(ctx context.Context, c Caller, method string, req any) (any, error) {
	if isForwarded(ctx) {
		return nil, fmt.Errorf("this manager is no longer the leader; retry: %w", errdefs.ErrUnavailable)
	}
	addr, err := m.leaderAddr()
	if err != nil {
		return nil, err
	}
	conn, err := m.fwd.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := responseFor(method)
	if err != nil {
		return nil, err
	}
	if err := conn.Invoke(forwardMetadata(ctx, c), method, req, resp); err != nil {
		return nil, errgrpc.FromGRPC(err)
	}
	return resp, nil
}
