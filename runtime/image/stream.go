package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
)

// sourceReader counts and hashes what is read from a blob's source, stops
// at ctx's end, and remembers the first error the source itself returned
// so that a network failure is not mistaken for bad content.
type sourceReader struct {
	ctx      context.Context
	r        io.Reader
	h        hash.Hash
	n        int64
	limit    int64 // expected size, -1 when unknown
	eof      bool
	srcErr   error
	progress func(n int64)
}

var errTooLong = errors.New("more data than the declared size")

func newSourceReader(ctx context.Context, r io.Reader, limit int64, progress func(int64)) *sourceReader {
	return &sourceReader{ctx: ctx, r: r, h: sha256.New(), limit: limit, progress: progress}
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.limit >= 0 && s.n > s.limit {
		return 0, errTooLong
	}
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if s.progress != nil && n > 0 {
		s.progress(s.n)
	}
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil && s.srcErr == nil:
		s.srcErr = err
	}
	if err == nil && s.limit >= 0 && s.n > s.limit {
		err = errTooLong
	}
	return n, err
}

// drain reads what is left, up to one byte past the expected size.
func (s *sourceReader) drain() {
	if s.eof || s.srcErr != nil {
		return
	}
	_, _ = io.Copy(io.Discard, s)
}

func (s *sourceReader) digest() string { return fmt.Sprintf("sha256:%x", s.h.Sum(nil)) }

// hashReader hashes what passes through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func newHashReader(r io.Reader) *hashReader { return &hashReader{r: r, h: sha256.New()} }

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashReader) digest() string { return fmt.Sprintf("sha256:%x", h.h.Sum(nil)) }

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// maxZstdWindow bounds the memory a hostile zstd stream can make us use.
const maxZstdWindow = 128 << 20

// decompress returns the uncompressed stream of r, whether r is gzip,
// zstd or plain, judged by its first bytes rather than a media type.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, corrupt("gzip", err)
		}
		return gz, func() { gz.Close() }, nil
	case bytes.Equal(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nil, corrupt("zstd", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}
