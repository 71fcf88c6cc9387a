package testimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// RefNameAnnotation names an image in an OCI layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteOCILayout writes the image into the OCI image layout at dir,
// creating it, or adding to the layout already there, with annotation
// org.opencontainers.image.ref.name = b.Tag.
func (b Built) WriteOCILayout(dir string) error {
	p, err := layout.FromPath(dir)
	if errors.Is(err, fs.ErrNotExist) {
		p, err = layout.Write(dir, empty.Index)
	}
	if err != nil {
		return fmt.Errorf("testimage: OCI layout %s: %w", dir, err)
	}
	err = p.AppendImage(b.Image, layout.WithAnnotations(map[string]string{RefNameAnnotation: b.Tag}))
	if err != nil {
		return fmt.Errorf("testimage: OCI layout %s: %w", dir, err)
	}
	return nil
}

// WriteOCITarball writes a tar of an OCI layout holding the image (as
// WriteOCILayout), the form `skopeo copy oci-archive:` and `ctr import`
// read. The same image gives the same bytes.
func (b Built) WriteOCITarball(path string) error {
	tmp, err := os.MkdirTemp("", "shoal-testimage-oci-")
	if err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := b.WriteOCILayout(tmp); err != nil {
		return err
	}
	if err := tarDir(tmp, path); err != nil {
		return fmt.Errorf("testimage: OCI tarball %s: %w", path, err)
	}
	return nil
}

// WriteDockerArchive writes the image in the format of `docker save`
// (manifest.json and RepoTags = [tag]), readable by `docker load` and
// tarball.ImageFromPath. tag is a reference such as "whoami:1".
func (b Built) WriteDockerArchive(path, tag string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("testimage: docker archive: %w", err)
	}
	if err := tarball.WriteToFile(path, t, b.Image); err != nil {
		return fmt.Errorf("testimage: docker archive %s: %w", path, err)
	}
	return nil
}

// tarDir writes the regular files and directories under root to a tar at
// path, in lexical order, with fixed times and owners.
func tarDir(root, path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = io.Copy(tw, src)
			return err
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
