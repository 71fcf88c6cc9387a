package image

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testRegistry is an in-process registry on loopback (plain HTTP) that
// counts blob downloads and can serve chosen blobs corrupted.
type testRegistry struct {
	host      string
	transport *http.Transport // the test's own pushes

	mu      sync.Mutex
	gets    map[string]int           // blob digest -> GETs
	corrupt map[string]bool          // blob digests served with a flipped byte
	hold    map[string]chan struct{} // blob digests served only once the channel is closed
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{gets: map[string]int{}, corrupt: map[string]bool{}, hold: map[string]chan struct{}{}, transport: &http.Transport{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			d := path.Base(req.URL.Path)
			r.mu.Lock()
			r.gets[d]++
			bad, wait := r.corrupt[d], r.hold[d]
			r.mu.Unlock()
			if wait != nil {
				select {
				case <-wait:
				case <-req.Context().Done():
					return
				}
			}
			if bad {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				body[len(body)/2] ^= 0xff // same length, wrong digest
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		r.transport.CloseIdleConnections()
		srv.Close()
	})
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// ref returns the full reference of repo:tag on this registry.
func (r *testRegistry) ref(repoTag string) string { return r.host + "/" + repoTag }

func (r *testRegistry) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(r.transport)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return r.ref(repoTag)
}

func (r *testRegistry) pushIndex(t *testing.T, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(r.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithTransport(r.transport)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return r.ref(repoTag)
}

func (r *testRegistry) blobGets(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets[d.String()]
}

// holdBlob makes downloads of d wait until the returned function is
// called (or the client gives up).
func (r *testRegistry) holdBlob(t *testing.T, d v1.Hash) (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.hold[d.String()] = ch
	r.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

func (r *testRegistry) corruptBlob(d v1.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.corrupt[d.String()] = true
}

// newStore opens a store in a fresh directory, with no credentials and no
// retry back-off.
func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Root == "" {
		opts.Root = filepath.Join(t.TempDir(), "images")
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	testHooks(s)
	t.Cleanup(func() { s.Close() })
	return s
}

func testHooks(s *Store) {
	s.keychain = authn.NewMultiKeychain() // anonymous, never ~/.docker
	s.backoff = &remote.Backoff{Steps: 1}
}

// reopen closes s and opens its root again, as a restarted daemon does.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Root: s.root, InsecureRegistries: s.insecure, Platform: &s.platform})
	if err != nil {
		t.Fatalf("Open again: %v", err)
	}
	testHooks(s2)
	t.Cleanup(func() { s2.Close() })
	return s2
}

// layerOf makes a gzip layer from tar entries.
func layerOf(t *testing.T, ents ...ent) v1.Layer {
	t.Helper()
	b := tarOf(t, ents...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func randomLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(2048, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf makes an image for this host's platform from layers.
func imageOf(t *testing.T, edit func(*v1.ConfigFile), layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = runtime.GOOS, runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/app"}
	if edit != nil {
		edit(cf)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ids returns an image's config digest, manifest digest and diffIDs.
func ids(t *testing.T, img v1.Image) (id, digest string, diffIDs []string) {
	t.Helper()
	cn, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range cf.RootFS.DiffIDs {
		diffIDs = append(diffIDs, h.String())
	}
	return cn.String(), d.String(), diffIDs
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// storeFiles lists what the store's layer area holds, to check that
// nothing was left behind.
func storeFiles(t *testing.T, s *Store) (layers, links []string) {
	t.Helper()
	return dirNames(t, s.path(layersDir)), dirNames(t, s.path(linksDir))
}

// assertNothingStored fails if the store holds any image, layer, link,
// blob or temporary file.
func assertNothingStored(t *testing.T, s *Store) {
	t.Helper()
	imgs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 0 {
		t.Errorf("store lists %d images; want none", len(imgs))
	}
	layers, links := storeFiles(t, s)
	if len(layers) != 0 || len(links) != 0 {
		t.Errorf("store holds layers %v and links %v; want none", layers, links)
	}
	if b := dirNames(t, s.path(blobsDir)); len(b) != 0 {
		t.Errorf("store holds blobs %v; want none", b)
	}
	if tmp := dirNames(t, s.path(tmpDir)); len(tmp) != 0 {
		t.Errorf("store holds temporary files %v", tmp)
	}
}

// progressLog records progress reports.
type progressLog struct {
	mu   sync.Mutex
	seen []Progress
}

func (p *progressLog) add(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, pr)
}

func (p *progressLog) statuses() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := map[string]bool{}
	for _, pr := range p.seen {
		set[pr.Status] = true
	}
	var out []string
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func mustPull(t *testing.T, s *Store, ref string) *Image {
	t.Helper()
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatalf("Pull(%s): %v", ref, err)
	}
	return img
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
