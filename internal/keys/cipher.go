package keys

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Formats of what a Cipher seals. Every sealed record and stream starts
// with a format version byte and the 4-byte ID of the DEK that sealed it,
// so a DEK can be rotated later (a reader tells which key, or which
// format, a record needs) and a wrong key is told from a tampered record.
const (
	// FormatV1 is AES-256-GCM with the DEK itself and a random 96-bit
	// nonce (records), or a chunked AES-256-GCM stream under a key derived
	// from the DEK and a random salt (streams).
	FormatV1 byte = 1
)

// ErrCorrupt is the category-free cause of a record or stream that fails
// authentication: tampered with, truncated, reordered, or not sealed by
// Shoal at all. Errors that wrap it also wrap errdefs.ErrFailedPrecond.
var ErrCorrupt = errors.New("failed authentication (corrupt or tampered with)")

// ErrWrongKey is the cause of a record or stream sealed with another DEK
// (another manager's, or an older one).
var ErrWrongKey = errors.New("sealed with another data encryption key")

// ErrNotSealed is the cause of data that carries no known format header:
// plaintext written by an older Shoal, or garbage.
var ErrNotSealed = errors.New("not encrypted (no Shoal encryption header)")

// corrupt gives cause the category errdefs.ErrFailedPrecond without
// adding the category's words to its message.
func corrupt(cause error) error { return WithCategory(cause, errdefs.ErrFailedPrecond) }

// WithCategory returns err, whose message it keeps, as an error of
// category cat too (errors.Is finds both).
func WithCategory(err, cat error) error {
	if err == nil || errors.Is(err, cat) {
		return err
	}
	return &categorized{err: err, cat: cat}
}

type categorized struct{ err, cat error }

func (e *categorized) Error() string   { return e.err.Error() }
func (e *categorized) Unwrap() []error { return []error{e.err, e.cat} }

// recordHeader is version ‖ key ID.
const recordHeader = 1 + 4

// Cipher seals records and streams with one DEK. Safe for concurrent use.
type Cipher struct {
	dek  []byte
	id   [4]byte
	aead cipher.AEAD
}

// NewCipher returns the cipher of a DEK (KeySize bytes).
func NewCipher(dek []byte) (*Cipher, error) {
	if len(dek) != KeySize {
		return nil, fmt.Errorf("a data encryption key is %d bytes, not %d: %w", KeySize, len(dek), errdefs.ErrInvalid)
	}
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	c := &Cipher{dek: append([]byte(nil), dek...), aead: aead}
	sum := sha256.Sum256(append([]byte("shoal dek id v1"), dek...))
	copy(c.id[:], sum[:4])
	return c, nil
}

// KeyID is the 4-byte ID of the DEK written in every sealed record: a
// truncated hash of it, which says nothing of the key itself.
func (c *Cipher) KeyID() [4]byte { return c.id }

// Overhead is how many bytes Seal adds to a record.
func (c *Cipher) Overhead() int { return recordHeader + c.aead.NonceSize() + c.aead.Overhead() }

// Seal appends to dst the sealed form of plaintext, authenticated with ad
// (which is not stored: Open needs the same ad). One DEK should seal no
// more than 2³² records (random 96-bit nonces); rotating the DEK is what
// the format version is for.
func (c *Cipher) Seal(dst, plaintext, ad []byte) []byte {
	dst = append(dst, FormatV1)
	dst = append(dst, c.id[:]...)
	return c.aead.Seal(dst, nil, plaintext, ad)
}

// Open returns the plaintext of a record sealed with ad. The error says
// which of ErrNotSealed, ErrWrongKey or ErrCorrupt it is (errors.Is), and
// is of category errdefs.ErrFailedPrecond.
func (c *Cipher) Open(sealed, ad []byte) ([]byte, error) {
	if err := c.checkHeader(sealed); err != nil {
		return nil, err
	}
	out, err := c.aead.Open(nil, nil, sealed[recordHeader:], ad)
	if err != nil {
		return nil, corrupt(ErrCorrupt)
	}
	return out, nil
}

func (c *Cipher) checkHeader(h []byte) error {
	switch {
	case len(h) < recordHeader || h[0] != FormatV1:
		return corrupt(ErrNotSealed)
	case [4]byte(h[1:5]) != c.id:
		return corrupt(ErrWrongKey)
	}
	return nil
}

// Streams: a header (a magic string, the format version, the DEK's ID and
// a random salt), then the plaintext in chunks of StreamChunk bytes
// (the last one shorter, possibly empty), each sealed on its own with
// AES-256-GCM under a key derived from the DEK and the stream's random
// salt. A chunk's nonce is its number and whether it is the last, so
// chunks cannot be reordered, dropped or added, nor the stream cut at a
// chunk boundary, without failing authentication; the header is the
// associated data of every chunk.
const (
	// StreamChunk is the plaintext size of every chunk but the last.
	StreamChunk   = 64 << 10
	streamSalt    = 32
	streamHeader  = 8 + recordHeader + streamSalt // 8: len(streamMagic)
	chunkOverhead = 16                            // the GCM tag
	sealedChunk   = StreamChunk + chunkOverhead
)

