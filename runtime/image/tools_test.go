package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Layers made by real tools, not by the tests' own tar writer.

// needTool returns the path of a program the test needs; CI installs the
// Debian package named pkg (.ci/run).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("this test needs %s: apt-get install %s", name, pkg)
	}
	return p
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// tarNames lists the member names of a tar stream.
func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("reading the tool's tar: %v", err)
		}
		names = append(names, hdr.Name)
	}
}

func writeTree(t *testing.T, files map[string]string) {
	t.Helper()
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// GNU tar -P keeps absolute member names (and absolute hard link
// targets); they unpack inside the layer root.
func TestUnpackGNUTarAbsoluteNames(t *testing.T) {
	tarBin := needTool(t, "tar", "tar")
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, map[string]string{src + "/app/bin/tool": "tool", src + "/app/etc/conf": "conf"})
	if err := os.Link(src+"/app/etc/conf", src+"/app/etc/conf.hard"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", src+"/app/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../bin/tool", src+"/app/etc/tool"); err != nil {
		t.Fatal(err)
	}
	layer := run(t, tarBin, "-P", "-cf", "-", src+"/app", src+"/app/bin/../etc/conf")
	names := tarNames(t, layer)
	for _, n := range names {
		if !strings.HasPrefix(n, "/") {
			t.Fatalf("GNU tar -P wrote the relative name %q; the test needs absolute ones (all: %q)", n, names)
		}
	}
	j := newJail(t)
	if err := Unpack(bytes.NewReader(layer), j.root); err != nil {
		t.Fatalf("Unpack of a GNU tar -P layer: %v", err)
	}
	j.check(t)
	in := strings.TrimPrefix(src, "/") + "/app/"
	checkTree(t, j.root, want{
		in + "bin/tool": "tool", in + "etc/conf": "conf", in + "etc/conf.hard": "conf",
		in + "etc/passwd": "-> /etc/passwd", in + "etc/tool": "-> ../bin/tool", in + "bin/..": "dir/",
	})
	var a, b unix.Stat_t
	if unix.Lstat(filepath.Join(j.root, in+"etc/conf"), &a) != nil || unix.Lstat(filepath.Join(j.root, in+"etc/conf.hard"), &b) != nil || a.Ino != b.Ino {
		t.Errorf("etc/conf.hard is not a hard link of etc/conf")
	}

	// An absolute name whose ".." climbs above the root is still refused.
	escape := run(t, tarBin, "-P", "-cf", "-", "/.."+src+"/app/etc/conf")
	if names := tarNames(t, escape); len(names) != 1 || !strings.HasPrefix(names[0], "/../") {
		t.Fatalf("GNU tar -P wrote %q; the test needs a name starting with /../", names)
	}
	j = newJail(t)
	err := Unpack(bytes.NewReader(escape), j.root)
	if err == nil || !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "path escapes the layer root") {
		t.Fatalf("Unpack of %q = %v; want an ErrInvalid saying the path escapes the layer root", tarNames(t, escape), err)
	}
	j.check(t)
	if got := dirNames(t, j.root); len(got) != 0 {
		t.Errorf("a refused layer wrote %v", got)
	}
}

// umoci insert writes the layer root as a "/" entry; such images load.
func TestLoadUmociImage(t *testing.T) {
	umoci := needTool(t, "umoci", "umoci")
	dir := t.TempDir()
	lay, src := filepath.Join(dir, "layout"), filepath.Join(dir, "src")
	writeTree(t, map[string]string{src + "/bin/hello": "hello", src + "/etc/motd": "motd"})
	run(t, umoci, "init", "--layout", lay)
	run(t, umoci, "new", "--image", lay+":v1")
	run(t, umoci, "insert", "--image", lay+":v1", src, "/")
	run(t, umoci, "insert", "--image", lay+":v1", src+"/etc/motd", "/usr/share/motd")
	run(t, umoci, "config", "--image", lay+":v1", "--config.cmd", "/bin/hello", "--os", "linux", "--architecture", hostPlatform().Architecture)

	// The premise: one of umoci's layers has the root entry.
	rootEntry := false
	blobs, _ := filepath.Glob(filepath.Join(lay, "blobs/sha256/*"))
	for _, b := range blobs {
		f, err := os.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		dr, closeFn, err := decompress(f)
		if err == nil {
			if raw, err := io.ReadAll(dr); err == nil && bytes.HasPrefix(raw[:min(len(raw), 100)], []byte("/\x00")) {
				rootEntry = true
			}
			closeFn()
		}
		f.Close()
	}
	if !rootEntry {
		t.Fatal("no layer umoci wrote starts with a \"/\" entry; the test needs one")
	}

	s := newStore(t, Options{})
	imgs, err := s.Load(context.Background(), tarDir(t, lay), nil)
	if err != nil {
		t.Fatalf("Load of umoci's image: %v", err)
	}
	if len(imgs) != 1 || len(imgs[0].Layers) != 2 || len(imgs[0].Names) != 0 {
		t.Fatalf("Load = %+v; want one unnamed image (umoci's ref.name is the bare tag v1) of 2 layers", imgs)
	}
	dirs, err := s.LayerDirs(imgs[0])
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dirs[0], want{"bin/hello": "hello", "etc/motd": "motd"})
	checkTree(t, dirs[1], want{"usr/share/motd": "motd"})
	if got := imgs[0].Config.Cmd; len(got) != 1 || got[0] != "/bin/hello" {
		t.Errorf("Cmd = %q; want [/bin/hello]", got)
	}
}
