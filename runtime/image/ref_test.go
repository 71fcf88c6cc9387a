package image

import (
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestNormalizeRef(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct{ in, want string }{
		{"nginx", "docker.io/library/nginx:latest"},
		{"nginx:1.25", "docker.io/library/nginx:1.25"},
		{"library/nginx", "docker.io/library/nginx:latest"},
		{"docker.io/nginx", "docker.io/library/nginx:latest"},
		{"index.docker.io/library/nginx:1", "docker.io/library/nginx:1"},
		{"bitnami/redis:7", "docker.io/bitnami/redis:7"},
		{"nginx@" + dgst, "docker.io/library/nginx@" + dgst},
		{"nginx:1.25@" + dgst, "docker.io/library/nginx@" + dgst},
		{"ghcr.io/org/app", "ghcr.io/org/app:latest"},
		{"registry:5000/x:1", "registry:5000/x:1"},
		{"localhost:5000/a/b/c:v2", "localhost:5000/a/b/c:v2"},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"},
		{"[::1]:5000/app:v", "[::1]:5000/app:v"},
	}
	for _, tt := range tests {
		got, err := NormalizeRef(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", " nginx", "Nginx", "nginx:", "nginx@sha256:abc", "a:b:c", "-x", "nginx:" + strings.Repeat("t", 129)} {
		got, err := NormalizeRef(bad)
		if err == nil || !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "image reference") {
			t.Errorf("NormalizeRef(%q) = %q, %v; want an ErrInvalid about the reference", bad, got, err)
		}
	}
}

func TestRepositoryOf(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/nginx:latest":    "docker.io/library/nginx",
		"registry:5000/x:1":                 "registry:5000/x",
		"registry:5000/x@sha256:abc":        "registry:5000/x",
		"registry:5000/x":                   "registry:5000/x",
		"[::1]:5000/app:v":                  "[::1]:5000/app",
		"localhost:5000/a/b@sha256:00:tail": "localhost:5000/a/b",
	} {
		if got := repositoryOf(in); got != want {
			t.Errorf("repositoryOf(%q) = %q; want %q", in, got, want)
		}
	}
}
