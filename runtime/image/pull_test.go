package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// contentImage has a base layer with files and a top layer that deletes
// and hides some of them, to check the overlayfs conversion.
func contentImage(t *testing.T) v1.Image {
	base := layerOf(t,
		dir("etc/"), file("etc/hostname", "box"), file("etc/old", "old"),
		dir("app/"), file("app/cache/a", "a"),
		symlink("bin", "usr/bin"), dir("usr/bin/"), file("usr/bin/tool", "tool"),
	)
	top := layerOf(t,
		file("etc/.wh.old", ""),
		dir("app/cache/"), file("app/cache/.wh..wh..opq", ""), file("app/cache/b", "b"),
		symlink("etc/abs", "/etc/hostname"),
	)
	return imageOf(t, func(cf *v1.ConfigFile) {
		cf.Config.Entrypoint = []string{"/usr/bin/tool"}
		cf.Config.Cmd = []string{"--serve"}
		cf.Config.Env = []string{"PATH=/usr/bin", "A=b"}
		cf.Config.WorkingDir = "/app"
		cf.Config.User = "1000:1000"
		cf.Config.StopSignal = "SIGQUIT"
		cf.Config.Labels = map[string]string{"org.example": "yes"}
		cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "53/udp": {}}
		cf.Config.Healthcheck = &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Second, Retries: 3}
		cf.Created = v1.Time{Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	}, base, top)
}

func TestPullFromLoopbackRegistryOverPlainHTTP(t *testing.T) {
	reg := newTestRegistry(t)
	src := contentImage(t)
	ref := reg.push(t, "team/app:v1", src)
	s := newStore(t, Options{})

	var log progressLog
	img, err := s.Pull(context.Background(), ref, log.add)
	if err != nil {
		t.Fatalf("Pull(%s): %v", ref, err)
	}
	id, digest, diffIDs := ids(t, src)
	if img.ID != id || img.Digest != digest || !slices.Equal(img.Layers, diffIDs) {
		t.Errorf("Pull = ID %s digest %s layers %v; want %s %s %v", img.ID, img.Digest, img.Layers, id, digest, diffIDs)
	}
	if want := []string{ref}; !slices.Equal(img.Names, want) {
		t.Errorf("Names = %v; want %v", img.Names, want)
	}
	c := img.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/bin/tool"}) || !slices.Equal(c.Cmd, []string{"--serve"}) ||
		!slices.Equal(c.Env, []string{"PATH=/usr/bin", "A=b"}) || c.WorkingDir != "/app" || c.User != "1000:1000" ||
		c.StopSignal != "SIGQUIT" || c.Labels["org.example"] != "yes" ||
		!slices.Equal(c.ExposedPorts, []string{"53/udp", "8080/tcp"}) ||
		c.Healthcheck == nil || c.Healthcheck.Retries != 3 || c.Healthcheck.Interval != time.Second {
		t.Errorf("Config = %+v", c)
	}
	if !img.Created.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) || img.Size <= 0 {
		t.Errorf("Created %v Size %d", img.Created, img.Size)
	}
	if img.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("Platform = %q", img.Platform)
	}
	for _, st := range []string{StatusResolving, StatusDownloading, StatusVerifying, StatusDone} {
		if !slices.Contains(log.statuses(), st) {
			t.Errorf("progress statuses %v lack %q", log.statuses(), st)
		}
	}

	dirs, err := s.LayerDirs(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("LayerDirs = %v; want 2", dirs)
	}
	for _, d := range dirs {
		if rel, _ := filepath.Rel(s.root, d); len(rel) > len("l/")+12 {
			t.Errorf("layer dir %s is not short", d)
		}
	}
	lower, upper := dirs[0], dirs[1]
	if got := readFile(t, filepath.Join(lower, "etc/hostname")); got != "box" {
		t.Errorf("etc/hostname = %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(lower, "bin")); got != "usr/bin" {
		t.Errorf("bin -> %q", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "etc/old"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/old in the top layer: %v mode %o rdev %d; want a 0/0 whiteout", err, st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	if n, err := unix.Getxattr(filepath.Join(upper, "app/cache"), overlayOpaque, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("app/cache opaque xattr = %q, %v", buf[:n], err)
	}
	if got, _ := os.Readlink(filepath.Join(upper, "etc/abs")); got != "/etc/hostname" {
		t.Errorf("etc/abs -> %q", got)
	}
}

func TestPullTwiceAndUnderTwoNamesStoresOnce(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t), randomLayer(t))
	ref1 := reg.push(t, "app:v1", src)
	ref2 := reg.push(t, "app:v2", src)
	s := newStore(t, Options{})

	a := mustPull(t, s, ref1)
	var log progressLog
	b, err := s.Pull(context.Background(), ref1, log.add)
	if err != nil {
		t.Fatal(err)
	}
	c := mustPull(t, s, ref2)
	if a.ID != b.ID || a.ID != c.ID {
		t.Fatalf("IDs %s %s %s; want one image", a.ID, b.ID, c.ID)
	}
	if !slices.Contains(log.statuses(), StatusExists) {
		t.Errorf("second pull statuses %v; want %q", log.statuses(), StatusExists)
	}
	if want := []string{ref1, ref2}; !slices.Equal(c.Names, want) {
		t.Errorf("Names = %v; want %v", c.Names, want)
	}
	for _, d := range layerDigests(t, src) {
		if n := reg.blobGets(d); n != 1 {
			t.Errorf("layer %s downloaded %d times; want 1", d, n)
		}
	}
	imgs, _ := s.List()
	layers, _ := storeFiles(t, s)
	if len(imgs) != 1 || len(layers) != 2 {
		t.Errorf("store has %d images and layers %v; want 1 image, 2 layers", len(imgs), layers)
	}
}

