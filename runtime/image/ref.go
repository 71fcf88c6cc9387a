package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// pathComponent is one component of a repository path, per the
// distribution reference grammar (the library checks only the characters).
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// dockerHub is the registry name Shoal shows for Docker Hub; the library
// calls it index.docker.io.
const dockerHub = "docker.io"

// NormalizeRef returns the canonical form of an image reference: registry,
// repository and a tag (latest when none is given) or a digest, with
// Docker Hub short names expanded ("nginx" is
// "docker.io/library/nginx:latest"). A reference with both a tag and a
// digest keeps only the digest, which is what is pulled.
func NormalizeRef(ref string) (string, error) {
	n, _, err := parseRef(ref)
	return n, err
}

// parseRef parses ref into its normalized string and the library's
// reference.
func parseRef(ref string) (string, name.Reference, error) {
	if strings.TrimSpace(ref) == "" {
		return "", nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalid)
	}
	if ref != strings.TrimSpace(ref) {
		return "", nil, fmt.Errorf("invalid image reference %q: leading or trailing spaces: %w", ref, errdefs.ErrInvalid)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		// The parser's own message drops the reason; ask the specific one.
		if strings.Contains(ref, "@") {
			_, err = name.NewDigest(ref)
		} else {
			_, err = name.NewTag(ref)
		}
		why := "not a valid reference"
		if err != nil {
			why = err.Error()
		}
		return "", nil, fmt.Errorf("invalid image reference %q: %s: %w", ref, why, errdefs.ErrInvalid)
	}
	for _, c := range strings.Split(r.Context().RepositoryStr(), "/") {
		if !pathComponent.MatchString(c) {
			return "", nil, fmt.Errorf("invalid image reference %q: repository path component %q must be lower-case letters and digits, separated by '.', '_', '__' or dashes: %w", ref, c, errdefs.ErrInvalid)
		}
	}
	repo := registryName(r.Context().Registry) + "/" + r.Context().RepositoryStr()
	switch t := r.(type) {
	case name.Digest:
		return repo + "@" + t.DigestStr(), r, nil
	case name.Tag:
		return repo + ":" + t.TagStr(), r, nil
	}
	return "", nil, fmt.Errorf("invalid image reference %q: %w", ref, errdefs.ErrInvalid)
}

// registryName is the registry's name as users write it.
func registryName(r name.Registry) string {
	if r.RegistryStr() == name.DefaultRegistry {
		return dockerHub
	}
	return r.RegistryStr()
}

// repositoryOf returns the "registry/repository" part of a normalized
// reference.
func repositoryOf(normalized string) string {
	if i := strings.LastIndex(normalized, "@"); i >= 0 {
		return normalized[:i]
	}
	slash := strings.LastIndex(normalized, "/")
	if i := strings.LastIndex(normalized, ":"); i > slash {
		return normalized[:i]
	}
	return normalized
}
