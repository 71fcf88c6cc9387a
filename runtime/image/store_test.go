package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestGet(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t))
	ref := reg.push(t, "app:v1", src)
	s := newStore(t, Options{})
	img := mustPull(t, s, ref)
	hex := strings.TrimPrefix(img.ID, "sha256:")

	for _, q := range []string{ref, img.ID, hex, hex[:12], "sha256:" + hex[:7], reg.ref("app@" + img.Digest)} {
		got, err := s.Get(q)
		if err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %v, %v; want %s", q, got, err, img.ID)
		}
	}
	for _, q := range []string{"app:v1", reg.ref("app:v2"), "sha256:" + strings.Repeat("0", 64), "nginx"} {
		if _, err := s.Get(q); !errdefs.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Get(%q) = %v; want ErrNotFound", q, err)
		}
	}
	if _, err := s.Get("Not A Ref"); !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Get(invalid) = %v; want ErrInvalid", err)
	}
	// A returned image is the caller's to change.
	img.Names[0], img.Config.Env = "x", append(img.Config.Env, "X=1")
	if again, _ := s.Get(ref); again.Names[0] != ref || slices.Contains(again.Config.Env, "X=1") {
		t.Errorf("changing a returned image changed the store: %+v", again)
	}
}

func TestGetAmbiguousPrefix(t *testing.T) {
	s := newStore(t, Options{})
	s.st.Images["sha256:abc1"+strings.Repeat("0", 60)] = &imageRecord{ID: "sha256:abc1" + strings.Repeat("0", 60)}
	s.st.Images["sha256:abc2"+strings.Repeat("0", 60)] = &imageRecord{ID: "sha256:abc2" + strings.Repeat("0", 60)}
	if _, err := s.Get("abc"); !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("Get(abc) = %v; want an ambiguous-prefix error", err)
	}
	if img, err := s.Get("abc2"); err != nil || !strings.HasPrefix(img.ID, "sha256:abc2") {
		t.Errorf("Get(abc2) = %v, %v", img, err)
	}
}

func TestRemoveRefusedWhileLeased(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:v1", imageOf(t, nil, randomLayer(t), randomLayer(t)))
	s := newStore(t, Options{})
	img := mustPull(t, s, ref)
	if err := s.Lease("ctr-1", img.ID); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		err := s.Remove(img.ID, force)
		if want := "is in use by container ctr-1; remove the container first"; !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), want) {
			t.Errorf("Remove(ID, force=%v) = %v; want %q", force, err, want)
		}
	}
	if err := s.Remove(ref, false); !errdefs.Is(err, errdefs.ErrFailedPrecond) {
		t.Errorf("Remove(last name) of a leased image = %v; want ErrFailedPrecond", err)
	}
	if _, err := s.Get(img.ID); err != nil {
		t.Fatalf("leased image is gone: %v", err)
	}
	if _, _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if dirs, err := s.LayerDirs(img); err != nil || len(dirs) != 2 {
		t.Fatalf("LayerDirs of the leased image = %v, %v", dirs, err)
	}

	if err := s.Release("ctr-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("ctr-1"); err != nil {
		t.Errorf("second Release = %v; want nil", err)
	}
	if err := s.Remove(ref, false); err != nil {
		t.Fatalf("Remove after release: %v", err)
	}
	if _, err := s.Get(img.ID); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Remove = %v; want ErrNotFound", err)
	}
	assertNothingStored(t, s)
}

func TestLeaseErrors(t *testing.T) {
	s := newStore(t, Options{})
	if err := s.Lease("", "x"); !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Lease without owner = %v", err)
	}
	if err := s.Lease("c", "sha256:"+strings.Repeat("1", 64)); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Lease of an unknown image = %v", err)
	}
}

func TestRemoveNames(t *testing.T) {
	reg := newTestRegistry(t)
	shared := randomLayer(t)
	src := imageOf(t, nil, shared, randomLayer(t))
	other := imageOf(t, nil, shared)
	ref1, ref2 := reg.push(t, "app:v1", src), reg.push(t, "app:v2", src)
	refOther := reg.push(t, "other:1", other)
	s := newStore(t, Options{})
	mustPull(t, s, ref1)
	img := mustPull(t, s, ref2)
	mustPull(t, s, refOther)

	if err := s.Remove(img.ID, false); !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "several names") {
		t.Errorf("Remove(ID) of a twice-named image = %v; want a several-names refusal", err)
	}
	if err := s.Remove(ref1, false); err != nil {
		t.Fatalf("Remove(%s): %v", ref1, err)
	}
	if got, err := s.Get(img.ID); err != nil || !slices.Equal(got.Names, []string{ref2}) {
		t.Errorf("after untag: %v, %v; want only %s", got, err, ref2)
	}
	if err := s.Remove(ref2, false); err != nil {
		t.Fatal(err)
	}
	// The shared layer stays for the other image, the rest goes.
	layers, links := storeFiles(t, s)
	if len(layers) != 1 || len(links) != 1 {
		t.Errorf("after removal the store holds layers %v links %v; want the shared one", layers, links)
	}
	o, _ := s.Get(refOther)
	if dirs, err := s.LayerDirs(o); err != nil || len(dirs) != 1 {
		t.Errorf("other image's layers: %v, %v", dirs, err)
	}

	// Force removes an image by ID with all its names.
	mustPull(t, s, ref1)
	mustPull(t, s, ref2)
	if err := s.Remove(img.ID, true); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{ref1, ref2} {
		if _, err := s.Get(r); !errdefs.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Get(%s) after forced removal = %v", r, err)
		}
	}
}

