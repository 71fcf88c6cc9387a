package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/pflag"

	"github.com/shoal-run/shoal/internal/regauth"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// imageFlags pin a service's image to a digest and carry registry
// credentials with it.
type imageFlags struct {
	noResolve, withAuth bool
}

func (f *imageFlags) register(fs *pflag.FlagSet, create bool) {
	fs.BoolVar(&f.noResolve, "no-resolve-image", false, "Do not query the registry to resolve image digest and supported platforms")
	fs.BoolVar(&f.withAuth, "with-registry-auth", false, "Send registry authentication details to swarm agents")
}

// prepare pins the image to the digest its tag names now (when resolve:
// on create, and on update when the image changes), unless
// --no-resolve-image, and with --with-registry-auth attaches this
// client's credentials for the image's registry. A registry that cannot
// be asked gives docker's warning, and the reference stays as it is.
func (f *imageFlags) prepare(ctx context.Context, c shoalv1.ControlServiceClient, spec *shoalv1.ServiceSpec, resolve bool, warn io.Writer) error {
	ct := spec.GetTask().GetContainer()
	if ct == nil {
		return nil
	}
	if f.withAuth {
		ref, err := name.ParseReference(ct.GetImage())
		if err != nil {
			return fmt.Errorf("image %q: %w", ct.GetImage(), err)
		}
		auth, err := regauth.FromKeychain(authn.DefaultKeychain, ref.Context().RegistryStr())
		if err != nil {
			return err
		}
		ct.PullOptions = &shoalv1.PullOptions{RegistryAuth: auth}
	}
	if !resolve || f.noResolve {
		return nil
	}
	resp, err := c.ResolveImage(ctx, &shoalv1.ResolveImageRequest{Image: ct.GetImage(), RegistryAuth: ct.GetPullOptions().GetRegistryAuth()})
	if err != nil {
		fmt.Fprintf(warn, "image %s could not be accessed on a registry to record\nits digest. Each node will access %s independently,\npossibly leading to different nodes running different\nversions of the image.\n", ct.GetImage(), ct.GetImage())
		return nil
	}
	ct.Image = resp.GetImage()
	return nil
}

// displayImage is a pinned reference as docker's service ls and ps show
// it: "NAME:TAG@sha256:..." without its digest; a reference with no tag
// keeps its digest.
func displayImage(ref string) string {
	at := strings.Index(ref, "@")
	if at < 0 {
		return ref
	}
	if base := ref[:at]; strings.Contains(base[strings.LastIndex(base, "/")+1:], ":") {
		return base
	}
	return ref
}
