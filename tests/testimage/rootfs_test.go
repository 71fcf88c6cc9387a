package testimage

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestRootfsRuns unpacks the image and runs it in a chroot, the nearest a
// test of this package gets to a container: busybox links, users and
// groups must work from inside.
func TestRootfsRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	t.Parallel()
	b := build(t, Options{Tag: "9"})
	root := t.TempDir()
	unpack(t, b, root)

	run := func(cred *syscall.Credential, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: cred}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=" + DefaultPath}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("chroot %s: %v: %v\n%s", root, args, err, out)
		}
		return string(out)
	}

	out := run(nil, "/bin/sh", "-c", "cat /app/version; id app; stat -c '%a %u' /tmp /home/app; test -e /etc/resolv.conf || echo no-resolv")
	for _, want := range []string{"9\n", "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)", "1777 0\n", "755 1000\n", "no-resolv\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("sh in the image printed %q; want %q in it", out, want)
		}
	}
	out = run(&syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{2000}}, "/whoami", "ids")
	for _, want := range []string{"uid=1000\n", "gid=1000\n", "groups=2000\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("whoami ids as app printed %q; want %q in it", out, want)
		}
	}
	out = run(&syscall.Credential{Uid: 1000, Gid: 1000}, "/whoami", "write", "/home/app/f")
	if out != "ok\n" {
		t.Errorf("app writing its home: %q", out)
	}
}

// unpack writes the image's flattened filesystem under root, with owners.
func unpack(t *testing.T, b Built, root string) {
	t.Helper()
	rc := mutate.Extract(b.Image)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		default:
			t.Fatalf("%s: unexpected tar type %c", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err == nil && h.Typeflag != tar.TypeSymlink {
			err = os.Chmod(p, h.FileInfo().Mode())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
