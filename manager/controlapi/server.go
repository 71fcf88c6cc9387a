// Package controlapi implements the ControlService: it validates every
// request with field-precise errors, reads the store and proposes changes
// through Raft. It runs on the leader; followers forward to it (see
// manager/forward.go), so reads here are as fresh as the leader's store.
package controlapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/clock"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/manager/allocator"
	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Raft is what the control API needs of the Raft member.
type Raft interface {
	Propose(ctx context.Context, b *shoalv1.StoreBatch) (uint64, error)
	Leader() string
	Reachable(id string) bool
	MemberIDs() []string
	RemoveServer(ctx context.Context, id string) error
}

// Server implements shoalv1.ControlServiceServer.
type Server struct {
	shoalv1.UnimplementedControlServiceServer
	Store *store.Store
	Raft  Raft
	Clock clock.Clock // stamps created_at and updated_at
	// NewToken makes a fresh join token for the cluster's CA digest.
	NewToken func(digest string) string
	// NewUnlockKey makes a fresh managers' unlock key (autolock).
	NewUnlockKey func() (string, error)
	// Book holds allocations in flight; the orchestrator shares it.
	Book     *allocator.Book
	bookOnce sync.Once
	// ResolveDigest asks an image's registry for the digest its
	// reference names now, with registryAuth's credentials (docker's
	// X-Registry-Auth; "": the node's own), for ResolveImage; nil:
	// refused. The daemon gives its node's image store.
	ResolveDigest func(ctx context.Context, ref, registryAuth string) (digest string, err error)
	// Logs is the log broker SubscribeLogs uses while Leading; nil:
	// refused. A follower relays the call from the leader with
	// ForwardLogs.
	Logs LogBroker
	// EventLog is this manager's events, which Events serves (every
	// manager answers it itself); nil: refused.
	EventLog    EventLog
	Leading     func() bool
	ForwardLogs func(req *shoalv1.SubscribeLogsRequest, stream grpc.ServerStreamingServer[shoalv1.SubscribeLogsResponse]) error
	// refsMu makes the check that a secret or config exists, and the
	// write of the service that references it, one step against its
	// removal (whose check and delete are one step too).
	refsMu sync.Mutex
}

func (s *Server) book() *allocator.Book {
	s.bookOnce.Do(func() {
		if s.Book == nil {
			s.Book = &allocator.Book{}
		}
	})
	return s.Book
}

var _ shoalv1.ControlServiceServer = (*Server)(nil)

func (s *Server) propose(ctx context.Context, actions ...*shoalv1.StoreAction) (uint64, error) {
	return s.Raft.Propose(ctx, &shoalv1.StoreBatch{Actions: actions})
}

func create(o store.Object) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: store.Wrap(o)}
}

func update(o store.Object, version uint64) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_UPDATE, Object: store.Wrap(o), ExpectedVersion: version}
}

