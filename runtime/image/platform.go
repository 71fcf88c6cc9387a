package image

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// hostPlatform is the platform this binary runs on, with the ARM variant
// it was built for.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					p.Variant = "v" + strings.SplitN(s.Value, ",", 2)[0]
				}
			}
		}
	}
	return p
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func normalizeArch(arch, variant string) (string, string) {
	arch = strings.ToLower(arch)
	variant = strings.ToLower(variant)
	switch arch {
	case "x86_64", "x86-64":
		arch = "amd64"
	case "aarch64":
		arch = "arm64"
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	}
	switch arch {
	case "arm64":
		if variant == "8" || variant == "v8" {
			variant = ""
		}
	case "arm":
		if variant == "" {
			variant = "v7"
		}
		if !strings.HasPrefix(variant, "v") {
			variant = "v" + variant
		}
	}
	return arch, variant
}

// platformScore says how well an image built for have runs on want: 0 is
// no match, higher is better.
func platformScore(want v1.Platform, have *v1.Platform) int {
	if have == nil {
		return 1 // unlabelled: only when nothing better exists
	}
	if !strings.EqualFold(want.OS, have.OS) {
		return 0
	}
	wa, wv := normalizeArch(want.Architecture, want.Variant)
	ha, hv := normalizeArch(have.Architecture, have.Variant)
	if wa != ha {
		return 0
	}
	if wv == hv {
		return 100
	}
	if wa == "arm" {
		// A v7 CPU runs v6 and v5 code; prefer the closest.
		w, err1 := strconv.Atoi(strings.TrimPrefix(wv, "v"))
		h, err2 := strconv.Atoi(strings.TrimPrefix(hv, "v"))
		if err1 == nil && err2 == nil && h <= w {
			return 50 + h
		}
		return 0
	}
	if want.Variant == "" || have.Variant == "" {
		return 50
	}
	return 0
}

// isAttestation reports whether d is a build attestation rather than an
// image (buildkit puts those in indexes as unknown/unknown).
func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] != "" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown"
}

// selectManifest picks the child of an index that best runs on want.
func selectManifest(im *v1.IndexManifest, want v1.Platform, what string) (v1.Descriptor, error) {
	best, bestScore := -1, 0
	var have []string
	for i, d := range im.Manifests {
		if isAttestation(d) || !(d.MediaType.IsImage() || d.MediaType.IsIndex()) {
			continue
		}
		if d.Platform != nil {
			have = append(have, platformString(*d.Platform))
		}
		if s := platformScore(want, d.Platform); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		sort.Strings(have)
		if len(have) == 0 {
			return v1.Descriptor{}, fmt.Errorf("%s is an index without images: %w", what, errdefs.ErrNotFound)
		}
		return v1.Descriptor{}, fmt.Errorf("%s has no image for %s (it has %s): %w", what, platformString(want), strings.Join(have, ", "), errdefs.ErrNotFound)
	}
	return im.Manifests[best], nil
}
