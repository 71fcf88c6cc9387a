package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Pulling twice prints docker's status lines: a download, then up to date;
// each ends with the normalized reference.
func TestImagePullStatus(t *testing.T) {
	n, img := runtimeNode(t)
	b, err := testimage.Build("", testimage.Options{Tag: "2", Files: map[string]string{"/etc/motd": "two"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := img.Registry.Push(b.Image, "whoami:2")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"Status: Downloaded newer image for " + ref, "Status: Image is up to date for " + ref} {
		out, errOut, code := cliOut(t, n, "image", "pull", ref)
		ls := lines(out)
		if code != 0 || len(ls) < 3 || ls[len(ls)-3] != "Digest: "+b.Digest.String() || ls[len(ls)-2] != want || ls[len(ls)-1] != ref {
			t.Fatalf("pull %d: exit %d, stdout:\n%s\nstderr: %s\nwant it to end with Digest: %s, %q and %q", i+1, code, out, errOut, b.Digest, want, ref)
		}
	}
	if out := n.MustCLI("image", "pull", "-q", ref); out != ref+"\n" {
		t.Errorf("pull -q printed %q; want only %q", out, ref+"\n")
	}
	// An invalid reference is refused before anything is fetched.
	if _, errOut, code := cliOut(t, n, "image", "pull", "Bad/Name"); code == 0 || !strings.Contains(errOut, "invalid image reference") {
		t.Errorf("pull of an invalid reference: exit %d, %q", code, errOut)
	}
	// What was pulled runs.
	if out, _, code := runOut(t, n, "--rm", "--entrypoint", "/bin/cat", ref, "/etc/motd"); code != 0 || out != "two" {
		t.Errorf("run of the pulled image: exit %d, %q; want two", code, out)
	}
}

// imageInspectJSON is the part of docker's image inspect the tests read.
type imageInspectJSON struct {
	Id           string //nolint:revive // docker's name
	RepoTags     []string
	RepoDigests  []string
	Created      string
	Architecture string
	Os           string
	Size         int64
	Config       struct {
		Env, Cmd, Entrypoint []string
		WorkingDir, User     string
		ExposedPorts         map[string]struct{}
		Labels               map[string]string
	}
	RootFS struct {
		Type   string
		Layers []string
	}
}

func inspectImages(t *testing.T, n *harness.Node, refs ...string) []imageInspectJSON {
	t.Helper()
	out := n.MustCLI(append([]string{"image", "inspect"}, refs...)...)
	var got []imageInspectJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("image inspect printed no JSON array: %v\n%s", err, out)
	}
	return got
}

func TestImageTagAndInspect(t *testing.T) {
	n, img := runtimeNode(t)
	cf, err := img.Image.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	id, err := img.Image.Image.ConfigName()
	if err != nil {
		t.Fatal(err)
	}

	if out := n.MustCLI("image", "tag", img.Ref, "local/app:v2"); out != "" {
		t.Errorf("image tag printed %q; want nothing, like docker", out)
	}
	n.MustCLI("image", "tag", id.Hex[:12], "local/app:id")
	got := inspectImages(t, n, "local/app:v2", img.Ref, id.String())
	if len(got) != 3 {
		t.Fatalf("inspect of 3 names gave %d objects", len(got))
	}
	repo := strings.TrimSuffix(img.Ref, ":1")
	for _, g := range got {
		if g.Id != id.String() {
			t.Errorf("Id = %s; want %s", g.Id, id)
		}
		if want := []string{img.Ref, "docker.io/local/app:id", "docker.io/local/app:v2"}; !slices.Equal(g.RepoTags, want) {
			t.Errorf("RepoTags = %q; want %q", g.RepoTags, want)
		}
		if !slices.Contains(g.RepoDigests, repo+"@"+img.Image.Digest.String()) {
			t.Errorf("RepoDigests = %q; want %s@%s among them", g.RepoDigests, repo, img.Image.Digest)
		}
		if g.Os != "linux" || g.Architecture != runtime.GOARCH || g.Size <= 0 || g.Created != cf.Created.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00") {
			t.Errorf("Os %q Architecture %q Size %d Created %q; want linux, %s, > 0, %s", g.Os, g.Architecture, g.Size, g.Created, runtime.GOARCH, cf.Created.Time)
		}
		c := cf.Config
		if !slices.Equal(g.Config.Env, c.Env) || !slices.Equal(g.Config.Cmd, c.Cmd) || !slices.Equal(g.Config.Entrypoint, c.Entrypoint) ||
			g.Config.WorkingDir != c.WorkingDir || g.Config.User != c.User || len(g.Config.ExposedPorts) != len(c.ExposedPorts) {
			t.Errorf("Config = %+v; want the image's %+v", g.Config, c)
		}
		var diffIDs []string
		for _, d := range cf.RootFS.DiffIDs {
			diffIDs = append(diffIDs, d.String())
		}
		if g.RootFS.Type != "layers" || !slices.Equal(g.RootFS.Layers, diffIDs) {
			t.Errorf("RootFS = %+v; want layers %q", g.RootFS, diffIDs)
		}
	}
	// A template runs on docker's own fields.
	if out := n.MustCLI("image", "inspect", "--format", "{{.Id}} {{len .RootFS.Layers}} {{.Os}}", "local/app:v2"); out != fmt.Sprintf("%s %d linux\n", id, len(cf.RootFS.DiffIDs)) {
		t.Errorf("image inspect --format '{{.Id}} {{len .RootFS.Layers}} {{.Os}}' = %q", out)
	}
	// The new name runs the image.
	if out, _, code := runOut(t, n, "--rm", "--entrypoint", "/bin/cat", "local/app:v2", "/app/version"); code != 0 || out != "1\n" {
		t.Errorf("run local/app:v2: exit %d, %q; want the image's version 1", code, out)
	}

	// Missing images: docker's words, exit 1, the found ones still printed.
	out, errOut, code := cliOut(t, n, "image", "inspect", "local/app:v2", "nope:1")
	if code != 1 || strings.TrimSpace(errOut) != "Error: No such image: nope:1" {
		t.Errorf("inspect of a missing image: exit %d, stderr %q; want 1 and Error: No such image: nope:1", code, errOut)
	}
	var partial []imageInspectJSON
	if err := json.Unmarshal([]byte(out), &partial); err != nil || len(partial) != 1 || partial[0].Id != id.String() {
		t.Errorf("inspect with one missing image printed %q (%v); want the found one", out, err)
	}
	if out, errOut, code := cliOut(t, n, "image", "inspect", "nope", "gone:2"); code != 1 || strings.TrimSpace(out) != "[]" ||
		strings.TrimSpace(errOut) != "Error: No such image: nope\nError: No such image: gone:2" {
		t.Errorf("inspect of two missing images: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	before := n.MustCLI("image", "ls")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "tag", "nope:1", "x"}, "Error: No such image: nope:1"},
		{[]string{"image", "tag", img.Ref, "x@sha256:" + strings.Repeat("a", 64)}, "refusing to create a tag with a digest reference"},
		{[]string{"image", "tag", img.Ref, "Bad Name"}, `invalid image reference "Bad Name"`},
	} {
		if _, errOut, code := cliOut(t, n, tc.args...); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("shoal %s: exit %d, stderr %q; want 1 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	if after := n.MustCLI("image", "ls"); after != before {
		t.Errorf("refused tags changed the images:\n%s\n->\n%s", before, after)
	}
}

// ociTarball writes img as an OCI-layout tarball with index annotations.
func ociTarball(t *testing.T, img v1.Image, ann map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(ann)); err != nil {
		t.Fatal(err)
	}
	return tarLayout(t, filepath.Join(dir, "layout"))
}

// tarLayout packs an OCI layout directory with GNU tar.
func tarLayout(t *testing.T, dir string) string {
	t.Helper()
	out := dir + ".tar"
	if b, err := exec.Command("tar", "-C", dir, "-cf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	return out
}

// An OCI layout's index names its image as docker load reads it: the
// containerd annotation or a full reference in ref.name; a bare tag (what
// umoci writes) names nothing.
func TestImageLoadOCINames(t *testing.T) {
	n, img := runtimeNode(t)
	base := img.Image.Image
	withLabel := func(v string) v1.Image {
		cf, _ := base.ConfigFile()
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{"variant": v}
		i, err := mutate.ConfigFile(base, cf)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want string // the line load prints
	}{
		{"containerd name", map[string]string{"io.containerd.image.name": "example.com/team/app:3", testimage.RefNameAnnotation: "3"},
			"Loaded image: example.com/team/app:3"},
		{"full ref.name", map[string]string{testimage.RefNameAnnotation: "registry.local:5000/tools/app:4"},
			"Loaded image: registry.local:5000/tools/app:4"},
		{"short ref.name", map[string]string{testimage.RefNameAnnotation: "app:5"}, "Loaded image: docker.io/library/app:5"},
		{"bare tag", map[string]string{testimage.RefNameAnnotation: "6"}, "Loaded image ID: sha256:"},
	} {
		i := withLabel(tc.name)
		id, _ := i.ConfigName()
		out := n.MustCLI("image", "load", "-i", ociTarball(t, i, tc.ann))
		if !strings.HasPrefix(out, tc.want) || len(lines(out)) != 1 {
			t.Errorf("%s: load printed %q; want one line %q", tc.name, out, tc.want)
		}
		g := inspectImages(t, n, id.String())
		name := strings.TrimPrefix(strings.TrimSpace(out), "Loaded image: ")
		if strings.HasPrefix(tc.want, "Loaded image ID") {
			if len(g[0].RepoTags) != 0 || strings.TrimSpace(out) != "Loaded image ID: "+id.String() {
				t.Errorf("%s: load printed %q, RepoTags %q; want the ID %s and no names", tc.name, out, g[0].RepoTags, id)
			}
		} else if !slices.Equal(g[0].RepoTags, []string{name}) || g[0].Config.Labels["variant"] != tc.name {
			t.Errorf("%s: RepoTags %q labels %v; want [%s]", tc.name, g[0].RepoTags, g[0].Config.Labels, name)
		}
	}
}

// An image umoci made (its layer has a "/" root entry) loads through
// shoal image load, and runs once tagged.
func TestImageLoadUmoci(t *testing.T) {
	n, img := runtimeNode(t)
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Fatal("this test needs umoci: apt-get install umoci")
	}
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	// Start from the whoami image (busybox inside), add a layer with umoci.
	if err := img.Image.WriteOCILayout(lay); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src+"/etc", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/etc/umoci", []byte("inserted by umoci"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(umoci, "insert", "--image", lay+":"+img.Image.Tag, src, "/").CombinedOutput(); err != nil {
		t.Fatalf("umoci insert: %v\n%s", err, b)
	}
	// umoci's index names the image by the bare tag "1": unnamed.
	out := n.MustCLI("image", "load", "-i", tarLayout(t, lay))
	umociID, ok := strings.CutPrefix(strings.TrimSpace(out), "Loaded image ID: ")
	if !ok || len(lines(out)) != 1 {
		t.Fatalf("load printed %q; want one Loaded image ID line", out)
	}
	if g := inspectImages(t, n, umociID); len(g[0].RootFS.Layers) != 3 || len(g[0].RepoTags) != 0 {
		t.Fatalf("umoci's image: %+v; want 3 layers (whoami's 2 and umoci's) and no names", g[0])
	}
	n.MustCLI("image", "tag", umociID, "local/umoci")
	if out, errOut, code := runOut(t, n, "--rm", "--entrypoint", "/bin/cat", "local/umoci", "/etc/umoci", "/app/version"); code != 0 || out != "inserted by umoci1\n" {
		t.Errorf("run of umoci's image: exit %d, %q %q; want umoci's file and whoami's version", code, out, errOut)
	}
}