func TestSharedLayerIsUnpackedOnce(t *testing.T) {
	reg := newTestRegistry(t)
	shared := randomLayer(t)
	a := imageOf(t, nil, shared, randomLayer(t))
	b := imageOf(t, nil, shared, randomLayer(t))
	refA, refB := reg.push(t, "a:1", a), reg.push(t, "b:1", b)
	s := newStore(t, Options{})

	ia, ib := mustPull(t, s, refA), mustPull(t, s, refB)
	da, _ := s.LayerDirs(ia)
	db, _ := s.LayerDirs(ib)
	if da[0] != db[0] || da[1] == db[1] {
		t.Errorf("layer dirs %v and %v; want the first shared, the second not", da, db)
	}
	d, _ := shared.Digest()
	if n := reg.blobGets(d); n != 1 {
		t.Errorf("shared layer downloaded %d times; want 1", n)
	}
	if layers, _ := storeFiles(t, s); len(layers) != 3 {
		t.Errorf("store holds layers %v; want 3", layers)
	}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	reg := newTestRegistry(t)
	plats := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v6"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
		{OS: "windows", Architecture: "amd64"},
	}
	var idx v1.ImageIndex = empty.Index
	want := map[string]v1.Image{}
	for _, p := range plats {
		img := imageOf(t, func(cf *v1.ConfigFile) { cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant }, randomLayer(t))
		want[platformString(p)] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref := reg.pushIndex(t, "multi:1", idx)

	tests := []struct {
		platform *v1.Platform
		want     string
	}{
		{nil, runtime.GOOS + "/" + runtime.GOARCH},
		{&v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "linux/arm/v7"},
		{&v1.Platform{OS: "linux", Architecture: "arm64"}, "linux/arm64/v8"},
		{&v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "linux/arm/v6"},
	}
	for _, tt := range tests {
		if tt.platform == nil && want[tt.want] == nil {
			t.Logf("host platform %s is not in the test index", tt.want)
			continue
		}
		s := newStore(t, Options{Platform: tt.platform})
		img := mustPull(t, s, ref)
		id, digest, _ := ids(t, want[tt.want])
		if img.ID != id || img.Digest != digest || img.Platform != tt.want {
			t.Errorf("Pull on %v = %s %s (%s); want the %s image %s %s", tt.platform, img.ID, img.Digest, img.Platform, tt.want, id, digest)
		}
	}

	s := newStore(t, Options{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}})
	_, err := s.Pull(context.Background(), ref, nil)
	if !errdefs.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "has no image for linux/s390x (it has linux/amd64, linux/arm/v6") {
		t.Errorf("Pull for s390x = %v; want ErrNotFound listing the platforms", err)
	}
	assertNothingStored(t, s)
}

