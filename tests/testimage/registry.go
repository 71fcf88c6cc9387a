package testimage

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an OCI distribution registry (go-containerregistry's, blobs
// in memory unless RegistryOptions.BlobDir) served over plain HTTP.
type Registry struct {
	auth   authn.Authenticator // Push's credentials; anonymous for a public one
	srv    *http.Server
	ln     net.Listener
	served chan error
	extra  sync.WaitGroup // Also listeners

	closeOnce sync.Once
	closeErr  error
}

// RegistryOptions configure ListenRegistry.
type RegistryOptions struct {
	// Addr is the listen address; default "127.0.0.1:0" (a free port).
	Addr string
	// Log receives one line per request; nil discards them.
	Log io.Writer
	// BlobDir, when set, keeps blobs on disk there instead of in memory
	// (uploads in flight stay in memory).
	BlobDir string
	// User and Password, when set, make it a private registry: every
	// request needs them by HTTP basic auth (a 401 with a Basic
	// challenge otherwise, as docker's registry with htpasswd).
	User, Password string
}

// StartRegistry serves a registry on a free loopback port.
func StartRegistry() (*Registry, error) {
	return ListenRegistry(RegistryOptions{})
}

// ListenRegistry serves a registry as o says until Close.
func ListenRegistry(o RegistryOptions) (*Registry, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	ropts := []registry.Option{registry.Logger(log.New(o.Log, "registry: ", log.LstdFlags|log.Lmicroseconds))}
	if o.BlobDir != "" {
		if err := os.MkdirAll(o.BlobDir, 0o755); err != nil {
			return nil, fmt.Errorf("testimage: registry blobs: %w", err)
		}
		ropts = append(ropts, registry.WithBlobHandler(registry.NewDiskBlobHandler(o.BlobDir)))
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("testimage: registry: %w", err)
	}
	var h http.Handler = registry.New(ropts...)
	auth := authn.Anonymous
	if o.User != "" {
		h = basicAuth(h, o.User, o.Password)
		auth = &authn.Basic{Username: o.User, Password: o.Password}
	}
	r := &Registry{
		auth: auth,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 30 * time.Second,
		},
		ln:     ln,
		served: make(chan error, 1),
	}
	go func() { r.served <- r.srv.Serve(ln) }()
	return r, nil
}

// Addr is the registry's "host:port", for example "127.0.0.1:40123".
func (r *Registry) Addr() string { return r.ln.Addr().String() }

// Push uploads img as repoTag ("whoami:1"; "whoami" means "whoami:latest")
// and returns the full reference to pull, "127.0.0.1:PORT/whoami:1".
func (r *Registry) Push(img v1.Image, repoTag string) (string, error) {
	return r.PushContext(context.Background(), img, repoTag)
}

// PushContext is Push with a context that can cancel the upload.
func (r *Registry) PushContext(ctx context.Context, img v1.Image, repoTag string) (string, error) {
	tag, err := name.NewTag(r.Addr()+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("testimage: push %q: %w", repoTag, err)
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithTransport(direct), remote.WithAuth(r.auth)); err != nil {
		return "", fmt.Errorf("testimage: push %s: %w", tag.Name(), err)
	}
	return tag.Name(), nil
}

// basicAuth serves h only to requests with user's password.
func basicAuth(h http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="testimage"`)
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// direct is the transport of Push and Pull: never through a proxy, as the
// registries are local and nothing here may reach another host.
var direct = func() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return tr
}()

// Pull fetches ref ("127.0.0.1:PORT/whoami:1" or "...@sha256:...") from a
// plain-HTTP registry such as Registry, without a proxy.
func Pull(ref string) (v1.Image, error) {
	pr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("testimage: pull %q: %w", ref, err)
	}
	img, err := remote.Image(pr, remote.WithTransport(direct))
	if err != nil {
		return nil, fmt.Errorf("testimage: pull %s: %w", ref, err)
	}
	return img, nil
}

// Also serves the same registry on another listener too (for example one
// opened inside a test network namespace), until Close.
func (r *Registry) Also(ln net.Listener) {
	r.extra.Add(1)
	go func() { defer r.extra.Done(); _ = r.srv.Serve(ln) }()
}

// Close stops the server, closing connections in flight, and waits for it.
// Later calls return the first one's result.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		err := r.srv.Close()
		r.extra.Wait()
		if serr := <-r.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		if err != nil {
			r.closeErr = fmt.Errorf("testimage: registry: %w", err)
		}
	})
	return r.closeErr
}
