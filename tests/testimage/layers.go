package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Applets are the busybox applets linked in /bin of the base layer.
var Applets = []string{
	"[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd",
	"df", "dirname", "du", "echo", "env", "false", "find", "free", "grep",
	"head", "hostname", "id", "ifconfig", "ip", "kill", "ln", "ls", "mkdir",
	"mount", "mv", "nc", "netstat", "nslookup", "ping", "printf", "ps", "pwd",
	"readlink", "rm", "route", "sed", "seq", "sh", "sleep", "sort", "stat",
	"tail", "tee", "test", "timeout", "top", "touch", "tr", "true", "umount",
	"uname", "wc", "wget", "whoami", "xargs", "yes",
}

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
		"app:x:1000:1000:app:/home/app:/bin/sh\n"
	group = "root:x:0:\n" +
		"nogroup:x:65534:\n" +
		"app:x:1000:\n" +
		"extra:x:2000:app\n"
	hostname = "whoami\n"
)

// entry is one file, directory or symlink of a layer.
type entry struct {
	name     string // slash-separated, no leading slash
	typ      byte   // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode     int64  // permission bits, with sticky/setuid bits as in tar
	uid, gid int
	data     []byte
	link     string
}

func dir(name string, mode int64) entry { return entry{name: name, typ: tar.TypeDir, mode: mode} }
func file(name string, mode int64, data []byte) entry {
	return entry{name: name, typ: tar.TypeReg, mode: mode, data: data}
}

// baseEntries is layer 1: busybox and its links, users, groups and the
// directories a container expects.
func baseEntries(busybox []byte) []entry {
	es := []entry{
		dir("bin", 0o755),
		file("bin/busybox", 0o755, busybox),
		dir("dev", 0o755),
		dir("etc", 0o755),
		file("etc/group", 0o644, []byte(group)),
		file("etc/hostname", 0o644, []byte(hostname)),
		file("etc/passwd", 0o644, []byte(passwd)),
		dir("home", 0o755),
		{name: "home/app", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		dir("proc", 0o555),
		dir("root", 0o700),
		dir("run", 0o755),
		dir("sys", 0o555),
		dir("tmp", 0o1777),
	}
	for _, a := range Applets {
		es = append(es, entry{name: "bin/" + a, typ: tar.TypeSymlink, mode: 0o777, link: "busybox"})
	}
	return es
}

// appEntries is layer 2: the workload, /app/version and the caller's files,
// with their parent directories.
func appEntries(whoami []byte, tag string, files map[string]string) ([]entry, error) {
	byName := map[string]entry{
		"whoami":      file("whoami", 0o755, whoami),
		"app":         dir("app", 0o755),
		"app/version": file("app/version", 0o644, []byte(tag+"\n")),
	}
	for p, content := range files {
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if name == "" || name != strings.TrimPrefix(path.Clean(p), "/") {
			return nil, fmt.Errorf("testimage: Files: %q is not a clean file path", p)
		}
		mode := int64(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		byName[name] = file(name, mode, []byte(content))
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if e, ok := byName[d]; ok && e.typ != tar.TypeDir {
				return nil, fmt.Errorf("testimage: Files: %q is under the file %q", p, "/"+d)
			}
			if _, ok := byName[d]; !ok {
				byName[d] = dir(d, 0o755)
			}
		}
	}
	es := make([]entry, 0, len(byName))
	for _, e := range byName {
		es = append(es, e)
	}
	return es, nil
}

// writeTar writes the entries sorted by name, so parents come before their
// children, with fixed times and numeric owners only.
func writeTar(w io.Writer, es []entry) error {
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.link,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

var (
	layerMu    sync.Mutex
	layerMemo  = map[[sha256.Size]byte]v1.Layer{} // by hash of the tar
	randomMemo = map[string]v1.Layer{}            // by cache file
)

// gzipLayer packs entries as an OCI gzip layer. Layers are remembered by
// the hash of their tar, so packing the same content twice in a process
// compresses once.
func gzipLayer(es []entry) (v1.Layer, error) {
	var raw bytes.Buffer
	if err := writeTar(&raw, es); err != nil {
		return nil, fmt.Errorf("testimage: tar: %w", err)
	}
	sum := sha256.Sum256(raw.Bytes())
	layerMu.Lock()
	defer layerMu.Unlock()
	if l, ok := layerMemo[sum]; ok {
		return l, nil
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("testimage: layer: %w", err)
	}
	layerMemo[sum] = l
	return l, nil
}

// randomLayer is a layer holding /random.bin, mb MiB of bytes drawn from
// ChaCha8 seeded with seed: incompressible, yet the same for the same
// arguments. It is stored (gzip without compression, so packing is cheap)
// in CacheDir and reused.
func randomLayer(mb int, seed uint64) (v1.Layer, error) {
	p := filepath.Join(CacheDir(), fmt.Sprintf("random-%dmib-%d.tar.gz", mb, seed))
	layerMu.Lock()
	defer layerMu.Unlock()
	if l, ok := randomMemo[p]; ok {
		return l, nil
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		if err := writeRandomLayer(p, mb, seed); err != nil {
			return nil, fmt.Errorf("testimage: random layer: %w", err)
		}
	}
	l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("testimage: random layer: %w", err)
	}
	randomMemo[p] = l
	return l, nil
}

func writeRandomLayer(p string, mb int, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "random-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()

	zw, err := gzip.NewWriterLevel(f, gzip.NoCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	size := int64(mb) << 20
	err = tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: "random.bin", Mode: 0o644,
		Size: size, ModTime: epoch, Format: tar.FormatPAX,
	})
	if err != nil {
		return err
	}
	var key [32]byte
	copy(key[:], "shoal testimage random layer....")
	binary.LittleEndian.PutUint64(key[24:], seed)
	if _, err := io.CopyN(tw, rand.NewChaCha8(key), size); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// readStaticELF reads an executable and checks that it needs no dynamic
// loader (no PT_INTERP program header), as a binary in a scratch image must.
func readStaticELF(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	static, err := IsStaticELF(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if !static {
		return nil, fmt.Errorf("%s is dynamically linked", p)
	}
	return b, nil
}

// IsStaticELF reports whether r is an ELF executable without a program
// interpreter, that is, one that runs with no dynamic loader or libc.
func IsStaticELF(r io.ReaderAt) (bool, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
