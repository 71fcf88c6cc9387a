package keys

import (
	"bytes"
	"io"
	"testing"
)

// The cipher's own cost, without a disk:
//
//	go test -run '^$' -bench . -benchmem ./internal/keys
//
// Record seals and opens one 240-byte log entry; Stream seals and opens
// a 5 MiB snapshot (the size of a store of 10,000 tasks).

func BenchmarkRecord(b *testing.B) {
	c := newTestCipher(b)
	plain, ad := make([]byte, 240), make([]byte, 17)
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		buf := make([]byte, 0, len(plain)+c.Overhead())
		for b.Loop() {
			buf = c.Seal(buf[:0], plain, ad)
		}
	})
	b.Run("open", func(b *testing.B) {
		sealed := c.Seal(nil, plain, ad)
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			if _, err := c.Open(sealed, ad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkStream(b *testing.B) {
	c := newTestCipher(b)
	plain := make([]byte, 5<<20)
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			w, err := c.NewWriter(io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(plain); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		sealed := seal(b, c, plain, nil)
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			r, err := c.NewReader(bytes.NewReader(sealed))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
