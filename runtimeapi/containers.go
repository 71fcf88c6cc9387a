// Package runtimeapi serves the RuntimeService on the daemon's local
// socket: it converts between the wire types and the runtime's own
// (runtime/container, runtime/image) at this one boundary. It is a room of
// its own, beside the runtime rather than inside it, because the runtime
// imports no proto; like dockerapi, it is an API facade over the node's
// containers.
package runtimeapi

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/containerspec"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/netoverlay"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
	"github.com/shoal-run/shoal/runtime/logs"
	"github.com/shoal-run/shoal/runtime/volume"
)

// Server implements shoalv1.RuntimeServiceServer.
type Server struct {
	shoalv1.UnimplementedRuntimeServiceServer
	Images     *image.Store
	Containers *container.Runtime
	// Volumes are the node's local volumes.
	Volumes *volume.Store
	// Net connects containers to attachable overlay networks; nil on a
	// node that has none.
	Net Networks
	// Health is the health check state of a task container ("starting",
	// "healthy", "unhealthy"; "" without a check), from the worker that
	// probes it; nil: none shown.
	Health func(containerID string) string
	// Events is the node's container events.
	Events *Events
}

// Networks connects standalone containers to attachable overlay
// networks (a container config whose network is a network's name).
type Networks interface {
	// Join gets the container an address on network and returns the
	// labels to create it with; done must be called once the create
	// finished, saying whether it did.
	Join(ctx context.Context, network, name string) (labels map[string]string, done func(created bool), err error)
	// Started plugs a container with those labels in: its init (pid)
	// runs, its workload not yet.
	Started(id string, labels map[string]string, pid int) error
	// Running announces it, until it exits.
	Running(id string, labels map[string]string)
	// Removed gives the address of a removed container back.
	Removed(labels map[string]string)
}

// onOverlay reports whether a network setting names an overlay network.
func onOverlay(network string) bool {
	switch network {
	case "", "none", "host":
		return false
	}
	return true
}

var _ shoalv1.RuntimeServiceServer = (*Server)(nil)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (srv *Server) toProto(s container.State) *shoalv1.Container {
	c := &shoalv1.Container{
		Id: s.ID, Name: s.Name, Image: s.Image, ImageId: s.ImageID, Command: s.Args, Status: string(s.Status),
		CreatedAt: ts(s.CreatedAt), StartedAt: ts(s.StartedAt), FinishedAt: ts(s.FinishedAt),
		ExitCode: int32(s.ExitCode), Signal: s.Signal, OomKilled: s.OOMKilled, Error: s.Error, Pid: int32(s.Pid), Labels: s.Labels,
	}
	for _, m := range s.Mounts {
		c.Mounts = append(c.Mounts, containerspec.MountTo(m))
	}
	if srv.Health != nil && s.Status == container.Running {
		c.Health = srv.Health(s.ID)
	}
	return c
}

func specFrom(c *shoalv1.ContainerConfig) container.Spec {
	s := container.Spec{
		Name: c.GetName(), Image: c.GetImage(), Cmd: c.GetCmd(), Env: c.GetEnv(), WorkingDir: c.GetWorkingDir(),
		User: c.GetUser(), Hostname: c.GetHostname(), Labels: c.GetLabels(), MemoryBytes: c.GetMemoryBytes(),
		NanoCPUs: c.GetNanoCpus(), PidsLimit: c.GetPidsLimit(), ReadOnly: c.GetReadOnly(), Init: c.GetInit(),
		Network: c.GetNetwork(), StopSignal: c.GetStopSignal(), StopTimeout: c.GetStopTimeout().AsDuration(), AutoRemove: c.GetAutoRemove(),
		Mounts: containerspec.MountsFrom(c.GetMounts()), Tty: c.GetTty(), CapAdd: c.GetCapAdd(), CapDrop: c.GetCapDrop(), Sysctls: c.GetSysctls(),
		Ulimits: containerspec.UlimitsFrom(c.GetUlimits()), DNS: containerspec.DNSFrom(c.GetDnsConfig()), ExtraHosts: c.GetHosts(), Groups: c.GetGroups(),
		LogMaxSize: c.GetLogMaxSize(), LogMaxFiles: int(c.GetLogMaxFiles()),
	}
	if c.GetEntrypointSet() {
		s.Entrypoint = append([]string{}, c.GetEntrypoint()...)
	}
	return s
}

