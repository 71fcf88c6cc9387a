package testimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestPushPull(t *testing.T) {
	b := build(t, Options{Tag: "1"})
	reg, err := StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if !strings.HasPrefix(reg.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q; want 127.0.0.1:PORT", reg.Addr())
	}
	ref, err := reg.Push(b.Image, "whoami:1")
	if err != nil {
		t.Fatal(err)
	}
	if want := reg.Addr() + "/whoami:1"; ref != want {
		t.Errorf("Push = %q, want %q", ref, want)
	}

	// Pull as a client that knows nothing of this package would.
	for _, r := range []string{ref, reg.Addr() + "/whoami@" + b.Digest.String()} {
		pr, err := name.ParseReference(r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(pr)
		if err != nil {
			t.Fatalf("remote.Image(%s): %v", r, err)
		}
		if d, err := img.Digest(); err != nil || d != b.Digest {
			t.Errorf("pulled %s: digest %s, %v; pushed %s", r, d, err, b.Digest)
		}
		if err := checkLayersMatch(img, b.Image); err != nil {
			t.Errorf("pulled %s: %v", r, err)
		}
	}
	if _, err := Pull(reg.Addr() + "/whoami:nope"); err == nil {
		t.Error("Pull of a tag never pushed succeeded")
	}

	if err := reg.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := reg.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := Pull(ref); err == nil {
		t.Error("Pull after Close succeeded")
	}
}

// checkLayersMatch reads every layer of got and compares it with want's.
func checkLayersMatch(got, want v1.Image) error {
	gl, err := got.Layers()
	if err != nil {
		return err
	}
	wl, err := want.Layers()
	if err != nil {
		return err
	}
	if len(gl) != len(wl) {
		return fmt.Errorf("%d layers, want %d", len(gl), len(wl))
	}
	for i := range gl {
		gd, err := readAll(gl[i].Compressed)
		if err != nil {
			return err
		}
		wd, err := readAll(wl[i].Compressed)
		if err != nil {
			return err
		}
		if !bytes.Equal(gd, wd) {
			return fmt.Errorf("layer %d differs", i)
		}
	}
	return nil
}

func readAll(open func() (io.ReadCloser, error)) ([]byte, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestDockerArchive(t *testing.T) {
	b := build(t, Options{Tag: "1"})
	p := filepath.Join(t.TempDir(), "whoami.tar")
	if err := b.WriteDockerArchive(p, "whoami:1"); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("whoami:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatal(err)
	}
	// `docker save` has no manifest of its own: the config and the layers
	// are what must survive.
	gotCfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, err := b.Image.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if gotCfg != wantCfg {
		t.Errorf("config %s, want %s", gotCfg, wantCfg)
	}
	if err := checkLayersMatch(img, b.Image); err != nil {
		t.Error(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "whoami:1" {
		t.Errorf("manifest.json = %+v; want RepoTags [whoami:1]", m)
	}
}

func TestOCILayoutAndTarball(t *testing.T) {
	b := build(t, Options{Tag: "2"})
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	if err := b.WriteOCILayout(lay); err != nil {
		t.Fatal(err)
	}
	checkLayout(t, lay, b)

	tarPath := filepath.Join(dir, "whoami.oci.tar")
	if err := b.WriteOCITarball(tarPath); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again.oci.tar")
	if err := b.WriteOCITarball(again); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(tarPath)
	second, _ := os.ReadFile(again)
	if !bytes.Equal(first, second) {
		t.Error("two OCI tarballs of one image differ")
	}
	untarred := filepath.Join(dir, "untarred")
	untar(t, tarPath, untarred)
	checkLayout(t, untarred, b)

	// A second image lands next to the first.
	c := build(t, Options{Tag: "3"})
	if err := c.WriteOCILayout(lay); err != nil {
		t.Fatal(err)
	}
	ii, err := layout.ImageIndexFromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Errorf("layout after two writes holds %d images, want 2", len(im.Manifests))
	}
}

// checkLayout opens an OCI layout as a reader would and finds b in it.
func checkLayout(t *testing.T, dir string, b Built) {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s: %d manifests, want 1", dir, len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Digest != b.Digest || d.Annotations[RefNameAnnotation] != b.Tag {
		t.Errorf("%s: index has %s (%v); want %s named %q", dir, d.Digest, d.Annotations, b.Digest, b.Tag)
	}
	img, err := ii.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayersMatch(img, b.Image); err != nil {
		t.Errorf("%s: %v", dir, err)
	}
}

func untar(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dst+string(filepath.Separator)) {
			t.Fatalf("tar entry %q escapes", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, 0o644)
			}
		default:
			t.Fatalf("tar entry %q of type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegistryCommand runs cmd/registry as a process, as tests whose
// daemons live in other network namespaces will.
func TestRegistryCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/registry")
	}
	needBusybox(t)
	bin := filepath.Join(t.TempDir(), "registry")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/registry").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/registry: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-push-whoami", "5")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case first <- sc.Text():
			default: // only the first line matters
			}
		}
		exited <- cmd.Wait()
	}()

	var ready string
	select {
	case ready = <-first:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no READY line in 2m; stderr:\n%s", stderr.String())
	}
	f := strings.Fields(ready)
	if len(f) != 3 || f[0] != "READY" || f[2] != f[1]+"/whoami:5" {
		t.Fatalf("first line %q; want READY <addr> <addr>/whoami:5 (stderr:\n%s)", ready, stderr.String())
	}
	img, err := Pull(f[2])
	if err != nil {
		t.Fatal(err)
	}
	want := build(t, Options{Tag: "5"})
	if d, _ := img.Digest(); d != want.Digest {
		t.Errorf("the command pushed %s; Build gives %s", d, want.Digest)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}
}

func TestPrivateRegistry(t *testing.T) {
	b := build(t, Options{Tag: "priv"})
	reg, err := ListenRegistry(RegistryOptions{User: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ref, err := reg.Push(b.Image, "whoami:priv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ref); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("an anonymous pull: %v; want UNAUTHORIZED", err)
	}
	pr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth authn.Authenticator
		ok   bool
	}{{&authn.Basic{Username: "alice", Password: "s3cret"}, true}, {&authn.Basic{Username: "alice", Password: "wrong"}, false}} {
		_, err := remote.Image(pr, remote.WithTransport(direct), remote.WithAuth(tc.auth))
		if (err == nil) != tc.ok {
			t.Errorf("pull with %v: %v; want ok=%v", tc.auth, err, tc.ok)
		}
	}
}
