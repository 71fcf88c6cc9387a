package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func TestMaxImageSizeOption(t *testing.T) {
	for _, tt := range []struct {
		opt, want int64
	}{
		{0, DefaultMaxImageSize},
		{-1, 0}, // budgets without a limit
		{1 << 20, 1 << 20},
	} {
		if got := newStore(t, Options{MaxImageSize: tt.opt}).maxImageSize; got != tt.want {
			t.Errorf("Open(MaxImageSize: %d).maxImageSize = %d; want %d", tt.opt, got, tt.want)
		}
	}
}

// rawLayer is a layer of exactly the bytes b (a tar stream, compressed by
// the library when served).
func rawLayer(t *testing.T, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// zeros is a tar of one file of n zero bytes: it compresses about 1000:1.
func zeros(t *testing.T, n int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: n}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, n); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// hugeHeader is a tar whose only header declares size bytes that the
// stream does not hold.
func hugeHeader(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes() // without the data, and without Close
}

// sparseTar is GNU tar --sparse of a file of size bytes that is all hole.
func sparseTar(t *testing.T, size int64) []byte {
	t.Helper()
	tarBin := needTool(t, "tar", "tar")
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "holes"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b := run(t, tarBin, "--sparse", "-C", dir, "-cf", "-", "holes")
	if len(b) > 1<<20 {
		t.Fatalf("GNU tar --sparse wrote %d bytes; the test needs a small archive", len(b))
	}
	hdr, err := tar.NewReader(bytes.NewReader(b)).Next()
	if err != nil || hdr.Size != size {
		t.Fatalf("GNU tar --sparse header: %+v, %v; want a %d byte file", hdr, err, size)
	}
	return b
}

// A decompression bomb, a header promising more than is there, sparse
// holes and many layers that add up are all refused once what they would
// write passes the limit, and leave nothing behind.
func TestUnpackedSizeIsCapped(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name   string
		limit  int64
		layers func(t *testing.T) []v1.Layer
		want   string
	}{
		{"gzip bomb", limit, func(t *testing.T) []v1.Layer { return []v1.Layer{rawLayer(t, zeros(t, 8<<20))} },
			`entry "zeros": the image unpacks to more than 1048576 bytes`},
		{"header larger than the data", limit, func(t *testing.T) []v1.Layer { return []v1.Layer{rawLayer(t, hugeHeader(t, 1<<40))} },
			`entry "huge": the image unpacks to more than 1048576 bytes`},
		// Small enough that a broken cap does not fill the disk.
		{"sparse file", limit, func(t *testing.T) []v1.Layer { return []v1.Layer{rawLayer(t, sparseTar(t, 64<<20))} },
			`entry "holes": the image unpacks to more than 1048576 bytes`},
		{"zeros after the tar end", limit, func(t *testing.T) []v1.Layer {
			return []v1.Layer{rawLayer(t, append(tarOf(t, file("a", "b")), make([]byte, 4<<20)...))}
		}, "the image unpacks to more than 1048576 bytes"},
		{"empty files", 64 << 10, func(t *testing.T) []v1.Layer {
			var ents []ent
			for i := range 64<<10/entryCost + 1 {
				ents = append(ents, file(fmt.Sprintf("d%d/f", i), ""))
			}
			return []v1.Layer{layerOf(t, ents...)}
		}, "the image unpacks to more than 65536 bytes"},
		{"layers adding up", limit, func(t *testing.T) []v1.Layer {
			var ls []v1.Layer
			for i := range 3 {
				ls = append(ls, layerOf(t, file("f", strings.Repeat(string(rune('a'+i)), 400<<10))))
			}
			return ls
		}, "the image unpacks to more than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := imageOf(t, nil, tt.layers(t)...)
			check := func(how string, s *Store, err error) {
				t.Helper()
				if err == nil || !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), tt.want) ||
					!strings.Contains(err.Error(), "raise it with `shoal daemon --max-image-size` (0 for no limit)") {
					t.Errorf("%s = %v; want an ErrFailedPrecond containing %q and naming --max-image-size", how, err, tt.want)
				}
				assertNothingStored(t, s)
			}

			reg := newTestRegistry(t)
			ref := reg.push(t, "bomb:1", img)
			s := newStore(t, Options{MaxImageSize: tt.limit})
			_, err := s.Pull(context.Background(), ref, nil)
			check("Pull", s, err)

			dir := t.TempDir()
			lp, err := layout.Write(dir, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := lp.AppendImage(img); err != nil {
				t.Fatal(err)
			}
			_, err = s.Load(context.Background(), tarDir(t, dir), nil)
			check("Load", s, err)
		})
	}
}

// The limit is on what a pull writes: layers already stored do not count.
func TestUnpackedSizeCountsOnlyNewLayers(t *testing.T) {
	a := layerOf(t, file("a", strings.Repeat("a", 600<<10)))
	b := layerOf(t, file("b", strings.Repeat("b", 600<<10)))
	reg := newTestRegistry(t)
	first := reg.push(t, "app:1", imageOf(t, nil, a))
	second := reg.push(t, "app:2", imageOf(t, nil, a, b))
	s := newStore(t, Options{MaxImageSize: 1 << 20})
	mustPull(t, s, first)
	img := mustPull(t, s, second)
	if img.Size < 1<<20 {
		t.Errorf("image size %d; want it above the 1 MiB limit (two 600 KiB layers)", img.Size)
	}
}

// A load spools its archive to disk first: a compressed archive that
// unpacks to more than the limit is refused while spooling.
func TestLoadArchiveBombIsCapped(t *testing.T) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(zeros(t, 8<<20))
	zw.Close()
	if gz.Len() > 1<<20 {
		t.Fatalf("the bomb is %d bytes compressed; want it small", gz.Len())
	}
	s := newStore(t, Options{MaxImageSize: 1 << 20})
	_, err := s.Load(context.Background(), &gz, nil)
	if err == nil || !errdefs.Is(err, errdefs.ErrFailedPrecond) || !strings.Contains(err.Error(), "the archive unpacks to more than 1048576 bytes") ||
		!strings.Contains(err.Error(), "--max-image-size") {
		t.Fatalf("Load of an archive bomb = %v; want the archive refused at the limit", err)
	}
	assertNothingStored(t, s)
}
