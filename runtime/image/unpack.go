package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Whiteout names of the OCI layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// overlayOpaque marks a directory that hides the same directory of lower
// layers.
const overlayOpaque = "trusted.overlay.opaque"

// Unpack extracts the layer tar stream r into dir, an existing empty
// directory, converting OCI whiteouts to overlayfs ones (".wh.NAME" becomes
// a 0/0 character device NAME, ".wh..wh..opq" the trusted.overlay.opaque
// xattr on its directory).
//
// Names are relative to dir even with a leading "/", and the root's own
// entry ("/", "./") is ignored, as containerd does. It refuses, with an
// error naming the entry, anything that would write outside dir: names
// whose ".." climbs above the root; any entry whose parent is not a real
// directory inside dir (symlinks are never followed while extracting);
// relative symlinks whose target lexically leaves dir (absolute targets
// are kept as data, they resolve inside the container); hard links to
// anything but a regular file extracted earlier from the same stream
// (a leading "/" in the target is the layer root too); device nodes;
// trusted.* xattrs. It reads r only up to the
// end of the tar archive. On error dir is left partly written: the caller
// unpacks into a temporary directory and removes it.
func Unpack(r io.Reader, dir string) error {
	_, err := unpack(r, dir, nil)
	return err
}

// unpack is Unpack that also returns the bytes of regular files written,
// and counts every entry against b before writing it.
func unpack(r io.Reader, dir string, b *budget) (int64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("opening layer root: %w", err)
	}
	defer f.Close()
	if names, err := f.Readdirnames(1); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%s is not empty (it holds %q)", dir, names[0])
		}
		return 0, fmt.Errorf("layer root: %w", err)
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("opening layer root: %w", err)
	}
	defer unix.Close(root)

	u := &unpacker{
		root:    root,
		tr:      tar.NewReader(r),
		regular: map[string]bool{},
		dirs:    map[string]*tar.Header{},
		chown:   os.Geteuid() == 0,
		dirFDs:  map[string]int{},
		budget:  b,
	}
	defer u.closeAll()
	for {
		hdr, err := u.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, corrupt("reading layer tar", err)
		}
		err = u.entry(hdr)
		u.entryDone()
		if err != nil {
			return 0, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	if err := u.finishDirs(); err != nil {
		return 0, err
	}
	return u.size, nil
}

// corrupt wraps an error reading the stream: format errors are bad input.
func corrupt(what string, err error) error {
	for _, cat := range []error{errdefs.ErrInvalid, errdefs.ErrUnavailable, errdefs.ErrNotFound, errdefs.ErrFailedPrecond, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, cat) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return fmt.Errorf("%s: %w (the data is corrupt or truncated): %w", what, err, errdefs.ErrInvalid)
}

type unpacker struct {
	root    int // fd of the layer root
	tr      *tar.Reader
	regular map[string]bool        // entries extracted as regular files: hard link targets
	dirs    map[string]*tar.Header // directories whose mode and times are set last
	chown   bool
	size    int64
	budget  *budget

	dirFDs   map[string]int // open directories by path, see openDir
	dirOrder []string       // cache eviction order, oldest first
	retired  []int          // evicted fds to close after the current entry
}

func refuse(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalid)...)
}

const errEscape = "path escapes the layer root"

// cleanName validates an entry name and returns it cleaned, relative to
// the layer root ("." for the root itself). As containerd and Docker do,
// a leading "/" means the layer root ("/etc/motd" is "etc/motd", "/" the
// root itself; umoci and GNU tar -P write such names), and ".." is
// resolved lexically: it may move within the root but never above it.
func cleanName(n string) (string, error) {
	switch {
	case n == "":
		return "", refuse("empty name")
	case strings.ContainsRune(n, 0):
		return "", refuse("name contains a NUL byte")
	}
	c := path.Clean(strings.TrimLeft(n, "/")) // "" cleans to "."
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", refuse("%s", errEscape)
	}
	return c, nil
}

func (u *unpacker) entry(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if err := u.budget.take(entryCost); err != nil {
		return err
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if err := checkXattrs(hdr); err != nil {
		return err
	}
	if hdr.Uid < 0 || int64(hdr.Uid) >= math.MaxUint32 || hdr.Gid < 0 || int64(hdr.Gid) >= math.MaxUint32 {
		return refuse("owner %d:%d is out of range", hdr.Uid, hdr.Gid)
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return refuse("the layer root must be a directory")
		}
		// "/", "./" and ".": ignored like containerd does; the root's
		// mode and owner come from the container's upper dir.
		return nil
	}
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(dir, base)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(name, dir, base, hdr)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		return u.file(name, dir, base, hdr)
	case tar.TypeSymlink:
		return u.symlink(name, dir, base, hdr)
	case tar.TypeLink:
		return u.hardlink(name, dir, base, hdr)
	case tar.TypeFifo:
		return u.fifo(name, dir, base, hdr)
	case tar.TypeChar, tar.TypeBlock:
		return refuse("device nodes are not allowed in image layers")
	}
	return refuse("unsupported tar entry type %q", string(hdr.Typeflag))
}

