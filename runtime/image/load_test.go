package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestLoadDockerArchive(t *testing.T) {
	shared := randomLayer(t)
	a := imageOf(t, nil, shared, layerOf(t, file("hello", "world")))
	b := imageOf(t, nil, shared, randomLayer(t))
	refs := map[name.Reference]v1.Image{}
	for r, img := range map[string]v1.Image{"example.com/team/a:v1": a, "a:latest": a, "b:2": b} {
		ref, err := name.ParseReference(r)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
	}
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(refs, &buf); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Options{})
	var log progressLog
	imgs, err := s.Load(context.Background(), &buf, log.add)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Load returned %d images; want 2", len(imgs))
	}
	idA, _, diffA := ids(t, a)
	idB, _, _ := ids(t, b)
	got := map[string]*Image{imgs[0].ID: imgs[0], imgs[1].ID: imgs[1]}
	if ga := got[idA]; ga == nil || !slices.Equal(ga.Names, []string{"docker.io/library/a:latest", "example.com/team/a:v1"}) || !slices.Equal(ga.Layers, diffA) {
		t.Errorf("image a = %+v; want names a:latest and example.com/team/a:v1, layers %v", ga, diffA)
	}
	if gb := got[idB]; gb == nil || !slices.Equal(gb.Names, []string{"docker.io/library/b:2"}) {
		t.Errorf("image b = %+v", gb)
	}
	if !slices.Contains(log.statuses(), StatusExtracting) || !slices.Contains(log.statuses(), StatusExists) {
		t.Errorf("progress statuses %v; want extracting and exists (the shared layer)", log.statuses())
	}
	img, err := s.Get("a")
	if err != nil || img.ID != idA {
		t.Fatalf("Get(a) = %v, %v", img, err)
	}
	dirs, _ := s.LayerDirs(img)
	if got := readFile(t, filepath.Join(dirs[1], "hello")); got != "world" {
		t.Errorf("hello = %q", got)
	}
	if layers, _ := storeFiles(t, s); len(layers) != 3 {
		t.Errorf("store holds layers %v; want 3 (one shared)", layers)
	}
	if tmp := dirNames(t, s.path(tmpDir)); len(tmp) != 0 {
		t.Errorf("spool files left: %v", tmp)
	}
}

