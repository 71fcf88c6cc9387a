package daemon

import (
	"context"

	"github.com/shoal-run/shoal/internal/regauth"
	"github.com/shoal-run/shoal/runtime/image"
)

// imageResolver answers the control API's ResolveImage from the node's
// image store, with its registries' rules (loopback and
// --insecure-registry over plain HTTP, the node's keychain when the
// client sent no credentials).
type imageResolver struct{ images *image.Store }

func (r imageResolver) Resolve(ctx context.Context, ref, registryAuth string) (string, error) {
	auth, err := regauth.Authenticator(registryAuth)
	if err != nil {
		return "", err
	}
	return r.images.Resolve(ctx, ref, auth)
}