func TestPrune(t *testing.T) {
	reg := newTestRegistry(t)
	shared := randomLayer(t)
	old := imageOf(t, nil, shared, randomLayer(t), randomLayer(t))
	cur := imageOf(t, nil, shared, randomLayer(t))
	leasedOld := imageOf(t, nil, randomLayer(t))
	s := newStore(t, Options{})

	ref := reg.push(t, "app:latest", old)
	oldImg := mustPull(t, s, ref)
	reg.push(t, "app:latest", cur) // the tag moves: old becomes dangling
	curImg := mustPull(t, s, ref)
	lref := reg.push(t, "leased:1", leasedOld)
	lImg := mustPull(t, s, lref)
	if err := s.Lease("ctr", lImg.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(lref, true); err != nil { // untag; the lease keeps it
		t.Fatal(err)
	}
	if got, _ := s.Get(oldImg.ID); len(got.Names) != 0 {
		t.Fatalf("old image names %v; want dangling", got.Names)
	}

	removed, freed, err := s.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{oldImg.ID}) {
		t.Errorf("Prune removed %v; want only %s", removed, oldImg.ID)
	}
	if freed < 2*2048 {
		t.Errorf("Prune freed %d bytes; want at least the two unshared layers (4096)", freed)
	}
	for _, id := range []string{curImg.ID, lImg.ID} {
		img, err := s.Get(id)
		if err != nil {
			t.Fatalf("Prune removed %s: %v", id, err)
		}
		if _, err := s.LayerDirs(img); err != nil {
			t.Errorf("Prune removed a layer of %s: %v", id, err)
		}
	}
	if layers, _ := storeFiles(t, s); len(layers) != 3 {
		t.Errorf("store holds layers %v; want 3 (shared, cur's own, leased)", layers)
	}
	if removed, freed, err := s.Prune(); err != nil || len(removed) != 0 || freed != 0 {
		t.Errorf("second Prune = %v, %d, %v; want nothing", removed, freed, err)
	}
}

func TestReopenSeesImagesAndDropsLeftovers(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t), randomLayer(t))
	ref := reg.push(t, "app:v1", src)
	s := newStore(t, Options{})
	img := mustPull(t, s, ref)
	if err := s.Lease("ctr-9", img.ID); err != nil {
		t.Fatal(err)
	}
	dirs, _ := s.LayerDirs(img)

	if _, err := Open(Options{Root: s.root}); !errdefs.Is(err, errdefs.ErrFailedPrecond) {
		t.Errorf("second Open of a root in use = %v; want ErrFailedPrecond", err)
	}

	// What a crash can leave behind: a half-unpacked layer, an unnamed
	// layer dir without its record, a stale state temp file, a spool file,
	// an orphan blob.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(s.path(layersDir, ".tmp-123", "diff", "etc"), 0o755))
	must(os.MkdirAll(s.path(layersDir, strings.Repeat("e", 64), "diff"), 0o755))
	must(os.WriteFile(s.path(".tmp-state.json-1"), []byte("{"), 0o600))
	must(os.WriteFile(s.path(tmpDir, "load-1"), []byte("x"), 0o600))
	must(os.WriteFile(s.path(blobsDir, strings.Repeat("f", 64)), []byte("x"), 0o600))
	// A lost short link is recreated.
	must(os.Remove(dirs[1]))

	s2 := reopen(t, s)
	got, err := s2.Get(ref)
	if err != nil || got.ID != img.ID || !slices.Equal(got.Names, []string{ref}) {
		t.Fatalf("after reopen Get = %+v, %v", got, err)
	}
	if leases := s2.Leases(); leases["ctr-9"] != img.ID {
		t.Errorf("leases after reopen = %v", leases)
	}
	dirs2, err := s2.LayerDirs(got)
	if err != nil || !slices.Equal(dirs, dirs2) {
		t.Errorf("LayerDirs after reopen = %v, %v; want %v", dirs2, err, dirs)
	}
	for _, d := range dirs2 {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("layer dir %s: %v", d, err)
		}
	}
	layers, _ := storeFiles(t, s2)
	if len(layers) != 2 {
		t.Errorf("layers after reopen %v; want the 2 complete ones", layers)
	}
	if tmp := dirNames(t, s2.path(tmpDir)); len(tmp) != 0 {
		t.Errorf("tmp after reopen %v", tmp)
	}
	if b := dirNames(t, s2.path(blobsDir)); len(b) != 2 {
		t.Errorf("blobs after reopen %v; want config and manifest", b)
	}
	if _, err := os.Stat(s2.path(".tmp-state.json-1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state temp file survived reopen: %v", err)
	}
}