func TestConcurrentPullsFetchEachLayerOnce(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t), randomLayer(t), randomLayer(t), randomLayer(t))
	ref := reg.push(t, "busy:1", src)
	s := newStore(t, Options{})

	const n = 6
	var wg sync.WaitGroup
	imgs := make([]*Image, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], errs[i] = s.Pull(context.Background(), ref, nil)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("pull %d: %v", i, errs[i])
		}
		if imgs[i].ID != imgs[0].ID {
			t.Errorf("pull %d got %s; want %s", i, imgs[i].ID, imgs[0].ID)
		}
	}
	for _, d := range layerDigests(t, src) {
		if got := reg.blobGets(d); got != 1 {
			t.Errorf("layer %s downloaded %d times by %d concurrent pulls; want 1", d, got, n)
		}
	}
	if layers, _ := storeFiles(t, s); len(layers) != 4 {
		t.Errorf("store holds layers %v; want 4", layers)
	}
}

func TestPullCorruptBlobStoresNothing(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t), randomLayer(t), randomLayer(t))
	ref := reg.push(t, "bad:1", src)
	bad := layerDigests(t, src)[1]
	reg.corruptBlob(bad)
	s := newStore(t, Options{})

	_, err := s.Pull(context.Background(), ref, nil)
	if err == nil {
		t.Fatal("Pull of a corrupt blob succeeded")
	}
	t.Logf("corrupt blob: %v", err)
	want := fmt.Sprintf("layer %s: content has digest sha256:", bad)
	if !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "sent corrupt data") {
		t.Errorf("Pull error = %q; want ErrInvalid containing %q", err, want)
	}
	assertNothingStored(t, s)
}

func TestPullErrors(t *testing.T) {
	reg := newTestRegistry(t)
	s := newStore(t, Options{})

	ref := reg.ref("nope:1")
	_, err := s.Pull(context.Background(), ref, nil)
	t.Logf("missing: %v", err)
	if want := fmt.Sprintf("image %q not found in registry %s", ref, reg.host); !errdefs.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Errorf("Pull(missing) = %v; want ErrNotFound %q", err, want)
	}

	// A loopback port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, err = s.Pull(context.Background(), dead+"/x:1", nil)
	t.Logf("unreachable: %v", err)
	if !errdefs.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "cannot reach registry "+dead) {
		t.Errorf("Pull(unreachable) = %v; want ErrUnavailable cannot reach", err)
	}

	_, err = s.Pull(context.Background(), "Bad/Name", nil)
	t.Logf("invalid: %v", err)
	if !errdefs.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Pull(invalid) = %v; want ErrInvalid", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Pull(ctx, reg.ref("nope:1"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Pull(cancelled) = %v; want context.Canceled", err)
	}
	assertNothingStored(t, s)
}

// A prune while a pull is between storing its layers and recording its
// image must not take the layers away.
func TestPruneDuringPullKeepsItsLayers(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t), randomLayer(t))
	ref := reg.push(t, "slow:1", src)
	ds := layerDigests(t, src)
	release := reg.holdBlob(t, ds[1])
	s := newStore(t, Options{})

	firstDone := make(chan struct{})
	var once sync.Once
	progress := func(p Progress) {
		if p.Layer == ds[0].String() && p.Status == StatusDone {
			once.Do(func() { close(firstDone) })
		}
	}
	result := make(chan error, 1)
	go func() {
		_, err := s.Pull(context.Background(), ref, progress)
		result <- err
	}()
	<-firstDone
	if _, freed, err := s.Prune(); err != nil || freed != 0 {
		t.Errorf("Prune during the pull = freed %d, %v; want nothing freed", freed, err)
	}
	release()
	if err := <-result; err != nil {
		t.Fatalf("Pull: %v", err)
	}
	img, err := s.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if dirs, err := s.LayerDirs(img); err != nil || len(dirs) != 2 {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	if n := reg.blobGets(ds[0]); n != 1 {
		t.Errorf("first layer downloaded %d times; want 1", n)
	}
}

