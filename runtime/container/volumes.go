package container

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// volumeMount gets the volume m names (creating it if need be) for c, and
// says how to mount it; the Mount returned is m as made (an anonymous
// volume's Source is its new name). A volume that was never populated
// gets the image's content at the target first, unless m.NoCopy.
func (r *Runtime) volumeMount(c *ctr, m Mount, img *Image) (shim.Mount, Mount, error) {
	if r.opts.Volumes == nil {
		return shim.Mount{}, m, fmt.Errorf("volume mounts need a volume store, and this runtime has none: %w", errdefs.ErrFailedPrecond)
	}
	name, path, populate, err := r.opts.Volumes.Use(c.state.ID, m)
	if err != nil {
		return shim.Mount{}, m, err
	}
	m.Source = name
	if populate {
		if !m.NoCopy {
			if err := copyUp(filepath.Join(c.dir, "rootfs"), m.Target, path); err != nil {
				return shim.Mount{}, m, fmt.Errorf("volume %s: copy the image's %s into it: %w", name, m.Target, err)
			}
		}
		if err := r.opts.Volumes.Populated(name); err != nil {
			return shim.Mount{}, m, err
		}
	}
	return shim.Mount{Kind: shim.KindBind, Source: path, Target: m.Target, ReadOnly: m.ReadOnly}, m, nil
}

func volumeNames(ms []Mount) []string {
	var out []string
	for _, m := range ms {
		if m.Type == MountVolume && m.Source != "" {
			out = append(out, m.Source)
		}
	}
	return out
}

// copyUp copies the image's directory at target (resolved inside rootfs:
// a symlink in the image cannot lead out of it) into an empty volume
// directory, as docker does on a volume's first mount: files, modes,
// owners and symlinks (as links). Nothing is copied when the target is
// not a directory in the image or the volume already has content.
func copyUp(rootfs, target, dst string) error {
	src, err := securejoin.SecureJoin(rootfs, target)
	if err != nil {
		return err
	}
	st, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !st.IsDir()) {
		return nil
	}
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(dst); err != nil || len(entries) > 0 {
		return err
	}
	if err := os.Chmod(dst, st.Mode().Perm()|st.Mode()&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid)); err != nil {
		return err
	}
	if sys, ok := st.Sys().(*unix.Stat_t); ok {
		_ = os.Lchown(dst, int(sys.Uid), int(sys.Gid))
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		switch {
		case mode.IsDir():
			if err := os.Mkdir(to, mode.Perm()); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, to); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(p, to, mode.Perm()); err != nil {
				return err
			}
		default:
			return nil // devices, sockets, fifos: not copied
		}
		if sys, ok := info.Sys().(*unix.Stat_t); ok {
			if err := os.Lchown(to, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
		if mode&fs.ModeSymlink == 0 {
			return os.Chmod(to, mode.Perm()|mode&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid))
		}
		return nil
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
