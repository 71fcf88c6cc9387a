// Package forward answers leader-only calls on a follower: it sends them
// to the leader over mutual TLS with this manager's certificate, vouching
// for the caller, follows the leadership when it moves while a call waits,
// and sends a call again to the next leader only when a second copy cannot
// take effect twice. It sees Raft's leadership through Raft and the
// managers' addresses through Store; the manager wires it into its
// interceptor.
package forward

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/errgrpc"
	"github.com/shoal-run/shoal/internal/tlsutil"
	"github.com/shoal-run/shoal/manager/auth"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// A leader cut off by a partition goes silent: its packets are dropped,
// nothing is reset, and a call forwarded to it waits for an answer that
// never comes. leaderCall ends such calls when the leadership moves on;
// these bound the connection itself, for a leader that stays leader but
// cannot be reached from here.
const (
	// forwardKeepalive is how often a connection to the leader is pinged
	// (gRPC's minimum); a ping unanswered for forwardKeepaliveTimeout
	// closes it.
	forwardKeepalive        = 10 * time.Second
	forwardKeepaliveTimeout = 3 * time.Second
	// forwardDialTimeout bounds a connection attempt to a leader whose
	// SYNs are dropped; forwardRedialMax caps the wait between attempts,
	// so a leader that is back is reached again within seconds.
	forwardDialTimeout = 3 * time.Second
	forwardRedialMax   = 2 * time.Second
)

// KeepaliveEnforcement is the keepalive policy a manager's gRPC server
// needs so that other managers' forwarders may ping it as often as they
// do (a server refuses pings more often than every 5 minutes by default).
var KeepaliveEnforcement = keepalive.EnforcementPolicy{MinTime: forwardKeepalive / 2, PermitWithoutStream: true}

// Store is what the forwarder reads of the store: the managers' addresses.
type Store interface {
	View(fn func(store.ReadTx))
}

// Raft is what the forwarder needs of this manager's Raft member.
type Raft interface {
	// Leader is the current leader's ID, or "" when there is none.
	Leader() string
	// LeaderChanged is closed once the leader changes after the call.
	LeaderChanged() <-chan struct{}
	// FailoverWait is how long a new leader may take to be known.
	FailoverWait() time.Duration
	// VerifyLeader confirms this member still leads.
	VerifyLeader(ctx context.Context) error
}

// Config is what a Forwarder is wired to.
type Config struct {
	NodeID   string // this manager
	Identity *tlsutil.Identity
	Store    Store
	Raft     Raft
	// Ready reports whether this manager is the leader and has applied
	// every committed entry.
	Ready func() bool
}

// Forwarder sends calls a follower cannot answer to the leader, over
// mutual TLS with this manager's certificate, vouching for the caller.
type Forwarder struct {
	cfg   Config
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// New makes a forwarder.
func New(cfg Config) *Forwarder {
	return &Forwarder{cfg: cfg, conns: map[string]*grpc.ClientConn{}}
}

// Conn is the connection the forwarder uses to the manager at addr.
func (f *Forwarder) Conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	redial := backoff.DefaultConfig
	redial.MaxDelay = forwardRedialMax
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(f.cfg.Identity.ClientConfig())),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: forwardKeepalive, Timeout: forwardKeepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: forwardDialTimeout, Backoff: redial}),
	)
	if err != nil {
		return nil, err
	}
	f.conns[addr] = c
	return c, nil
}

