package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// archive is a tar stream spooled to an unlinked temporary file with an
// index of its members, so that members can be read in any order (docker
// save writes manifest.json last) without ever being written to the
// filesystem under their own names.
type archive struct {
	f       *os.File
	members map[string]member
}

type member struct {
	off, size int64
	link      string // symlinks and hard links: the member pointed at
}

// spoolArchive reads r (a tar, possibly gzip or zstd compressed) into a
// temporary file in dir, writing at most what b allows.
func spoolArchive(ctx context.Context, r io.Reader, dir string, rep *reporter, b *budget) (*archive, error) {
	f, err := os.CreateTemp(dir, "load-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // freed on close, whatever happens to us
	a := &archive{f: f, members: map[string]member{}}
	if err := a.spool(ctx, r, rep, b); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func (a *archive) spool(ctx context.Context, r io.Reader, rep *reporter, b *budget) error {
	src := newSourceReader(ctx, r, -1, rep.bytes("", StatusReading, 0))
	in, closeFn, err := decompress(src)
	if err != nil {
		return fmt.Errorf("reading the archive: %w", err)
	}
	defer closeFn()
	tr := tar.NewReader(in)
	var off int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return corrupt("reading the archive", err)
		}
		name := memberName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
			if err := b.take(entryCost + hdr.Size); err != nil {
				return err
			}
			n, err := io.Copy(a.f, tr)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return corrupt(fmt.Sprintf("reading %q from the archive", hdr.Name), err)
			}
			a.members[name] = member{off: off, size: n}
			off += n
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			a.members[name] = member{link: memberName(target)}
		case tar.TypeLink:
			a.members[name] = member{link: memberName(hdr.Linkname)}
		}
	}
}

// memberName is a member's name as looked up: relative, cleaned, and
// unable to climb above the archive's top.
func memberName(n string) string { return strings.TrimPrefix(path.Clean("/"+n), "/") }

func (a *archive) has(name string) bool {
	_, err := a.resolve(name)
	return err == nil
}

func (a *archive) resolve(name string) (member, error) {
	n := memberName(name)
	for range 16 {
		m, ok := a.members[n]
		if !ok {
			return member{}, fmt.Errorf("the archive has no file %q: %w", name, errdefs.ErrInvalid)
		}
		if m.link == "" {
			return m, nil
		}
		n = m.link
	}
	return member{}, fmt.Errorf("the archive's file %q is a link loop: %w", name, errdefs.ErrInvalid)
}

func (a *archive) open(name string) (*io.SectionReader, error) {
	m, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(a.f, m.off, m.size), nil
}

// readAll reads a small member whole.
func (a *archive) readAll(name string, limit int64) ([]byte, error) {
	m, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	if m.size > limit {
		return nil, fmt.Errorf("the archive's file %q is %d bytes, more than the %d allowed: %w", name, m.size, limit, errdefs.ErrInvalid)
	}
	b := make([]byte, m.size)
	if _, err := a.f.ReadAt(b, m.off); err != nil {
		return nil, fmt.Errorf("reading %q from the archive: %w", name, err)
	}
	return b, nil
}

func (a *archive) Close() error { return a.f.Close() }
