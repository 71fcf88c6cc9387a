package keys

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"pgregory.net/rapid"

	"github.com/shoal-run/shoal/internal/errdefs"
)

func newTestCipher(t testing.TB) *Cipher {
	t.Helper()
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		t.Fatal(err)
	}
	c, err := NewCipher(dek)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fataler is what seal needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// seal writes plain into a stream in pieces of the given sizes (cycled).
func seal(t fataler, c *Cipher, plain []byte, pieces []int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := c.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, rest := 0, plain; len(rest) > 0; i++ {
		n := len(rest)
		if len(pieces) > 0 {
			n = min(n, max(1, pieces[i%len(pieces)]))
		}
		k, err := w.Write(rest[:n])
		if err != nil || k != n {
			t.Fatalf("Write = %d, %v; want %d", k, err, n)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(c *Cipher, sealed []byte) ([]byte, error) {
	r, err := c.NewReader(bytes.NewReader(sealed))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// interestingLen draws plaintext lengths around chunk boundaries as often
// as anywhere else.
func interestingLen(t *rapid.T) int {
	return rapid.OneOf(
		rapid.SampledFrom([]int{0, 1, StreamChunk - 1, StreamChunk, StreamChunk + 1, 2 * StreamChunk, 3*StreamChunk - 1, 3 * StreamChunk}),
		rapid.IntRange(0, 4*StreamChunk+17),
	).Draw(t, "len")
}

// Any plaintext, written in any pieces, reads back whole, and its sealed
// size is what SealedSize and PlainSize say.
func TestStreamRoundTrip(t *testing.T) {
	c := newTestCipher(t)
	rapid.Check(t, func(t *rapid.T) {
		n := interestingLen(t)
		plain := make([]byte, n)
		_, _ = rand.Read(plain)
		pieces := rapid.SliceOfN(rapid.IntRange(1, 3*StreamChunk), 0, 4).Draw(t, "pieces")
		sealed := seal(t, c, plain, pieces)
		if got := SealedSize(int64(n)); got != int64(len(sealed)) {
			t.Fatalf("SealedSize(%d) = %d; the stream is %d bytes", n, got, len(sealed))
		}
		if got, err := PlainSize(int64(len(sealed))); err != nil || got != int64(n) {
			t.Fatalf("PlainSize(%d) = %d, %v; want %d", len(sealed), got, err, n)
		}
		got, err := open(c, sealed)
		if err != nil {
			t.Fatalf("reading a %d-byte stream: %v", n, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("read %d bytes back from a %d-byte stream, not the same", len(got), n)
		}
		if bytes.Contains(sealed, plain[:min(n, 64)]) && n >= 16 {
			t.Fatalf("the sealed stream holds the plaintext")
		}
	})
}

// Any single flipped bit, any truncation and any appended byte make the
// stream fail to read, with an error of category ErrFailedPrecond and
// never with the whole plaintext returned.
func TestStreamTamperFails(t *testing.T) {
	c := newTestCipher(t)
	rapid.Check(t, func(t *rapid.T) {
		n := interestingLen(t)
		plain := make([]byte, n)
		_, _ = rand.Read(plain)
		sealed := seal(t, c, plain, nil)
		bad := append([]byte(nil), sealed...)
		what := rapid.SampledFrom([]string{"flip", "truncate", "append"}).Draw(t, "tamper")
		switch what {
		case "flip":
			bit := rapid.IntRange(0, len(sealed)*8-1).Draw(t, "bit")
			bad[bit/8] ^= 1 << (bit % 8)
		case "truncate":
			// Anywhere, or exactly at a chunk boundary (what only the
			// last-chunk flag catches).
			keep := rapid.IntRange(0, len(sealed)-1).Draw(t, "keep")
			if chunks := (len(sealed) - streamHeader) / sealedChunk; chunks > 0 && rapid.Bool().Draw(t, "at a boundary") {
				keep = streamHeader + sealedChunk*rapid.IntRange(0, chunks).Draw(t, "chunks kept")
				if keep >= len(sealed) {
					keep = streamHeader
				}
			}
			bad = bad[:keep]
		case "append":
			bad = append(bad, rapid.Byte().Draw(t, "extra"))
		}
		got, err := open(c, bad)
		if err == nil {
			t.Fatalf("%s of a %d-byte stream was read without error (%d bytes)", what, n, len(got))
		}
		if !errdefs.Is(err, errdefs.ErrFailedPrecond) {
			t.Fatalf("%s: error %v is not of category ErrFailedPrecond", what, err)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotSealed) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%s: error %v is none of ErrCorrupt, ErrNotSealed, ErrWrongKey", what, err)
		}
	})
}

// Chunks cannot be swapped: two chunks of a stream exchanged fail.
func TestStreamReorderFails(t *testing.T) {
	c := newTestCipher(t)
	plain := make([]byte, 3*StreamChunk+5)
	_, _ = rand.Read(plain)
	sealed := seal(t, c, plain, nil)
	body := sealed[streamHeader:]
	swapped := append([]byte(nil), sealed[:streamHeader]...)
	swapped = append(swapped, body[sealedChunk:2*sealedChunk]...)
	swapped = append(swapped, body[:sealedChunk]...)
	swapped = append(swapped, body[2*sealedChunk:]...)
	if _, err := open(c, swapped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped chunks: %v; want ErrCorrupt", err)
	}
	// A chunk dropped from the middle.
	dropped := append(append([]byte(nil), sealed[:streamHeader+sealedChunk]...), body[2*sealedChunk:]...)
	if _, err := open(c, dropped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("dropped chunk: %v; want ErrCorrupt", err)
	}
}

// A stream cut at any chunk boundary fails: every chunk but the last is
// sealed as not the last.
func TestStreamCutAtChunkBoundaryFails(t *testing.T) {
	c := newTestCipher(t)
	for _, n := range []int{StreamChunk + 1, 2 * StreamChunk, 3*StreamChunk + 5, 4 * StreamChunk} {
		plain := make([]byte, n)
		sealed := seal(t, c, plain, nil)
		for keep := streamHeader; keep < len(sealed); keep += sealedChunk {
			if got, err := open(c, sealed[:keep]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("a %d-byte stream cut to its first %d chunks: %d bytes, %v; want ErrCorrupt", n, (keep-streamHeader)/sealedChunk, len(got), err)
			}
		}
	}
}

// A stream of another DEK, or not sealed at all, is told apart.
func TestStreamWrongKeyOrPlain(t *testing.T) {
	a, b := newTestCipher(t), newTestCipher(t)
	sealed := seal(t, a, []byte("hello"), nil)
	if _, err := open(b, sealed); !errors.Is(err, ErrWrongKey) {
		t.Errorf("another DEK: %v; want ErrWrongKey", err)
	}
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("plaintext snapshot "), 100)} {
		if _, err := open(a, plain); !errors.Is(err, ErrNotSealed) {
			t.Errorf("plaintext of %d bytes: %v; want ErrNotSealed", len(plain), err)
		}
	}
}

func TestPlainSizeRefusesImpossibleSizes(t *testing.T) {
	for _, n := range []int64{0, 1, streamHeader, streamHeader + chunkOverhead - 1} {
		if _, err := PlainSize(n); err == nil {
			t.Errorf("PlainSize(%d) = no error; no stream is that short", n)
		}
	}
}

// Records: round trip for any data and associated data; a flipped bit, a
// different associated data or another DEK fail.
func TestRecords(t *testing.T) {
	a, b := newTestCipher(t), newTestCipher(t)
	rapid.Check(t, func(t *rapid.T) {
		plain := rapid.SliceOfN(rapid.Byte(), 0, 2000).Draw(t, "plain")
		ad := rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "ad")
		sealed := a.Seal(nil, plain, ad)
		if len(sealed) != len(plain)+a.Overhead() {
			t.Fatalf("sealed %d bytes into %d; Overhead says %d", len(plain), len(sealed), a.Overhead())
		}
		got, err := a.Open(sealed, ad)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open = %x, %v; want %x", got, err, plain)
		}
		bit := rapid.IntRange(0, len(sealed)*8-1).Draw(t, "bit")
		bad := append([]byte(nil), sealed...)
		bad[bit/8] ^= 1 << (bit % 8)
		if _, err := a.Open(bad, ad); err == nil || !errdefs.Is(err, errdefs.ErrFailedPrecond) {
			t.Fatalf("bit %d flipped: %v; want a failed-precondition error", bit, err)
		}
		if _, err := a.Open(sealed, append(ad, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("other associated data: %v; want ErrCorrupt", err)
		}
		if _, err := b.Open(sealed, ad); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("another DEK: %v; want ErrWrongKey", err)
		}
		if _, err := a.Open(sealed[:rapid.IntRange(0, len(sealed)-1).Draw(t, "keep")], ad); err == nil {
			t.Fatalf("a truncated record opened")
		}
	})
}

func TestNewCipherRefusesBadKeys(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewCipher(make([]byte, n)); !errdefs.Is(err, errdefs.ErrInvalid) {
			t.Errorf("NewCipher(%d bytes) = %v; want ErrInvalid", n, err)
		}
	}
}

// Sealing the same plaintext twice gives different bytes (random nonces,
// per-stream keys).
func TestSealsDiffer(t *testing.T) {
	c := newTestCipher(t)
	p := []byte("same")
	if bytes.Equal(c.Seal(nil, p, nil), c.Seal(nil, p, nil)) {
		t.Error("two records of the same plaintext are equal")
	}
	if bytes.Equal(seal(t, c, p, nil), seal(t, c, p, nil)) {
		t.Error("two streams of the same plaintext are equal")
	}
}