// openDir returns an fd of the directory dir below the root, opening
// every component with O_NOFOLLOW so that no symlink is ever followed.
// Missing components are created when create is set. The fd belongs to
// the unpacker's cache: callers do not close it, and it stays valid until
// the current entry is done.
//
// Caching by path is sound because a directory, once it exists, is never
// replaced or removed during an unpack (clear refuses to), so a path that
// resolved to a real directory keeps resolving to that same directory.
func (u *unpacker) openDir(dir string, create bool) (int, error) {
	if dir == "." || dir == "" {
		return u.root, nil
	}
	if fd, ok := u.dirFDs[dir]; ok {
		return fd, nil
	}
	fd, walked := u.root, ""
	comps := strings.Split(dir, "/")
	// Start below the deepest ancestor already open.
	for i := len(comps) - 1; i > 0; i-- {
		if afd, ok := u.dirFDs[strings.Join(comps[:i], "/")]; ok {
			fd, walked, comps = afd, strings.Join(comps[:i], "/"), comps[i:]
			break
		}
	}
	for _, c := range comps {
		walked = path.Join(walked, c)
		next, err := openDirAt(fd, c)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || err == unix.EEXIST {
				next, err = openDirAt(fd, c)
				if err == nil {
					err = unix.Fchmod(next, 0o755) // not the umask's idea
				}
			}
		}
		if err != nil {
			if next >= 0 {
				unix.Close(next)
			}
			if why := notDirReason(fd, c, err); why != "" {
				return -1, refuse("parent %q is %s; refusing to write through it", walked, why)
			}
			return -1, fmt.Errorf("opening %q: %w", walked, err)
		}
		u.cacheDir(walked, next)
		fd = next
	}
	return fd, nil
}

// maxDirFDs bounds the directory fds the unpacker keeps open.
const maxDirFDs = 128

func (u *unpacker) cacheDir(dir string, fd int) {
	if len(u.dirOrder) >= maxDirFDs {
		old := u.dirOrder[0]
		u.dirOrder = u.dirOrder[1:]
		u.retired = append(u.retired, u.dirFDs[old])
		delete(u.dirFDs, old)
	}
	u.dirFDs[dir] = fd
	u.dirOrder = append(u.dirOrder, dir)
}

// entryDone closes the fds evicted from the cache while handling an entry.
func (u *unpacker) entryDone() {
	for _, fd := range u.retired {
		unix.Close(fd)
	}
	u.retired = u.retired[:0]
}

// closeAll closes every cached fd.
func (u *unpacker) closeAll() {
	u.entryDone()
	for _, fd := range u.dirFDs {
		unix.Close(fd)
	}
	u.dirFDs, u.dirOrder = nil, nil
}

func openDirAt(fd int, name string) (int, error) {
	return unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
}

// notDirReason explains an open failure of a path component that is not
// a real directory, or returns "" for other errors.
func notDirReason(fd int, name string, err error) string {
	if err != unix.ENOTDIR && err != unix.ELOOP {
		return ""
	}
	var st unix.Stat_t
	if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return "a symlink"
	}
	return "not a directory"
}

// clear removes a non-directory entry that a later entry replaces, as tar
// does. Replacing a directory is refused: it could hold earlier entries.
func (u *unpacker) clear(pfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return refuse("would replace directory %q", name)
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return fmt.Errorf("replacing %q: %w", name, err)
	}
	delete(u.regular, name)
	return nil
}

// create runs mk, replacing an existing non-directory entry once.
func (u *unpacker) create(pfd int, base, name string, mk func() error) error {
	err := mk()
	if err == unix.EEXIST {
		if err := u.clear(pfd, base, name); err != nil {
			return err
		}
		err = mk()
	}
	return err
}

func (u *unpacker) mkdir(name, dir, base string, hdr *tar.Header) error {
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	err = unix.Mkdirat(pfd, base, 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err = u.clear(pfd, base, name); err == nil {
				err = unix.Mkdirat(pfd, base, 0o700)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := openDirAt(pfd, base)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	if err := u.owner(fd, hdr); err != nil {
		return err
	}
	if err := setXattrs(fd, hdr); err != nil {
		return err
	}
	u.dirs[name] = hdr
	return nil
}

func (u *unpacker) file(name, dir, base string, hdr *tar.Header) error {
	// The declared size, before anything is written: a sparse file's
	// holes and a header promising more than the stream holds count too.
	if err := u.budget.take(hdr.Size); err != nil {
		return err
	}
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	var fd int
	err = u.create(pfd, base, name, func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	n, err := io.Copy(f, u.tr)
	u.size += n
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
			return corrupt("reading file data", err)
		}
		return fmt.Errorf("writing: %w", err)
	}
	if err := u.owner(fd, hdr); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode(hdr)); err != nil { // after chown, which clears set-id bits
		return fmt.Errorf("chmod: %w", err)
	}
	if err := setXattrs(fd, hdr); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	u.regular[name] = true
	return setTimes(pfd, base, hdr)
}