// bombLayer is a gzip layer of one file of n zero bytes.
func bombLayer(t *testing.T, n int64) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: n}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, bytes.NewReader(make([]byte, n)), n); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A decompression bomb is refused at the daemon's --max-image-size and
// leaves nothing on disk; the same image under the limit loads.
func TestImageLoadBombRefused(t *testing.T) {
	needRoot(t)
	n := harness.NewNode(t, "node1", "--max-image-size", "4m")
	n.Start()
	t.Cleanup(n.Stop)
	img, err := mutate.AppendLayers(empty.Image, bombLayer(t, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	bomb := ociTarball(t, img, map[string]string{testimage.RefNameAnnotation: "example.com/bomb:1"})
	if fi, err := os.Stat(bomb); err != nil || fi.Size() > 1<<20 {
		t.Fatalf("the bomb tarball: %v, %v; want it under 1 MiB", fi, err)
	}
	_, errOut, code := cliOut(t, n, "image", "load", "-i", bomb)
	want := "the image unpacks to more than 4194304 bytes, the limit on an image's unpacked size; raise it with `shoal daemon --max-image-size` (0 for no limit)"
	if code != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, "goroutine") {
		t.Fatalf("load of a bomb: exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
	if out := n.MustCLI("image", "ls", "-q"); out != "" {
		t.Errorf("image ls after a refused bomb: %q; want nothing", out)
	}
	store := filepath.Join(n.Dir, "data", "runtime", "images")
	for _, d := range []string{"layers", "l", "blobs/sha256", "tmp"} {
		es, err := os.ReadDir(filepath.Join(store, d))
		if err != nil || len(es) != 0 {
			t.Errorf("%s after a refused bomb holds %v (%v); want nothing", d, es, err)
		}
	}

	// A daemon with room for it loads it.
	n.Stop()
	n.Args = []string{"--max-image-size", "65m"}
	n.Start()
	if out := n.MustCLI("image", "load", "-i", bomb); strings.TrimSpace(out) != "Loaded image: example.com/bomb:1" {
		t.Errorf("load under a higher limit printed %q", out)
	}
}