// streamMagic starts every sealed stream, so that plaintext (a snapshot
// of an older Shoal, whose own first byte may equal a format version) is
// told from a stream of another key.
const streamMagic = "SHOALENC"

func (c *Cipher) streamAEAD(salt []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, c.dek, salt, "shoal stream v1", KeySize)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func chunkNonce(n uint64, last bool) []byte {
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[:8], n)
	if last {
		nonce[11] = 1
	}
	return nonce[:]
}

// NewWriter returns a writer that seals what is written to it onto w. It
// holds at most one chunk in memory. Close writes the last chunk; it does
// not close w, and closing again does nothing. Without Close the stream is
// incomplete and will not open.
func (c *Cipher) NewWriter(w io.Writer) (io.WriteCloser, error) {
	header := make([]byte, streamHeader)
	n := copy(header, streamMagic)
	header[n] = FormatV1
	copy(header[n+1:n+recordHeader], c.id[:])
	salt := header[n+recordHeader:]
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := c.streamAEAD(salt)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	return &streamWriter{w: w, aead: aead, header: header, buf: make([]byte, 0, StreamChunk), out: make([]byte, 0, sealedChunk)}, nil
}

type streamWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	header []byte
	buf    []byte // plaintext not yet sealed: at most a chunk
	out    []byte
	n      uint64 // chunks written
	err    error
	closed bool
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	written := 0
	for len(p) > 0 {
		// A full chunk is sealed only once more data comes: the last
		// chunk must be sealed as the last.
		if len(s.buf) == StreamChunk {
			if err := s.flush(false); err != nil {
				return written, err
			}
		}
		k := copy(s.buf[len(s.buf):StreamChunk], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		written += k
	}
	return written, nil
}

func (s *streamWriter) flush(last bool) error {
	s.out = s.aead.Seal(s.out[:0], chunkNonce(s.n, last), s.buf, s.header)
	s.n++
	s.buf = s.buf[:0]
	if _, err := s.w.Write(s.out); err != nil {
		s.err = err
		return err
	}
	return nil
}

func (s *streamWriter) Close() error {
	if s.closed {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	err := s.flush(true)
	if err == nil {
		s.closed, s.err = true, errors.New("write to a closed encrypted stream")
	}
	return err
}

// NewReader returns a reader of the plaintext of a stream NewWriter
// sealed. Reading returns an error (ErrNotSealed, ErrWrongKey or
// ErrCorrupt, of category errdefs.ErrFailedPrecond) as soon as the header
// or a chunk fails; no plaintext of a chunk is returned before the chunk
// is authenticated, and io.EOF comes only after an authenticated last
// chunk.
func (c *Cipher) NewReader(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, sealedChunk+1)
	header := make([]byte, streamHeader)
	if _, err := io.ReadFull(br, header); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, corrupt(ErrNotSealed)
		}
		return nil, err
	}
	if string(header[:len(streamMagic)]) != streamMagic {
		return nil, corrupt(ErrNotSealed)
	}
	if err := c.checkHeader(header[len(streamMagic):]); err != nil {
		return nil, err
	}
	aead, err := c.streamAEAD(header[len(streamMagic)+recordHeader:])
	if err != nil {
		return nil, err
	}
	return &streamReader{r: br, aead: aead, header: header, in: make([]byte, sealedChunk)}, nil
}

type streamReader struct {
	r      *bufio.Reader
	aead   cipher.AEAD
	header []byte
	in     []byte
	plain  []byte // authenticated plaintext not yet read
	n      uint64
	done   bool
	err    error
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.plain) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.err = s.next()
	}
	k := copy(p, s.plain)
	s.plain = s.plain[k:]
	return k, nil
}

// next reads and opens the next chunk.
func (s *streamReader) next() error {
	k, err := io.ReadFull(s.r, s.in)
	last := false
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		return err
	default:
		if _, err := s.r.Peek(1); errors.Is(err, io.EOF) {
			last = true
		} else if err != nil {
			return err
		}
	}
	if k < chunkOverhead {
		return corrupt(fmt.Errorf("chunk %d: truncated: %w", s.n, ErrCorrupt))
	}
	plain, err := s.aead.Open(s.in[:0], chunkNonce(s.n, last), s.in[:k], s.header)
	if err != nil {
		return corrupt(fmt.Errorf("chunk %d: %w", s.n, ErrCorrupt))
	}
	s.n++
	s.plain, s.done = plain, last
	return nil
}

// PlainSize is the plaintext size of a sealed stream of sealedSize bytes
// (every chunk but the last is full, so the size follows from the length
// alone), or an error if no stream has that length.
func PlainSize(sealedSize int64) (int64, error) {
	body := sealedSize - streamHeader
	if body < chunkOverhead {
		return 0, corrupt(fmt.Errorf("a sealed stream of %d bytes is truncated: %w", sealedSize, ErrCorrupt))
	}
	chunks := (body + sealedChunk - 1) / sealedChunk
	return body - chunks*chunkOverhead, nil
}

// SealedSize is the size of the sealed stream of plainSize bytes.
func SealedSize(plainSize int64) int64 {
	chunks := max(1, (plainSize+StreamChunk-1)/StreamChunk)
	return streamHeader + plainSize + chunks*chunkOverhead
}