// CreateContainer creates a container from a local image.
func (s *Server) CreateContainer(ctx context.Context, req *shoalv1.CreateContainerRequest) (*shoalv1.CreateContainerResponse, error) {
	c := req.GetConfig()
	if c.GetImage() == "" {
		return nil, fmt.Errorf("container.image: is required: %w", errdefs.ErrInvalid)
	}
	if c.GetMemoryBytes() < 0 || c.GetNanoCpus() < 0 || c.GetPidsLimit() < 0 {
		return nil, fmt.Errorf("container resources must be >= 0: %w", errdefs.ErrInvalid)
	}
	if m := c.GetMemoryBytes(); m > 0 && m < 6<<20 {
		return nil, fmt.Errorf("container.memory: must be at least 6 MiB, got %d bytes: %w", m, errdefs.ErrInvalid)
	}
	spec := specFrom(c)
	if onOverlay(c.GetNetwork()) {
		if s.Net == nil {
			return nil, fmt.Errorf("container.network %q: this node has no overlay networks; use none or host: %w", c.GetNetwork(), errdefs.ErrFailedPrecond)
		}
		for k := range c.GetLabels() {
			if k == netoverlay.LabelNetworks || k == netoverlay.LabelAttachment {
				return nil, fmt.Errorf("container.labels: %s is set by the node: %w", k, errdefs.ErrInvalid)
			}
		}
		labels, done, err := s.Net.Join(ctx, c.GetNetwork(), c.GetName())
		if err != nil {
			return nil, err
		}
		spec.Labels = map[string]string{}
		for k, v := range c.GetLabels() {
			spec.Labels[k] = v
		}
		for k, v := range labels {
			spec.Labels[k] = v
		}
		spec.Network = "" // a namespace of its own, wired before the workload starts
		spec.ResolvConf = netoverlay.ResolvConf
		st, err := s.Containers.Create(ctx, spec)
		done(err == nil)
		if err != nil {
			return nil, err
		}
		return &shoalv1.CreateContainerResponse{Container: s.toProto(st)}, nil
	}
	st, err := s.Containers.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &shoalv1.CreateContainerResponse{Container: s.toProto(st)}, nil
}

// StartContainer starts a created container; one on an overlay network is
// plugged in before its workload starts.
func (s *Server) StartContainer(ctx context.Context, req *shoalv1.StartContainerRequest) (*shoalv1.StartContainerResponse, error) {
	var hook func(pid int) error
	var labels map[string]string
	if cur, err := s.Containers.Get(req.GetId()); err == nil && cur.Labels[netoverlay.LabelAttachment] != "" && s.Net != nil {
		labels = cur.Labels
		hook = func(pid int) error { return s.Net.Started(cur.ID, labels, pid) }
	}
	st, err := s.Containers.Start(ctx, req.GetId(), hook)
	if err != nil {
		return nil, err
	}
	if hook != nil {
		s.Net.Running(st.ID, labels)
	}
	return &shoalv1.StartContainerResponse{Container: s.toProto(st)}, nil
}

// WaitContainer blocks until the container exits.
func (s *Server) WaitContainer(ctx context.Context, req *shoalv1.WaitContainerRequest) (*shoalv1.WaitContainerResponse, error) {
	st, err := s.Containers.Wait(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &shoalv1.WaitContainerResponse{Container: s.toProto(st)}, nil
}

// StopContainer stops a container gracefully.
func (s *Server) StopContainer(ctx context.Context, req *shoalv1.StopContainerRequest) (*shoalv1.StopContainerResponse, error) {
	timeout := time.Duration(-1)
	if req.GetTimeout() != nil {
		timeout = req.GetTimeout().AsDuration()
	}
	st, err := s.Containers.Stop(ctx, req.GetId(), timeout)
	if err != nil {
		return nil, err
	}
	return &shoalv1.StopContainerResponse{Container: s.toProto(st)}, nil
}

// KillContainer sends a signal.
func (s *Server) KillContainer(ctx context.Context, req *shoalv1.KillContainerRequest) (*shoalv1.KillContainerResponse, error) {
	name := req.GetSignal()
	if name == "" {
		name = "SIGKILL"
	}
	sig, err := container.ParseSignal(name)
	if err != nil {
		return nil, err
	}
	if err := s.Containers.Signal(req.GetId(), sig); err != nil {
		return nil, err
	}
	return &shoalv1.KillContainerResponse{}, nil
}

// RemoveContainer deletes a container.
func (s *Server) RemoveContainer(ctx context.Context, req *shoalv1.RemoveContainerRequest) (*shoalv1.RemoveContainerResponse, error) {
	cur, _ := s.Containers.Get(req.GetId())
	if err := s.Containers.Delete(ctx, req.GetId(), req.GetForce()); err != nil {
		return nil, err
	}
	if s.Net != nil && cur.Labels[netoverlay.LabelAttachment] != "" {
		s.Net.Removed(cur.Labels)
	}
	return &shoalv1.RemoveContainerResponse{}, nil
}

// ListContainers lists running containers, or all.
func (s *Server) ListContainers(ctx context.Context, req *shoalv1.ListContainersRequest) (*shoalv1.ListContainersResponse, error) {
	var out []*shoalv1.Container
	for _, st := range s.Containers.List() {
		if req.GetAll() || st.Status == container.Running {
			out = append(out, s.toProto(st))
		}
	}
	return &shoalv1.ListContainersResponse{Containers: out}, nil
}

// ContainerLogs streams a container's output.
func (s *Server) ContainerLogs(req *shoalv1.ContainerLogsRequest, stream grpc.ServerStreamingServer[shoalv1.ContainerLogsResponse]) error {
	o := logs.All
	if opt := req.GetOptions(); opt != nil {
		o.Tail = int(opt.GetTail())
		if t := opt.GetSince(); t != nil {
			o.Since = t.AsTime()
		}
		if t := opt.GetUntil(); t != nil {
			o.Until = t.AsTime()
		}
	}
	return s.Containers.ReadLogs(stream.Context(), req.GetId(), req.GetFollow(), o, func(e logs.Entry) error {
		return stream.Send(&shoalv1.ContainerLogsResponse{Stream: e.Stream, Line: []byte(e.Log), Time: timestamppb.New(e.Time)})
	})
}