func remove(o store.Object, version uint64) *shoalv1.StoreAction {
	return &shoalv1.StoreAction{Kind: shoalv1.StoreActionKind_STORE_ACTION_KIND_DELETE, Object: store.Wrap(o), ExpectedVersion: version}
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

// cluster returns the one cluster object.
func (s *Server) cluster() (*shoalv1.Cluster, error) {
	var cs []*shoalv1.Cluster
	s.Store.View(func(r store.ReadTx) { cs = store.List[*shoalv1.Cluster](r, store.TableCluster) })
	if len(cs) == 0 {
		return nil, fmt.Errorf("the cluster is not initialized yet: %w", errdefs.ErrUnavailable)
	}
	return cs[0], nil
}

// GetCluster returns the cluster without the CA key, gossip keys and
// unlock key.
func (s *Server) GetCluster(ctx context.Context, _ *shoalv1.GetClusterRequest) (*shoalv1.GetClusterResponse, error) {
	c, err := s.cluster()
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetClusterResponse{Cluster: redact(c)}, nil
}

func redact(c *shoalv1.Cluster) *shoalv1.Cluster {
	c = clone(c)
	if c.RootCa != nil {
		c.RootCa.KeyPem = nil
	}
	c.GossipKeys = nil
	c.UnlockKey = ""
	return c
}

// UpdateCluster changes cluster settings and rotates join tokens.
func (s *Server) UpdateCluster(ctx context.Context, req *shoalv1.UpdateClusterRequest) (*shoalv1.UpdateClusterResponse, error) {
	if req.GetVersion() == 0 {
		return nil, fmt.Errorf("cluster.version: is required: read the cluster and send the version you read: %w", errdefs.ErrInvalid)
	}
	cur, err := s.cluster()
	if err != nil {
		return nil, err
	}
	next := clone(cur)
	if req.GetSpec() != nil {
		var f fieldErrors
		if n := req.GetSpec().GetTaskHistoryLimit(); n < 0 {
			f.add("cluster.task_history_limit", "must be >= 0, got %d", n)
		}
		if e := req.GetSpec().GetNodeCertExpiry(); e != nil && e.AsDuration() < 5*time.Second {
			f.add("cluster.cert_expiry", "must be at least 5s, got %s", e.AsDuration())
		}
		if err := f.err(); err != nil {
			return nil, err
		}
		next.Spec = clone(req.GetSpec())
		next.Spec.Name = cur.GetSpec().GetName()
	}
	if req.GetRotateWorkerToken() {
		next.JoinTokens.Worker = s.NewToken(cur.GetRootCa().GetDigest())
	}
	if req.GetRotateManagerToken() {
		next.JoinTokens.Manager = s.NewToken(cur.GetRootCa().GetDigest())
	}
	if err := s.nextUnlockKey(next, req.GetRotateUnlockKey()); err != nil {
		return nil, err
	}
	next.Meta.UpdatedAt = timestamppb.New(s.Clock.Now())
	idx, err := s.propose(ctx, update(next, req.GetVersion()))
	if err != nil {
		return nil, err
	}
	next.Meta.Version = idx
	return &shoalv1.UpdateClusterResponse{Cluster: redact(next)}, nil
}

// CreateService stores a new service.
func (s *Server) CreateService(ctx context.Context, req *shoalv1.CreateServiceRequest) (*shoalv1.CreateServiceResponse, error) {
	spec := clone(req.GetSpec())
	if spec == nil {
		spec = &shoalv1.ServiceSpec{}
	}
	applyServiceDefaults(spec)
	if err := ValidateServiceSpec(spec); err != nil {
		return nil, err
	}
	if hasReferences(spec) {
		s.refsMu.Lock()
		defer s.refsMu.Unlock()
	}
	if err := s.resolveServiceReferences(spec); err != nil {
		return nil, err
	}
	ep, release, err := s.prepareEndpoint(spec, nil)
	defer release()
	if err != nil {
		return nil, err
	}
	now := timestamppb.New(s.Clock.Now())
	svc := &shoalv1.Service{Id: store.NewID(), Meta: &shoalv1.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec, Endpoint: ep}
	startJob(svc, now.AsTime())
	idx, err := s.propose(ctx, create(svc))
	if err != nil {
		return nil, err
	}
	svc.Meta.Version = idx
	return &shoalv1.CreateServiceResponse{Service: redactService(svc)}, nil
}

// ValidateService checks spec as CreateService does before it resolves
// the spec's secrets, configs and networks, and changes nothing.
func (s *Server) ValidateService(_ context.Context, req *shoalv1.ValidateServiceRequest) (*shoalv1.ValidateServiceResponse, error) {
	spec := clone(req.GetSpec())
	if spec == nil {
		spec = &shoalv1.ServiceSpec{}
	}
	applyServiceDefaults(spec)
	if err := ValidateServiceSpec(spec); err != nil {
		return nil, err
	}
	return &shoalv1.ValidateServiceResponse{}, nil
}

// applyServiceDefaults fills what Docker fills when a field is left out.
func applyServiceDefaults(spec *shoalv1.ServiceSpec) {
	if spec.Mode == nil {
		spec.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 1}}
	}
	if spec.Task == nil {
		spec.Task = &shoalv1.TaskSpec{}
	}
	if spec.Task.Restart == nil {
		spec.Task.Restart = &shoalv1.RestartPolicy{}
	}
	jobDefaults(spec)
	if spec.Task.Restart.Condition == shoalv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED {
		spec.Task.Restart.Condition = shoalv1.RestartCondition_RESTART_CONDITION_ANY
	}
	if spec.Endpoint == nil {
		spec.Endpoint = &shoalv1.EndpointSpec{}
	}
	if spec.Endpoint.Mode == shoalv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED {
		spec.Endpoint.Mode = shoalv1.EndpointMode_ENDPOINT_MODE_VIP
	}
	for _, p := range spec.Endpoint.Ports {
		if p.Protocol == shoalv1.PortProtocol_PORT_PROTOCOL_UNSPECIFIED {
			p.Protocol = shoalv1.PortProtocol_PORT_PROTOCOL_TCP
		}
		if p.PublishMode == shoalv1.PublishMode_PUBLISH_MODE_UNSPECIFIED {
			p.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_INGRESS
		}
	}
}