// An image record whose layer vanished (say, a disk was cleaned by hand)
// is dropped at Open rather than handed out half.
func TestReopenDropsIncompleteImages(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:v1", imageOf(t, nil, randomLayer(t), randomLayer(t)))
	s := newStore(t, Options{})
	img := mustPull(t, s, ref)
	if err := os.RemoveAll(s.path(layersDir, strings.TrimPrefix(img.Layers[1], "sha256:"))); err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t, s)
	if _, err := s2.Get(ref); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of an incomplete image after reopen = %v; want ErrNotFound", err)
	}
	if _, _, err := s2.Prune(); err != nil {
		t.Fatal(err)
	}
	// Pulling again repairs it.
	if _, err := s2.Pull(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
}

// Bad layer content, from any source, is refused with a clear error and
// leaves nothing in the store.
func TestIngestRefusesBadLayers(t *testing.T) {
	goodTar := tarOf(t, file("a", "a"), file("b", strings.Repeat("b", 10000)))
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	good := gz(goodTar)
	diffID := sha256Digest(goodTar)
	hostileTar := tarOf(t, file("../../etc/passwd", "root::0:0::/:/bin/sh"))

	tests := []struct {
		name    string
		blob    []byte
		diffID  string
		digest  string // "" to use the blob's own
		size    int64  // 0 to use the blob's own
		want    string
		wantCat error
	}{
		{name: "layer digest mismatch", blob: good, diffID: diffID, digest: sha256Digest([]byte("other")),
			want: "content has digest " + sha256Digest(good) + ", not " + sha256Digest([]byte("other")), wantCat: errdefs.ErrInvalid},
		{name: "diffID mismatch", blob: good, diffID: sha256Digest([]byte("other")),
			want: "uncompressed content has digest " + diffID + ", but the image config says its diffID is", wantCat: errdefs.ErrInvalid},
		{name: "truncated gzip", blob: good[:len(good)/2], diffID: diffID, digest: "-", size: -1,
			want: "unexpected EOF (the data is corrupt or truncated)", wantCat: errdefs.ErrInvalid},
		{name: "size mismatch", blob: good, diffID: diffID, size: int64(len(good)) + 10,
			want: "content is " + strconv.Itoa(len(good)) + " bytes, not the " + strconv.Itoa(len(good)+10), wantCat: errdefs.ErrInvalid},
		{name: "hostile entry", blob: gz(hostileTar), diffID: sha256Digest(hostileTar),
			want: `entry "../../etc/passwd": path escapes the layer root`, wantCat: errdefs.ErrInvalid},
		{name: "not a tar", blob: gz([]byte(strings.Repeat("garbage!", 200))), diffID: diffID,
			want: "reading layer tar", wantCat: errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			digest, size := tt.digest, tt.size
			switch digest {
			case "":
				digest = sha256Digest(tt.blob)
			case "-":
				digest = ""
			}
			if size == 0 {
				size = int64(len(tt.blob))
			}
			src := testSource(tt.blob, tt.diffID, digest, size)
			cf := &v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{mustHash(t, tt.diffID)}}}
			rec := newRecord(sha256Digest([]byte(tt.name)), "", cf, nil)
			_, err := s.ingest(context.Background(), rec, []layerSource{src}, []string{"docker.io/library/x:1"}, nil, 1, nil)
			if err == nil {
				t.Fatal("ingest succeeded")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "layer "+src.label+": ") || !errdefs.Is(err, tt.wantCat) {
				t.Errorf("ingest error = %q; want %q prefixed by the layer, category %v", err, tt.want, tt.wantCat)
			}
			assertNothingStored(t, s)
		})
	}
}

func testSource(blob []byte, diffID, digest string, size int64) layerSource {
	label := digest
	if label == "" {
		label = diffID
	}
	return layerSource{
		diffID: diffID, digest: digest, size: size, label: label, status: StatusExtracting, origin: "the test",
		open:     func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil },
		classify: func(err error) error { return err },
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestOpenNeedsRoot(t *testing.T) {
	if _, err := Open(Options{}); !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Open without root = %v; want ErrInvalid", err)
	}
	root := filepath.Join(t.TempDir(), "x")
	s, err := Open(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("root %v, %v; want a 0700 directory", fi, err)
	}
}