func (u *unpacker) symlink(name, dir, base string, hdr *tar.Header) error {
	target := hdr.Linkname
	if target == "" {
		return refuse("symlink with an empty target")
	}
	if !path.IsAbs(target) {
		if r := path.Join(dir, target); r == ".." || strings.HasPrefix(r, "../") {
			return refuse("symlink target %q: %s", target, errEscape)
		}
	}
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	if err := u.create(pfd, base, name, func() error { return unix.Symlinkat(target, pfd, base) }); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	if u.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lchown: %w", err)
		}
	}
	return setTimes(pfd, base, hdr)
}

func (u *unpacker) hardlink(name, dir, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if !u.regular[target] {
		return refuse("hard link target %q is not a regular file extracted earlier from this layer", hdr.Linkname)
	}
	if target == name {
		// GNU tar archives a file named twice ("a/../a/f" and "a/f") as
		// a hard link to itself: it already is.
		return nil
	}
	tfd, err := u.openDir(path.Dir(target), false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	tbase := path.Base(target)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return refuse("hard link target %q is not a regular file", hdr.Linkname)
	}
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	// linkat without AT_SYMLINK_FOLLOW never dereferences the source.
	if err := u.create(pfd, base, name, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) }); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	u.regular[name] = true
	return nil
}

func (u *unpacker) fifo(name, dir, base string, hdr *tar.Header) error {
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	if err := u.create(pfd, base, name, func() error { return unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0) }); err != nil {
		return fmt.Errorf("mkfifo: %w", err)
	}
	if u.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lchown: %w", err)
		}
	}
	// The entry was just made a FIFO (never a symlink), so following is moot.
	if err := unix.Fchmodat(pfd, base, mode(hdr), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return setTimes(pfd, base, hdr)
}

// whiteout converts an OCI whiteout entry in directory dir.
func (u *unpacker) whiteout(dir, base string) error {
	if base == whiteoutOpaque {
		fd, err := u.openDir(dir, true)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0); err != nil {
			return fmt.Errorf("marking %q opaque: %w", dir, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	switch target {
	case "..":
		return refuse("whiteout of %q: %s", target, errEscape)
	case "", ".":
		return refuse("whiteout of %q", target)
	}
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	name := path.Join(dir, target)
	err = u.create(pfd, target, name, func() error {
		return unix.Mknodat(pfd, target, unix.S_IFCHR, int(unix.Mkdev(0, 0)))
	})
	if err != nil {
		return fmt.Errorf("whiteout of %q: %w", target, err)
	}
	return nil
}

// finishDirs sets directory modes and times once nothing more is written
// into them, deepest first.
func (u *unpacker) finishDirs() error {
	names := make([]string, 0, len(u.dirs))
	for n := range u.dirs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		hdr := u.dirs[n]
		pfd, err := u.openDir(path.Dir(n), false)
		if err != nil {
			return fmt.Errorf("entry %q: %w", n, err)
		}
		err = func() error {
			fd, err := openDirAt(pfd, path.Base(n))
			if err != nil {
				return fmt.Errorf("open: %w", err)
			}
			defer unix.Close(fd)
			if err := unix.Fchmod(fd, mode(hdr)); err != nil {
				return fmt.Errorf("chmod: %w", err)
			}
			return setTimes(pfd, path.Base(n), hdr)
		}()
		u.entryDone()
		if err != nil {
			return fmt.Errorf("entry %q: %w", n, err)
		}
	}
	return nil
}

func mode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

func (u *unpacker) owner(fd int, hdr *tar.Header) error {
	if !u.chown {
		return nil
	}
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

const paxXattr = "SCHILY.xattr."

// checkXattrs refuses xattrs that could forge overlayfs metadata.
func checkXattrs(hdr *tar.Header) error {
	for k := range hdr.PAXRecords {
		if a, ok := strings.CutPrefix(k, paxXattr); ok && strings.HasPrefix(a, "trusted.") {
			return refuse("xattr %q is not allowed in image layers", a)
		}
	}
	return nil
}

// setXattrs applies user.* xattrs and file capabilities; other namespaces
// (security labels, ACLs) are host policy and skipped.
func setXattrs(fd int, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a, ok := strings.CutPrefix(k, paxXattr)
		if !ok || !(strings.HasPrefix(a, "user.") || a == "security.capability") {
			continue
		}
		err := unix.Fsetxattr(fd, a, []byte(hdr.PAXRecords[k]), 0)
		switch err {
		case nil, unix.ENOTSUP, unix.EPERM:
			// The filesystem may not take user xattrs; the file works without.
		default:
			return fmt.Errorf("xattr %q: %w", a, err)
		}
	}
	return nil
}