func (s *Server) findService(ref string) (*shoalv1.Service, error) {
	var svc *shoalv1.Service
	var err error
	s.Store.View(func(r store.ReadTx) { svc, err = store.Find[*shoalv1.Service](r, store.TableService, ref, "service") })
	return svc, err
}

// GetService returns one service by ID, name or ID prefix.
func (s *Server) GetService(ctx context.Context, req *shoalv1.GetServiceRequest) (*shoalv1.GetServiceResponse, error) {
	svc, err := s.findService(req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetServiceResponse{Service: redactService(svc)}, nil
}

// ListServices returns every service.
func (s *Server) ListServices(ctx context.Context, req *shoalv1.ListServicesRequest) (*shoalv1.ListServicesResponse, error) {
	f, err := parseFilters(req.GetFilters(), serviceFilters...)
	if err != nil {
		return nil, err
	}
	var out []*shoalv1.Service
	s.Store.View(func(r store.ReadTx) { out = keep(store.List[*shoalv1.Service](r, store.TableService), f.service) })
	for i, svc := range out {
		out[i] = redactService(svc)
	}
	return &shoalv1.ListServicesResponse{Services: out}, nil
}

// UpdateService replaces a service's spec if nobody changed it since the
// caller read version, or with rollback returns it to its previous spec.
// A change that needs new tasks starts a rolling update (the
// orchestrator carries it out); an update that changes nothing resumes a
// paused one.
func (s *Server) UpdateService(ctx context.Context, req *shoalv1.UpdateServiceRequest) (*shoalv1.UpdateServiceResponse, error) {
	if req.GetVersion() == 0 {
		return nil, fmt.Errorf("service.version: is required: read the service (inspect) and send the version you read: %w", errdefs.ErrInvalid)
	}
	cur, err := s.findService(req.GetServiceId())
	if err != nil {
		return nil, err
	}
	spec := clone(req.GetSpec())
	if req.GetRollback() {
		if cur.GetPreviousSpec() == nil {
			return nil, fmt.Errorf("service %s has no previous spec to roll back to: %w", cur.GetSpec().GetName(), errdefs.ErrFailedPrecond)
		}
		spec = clone(cur.GetPreviousSpec())
	}
	if spec == nil {
		return nil, fmt.Errorf("service.spec: is required: %w", errdefs.ErrInvalid)
	}
	if !req.GetRollback() {
		keepRegistryAuth(spec, cur)
	}
	applyServiceDefaults(spec)
	if err := ValidateServiceSpec(spec); err != nil {
		return nil, err
	}
	if spec.GetName() != cur.GetSpec().GetName() {
		return nil, fmt.Errorf("service.name: renaming a service is not supported (%q to %q); create a new service: %w", cur.GetSpec().GetName(), spec.GetName(), errdefs.ErrInvalid)
	}
	if from, to := modeName(cur.GetSpec()), modeName(spec); from != to {
		if isJob(cur.GetSpec()) || isJob(spec) {
			return nil, fmt.Errorf("service.mode: a %s service cannot become %s; create a new service: %w", from, to, errdefs.ErrInvalid)
		}
		return nil, fmt.Errorf("service.mode: a service cannot change between replicated and global; create a new service: %w", errdefs.ErrInvalid)
	}
	if hasReferences(spec) {
		s.refsMu.Lock()
		defer s.refsMu.Unlock()
	}
	if err := s.resolveServiceReferences(spec); err != nil {
		return nil, err
	}
	ep, release, err := s.prepareEndpoint(spec, cur)
	defer release()
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	next := clone(cur)
	if !proto.Equal(spec, cur.GetSpec()) {
		next.PreviousSpec = cur.GetSpec()
	}
	next.Spec = spec
	next.Endpoint = ep
	next.UpdateStatus = nextUpdateStatus(cur, next, req.GetRollback(), now)
	next.Meta.UpdatedAt = timestamppb.New(now)
	nextJobRun(next, cur, now)
	idx, err := s.propose(ctx, update(next, req.GetVersion()))
	if err != nil {
		return nil, err
	}
	next.Meta.Version = idx
	return &shoalv1.UpdateServiceResponse{Service: redactService(next)}, nil
}

// nextUpdateStatus is the update status a service change leaves: a
// rollback or a change that needs new tasks starts one, an update that
// changes nothing resumes a paused one, any other change (replicas,
// labels) keeps the status as it is.
func nextUpdateStatus(cur, next *shoalv1.Service, rollback bool, now time.Time) *shoalv1.UpdateStatus {
	start := func(state shoalv1.UpdateState, msg string) *shoalv1.UpdateStatus {
		return &shoalv1.UpdateStatus{State: state, StartedAt: timestamppb.New(now), Message: msg}
	}
	st := cur.GetUpdateStatus()
	switch {
	case rollback:
		return start(shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, "manually requested rollback")
	case next.GetSpec().GetReplicatedJob() != nil || next.GetSpec().GetGlobalJob() != nil:
		return st // a job's runs are counted by its own status
	case tasksOutdated(cur, next):
		return start(shoalv1.UpdateState_UPDATE_STATE_UPDATING, "update in progress")
	case !proto.Equal(cur.GetSpec(), next.GetSpec()):
		return st
	case st.GetState() == shoalv1.UpdateState_UPDATE_STATE_PAUSED:
		return start(shoalv1.UpdateState_UPDATE_STATE_UPDATING, "update resumed")
	case st.GetState() == shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED:
		return start(shoalv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, "rollback resumed")
	}
	return st
}

// tasksOutdated reports whether a change makes the service's tasks
// outdated (the orchestrator's own test: their task spec, endpoint,
// networks or VIPs differ), so that it rolls them.
func tasksOutdated(cur, next *shoalv1.Service) bool {
	if !proto.Equal(cur.GetSpec().GetTask(), next.GetSpec().GetTask()) || !proto.Equal(cur.GetSpec().GetEndpoint(), next.GetSpec().GetEndpoint()) ||
		len(cur.GetSpec().GetNetworks()) != len(next.GetSpec().GetNetworks()) {
		return true
	}
	for i, n := range cur.GetSpec().GetNetworks() {
		if !proto.Equal(n, next.GetSpec().GetNetworks()[i]) {
			return true
		}
	}
	return !proto.Equal(cur.GetEndpoint(), next.GetEndpoint())
}

// RemoveService deletes a service.
func (s *Server) RemoveService(ctx context.Context, req *shoalv1.RemoveServiceRequest) (*shoalv1.RemoveServiceResponse, error) {
	cur, err := s.findService(req.GetServiceId())
	if err != nil {
		return nil, err
	}
	if _, err := s.propose(ctx, remove(cur, 0)); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveServiceResponse{}, nil
}
