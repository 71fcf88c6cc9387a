package runtimeapi

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/volume"
)

// VolumeToProto is the wire form of a volume.
func VolumeToProto(v volume.Volume) *shoalv1.Volume {
	return &shoalv1.Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, Labels: v.Labels, Options: v.Options,
		CreatedAt: timestamppb.New(v.CreatedAt), Anonymous: v.Anonymous, Containers: v.Containers,
	}
}

func (s *Server) volumes() (*volume.Store, error) {
	if s.Volumes == nil {
		return nil, fmt.Errorf("this node has no volume store: %w", errdefs.ErrFailedPrecond)
	}
	return s.Volumes, nil
}

// CreateVolume makes a volume (or returns the same one).
func (s *Server) CreateVolume(ctx context.Context, req *shoalv1.CreateVolumeRequest) (*shoalv1.CreateVolumeResponse, error) {
	vs, err := s.volumes()
	if err != nil {
		return nil, err
	}
	v, err := vs.Create(req.GetName(), req.GetDriver(), req.GetLabels(), req.GetOptions())
	if err != nil {
		return nil, err
	}
	return &shoalv1.CreateVolumeResponse{Volume: VolumeToProto(v)}, nil
}

// ListVolumes lists the node's volumes.
func (s *Server) ListVolumes(ctx context.Context, req *shoalv1.ListVolumesRequest) (*shoalv1.ListVolumesResponse, error) {
	vs, err := s.volumes()
	if err != nil {
		return nil, err
	}
	out := &shoalv1.ListVolumesResponse{}
	for _, v := range vs.List() {
		out.Volumes = append(out.Volumes, VolumeToProto(v))
	}
	return out, nil
}

// InspectVolume returns one volume.
func (s *Server) InspectVolume(ctx context.Context, req *shoalv1.InspectVolumeRequest) (*shoalv1.InspectVolumeResponse, error) {
	vs, err := s.volumes()
	if err != nil {
		return nil, err
	}
	v, err := vs.Get(req.GetName())
	if err != nil {
		return nil, err
	}
	return &shoalv1.InspectVolumeResponse{Volume: VolumeToProto(v)}, nil
}

// RemoveVolume deletes an unused volume.
func (s *Server) RemoveVolume(ctx context.Context, req *shoalv1.RemoveVolumeRequest) (*shoalv1.RemoveVolumeResponse, error) {
	vs, err := s.volumes()
	if err != nil {
		return nil, err
	}
	if err := vs.Remove(req.GetName(), req.GetForce()); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveVolumeResponse{}, nil
}

// PruneVolumes removes unused volumes.
func (s *Server) PruneVolumes(ctx context.Context, req *shoalv1.PruneVolumesRequest) (*shoalv1.PruneVolumesResponse, error) {
	vs, err := s.volumes()
	if err != nil {
		return nil, err
	}
	removed, n, err := vs.Prune(req.GetAll(), req.GetLabels())
	if err != nil {
		return nil, err
	}
	return &shoalv1.PruneVolumesResponse{Removed: removed, SpaceReclaimed: n}, nil
}
