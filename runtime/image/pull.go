package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// pullJobs is how many layers of one image are fetched at once.
const pullJobs = 3

// Pull fetches ref from its registry (an index resolved to the store's
// platform), verifies and stores it, and names it by ref's normalized
// form. Layers already stored are not fetched again; a layer another pull
// is fetching is waited for. On error nothing of the image is recorded.
func (s *Store) Pull(ctx context.Context, ref string, progress func(Progress)) (*Image, error) {
	return s.PullAuth(ctx, ref, nil, progress)
}

// PullAuth is Pull with auth's credentials for the registry (nil: the
// node's own, from its keychain).
func (s *Store) PullAuth(ctx context.Context, ref string, auth authn.Authenticator, progress func(Progress)) (*Image, error) {
	normalized, r, err := s.remoteRef(ref)
	if err != nil {
		return nil, err
	}
	reg := registryName(r.Context().Registry)
	rep := newReporter(normalized, progress)
	rep.report(Progress{Status: StatusResolving})

	desc, err := remote.Get(r, s.remoteOptions(ctx, auth)...)
	if err != nil {
		return nil, registryError(normalized, reg, "", err)
	}
	img, err := s.remoteImage(desc, normalized, reg)
	if err != nil {
		return nil, err
	}
	fail := func(blob string, err error) error { return registryError(normalized, reg, blob, err) }
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fail("", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image %q: manifest: %v: %w", normalized, err, errdefs.ErrInvalid)
	}
	if !m.Config.MediaType.IsConfig() {
		return nil, fmt.Errorf("%q is not a container image (its config is a %s): %w", normalized, m.Config.MediaType, errdefs.ErrInvalid)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fail(m.Config.Digest.String(), err)
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(rawConfig)); got != m.Config.Digest.String() {
		return nil, fmt.Errorf("image %q: config has digest %s, not %s: registry %s sent corrupt data: %w", normalized, got, m.Config.Digest, reg, errdefs.ErrInvalid)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("image %q: config: %v: %w", normalized, err, errdefs.ErrInvalid)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %q: manifest has %d layers but config has %d diffIDs: %w", normalized, len(m.Layers), len(cf.RootFS.DiffIDs), errdefs.ErrInvalid)
	}
	rec := newRecord(m.Config.Digest.String(), sha256Digest(rawManifest), cf, rawConfig)
	sources := make([]layerSource, len(m.Layers))
	for i, l := range m.Layers {
		if !l.MediaType.IsLayer() {
			return nil, fmt.Errorf("image %q: layer %s has media type %s, which is not a filesystem layer: %w", normalized, l.Digest, l.MediaType, errdefs.ErrInvalid)
		}
		sources[i] = layerSource{
			diffID: cf.RootFS.DiffIDs[i].String(),
			digest: l.Digest.String(),
			size:   l.Size,
			label:  l.Digest.String(),
			status: StatusDownloading,
			origin: "registry " + reg,
			open: func() (io.ReadCloser, error) {
				layer, err := img.LayerByDigest(l.Digest)
				if err != nil {
					return nil, err
				}
				return layer.Compressed()
			},
			classify: func(err error) error { return fail(l.Digest.String(), err) },
		}
	}
	blobs := map[string][]byte{rec.ID: rawConfig, rec.Digest: rawManifest}
	return s.ingest(ctx, rec, sources, []string{normalized}, blobs, pullJobs, rep)
}

func sha256Digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// remoteRef parses ref for the registry: plain HTTP where allowed.
func (s *Store) remoteRef(ref string) (string, name.Reference, error) {
	normalized, r, err := parseRef(ref)
	if err != nil {
		return "", nil, err
	}
	if plainHTTPAllowed(r.Context().RegistryStr(), s.insecure) {
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return "", nil, fmt.Errorf("invalid image reference %q: %v: %w", ref, err, errdefs.ErrInvalid)
		}
	}
	return normalized, r, nil
}

// Resolve is the digest of the manifest (or index) ref names in its
// registry now, asked with auth's credentials (nil: the node's own). A
// reference with a digest is its own answer.
func (s *Store) Resolve(ctx context.Context, ref string, auth authn.Authenticator) (string, error) {
	normalized, r, err := s.remoteRef(ref)
	if err != nil {
		return "", err
	}
	if d, ok := r.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	desc, err := remote.Head(r, s.remoteOptions(ctx, auth)...)
	if err != nil {
		return "", registryError(normalized, registryName(r.Context().Registry), "", err)
	}
	return desc.Digest.String(), nil
}

func (s *Store) remoteOptions(ctx context.Context, auth authn.Authenticator) []remote.Option {
	authOpt := remote.WithAuthFromKeychain(s.keychain)
	if auth != nil {
		authOpt = remote.WithAuth(auth)
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		authOpt,
		remote.WithTransport(s.transport),
		remote.WithPlatform(s.platform),
		remote.WithUserAgent("shoal"),
	}
	if s.backoff != nil {
		opts = append(opts, remote.WithRetryBackoff(*s.backoff))
	}
	return opts
}

// remoteImage returns the image desc describes, resolving indexes to the
// store's platform.
func (s *Store) remoteImage(desc *remote.Descriptor, ref, reg string) (v1.Image, error) {
	mt := desc.MediaType
	switch {
	case mt.IsSchema1():
		return nil, fmt.Errorf("image %q uses the Docker schema 1 manifest format, which is not supported; push it again with a current client: %w", ref, errdefs.ErrInvalid)
	case mt.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, registryError(ref, reg, "", err)
		}
		return img, nil
	case mt.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, registryError(ref, reg, "", err)
		}
		for depth := 0; ; depth++ {
			im, err := idx.IndexManifest()
			if err != nil {
				return nil, registryError(ref, reg, "", err)
			}
			child, err := selectManifest(im, s.platform, fmt.Sprintf("image %q", ref))
			if err != nil {
				return nil, err
			}
			if child.MediaType.IsImage() {
				img, err := idx.Image(child.Digest)
				if err != nil {
					return nil, registryError(ref, reg, "", err)
				}
				return img, nil
			}
			if depth >= 4 {
				return nil, fmt.Errorf("image %q: indexes nested too deeply: %w", ref, errdefs.ErrInvalid)
			}
			if idx, err = idx.ImageIndex(child.Digest); err != nil {
				return nil, registryError(ref, reg, "", err)
			}
		}
	}
	return nil, fmt.Errorf("%q is a %s, not a container image: %w", ref, mt, errdefs.ErrInvalid)
}
