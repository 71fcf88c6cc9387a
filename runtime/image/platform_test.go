package image

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestSelectManifest(t *testing.T) {
	desc := func(os, arch, variant string) v1.Descriptor {
		return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: os + arch + variant},
			Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	attestation := desc("unknown", "unknown", "")
	attestation.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
	im := &v1.IndexManifest{Manifests: []v1.Descriptor{
		attestation,
		desc("linux", "amd64", ""),
		desc("linux", "arm", "v5"),
		desc("linux", "arm", "v6"),
		desc("linux", "arm64", "v8"),
		desc("windows", "amd64", ""),
	}}
	tests := []struct {
		want v1.Platform
		pick string // digest hex of the expected choice; "" for none
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "linuxamd64"},
		{v1.Platform{OS: "linux", Architecture: "x86_64"}, "linuxamd64"},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "linuxarm64v8"},
		{v1.Platform{OS: "linux", Architecture: "aarch64", Variant: "v8"}, "linuxarm64v8"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "linuxarmv6"}, // best older variant
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "linuxarmv6"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}, "linuxarmv5"},
		{v1.Platform{OS: "windows", Architecture: "amd64"}, "windowsamd64"},
		{v1.Platform{OS: "linux", Architecture: "riscv64"}, ""},
		{v1.Platform{OS: "unknown", Architecture: "unknown"}, ""}, // attestations are never images
	}
	for _, tt := range tests {
		got, err := selectManifest(im, tt.want, "image x")
		switch {
		case tt.pick == "" && !errdefs.Is(err, errdefs.ErrNotFound):
			t.Errorf("selectManifest(%s) = %v, %v; want ErrNotFound", platformString(tt.want), got.Digest, err)
		case tt.pick != "" && (err != nil || got.Digest.Hex != tt.pick):
			t.Errorf("selectManifest(%s) = %v, %v; want %s", platformString(tt.want), got.Digest.Hex, err, tt.pick)
		}
	}
}

func TestHostPlatform(t *testing.T) {
	p := hostPlatform()
	if p.OS == "" || p.Architecture == "" {
		t.Fatalf("hostPlatform() = %+v", p)
	}
	if (p.Architecture == "arm" || p.Architecture == "arm64") && p.Variant == "" {
		t.Errorf("hostPlatform() = %+v; want a variant on ARM", p)
	}
}
