package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// ent is one entry of a tar built by a test.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	uid  int
	gid  int
	pax  map[string]string
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) ent { return ent{name: name, typ: tar.TypeLink, link: target} }

// tarOf writes ents as a tar stream.
func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Uid: e.uid, Gid: e.gid, Size: int64(len(e.body)),
			ModTime: time.Unix(1700000000, 0), PAXRecords: e.pax,
		}
		if e.pax != nil {
			hdr.Format = tar.FormatPAX
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if hdr.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jail is a layer root next to a sentinel directory that nothing may touch.
type jail struct {
	base, root, sentinel string
}

func newJail(t testing.TB) jail {
	t.Helper()
	base := t.TempDir()
	j := jail{base: base, root: filepath.Join(base, "root"), sentinel: filepath.Join(base, "sentinel")}
	for _, d := range []string{j.root, j.sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(j.sentinel, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return j
}

// check fails if anything outside the root changed.
func (j jail) check(t testing.TB) {
	t.Helper()
	if got := dirNames(t, j.base); strings.Join(got, ",") != "root,sentinel" {
		t.Errorf("base dir holds %v; want only root and sentinel", got)
	}
	if got := dirNames(t, j.sentinel); strings.Join(got, ",") != "keep" {
		t.Errorf("sentinel dir holds %v; want only keep", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(j.sentinel, "keep"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 1 || st.Size != 4 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("sentinel file changed: nlink %d size %d mode %o", st.Nlink, st.Size, st.Mode)
	}
	if b, _ := os.ReadFile(filepath.Join(j.sentinel, "keep")); string(b) != "keep" {
		t.Errorf("sentinel file content changed: %q", b)
	}
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestUnpackRefusesHostileEntries(t *testing.T) {
	// Paths in these archives are relative to the layer root, whose
	// sibling is the sentinel dir: "../sentinel" is right next door.
	tests := []struct {
		name string
		ents func(j jail) []ent
		want string // in the error
	}{
		{"path traversal", func(jail) []ent { return []ent{file("../sentinel/evil", "x")} },
			`entry "../sentinel/evil": path escapes the layer root`},
		{"traversal inside a path", func(jail) []ent { return []ent{dir("a/"), file("a/../../sentinel/evil", "x")} },
			"path escapes the layer root"},
		{"absolute path climbing out", func(jail) []ent { return []ent{file("/../sentinel/evil", "x")} },
			`entry "/../sentinel/evil": path escapes the layer root`},
		{"relative symlink escape", func(jail) []ent { return []ent{dir("a/"), symlink("a/b", "../../../etc")} },
			`entry "a/b": symlink target "../../../etc": path escapes the layer root`},
		{"symlink to the sentinel", func(jail) []ent { return []ent{symlink("s", "../sentinel")} },
			"path escapes the layer root"},
		{"write through absolute symlink", func(j jail) []ent {
			return []ent{symlink("link", j.sentinel), file("link/evil", "x")}
		}, `entry "link/evil": parent "link" is a symlink; refusing to write through it`},
		{"write through in-root symlink", func(jail) []ent {
			return []ent{dir("d/"), symlink("s", "d"), file("s/f", "x")}
		}, `parent "s" is a symlink`},
		{"dir through symlink", func(j jail) []ent {
			return []ent{symlink("link", j.sentinel), dir("link/sub/")}
		}, `parent "link" is a symlink`},
		{"whiteout through symlink", func(j jail) []ent {
			return []ent{symlink("link", j.sentinel), file("link/.wh.keep", "")}
		}, `parent "link" is a symlink`},
		{"opaque marker through symlink", func(j jail) []ent {
			return []ent{symlink("link", j.sentinel), file("link/.wh..wh..opq", "")}
		}, `parent "link" is a symlink`},
		{"hard link to outside", func(jail) []ent { return []ent{hardlink("h", "../sentinel/keep")} },
			`entry "h": hard link target "../sentinel/keep": path escapes the layer root`},
		{"hard link to a host path", func(j jail) []ent { return []ent{hardlink("h", j.sentinel+"/keep")} },
			`hard link target "` + "%SENTINEL%" + `/keep" is not a regular file extracted earlier`},
		{"hard link to a symlink", func(j jail) []ent {
			return []ent{symlink("s", j.sentinel+"/keep"), hardlink("h", "s")}
		}, `hard link target "s" is not a regular file extracted earlier`},
		{"hard link through a symlinked dir", func(j jail) []ent {
			return []ent{symlink("d", j.sentinel), hardlink("h", "d/keep")}
		}, "is not a regular file extracted earlier"},
		{"hard link to a missing entry", func(jail) []ent { return []ent{hardlink("h", "nope")} },
			`hard link target "nope" is not a regular file extracted earlier`},
		{"hard link to a directory", func(jail) []ent { return []ent{dir("d/"), hardlink("h", "d")} },
			"is not a regular file"},
		{"device node", func(jail) []ent { return []ent{{name: "dev", typ: tar.TypeChar, mode: 0o600}} },
			"device nodes are not allowed"},
		{"block device", func(jail) []ent { return []ent{{name: "sda", typ: tar.TypeBlock, mode: 0o600}} },
			"device nodes are not allowed"},
		{"trusted xattr", func(jail) []ent {
			e := file("f", "x")
			e.pax = map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}
			return []ent{e}
		}, `xattr "trusted.overlay.opaque" is not allowed`},
		{"whiteout of dot-dot", func(jail) []ent { return []ent{file("a/.wh...", "")} },
			"path escapes the layer root"},
		{"whiteout of dot", func(jail) []ent { return []ent{file("a/.wh..", "")} },
			`whiteout of "."`},
		{"file replacing a dir", func(jail) []ent { return []ent{dir("d/"), file("d/x", "1"), file("d", "x")} },
			`would replace directory "d"`},
		{"file under a file", func(jail) []ent { return []ent{file("f", "x"), file("f/g", "y")} },
			`parent "f" is not a directory`},
		{"root as a file", func(jail) []ent { return []ent{file(".", "x")} },
			"the layer root must be a directory"},
		// Names with a leading "/" are relative to the root, but may not
		// climb out of it either.
		{"absolute path climbing out through a dir", func(jail) []ent {
			return []ent{dir("/a/"), file("/a/../../sentinel/evil", "x")}
		}, `entry "/a/../../sentinel/evil": path escapes the layer root`},
		{"leading slashes climbing out", func(jail) []ent { return []ent{dir("//../sentinel/sub/")} },
			"path escapes the layer root"},
		{"hard link to an absolute path climbing out", func(jail) []ent {
			return []ent{hardlink("h", "/../sentinel/keep")}
		}, `entry "h": hard link target "/../sentinel/keep": path escapes the layer root`},
		{"hard link to an absolute path that was not extracted", func(jail) []ent {
			return []ent{file("f", "x"), hardlink("h", "/g")}
		}, `hard link target "/g" is not a regular file extracted earlier`},
		{"write through a leading-slash symlink", func(jail) []ent {
			return []ent{symlink("/s", "/../sentinel"), file("/s/evil", "x")}
		}, `entry "/s/evil": parent "s" is a symlink; refusing to write through it`},
		{"relative symlink escape with a leading slash", func(jail) []ent {
			return []ent{symlink("/a/b", "../../sentinel")}
		}, `entry "/a/b": symlink target "../../sentinel": path escapes the layer root`},
		{"root entry as a symlink", func(j jail) []ent { return []ent{symlink("/", j.sentinel)} },
			`entry "/": the layer root must be a directory`},
		{"root entry as a hard link", func(jail) []ent { return []ent{file("f", "x"), hardlink("./", "f")} },
			`entry "./": the layer root must be a directory`},
		{"hard link to itself, never extracted", func(jail) []ent { return []ent{hardlink("/h", "h")} },
			`hard link target "h" is not a regular file extracted earlier`},
		{"device node with a leading slash", func(jail) []ent { return []ent{{name: "/dev/null", typ: tar.TypeChar, mode: 0o666}} },
			"device nodes are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJail(t)
			err := Unpack(bytes.NewReader(tarOf(t, tt.ents(j)...)), j.root)
			tt.want = strings.ReplaceAll(tt.want, "%SENTINEL%", j.sentinel)
			if err == nil {
				t.Fatalf("Unpack succeeded; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Unpack error = %q; want it to contain %q", err, tt.want)
			}
			if !errdefs.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Unpack error %q is not ErrInvalid", err)
			}
			j.check(t)
		})
	}
}

func TestUnpackTruncated(t *testing.T) {
	j := newJail(t)
	b := tarOf(t, file("big", strings.Repeat("x", 4096)))
	err := Unpack(bytes.NewReader(b[:1500]), j.root)
	if err == nil || !errdefs.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Unpack of a truncated tar = %v; want an ErrInvalid saying it is truncated", err)
	}
	j.check(t)
}

func TestUnpackNeedsEmptyDir(t *testing.T) {
	j := newJail(t)
	if err := os.WriteFile(filepath.Join(j.root, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(bytes.NewReader(tarOf(t, file("a", "b"))), j.root); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Unpack into a non-empty dir = %v; want a not-empty error", err)
	}
}

// A later entry replaces an earlier symlink instead of writing through it.
func TestUnpackReplacesSymlinkWithoutFollowing(t *testing.T) {
	j := newJail(t)
	err := Unpack(bytes.NewReader(tarOf(t,
		symlink("s", j.sentinel+"/keep"),
		file("s", "mine"),
		symlink("t", j.sentinel+"/evil"),
		dir("t/"),
	)), j.root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(j.root, "s")); err != nil || string(b) != "mine" {
		t.Errorf("root/s = %q, %v; want the regular file", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(j.root, "t")); err != nil || !fi.IsDir() {
		t.Errorf("root/t = %v, %v; want a directory", fi, err)
	}
	j.check(t)
}

func TestUnpackLayerContent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for ownership, whiteouts and trusted xattrs")
	}
	j := newJail(t)
	xf := file("etc/app.conf", "conf")
	xf.uid, xf.gid, xf.mode = 1000, 1001, 0o640
	xf.pax = map[string]string{"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.security.selinux": "ignored"}
	suid := file("bin/tool", "#!/bin/sh\n")
	suid.mode = 0o4755
	ro := dir("ro/")
	ro.mode = 0o555
	err := Unpack(bytes.NewReader(tarOf(t,
		dir("./"),
		dir("etc/"),
		xf,
		suid,
		symlink("etc/rel", "app.conf"),
		symlink("etc/abs", "/etc/passwd"),
		symlink("up", "etc/../bin/tool"),
		hardlink("etc/hard", "etc/app.conf"),
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		file("var/.wh.gone", ""),
		dir("opaque/"),
		file("opaque/.wh..wh..opq", ""),
		file("opaque/kept", "k"),
		file(".wh..wh.plnk", ""),
		ro,
		file("ro/inside", "i"),
		file("implicit/parent/f", "p"),
	)), j.root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	j.check(t)
	r := func(p string) string { return filepath.Join(j.root, p) }

	var st unix.Stat_t
	if err := unix.Lstat(r("etc/app.conf"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o640 || st.Nlink != 2 {
		t.Errorf("etc/app.conf: uid %d gid %d mode %o nlink %d; want 1000 1001 640 2", st.Uid, st.Gid, st.Mode&0o7777, st.Nlink)
	}
	if st.Mtim.Sec != 1700000000 {
		t.Errorf("etc/app.conf mtime %d; want 1700000000", st.Mtim.Sec)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(r("etc/app.conf"), "user.note", buf); err != nil || string(buf[:n]) != "hello" {
		t.Errorf("user.note xattr = %q, %v; want hello", buf[:n], err)
	}
	if _, err := unix.Getxattr(r("etc/app.conf"), "security.selinux", buf); err == nil {
		t.Errorf("security.selinux xattr was applied; want it skipped")
	}
	if fi, err := os.Stat(r("bin/tool")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("bin/tool: %v, %v; want setuid kept", fi, err)
	}
	for link, want := range map[string]string{"etc/rel": "app.conf", "etc/abs": "/etc/passwd", "up": "etc/../bin/tool"} {
		if got, err := os.Readlink(r(link)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
	if fi, err := os.Lstat(r("run/fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("run/fifo: %v, %v; want a FIFO", fi, err)
	}
	if err := unix.Lstat(r("var/gone"), &st); err != nil {
		t.Fatalf("whiteout var/gone: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("var/gone: mode %o rdev %d; want a 0/0 character device", st.Mode, st.Rdev)
	}
	if _, err := os.Lstat(r("var/.wh.gone")); !os.IsNotExist(err) {
		t.Errorf("var/.wh.gone exists (%v); want it converted", err)
	}
	if n, err := unix.Getxattr(r("opaque"), overlayOpaque, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque dir xattr = %q, %v; want y", buf[:n], err)
	}
	if _, err := os.Stat(r("opaque/kept")); err != nil {
		t.Errorf("opaque/kept: %v", err)
	}
	if _, err := os.Lstat(r(".wh..wh.plnk")); !os.IsNotExist(err) {
		t.Errorf("aufs metadata was extracted (%v)", err)
	}
	if fi, err := os.Stat(r("ro")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("ro: %v, %v; want mode 555 set after its content", fi, err)
	}
	if fi, err := os.Stat(r("implicit/parent")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("implicit/parent: %v, %v; want a 755 directory", fi, err)
	}
}

// FuzzUnpack feeds arbitrary tar bytes to Unpack and checks that it
// neither panics nor creates, changes or links anything outside the root.
func FuzzUnpack(f *testing.F) {
	abs := "/tmp/shoal-fuzz-sentinel"
	for _, ents := range [][]ent{
		{file("a", "b"), dir("d/"), file("d/e", "f"), symlink("s", "d"), hardlink("h", "a")},
		{file("../sentinel/evil", "x")},
		{symlink("link", "../sentinel"), file("link/evil", "x")},
		{symlink("link", abs), file("link/evil", "x")},
		{hardlink("h", "../sentinel/keep")},
		{symlink("s", "/etc/passwd"), hardlink("h", "s")},
		{file("x/.wh.y", ""), file("x/.wh..wh..opq", "")},
		{dir("a/"), symlink("a/b", "../../../etc"), file("a/b/c", "x")},
		{ent{name: "p", typ: tar.TypeFifo, mode: 0o644}, file("p", "replaced")},
	} {
		// Without the end-of-archive blocks: small seeds minimize fast.
		b := tarOf(f, ents...)
		f.Add(b[:len(b)-1024])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Sparse entries can declare terabytes from a few bytes; that is
		// a resource question, not the containment this checks.
		tr := tar.NewReader(bytes.NewReader(data))
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			if hdr.Size > 1<<20 {
				t.Skip("entry too large for fuzzing")
			}
		}
		j := newJail(t)
		_ = Unpack(bytes.NewReader(data), j.root)
		j.check(t)
		if _, err := os.Lstat(abs); err == nil {
			t.Fatalf("%s was created outside the root", abs)
		}
	})
}

// More directories than the unpacker keeps open: evicted ones are opened
// again the same safe way.
func TestUnpackManyDirectories(t *testing.T) {
	j := newJail(t)
	const n = 3 * maxDirFDs
	var ents []ent
	for i := range n {
		ents = append(ents, file(fmt.Sprintf("d%d/sub/f", i), fmt.Sprint(i)))
	}
	for i := range n {
		ents = append(ents, hardlink(fmt.Sprintf("d%d/sub/h", i), fmt.Sprintf("d%d/sub/f", (i*7)%n)))
	}
	ents = append(ents, symlink("d0/sub/link", j.sentinel), file("d0/sub/link/evil", "x"))
	err := Unpack(bytes.NewReader(tarOf(t, ents...)), j.root)
	if err == nil || !strings.Contains(err.Error(), `parent "d0/sub/link" is a symlink`) {
		t.Fatalf("Unpack = %v; want the write through d0/sub/link refused", err)
	}
	j.check(t)
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if got := readFile(t, filepath.Join(j.root, fmt.Sprintf("d%d/sub/h", i))); got != fmt.Sprint((i*7)%n) {
			t.Errorf("d%d/sub/h = %q; want %d", i, got, (i*7)%n)
		}
	}
}

// want describes one path of an unpacked layer: a regular file's content,
// "dir/", "-> target" for a symlink, or "whiteout" for an overlayfs one.
type want map[string]string

// checkTree fails unless every path in w is what it says under root.
func checkTree(t *testing.T, root string, w want) {
	t.Helper()
	for p, exp := range w {
		full := filepath.Join(root, p)
		fi, err := os.Lstat(full)
		if err != nil {
			t.Errorf("%s: %v; want %q", p, err, exp)
			continue
		}
		switch {
		case exp == "dir/":
			if !fi.IsDir() {
				t.Errorf("%s is %v; want a directory", p, fi.Mode())
			}
		case exp == "whiteout":
			var st unix.Stat_t
			if err := unix.Lstat(full, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("%s: mode %o rdev %d, %v; want a 0/0 character device", p, st.Mode, st.Rdev, err)
			}
		case strings.HasPrefix(exp, "-> "):
			if got, err := os.Readlink(full); err != nil || got != strings.TrimPrefix(exp, "-> ") {
				t.Errorf("readlink %s = %q, %v; want %q", p, got, err, strings.TrimPrefix(exp, "-> "))
			}
		default:
			if b, err := os.ReadFile(full); err != nil || !fi.Mode().IsRegular() || string(b) != exp {
				t.Errorf("%s = %q (%v), %v; want the file %q", p, b, fi.Mode(), err, exp)
			}
		}
	}
}

// Names with a leading "/" or "./" are relative to the layer root, as
// containerd and Docker read them; the root's own entry is ignored.
func TestUnpackNamesRelativeToRoot(t *testing.T) {
	rootDir := func(name string, mode int64, uid int) ent {
		e := dir(name)
		e.mode, e.uid, e.gid = mode, uid, uid
		return e
	}
	tests := []struct {
		name  string
		ents  func(j jail) []ent
		want  func(j jail) want
		links map[string]string // hard link -> the file it must share an inode with
	}{
		{"leading slash", func(jail) []ent { return []ent{file("/etc/motd", "hi")} },
			func(jail) want { return want{"etc/motd": "hi", "etc": "dir/"} }, nil},
		{"several leading slashes", func(jail) []ent { return []ent{file("//etc///motd", "hi")} },
			func(jail) want { return want{"etc/motd": "hi"} }, nil},
		{"a host path is a path inside the root", func(j jail) []ent { return []ent{file(j.sentinel+"/evil", "x")} },
			func(j jail) want { return want{strings.TrimPrefix(j.sentinel, "/") + "/evil": "x"} }, nil},
		{"dot slash", func(jail) []ent { return []ent{dir("./etc/"), file("./etc/motd", "hi")} },
			func(jail) want { return want{"etc/motd": "hi"} }, nil},
		{"dot-dot that stays inside", func(jail) []ent { return []ent{dir("a/"), file("a/../b", "b"), file("/a/./../c", "c")} },
			func(jail) want { return want{"a": "dir/", "b": "b", "c": "c"} }, nil},
		{"root entry slash", func(jail) []ent { return []ent{rootDir("/", 0o700, 4321), file("/f", "f")} },
			func(jail) want { return want{"f": "f"} }, nil},
		{"root entry dot slash", func(jail) []ent { return []ent{rootDir("./", 0o700, 4321), file("./f", "f")} },
			func(jail) want { return want{"f": "f"} }, nil},
		{"root entry dot", func(jail) []ent { return []ent{rootDir(".", 0o1777, 4321), dir("/d/")} },
			func(jail) want { return want{"d": "dir/"} }, nil},
		{"hard link with a leading-slash target", func(jail) []ent {
			return []ent{file("/bin/busybox", "bb"), hardlink("/bin/sh", "/bin/busybox"), hardlink("bin/ls", "//bin/busybox")}
		}, func(jail) want { return want{"bin/sh": "bb", "bin/ls": "bb"} }, map[string]string{"bin/sh": "bin/busybox", "bin/ls": "bin/busybox"}},
		{"hard link with a dot-slash target", func(jail) []ent { return []ent{file("./f", "x"), hardlink("./h", "./f")} },
			func(jail) want { return want{"h": "x"} }, map[string]string{"h": "f"}},
		{"hard link target with dot-dot inside", func(jail) []ent {
			return []ent{file("/a/f", "x"), hardlink("/h", "/a/../a/f")}
		}, func(jail) want { return want{"h": "x"} }, map[string]string{"h": "a/f"}},
		{"hard link to itself (GNU tar, a file named twice)", func(jail) []ent {
			return []ent{file("/a/f", "x"), hardlink("a/../a/f", "/a/f")}
		}, func(jail) want { return want{"a/f": "x"} }, nil},
		// Absolute symlink targets are data: they resolve inside the
		// container, where "/.." is "/".
		{"leading-slash symlink with an absolute target", func(jail) []ent {
			return []ent{symlink("/etc/mtab", "/proc/self/mounts"), symlink("/up", "/../../etc")}
		}, func(jail) want { return want{"etc/mtab": "-> /proc/self/mounts", "up": "-> /../../etc"} }, nil},
		{"leading-slash symlink with a relative target inside", func(jail) []ent {
			return []ent{symlink("/usr/lib/x", "../../etc/x")}
		}, func(jail) want { return want{"usr/lib/x": "-> ../../etc/x"} }, nil},
		{"leading-slash whiteouts", func(jail) []ent {
			return []ent{file("/var/.wh.gone", ""), file("/.wh..wh..opq", "")}
		}, func(jail) want { return want{"var": "dir/", "var/gone": "whiteout"} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJail(t)
			var before unix.Stat_t
			if err := unix.Lstat(j.root, &before); err != nil {
				t.Fatal(err)
			}
			if err := Unpack(bytes.NewReader(tarOf(t, tt.ents(j)...)), j.root); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			j.check(t)
			checkTree(t, j.root, tt.want(j))
			for link, target := range tt.links {
				var a, b unix.Stat_t
				if err := unix.Lstat(filepath.Join(j.root, link), &a); err != nil {
					t.Fatal(err)
				}
				if err := unix.Lstat(filepath.Join(j.root, target), &b); err != nil {
					t.Fatal(err)
				}
				if a.Ino != b.Ino {
					t.Errorf("%s is not a hard link of %s", link, target)
				}
			}
			var after unix.Stat_t
			if err := unix.Lstat(j.root, &after); err != nil {
				t.Fatal(err)
			}
			if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
				t.Errorf("layer root changed from mode %o %d:%d to %o %d:%d; want the root entry ignored",
					before.Mode, before.Uid, before.Gid, after.Mode, after.Uid, after.Gid)
			}
		})
	}
}
