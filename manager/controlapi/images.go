package controlapi

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// ResolveImage pins an image reference to the digest its tag names now:
// "NAME:TAG@sha256:...", the tag kept for people to read and the digest
// for the nodes, as docker's service create does.
func (s *Server) ResolveImage(ctx context.Context, req *shoalv1.ResolveImageRequest) (*shoalv1.ResolveImageResponse, error) {
	ref := req.GetImage()
	if ref == "" || !imageRE.MatchString(ref) {
		return nil, fmt.Errorf("image %q is not a valid image reference (e.g. nginx:1.25 or registry.local:5000/team/app): %w", ref, errdefs.ErrInvalid)
	}
	if s.ResolveDigest == nil {
		return nil, fmt.Errorf("this manager cannot reach registries: %w", errdefs.ErrUnavailable)
	}
	digest, err := s.ResolveDigest(ctx, ref, req.GetRegistryAuth())
	if err != nil {
		return nil, err
	}
	return &shoalv1.ResolveImageResponse{Image: PinImage(ref, digest), Digest: digest}, nil
}

// PinImage is ref with digest: its own digest replaced, ":latest" added
// when it names no tag.
func PinImage(ref, digest string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.Contains(last, ":") {
		ref += ":latest"
	}
	return ref + "@" + digest
}

// redactService is svc without its registry credentials (they go to the
// nodes that pull its image, never back to a client); svc itself, when
// it has none.
func redactService(svc *shoalv1.Service) *shoalv1.Service {
	if svc.GetSpec().GetTask().GetContainer().GetPullOptions() == nil && svc.GetPreviousSpec().GetTask().GetContainer().GetPullOptions() == nil {
		return svc
	}
	out := proto.Clone(svc).(*shoalv1.Service)
	if c := out.GetSpec().GetTask().GetContainer(); c != nil {
		c.PullOptions = nil
	}
	if c := out.GetPreviousSpec().GetTask().GetContainer(); c != nil {
		c.PullOptions = nil
	}
	return out
}

func redactTask(t *shoalv1.Task) *shoalv1.Task {
	if t.GetSpec().GetContainer().GetPullOptions() == nil {
		return t
	}
	out := proto.Clone(t).(*shoalv1.Task)
	out.Spec.Container.PullOptions = nil
	return out
}

// keepRegistryAuth carries the stored credentials into an update that
// gives none (a client never reads them back), as docker's service update
// without --with-registry-auth.
func keepRegistryAuth(spec *shoalv1.ServiceSpec, cur *shoalv1.Service) {
	c := spec.GetTask().GetContainer()
	if c == nil || c.PullOptions != nil {
		return
	}
	if old := cur.GetSpec().GetTask().GetContainer().GetPullOptions(); old != nil {
		c.PullOptions = proto.Clone(old).(*shoalv1.PullOptions)
	}
}
