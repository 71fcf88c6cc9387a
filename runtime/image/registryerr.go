package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// registryError turns an error from talking to registry while pulling ref
// into one that says what was wrong and what to do, with a category. blob
// names the blob being fetched, "" for manifests.
func registryError(ref, registry, blob string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range te.Errors {
			codes[d.Code] = true
		}
		switch {
		case codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode] ||
			codes[transport.BlobUnknownErrorCode] || te.StatusCode == 404:
			if blob != "" {
				return fmt.Errorf("registry %s has no blob %s of image %q; the image may have been deleted or pushed incompletely: %w", registry, blob, ref, errdefs.ErrNotFound)
			}
			return fmt.Errorf("image %q not found in registry %s: %w", ref, registry, errdefs.ErrNotFound)
		case codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode] || te.StatusCode == 401 || te.StatusCode == 403:
			return fmt.Errorf("pull access denied for %q: the repository does not exist or needs credentials (`docker login %s` stores them in ~/.docker/config.json): %w", ref, registry, errdefs.ErrPermissionDenied)
		case codes[transport.TooManyRequestsErrorCode] || te.StatusCode == 429:
			return fmt.Errorf("registry %s is rate limiting pulls; try again later, or log in for a higher limit: %w", registry, errdefs.ErrUnavailable)
		case te.StatusCode >= 500:
			return fmt.Errorf("registry %s failed: %s; try again later: %w", registry, te.Error(), errdefs.ErrUnavailable)
		}
		return fmt.Errorf("registry %s refused to serve %q: %s: %w", registry, ref, te.Error(), errdefs.ErrInvalid)
	}
	var ph *plainHTTPError
	if errors.As(err, &ph) {
		return fmt.Errorf("cannot reach registry %s over https (%v); it is neither on loopback nor listed in the insecure registries, so plain http is not allowed: %w", registry, err, errdefs.ErrFailedPrecond)
	}
	if hint := networkHint(err); hint != "" || isNetworkError(err) {
		return fmt.Errorf("cannot reach registry %s: %v%s: %w", registry, err, hint, errdefs.ErrUnavailable)
	}
	if blob != "" {
		return fmt.Errorf("fetching %s from registry %s: %v: %w", blob, registry, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("pulling %q from registry %s: %v: %w", ref, registry, err, errdefs.ErrUnavailable)
}

func isNetworkError(err error) bool {
	var ne net.Error
	var ue *url.Error
	var ce *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var rh tls.RecordHeaderError
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &ce) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &rh)
}

func networkHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return " (it speaks plain http: if you trust it, add it to the insecure registries)"
	case strings.Contains(msg, "certificate"):
		return " (its TLS certificate is not trusted: add its CA to the system's trust store, or list it as an insecure registry if you trust the network)"
	}
	return ""
}