// A pull cancelled mid-download leaves nothing behind.
func TestCancelledPullStoresNothing(t *testing.T) {
	reg := newTestRegistry(t)
	src := imageOf(t, nil, randomLayer(t), randomLayer(t))
	ref := reg.push(t, "slow:1", src)
	reg.holdBlob(t, layerDigests(t, src)[1])
	s := newStore(t, Options{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := func(p Progress) {
		if p.Status == StatusDone && p.Layer != "" {
			cancel() // the first layer is in; the second hangs
		}
	}
	_, err := s.Pull(ctx, ref, progress)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull = %v; want context.Canceled", err)
	}
	assertNothingStored(t, s)
	if tmp := dirNames(t, s.path(layersDir)); len(tmp) != 0 {
		t.Errorf("layers dir holds %v", tmp)
	}
}

// The unpacked layers work as overlayfs lower dirs: whiteouts hide, opaque
// directories hide what is below them.
func TestLayerDirsMountAsOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting overlayfs needs root")
	}
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:v1", contentImage(t))
	s := newStore(t, Options{})
	img := mustPull(t, s, ref)
	dirs, err := s.LayerDirs(img)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	upper, wd, merged := filepath.Join(work, "upper"), filepath.Join(work, "work"), filepath.Join(work, "merged")
	for _, d := range []string{upper, wd, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lower := slices.Clone(dirs)
	slices.Reverse(lower) // overlayfs lists the highest first
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), upper, wd)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount overlayfs here: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)

	if got := readFile(t, filepath.Join(merged, "etc/hostname")); got != "box" {
		t.Errorf("etc/hostname = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(merged, "etc/old")); !os.IsNotExist(err) {
		t.Errorf("etc/old is visible (%v); want it whited out", err)
	}
	names, err := os.ReadDir(filepath.Join(merged, "app/cache"))
	if err != nil || len(names) != 1 || names[0].Name() != "b" {
		t.Errorf("app/cache holds %v, %v; want only b (opaque)", names, err)
	}
	if got := readFile(t, filepath.Join(merged, "bin/tool")); got != "tool" {
		t.Errorf("bin/tool (through the bin symlink) = %q", got)
	}
}

// A pull ends with "done" when it stored something or moved a name, and
// "up to date" when the reference already named the image it found.
func TestPullReportsWhetherAnythingChanged(t *testing.T) {
	reg := newTestRegistry(t)
	first, second := imageOf(t, nil, randomLayer(t)), imageOf(t, nil, randomLayer(t))
	s := newStore(t, Options{})
	for _, st := range []struct {
		name    string
		repoTag string
		img     v1.Image // what the registry holds under repoTag now
		want    string
		gets    int // downloads of the image's layer
	}{
		{"first pull", "app:1", first, StatusDone, 1},
		{"again", "app:1", first, StatusUpToDate, 1},
		{"the same image under a new name", "app:2", first, StatusDone, 1},
		{"the tag moved to a new image", "app:1", second, StatusDone, 1},
		{"again after the move", "app:1", second, StatusUpToDate, 1},
	} {
		ref := reg.push(t, st.repoTag, st.img)
		var end Progress
		if _, err := s.Pull(context.Background(), ref, func(p Progress) {
			if p.Layer == "" {
				end = p
			}
		}); err != nil {
			t.Fatalf("%s: Pull(%s): %v", st.name, ref, err)
		}
		if end.Status != st.want || end.Ref != ref {
			t.Errorf("%s: the pull ended with %q for %q; want %q for %q", st.name, end.Status, end.Ref, st.want, ref)
		}
		if got := reg.blobGets(layerDigests(t, st.img)[0]); got != st.gets {
			t.Errorf("%s: the layer was downloaded %d times in all; want %d", st.name, got, st.gets)
		}
	}
}
