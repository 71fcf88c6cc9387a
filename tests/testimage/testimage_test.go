package testimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	busyboxOnce sync.Once
	busyboxErr  error
)

// needBusybox installs busybox-static when /bin/busybox is missing, waiting
// for the dpkg lock if another apt is running.
func needBusybox(t *testing.T) {
	t.Helper()
	busyboxOnce.Do(func() {
		if _, err := os.Stat(DefaultBusybox); err == nil {
			return
		}
		deadline := time.Now().Add(5 * time.Minute)
		for backoff := time.Second; ; backoff = min(2*backoff, 15*time.Second) {
			cmd := exec.Command("apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=60", "busybox-static")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err == nil {
				return
			}
			locked := bytes.Contains(out, []byte("lock"))
			if !locked || time.Now().After(deadline) {
				busyboxErr = errors.New("apt-get install -y busybox-static: " + err.Error() + "\n" + string(out))
				return
			}
			t.Logf("dpkg is locked by another apt; retrying in %v", backoff)
			time.Sleep(backoff)
		}
	})
	if busyboxErr != nil {
		t.Fatal(busyboxErr)
	}
}

// build builds the image once per set of options the tests use.
func build(t *testing.T, opts Options) Built {
	t.Helper()
	needBusybox(t)
	b, err := Build("", opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildIsDeterministic(t *testing.T) {
	opts := Options{Tag: "1", Files: map[string]string{"/etc/motd": "hello\n"}}
	a := build(t, opts)

	// A fresh process would miss the in-memory layer cache; forget it here
	// so the second build packs everything again.
	layerMu.Lock()
	clear(layerMemo)
	layerMu.Unlock()
	b := build(t, opts)
	if a.Digest != b.Digest {
		t.Fatalf("two builds of the same inputs: %s and %s", a.Digest, b.Digest)
	}
	for _, other := range []Options{
		{Tag: "2", Files: opts.Files},
		{Tag: "1", Files: map[string]string{"/etc/motd": "bye\n"}},
		{Tag: "1", Files: opts.Files, Cmd: []string{"sleep", "1s"}},
	} {
		if c := build(t, other); c.Digest == a.Digest {
			t.Errorf("Build(%+v) has the digest of Build(%+v): %s", other, opts, c.Digest)
		}
	}
	t.Logf("image %s: %d bytes to pull", a.Digest, a.Size)
}

// layerFiles reads a layer into name → header and contents.
func layerFiles(t *testing.T, l v1.Layer) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	mt, err := l.MediaType()
	if err != nil || mt != types.OCILayer {
		t.Errorf("layer media type = %q, %v; want %q", mt, err, types.OCILayer)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		if _, dup := hdrs[name]; dup {
			t.Errorf("%s twice in a layer", name)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v, want %v", name, h.ModTime, epoch)
		}
		hdrs[name] = h
		if data[name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLayers(t *testing.T) {
	b := build(t, Options{Tag: "v7", Files: map[string]string{"conf/extra.txt": "x", "/bin/hello": "#!/bin/sh\necho hi\n"}})
	layers, err := b.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2 (base, app)", len(layers))
	}

	hdrs, data := layerFiles(t, layers[0])
	bb := hdrs["/bin/busybox"]
	if bb == nil || bb.Typeflag != tar.TypeReg || bb.Mode != 0o755 {
		t.Fatalf("/bin/busybox = %+v; want a 0755 file", bb)
	}
	if static, err := IsStaticELF(bytes.NewReader(data["/bin/busybox"])); err != nil || !static {
		t.Errorf("/bin/busybox static = %v, %v; want a static ELF", static, err)
	}
	list, err := exec.Command(DefaultBusybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, a := range strings.Fields(string(list)) {
		has[a] = true
	}
	for _, a := range strings.Fields("sh cat ls echo id hostname sleep true false env ps mount kill wget nc ip touch mkdir rm printf grep head tail wc test yes dd seq whoami pwd uname cut sort") {
		h := hdrs["/bin/"+a]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("/bin/%s = %+v; want a symlink to busybox", a, h)
		}
	}
	for _, a := range Applets {
		if !has[a] {
			t.Errorf("busybox on this machine has no applet %q", a)
		}
	}
	wantText := map[string]string{
		"/etc/passwd":   "app:x:1000:1000:app:/home/app:/bin/sh\n",
		"/etc/group":    "extra:x:2000:app\n",
		"/etc/hostname": "whoami\n",
	}
	for f, want := range wantText {
		if !strings.Contains(string(data[f]), want) {
			t.Errorf("%s = %q; want a line %q", f, data[f], want)
		}
	}
	for _, line := range []string{"root:x:0:0:", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(data["/etc/passwd"]), line) {
			t.Errorf("/etc/passwd has no %q", line)
		}
	}
	for _, line := range []string{"root:x:0:", "nogroup:x:65534:", "app:x:1000:"} {
		if !strings.Contains(string(data["/etc/group"]), line) {
			t.Errorf("/etc/group has no %q", line)
		}
	}
	if h := hdrs["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("/tmp = %+v; want a 1777 directory", h)
	}
	if h := hdrs["/home/app"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 1000 || h.Gid != 1000 {
		t.Errorf("/home/app = %+v; want a directory owned by 1000:1000", h)
	}
	if _, ok := hdrs["/etc/resolv.conf"]; ok {
		t.Error("/etc/resolv.conf is in the image; the runtime provides it")
	}

	hdrs, data = layerFiles(t, layers[1])
	if h := hdrs["/whoami"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != 0 {
		t.Fatalf("/whoami = %+v; want a 0755 file owned by root", h)
	}
	if static, err := IsStaticELF(bytes.NewReader(data["/whoami"])); err != nil || !static {
		t.Errorf("/whoami static = %v, %v; want a static ELF (no PT_INTERP)", static, err)
	}
	if got := string(data["/app/version"]); got != "v7\n" {
		t.Errorf("/app/version = %q, want %q", got, "v7\n")
	}
	if h := hdrs["/conf"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("/conf = %+v; want the parent directory of Files[conf/extra.txt]", h)
	}
	if got := string(data["/conf/extra.txt"]); got != "x" || hdrs["/conf/extra.txt"].Mode != 0o644 {
		t.Errorf("/conf/extra.txt = %q mode %o; want %q 0644", got, hdrs["/conf/extra.txt"].Mode, "x")
	}
	if h := hdrs["/bin/hello"]; h == nil || h.Mode != 0o755 {
		t.Errorf("/bin/hello = %+v; want 0755 (it starts with #!)", h)
	}
}

func TestConfig(t *testing.T) {
	b := build(t, Options{Tag: "3"})
	m, err := b.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %q, %q; want OCI", m.MediaType, m.Config.MediaType)
	}
	cf, err := b.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	checks := []struct {
		what      string
		got, want any
	}{
		{"Entrypoint", c.Entrypoint, []string{"/whoami"}},
		{"Cmd", c.Cmd, []string{"serve", "-port", "80"}},
		{"Env", c.Env, []string{"PATH=" + DefaultPath, "WHOAMI_IMAGE=3"}},
		{"WorkingDir", c.WorkingDir, "/"},
		{"User", c.User, ""},
		{"StopSignal", c.StopSignal, "SIGTERM"},
		{"ExposedPorts", c.ExposedPorts, map[string]struct{}{"80/tcp": {}}},
		{"label org.shoal.test", c.Labels["org.shoal.test"], "1"},
		{"OS", cf.OS, "linux"},
		{"history", len(cf.History), 2},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}

	o := build(t, Options{
		Tag: "3", Entrypoint: []string{}, Cmd: []string{"/bin/sh", "-c", "id"},
		Env: []string{"WHOAMI_IMAGE=x", "A=b"}, User: "app", WorkingDir: "/home/app",
		StopSignal: "SIGINT", Labels: map[string]string{"k": "v"},
	})
	cf, err = o.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c = cf.Config
	checks = []struct {
		what      string
		got, want any
	}{
		{"Entrypoint", len(c.Entrypoint), 0},
		{"Cmd", c.Cmd, []string{"/bin/sh", "-c", "id"}},
		{"Env", c.Env, []string{"PATH=" + DefaultPath, "WHOAMI_IMAGE=x", "A=b"}},
		{"User", c.User, "app"},
		{"WorkingDir", c.WorkingDir, "/home/app"},
		{"StopSignal", c.StopSignal, "SIGINT"},
		{"label k", c.Labels["k"], "v"},
		{"label org.shoal.test", c.Labels["org.shoal.test"], "1"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("overridden %s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}
}

func TestRandomLayer(t *testing.T) {
	a := build(t, Options{RandomMB: 2, RandomSeed: 1})
	layers, err := a.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 {
		t.Fatalf("%d layers, want 3", len(layers))
	}
	size, err := layers[2].Size()
	if err != nil {
		t.Fatal(err)
	}
	if size < 2<<20 {
		t.Errorf("random layer is %d bytes compressed; want at least 2 MiB (incompressible)", size)
	}
	if b := build(t, Options{RandomMB: 2, RandomSeed: 1}); b.Digest != a.Digest {
		t.Errorf("same random layer options, digests %s and %s", a.Digest, b.Digest)
	}
	if b := build(t, Options{RandomMB: 2, RandomSeed: 2}); b.Digest == a.Digest {
		t.Errorf("another seed, same digest %s", a.Digest)
	}
}

func TestBuildErrors(t *testing.T) {
	_, err := Build("", Options{Busybox: filepath.Join(t.TempDir(), "busybox")})
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y busybox-static") {
		t.Errorf("Build without busybox: %v; want a hint to install busybox-static", err)
	}
	if sh, err := exec.LookPath("ls"); err == nil {
		if static, _ := isStaticFile(sh); !static {
			_, err := Build("", Options{Busybox: sh})
			if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
				t.Errorf("Build with busybox %s: %v; want a refusal of a dynamic binary", sh, err)
			}
		}
	}
	_, err = Build(t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "no Go sources") {
		t.Errorf("Build(empty dir): %v; want an error about missing sources", err)
	}
	_, err = Build("", Options{Files: map[string]string{"../x": ""}})
	if err == nil || !strings.Contains(err.Error(), "clean file path") {
		t.Errorf("Build(Files ../x): %v; want a refusal", err)
	}
}

func isStaticFile(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return IsStaticELF(f)
}

func TestBuildWhoamiIsCached(t *testing.T) {
	start := time.Now()
	a, err := BuildWhoami("")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first BuildWhoami in this process took %v", time.Since(start))
	start = time.Now()
	b, err := BuildWhoami("")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("BuildWhoami twice: %s, then %s", a, b)
	}
	t.Logf("cached BuildWhoami took %v", time.Since(start))
	if !strings.HasPrefix(a, CacheDir()+string(filepath.Separator)) {
		t.Errorf("BuildWhoami = %s; want a file in %s", a, CacheDir())
	}
}

// BenchmarkBuild packs an image whose app layer is new each time (the
// binary and base layer come from the caches).
func BenchmarkBuild(b *testing.B) {
	if _, err := Build("", Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Build("", Options{Tag: "bench-" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