// The classic `docker save` layout: uncompressed <id>/layer.tar files, a
// repeated layer stored once and symlinked, manifest.json written last.
func TestLoadDockerSaveLegacyLayout(t *testing.T) {
	layer := tarOf(t, file("etc/motd", "hi"))
	diffID := mustHash(t, sha256Digest(layer))
	cf := &v1.ConfigFile{OS: runtime.GOOS, Architecture: runtime.GOARCH,
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID, diffID}}}
	cf.Config.Cmd = []string{"sh"}
	rawConfig, err := json.Marshal(cf)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256Digest(rawConfig)
	manifest, _ := json.Marshal([]map[string]any{{
		"Config": strings.TrimPrefix(id, "sha256:") + ".json", "RepoTags": []string{"legacy:1"},
		"Layers": []string{"aaa/layer.tar", "bbb/layer.tar"},
	}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		if h.Typeflag == 0 {
			h.Typeflag, h.Mode = tar.TypeReg, 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	add(&tar.Header{Name: "aaa/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "aaa/layer.tar"}, layer)
	add(&tar.Header{Name: "bbb/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bbb/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../aaa/layer.tar"}, nil)
	add(&tar.Header{Name: strings.TrimPrefix(id, "sha256:") + ".json"}, rawConfig)
	add(&tar.Header{Name: "repositories"}, []byte(`{"legacy":{"1":"x"}}`))
	add(&tar.Header{Name: "manifest.json"}, manifest)
	tw.Close()

	s := newStore(t, Options{})
	imgs, err := s.Load(context.Background(), &buf, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(imgs) != 1 || imgs[0].ID != id || imgs[0].Digest != "" || !slices.Equal(imgs[0].Names, []string{"docker.io/library/legacy:1"}) {
		t.Fatalf("Load = %+v", imgs[0])
	}
	dirs, err := s.LayerDirs(imgs[0])
	if err != nil || len(dirs) != 1 {
		t.Fatalf("LayerDirs = %v, %v; want the repeated layer once", dirs, err)
	}
	if got := readFile(t, filepath.Join(dirs[0], "etc/motd")); got != "hi" {
		t.Errorf("etc/motd = %q", got)
	}
}

// tarDir packs a directory as `tar -C dir .` would.
func tarDir(t *testing.T, dir string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return &buf
}

func TestLoadOCILayout(t *testing.T) {
	single := imageOf(t, nil, randomLayer(t), layerOf(t, file("app/x", "x")))
	var idx v1.ImageIndex = empty.Index
	want := map[string]v1.Image{}
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img := imageOf(t, func(cf *v1.ConfigFile) { cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant }, randomLayer(t))
		want[p.Architecture] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(single, layout.WithAnnotations(map[string]string{annotationRefName: "example.com/single:v1"})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationContainerdRef: "multi:2", annotationRefName: "2"})); err != nil {
		t.Fatal(err)
	}
	// A bare tag names no image.
	unnamed := imageOf(t, nil, randomLayer(t))
	if err := lp.AppendImage(unnamed, layout.WithAnnotations(map[string]string{annotationRefName: "latest"})); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, Options{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}})
	imgs, err := s.Load(context.Background(), tarDir(t, dir), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(imgs) != 3 {
		t.Fatalf("Load returned %d images; want 3", len(imgs))
	}
	checks := []struct {
		img   v1.Image
		names []string
	}{
		{single, []string{"example.com/single:v1"}},
		{want["arm64"], []string{"docker.io/library/multi:2"}},
		{unnamed, nil},
	}
	for i, c := range checks {
		id, digest, diffIDs := ids(t, c.img)
		if imgs[i].ID != id || imgs[i].Digest != digest || !slices.Equal(imgs[i].Names, c.names) || !slices.Equal(imgs[i].Layers, diffIDs) {
			t.Errorf("image %d = %+v; want ID %s digest %s names %v", i, imgs[i], id, digest, c.names)
		}
	}
	dirs, _ := s.LayerDirs(imgs[0])
	if got := readFile(t, filepath.Join(dirs[1], "app/x")); got != "x" {
		t.Errorf("app/x = %q", got)
	}

	// Loading again stores nothing new.
	before, _ := storeFiles(t, s)
	if _, err := s.Load(context.Background(), tarDir(t, dir), nil); err != nil {
		t.Fatal(err)
	}
	if after, _ := storeFiles(t, s); !slices.Equal(before, after) {
		t.Errorf("layers changed on a second load: %v -> %v", before, after)
	}
}

func TestLoadRefusesBadArchives(t *testing.T) {
	img := imageOf(t, nil, randomLayer(t), randomLayer(t))
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: "example.com/x:1"})); err != nil {
		t.Fatal(err)
	}
	// Swap one layer blob's content for another's: same names, wrong digest.
	ds := layerDigests(t, img)
	other, _ := os.ReadFile(filepath.Join(dir, "blobs/sha256", ds[0].Hex))
	if err := os.WriteFile(filepath.Join(dir, "blobs/sha256", ds[1].Hex), other, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Options{})
	_, err = s.Load(context.Background(), tarDir(t, dir), nil)
	if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "layer "+ds[1].String()+": content has digest "+ds[0].String()) {
		t.Errorf("Load of a tampered layout = %v; want a digest mismatch on layer %s", err, ds[1])
	}
	assertNothingStored(t, s)

	for name, data := range map[string][]byte{
		"not a tar":     []byte("hello, this is not a tar archive at all, just text that goes on long enough"),
		"no manifest":   tarOf(t, file("readme", "x")),
		"hostile names": tarOf(t, file("../../manifest.json", "[]")),
		"bad manifest":  tarOf(t, file("manifest.json", "{")),
		"missing layer": tarOf(t, file("c.json", `{"rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("a", 64)+`"]}}`), file("manifest.json", `[{"Config":"c.json","Layers":["gone.tar"]}]`)),
		"bad tag":       tarOf(t, file("c.json", `{"rootfs":{"type":"layers"}}`), file("manifest.json", `[{"Config":"c.json","RepoTags":["Bad Tag"]}]`)),
		"empty":         tarOf(t, file("manifest.json", `[]`)),
	} {
		_, err := s.Load(context.Background(), bytes.NewReader(data), nil)
		t.Logf("%s: %v", name, err)
		if !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Load(%s) = %v; want ErrInvalid", name, err)
		}
	}
	assertNothingStored(t, s)
}
