package runtimeapi

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
)

func imageToProto(i *image.Image) *shoalv1.LocalImage {
	c := i.Config
	out := &shoalv1.LocalImage{Id: i.ID, Digest: i.Digest, Names: i.Names, Size: i.Size, Layers: i.Layers,
		Config: &shoalv1.LocalImageConfig{
			Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User,
			StopSignal: c.StopSignal, Labels: c.Labels, ExposedPorts: c.ExposedPorts,
		},
	}
	if !i.Created.IsZero() {
		out.CreatedAt = timestamppb.New(i.Created)
	}
	// Platform is "os/arch[/variant]".
	p := strings.SplitN(i.Platform, "/", 3)
	out.Os = p[0]
	if len(p) > 1 {
		out.Architecture = p[1]
	}
	if len(p) > 2 {
		out.Variant = p[2]
	}
	return out
}

// PullImage pulls an image, streaming progress; the last message carries
// the image, the normalized reference, and whether it was up to date.
func (s *Server) PullImage(req *shoalv1.PullImageRequest, stream grpc.ServerStreamingServer[shoalv1.PullImageResponse]) error {
	var end image.Progress // the last report for the whole image
	img, err := s.Images.Pull(stream.Context(), req.GetRef(), func(p image.Progress) {
		if p.Layer == "" {
			end = p
		}
		_ = stream.Send(&shoalv1.PullImageResponse{Layer: p.Layer, Status: p.Status, Current: p.Current, Total: p.Total})
	})
	if err != nil {
		return err
	}
	return stream.Send(&shoalv1.PullImageResponse{Image: imageToProto(img), Ref: end.Ref, UpToDate: end.Status == image.StatusUpToDate})
}

// LoadImage loads a tarball streamed in chunks.
func (s *Server) LoadImage(stream grpc.ClientStreamingServer[shoalv1.LoadImageRequest, shoalv1.LoadImageResponse]) error {
	pr, pw := io.Pipe()
	go func() {
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(m.GetChunk()); err != nil {
				return
			}
		}
	}()
	imgs, err := s.Images.Load(stream.Context(), pr, nil)
	pr.CloseWithError(errors.New("load finished"))
	if err != nil {
		return err
	}
	resp := &shoalv1.LoadImageResponse{}
	for _, i := range imgs {
		resp.Images = append(resp.Images, imageToProto(i))
	}
	return stream.SendAndClose(resp)
}

// ListImages lists local images.
func (s *Server) ListImages(ctx context.Context, _ *shoalv1.ListImagesRequest) (*shoalv1.ListImagesResponse, error) {
	imgs, err := s.Images.List()
	if err != nil {
		return nil, err
	}
	resp := &shoalv1.ListImagesResponse{}
	for _, i := range imgs {
		resp.Images = append(resp.Images, imageToProto(i))
	}
	return resp, nil
}

// RemoveImage removes an image.
func (s *Server) RemoveImage(ctx context.Context, req *shoalv1.RemoveImageRequest) (*shoalv1.RemoveImageResponse, error) {
	if err := s.Images.Remove(req.GetRef(), req.GetForce()); err != nil {
		return nil, err
	}
	return &shoalv1.RemoveImageResponse{}, nil
}

// PruneImages removes dangling images and unused layers.
func (s *Server) PruneImages(ctx context.Context, _ *shoalv1.PruneImagesRequest) (*shoalv1.PruneImagesResponse, error) {
	removed, freed, err := s.Images.Prune()
	if err != nil {
		return nil, err
	}
	return &shoalv1.PruneImagesResponse{Removed: removed, FreedBytes: freed}, nil
}

// TagImage gives an image another name.
func (s *Server) TagImage(ctx context.Context, req *shoalv1.TagImageRequest) (*shoalv1.TagImageResponse, error) {
	img, err := s.Images.Tag(req.GetSource(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	return &shoalv1.TagImageResponse{Image: imageToProto(img)}, nil
}

// InspectImage returns one local image.
func (s *Server) InspectImage(ctx context.Context, req *shoalv1.InspectImageRequest) (*shoalv1.InspectImageResponse, error) {
	img, err := s.Images.Get(req.GetRef())
	if err != nil {
		return nil, err
	}
	return &shoalv1.InspectImageResponse{Image: imageToProto(img)}, nil
}

// ImageSource adapts the image store to what the container runtime needs.
type ImageSource struct{ Store *image.Store }

var _ container.Images = ImageSource{}

// Resolve finds a local image and its unpacked layers.
func (a ImageSource) Resolve(ref string) (*container.Image, error) {
	img, err := a.Store.Get(ref)
	if err != nil {
		return nil, err
	}
	dirs, err := a.Store.LayerDirs(img)
	if err != nil {
		return nil, err
	}
	c := img.Config
	out := &container.Image{ID: img.ID, Ref: ref, LayerDirs: dirs, Config: container.ImageConfig{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, StopSignal: c.StopSignal,
		Volumes: c.Volumes,
	}}
	if h := c.Healthcheck; h != nil {
		out.Config.Healthcheck = &container.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	}
	return out, nil
}

// Lease keeps the image while owner uses it.
func (a ImageSource) Lease(owner, imageID string) error { return a.Store.Lease(owner, imageID) }

// Release ends owner's lease.
func (a ImageSource) Release(owner string) error { return a.Store.Release(owner) }
