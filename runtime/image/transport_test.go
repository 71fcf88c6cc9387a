package image

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestPlainHTTPAllowed(t *testing.T) {
	insecure := []string{"reg.internal:5000", "build-cache", "10.0.0.9"}
	tests := []struct {
		registry string
		want     bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.1", true},
		{"127.42.3.4:80", true},
		{"localhost:5000", true},
		{"LOCALHOST", true},
		{"[::1]:5000", true},
		{"::1", true},
		{"reg.internal:5000", true},  // listed with its port
		{"reg.internal:5001", false}, // another port
		{"reg.internal", false},
		{"build-cache:443", true}, // listed without a port: any port
		{"build-cache", true},
		{"10.0.0.9:5000", true},
		{"10.0.0.8:5000", false}, // private addresses are not trusted by themselves
		{"192.168.1.10:5000", false},
		{"172.16.0.1", false},
		{"registry.local:5000", false},
		{"foo.localhost:5000", false},
		{"docker.io", false},
		{"index.docker.io", false},
		{"ghcr.io", false},
		{"127.0.0.1.example.com", false},
		{"[::2]:5000", false},
	}
	for _, tt := range tests {
		if got := plainHTTPAllowed(tt.registry, insecure); got != tt.want {
			t.Errorf("plainHTTPAllowed(%q) = %v; want %v", tt.registry, got, tt.want)
		}
	}
}

// The guard refuses plain HTTP to other hosts before any connection is
// made, whatever the registry library tries.
func TestGuardRefusesPlainHTTPToRemoteHosts(t *testing.T) {
	g := newGuardTransport([]string{"reg.internal:5000"})
	defer g.closeIdle()
	for _, u := range []string{"http://10.1.2.3:5000/v2/", "http://registry.example.com/v2/", "http://reg.internal:5001/v2/x/blobs/sha256:00"} {
		resp, err := g.RoundTrip(httptest.NewRequest("GET", u, nil))
		if resp != nil {
			resp.Body.Close()
		}
		if !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "refusing plain http") {
			t.Errorf("RoundTrip(%s) = %v; want a plain-http refusal", u, err)
		}
	}
	// registryError explains the refusal.
	err := registryError("10.1.2.3:5000/x:1", "10.1.2.3:5000", "", &plainHTTPError{host: "10.1.2.3:5000"})
	if !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "insecure registries") {
		t.Errorf("registryError = %v", err)
	}
}

func TestValidateInsecure(t *testing.T) {
	for _, ok := range []string{"reg:5000", "reg", "10.0.0.1:5000", "[fd00::1]:5000"} {
		if err := validateInsecure([]string{ok}); err != nil {
			t.Errorf("validateInsecure(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"http://reg:5000", "reg/path", "", "reg:5000 "} {
		if err := validateInsecure([]string{bad}); !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("validateInsecure(%q) = %v; want ErrInvalid", bad, err)
		}
	}
	if _, err := Open(Options{Root: t.TempDir(), InsecureRegistries: []string{"https://x"}}); !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Open with a bad insecure registry = %v; want ErrInvalid", err)
	}
}