// Close closes the forwarder's connections.
func (f *Forwarder) Close() {
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

// retry says whether a call whose leader was deposed, or could not be
// reached, while it waited for the answer may be sent again to the next
// leader.
type retry int

const (
	// retryNever: the call may have taken effect, and a second copy could
	// take effect again. The caller learns at once that the outcome is
	// unknown and decides.
	retryNever retry = iota
	// retryRead: the call changes nothing.
	retryRead
	// retryGuarded: a write of which a second copy is refused once the
	// first took effect (see Call).
	retryGuarded
)

// guardedWrites are the writes a store refuses to apply twice: a create
// carries a name no other object of its kind may hold, an update the
// version it read, which the first copy moved on.
var guardedWrites = map[string]bool{
	"/shoal.v1.ControlService/CreateService": true,
	"/shoal.v1.ControlService/CreateNetwork": true,
	"/shoal.v1.ControlService/UpdateService": true,
	"/shoal.v1.ControlService/UpdateNode":    true,
	"/shoal.v1.ControlService/UpdateCluster": true,
	"/shoal.v1.ControlService/CreateSecret":  true,
	"/shoal.v1.ControlService/CreateConfig":  true,
	"/shoal.v1.ControlService/UpdateSecret":  true,
	"/shoal.v1.ControlService/UpdateConfig":  true,
}

// isRead reports whether method only reads the store.
func isRead(method string) bool {
	return strings.HasPrefix(method, "/shoal.v1.ControlService/Get") || strings.HasPrefix(method, "/shoal.v1.ControlService/List") ||
		// Asks a registry, or checks a spec; changes nothing in the cluster.
		method == "/shoal.v1.ControlService/ResolveImage" || method == "/shoal.v1.ControlService/ValidateService"
}

func retryFor(method string) retry {
	switch {
	case isRead(method):
		return retryRead
	case guardedWrites[method]:
		return retryGuarded
	}
	return retryNever
}

// errDeposed ends a forwarded call whose leader lost its leadership
// before answering.
var errDeposed = errors.New("the leader was deposed")

// errLeaderMoved ends a wait of this manager to become ready as leader
// when the leadership went elsewhere first.
var errLeaderMoved = errors.New("the leadership moved")

// Call answers a leader-only call: here when this manager is the
// ready leader, else by forwarding it to the leader, vouching for the
// caller.
//
// The leadership can move while a forwarded call waits for its answer.
// This manager then stops waiting on the old leader (cut off, it would
// never answer, and the call would end at the caller's deadline) and, if
// the call is safe to send twice, sends it to the new leader once it
// knows one, within the caller's deadline. A call to a leader that died
// (its connection refused) waits for the connection the same way, and
// ends the same way, so a client sees the same failover whether the
// leader died or was cut off.
//
// Why a guarded write may be sent twice: the first copy either was
// committed by the old leader or was not. A leader cut off from its
// quorum cannot commit; its pending writes fail when it steps down. But
// one may have been committed just before the cut with only its answer
// lost, or may still be committed by the new leader, which commits what it
// holds of the old term before anything of its own, and serves only once
// it has applied all that (Run's barrier). Either way the first copy is in
// the store before the second arrives, and the store refuses the second:
// the name is taken (AlreadyExists), or the version moved (Aborted). A
// copy the old leader receives late, after a heal, is refused the same
// way. So the write takes effect at most once; a success of the second
// copy proves the first did not; and a refusal of the second copy may be
// the first copy's own doing, so it is not passed on as a definite answer
// but as an unknown outcome (Unavailable: check, then retry). A remove
// names its object, possibly by name, and a second copy could remove an
// object made since; it is never sent twice, nor is any call whose copies
// the store does not tell apart.
func (f *Forwarder) Call(ctx context.Context, c auth.Caller, method string, req any, local grpc.UnaryHandler) (any, error) {
	rule := retryFor(method)
	var (
		failed  error           // why the last forwarded attempt failed; nil before one did
		tried   string          // the leader it went to
		changed <-chan struct{} // closed when the leader changes after it began
	)
	for {
		if auth.IsForwarded(ctx) && f.cfg.Raft.Leader() != f.cfg.NodeID {
			// The manager that sent it here will find the leader itself.
			return nil, fmt.Errorf("this manager is no longer the leader; retry: %w", errdefs.ErrUnavailable)
		}
		if failed != nil && !f.awaitChange(ctx, changed, tried) {
			return nil, failed
		}
		leader, ch, err := f.awaitLeader(ctx)
		if err != nil {
			return nil, resentOutcome(rule, failed != nil, err)
		}
		changed = ch
		if leader == f.cfg.NodeID {
			err := f.awaitReady(ctx, changed)
			if errors.Is(err, errLeaderMoved) {
				continue
			}
			if err != nil {
				return nil, err
			}
			resp, err := f.serveLocal(ctx, method, req, local)
			return resp, resentOutcome(rule, failed != nil, err)
		}
		resp, err := f.forwardTo(ctx, c, leader, method, req)
		switch {
		case err == nil:
			return resp, nil
		case errors.Is(err, errDeposed):
			if rule == retryNever {
				return nil, fmt.Errorf("the leader %s lost its leadership while this call waited for its answer; the call may or may not have been applied: check, then retry: %w", leader, errdefs.ErrUnavailable)
			}
		case rule == retryNever || !errdefs.Is(err, errdefs.ErrUnavailable) || ctx.Err() != nil:
			return nil, resentOutcome(rule, failed != nil, err)
		}
		failed, tried = err, leader
	}
}

// resentOutcome is what the caller of a guarded write learns when an
// earlier copy of it went to a leader that did not answer: a refusal, or
// no leader to try, leaves the outcome unknown, since the earlier copy may
// have been applied (see Call). Other answers, and the end of the
// caller's deadline, pass unchanged.
func resentOutcome(rule retry, resent bool, err error) error {
	if err == nil || !resent || rule != retryGuarded || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	msg := status.Convert(errgrpc.ToGRPC(err)).Message()
	if errdefs.Is(err, errdefs.ErrUnavailable) {
		return fmt.Errorf("%s; this call was sent to the earlier leader first and may have been applied there: check, then retry: %w", msg, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("the leader changed while this call waited for its answer, so it was sent again to the new leader, which refused it: %s; the first attempt may have been applied before the leader changed: check, then retry: %w", msg, errdefs.ErrUnavailable)
}

// serveLocal answers a call on this manager, the ready leader.
func (f *Forwarder) serveLocal(ctx context.Context, method string, req any, local grpc.UnaryHandler) (any, error) {
	if isRead(method) {
		// A deposed leader that has not noticed yet must not answer
		// stale reads.
		vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f.cfg.Raft.VerifyLeader(vctx)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	return local(ctx, req)
}

// failoverCtx bounds a wait for a leader: as long as an election may
// take, ending early enough before the caller's deadline that the answer
// still reaches it.
func (f *Forwarder) failoverCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := f.cfg.Raft.FailoverWait()
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) * 9 / 10; left < d {
			d = left
		}
	}
	return context.WithTimeout(ctx, d)
}

// awaitLeader waits for a leader to be known and returns it, with a
// channel closed when the leader changes after that.
func (f *Forwarder) awaitLeader(ctx context.Context) (string, <-chan struct{}, error) {
	fctx, cancel := f.failoverCtx(ctx)
	defer cancel()
	for {
		changed := f.cfg.Raft.LeaderChanged()
		if id := f.cfg.Raft.Leader(); id != "" {
			return id, changed, nil
		}
		select {
		case <-changed:
		case <-fctx.Done():
			return "", nil, errNoLeader
		}
	}
}

var errNoLeader = fmt.Errorf("no leader: a majority of managers may be down or unreachable; the cluster accepts no changes until a quorum is back: %w", errdefs.ErrUnavailable)

// awaitChange waits for the leader to be another than from (changed is
// closed at any change since from was read); false if that did not happen
// in time.
func (f *Forwarder) awaitChange(ctx context.Context, changed <-chan struct{}, from string) bool {
	if f.cfg.Raft.Leader() != from {
		return true
	}
	fctx, cancel := f.failoverCtx(ctx)
	defer cancel()
	select {
	case <-changed:
		return true
	case <-fctx.Done():
		return false
	}
}

// awaitReady waits, once Raft made this manager the leader, until it has
// applied the log and serves (Run); errLeaderMoved if the leadership moves
// first.
func (f *Forwarder) awaitReady(ctx context.Context, changed <-chan struct{}) error {
	fctx, cancel := f.failoverCtx(ctx)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !f.cfg.Ready() {
		select {
		case <-changed:
			return errLeaderMoved
		case <-fctx.Done():
			return fmt.Errorf("this manager was just elected leader and has not applied the log yet; retry shortly: %w", errdefs.ErrUnavailable)
		case <-t.C:
		}
	}
	return nil
}

// managerAddr finds a manager's advertised gRPC address.
func (f *Forwarder) managerAddr(id string) (string, error) {
	var n *shoalv1.Node
	f.cfg.Store.View(func(r store.ReadTx) { n = store.Get[*shoalv1.Node](r, store.TableNode, id) })
	if addr := n.GetManagerStatus().GetAddr(); addr != "" {
		return addr, nil
	}
	return "", fmt.Errorf("leader %s is not known to this manager yet; retry shortly: %w", id, errdefs.ErrUnavailable)
}

// LeaderAddr finds the leader's advertised gRPC address.
func (f *Forwarder) LeaderAddr() (string, error) {
	leader := f.cfg.Raft.Leader()
	if leader == "" {
		return "", errNoLeader
	}
	return f.managerAddr(leader)
}

// forwardTo sends a call to leader and waits for its answer, or until
// this manager sees another leader, or none (errDeposed), or the caller's
// deadline.
func (f *Forwarder) forwardTo(ctx context.Context, c auth.Caller, leader, method string, req any) (any, error) {
	addr, err := f.managerAddr(leader)
	if err != nil {
		return nil, err
	}
	conn, err := f.Conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := responseFor(method)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go f.cancelIfDeposed(actx, cancel, leader)
	// A connection that failed while the leader was down (it may have
	// led, died and come back since) fails calls at once with its old
	// error until its next attempt: try again now. Then wait for it to
	// be ready rather than fail at once: a leader that is down is
	// deposed soon, which ends the wait.
	if conn.GetState() == connectivity.TransientFailure {
		conn.ResetConnectBackoff()
	}
	if err := conn.Invoke(auth.ForwardMetadata(actx, c), method, req, resp, grpc.WaitForReady(true)); err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), errDeposed) {
			return nil, errDeposed
		}
		return nil, errgrpc.FromGRPC(err)
	}
	return resp, nil
}

// cancelIfDeposed cancels a call to leader once this manager sees another
// leader, or none, or when ctx ends.
func (f *Forwarder) cancelIfDeposed(ctx context.Context, cancel context.CancelCauseFunc, leader string) {
	for {
		changed := f.cfg.Raft.LeaderChanged()
		if f.cfg.Raft.Leader() != leader {
			cancel(errDeposed)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
