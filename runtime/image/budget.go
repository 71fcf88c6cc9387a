package image

import (
	"fmt"
	"sync/atomic"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// DefaultMaxImageSize is Options.MaxImageSize when none is given.
const DefaultMaxImageSize = 32 << 30

// entryCost is what every tar entry counts against a budget besides its
// data: a header block, standing for the inode and directory entry it
// makes (a stream of empty files compresses to nearly nothing).
const entryCost = 512

// budget bounds the bytes one pull or load writes, across all the layers
// it unpacks at once. It counts what would be written before writing it:
// a file counts its size as its header declares it, holes of sparse files
// included. A nil budget or one without a limit allows everything.
type budget struct {
	limit int64  // bytes; <= 0 for no limit
	what  string // what is bounded, for the error: "the image", "the archive"
	used  atomic.Int64
}

func newBudget(limit int64, what string) *budget { return &budget{limit: limit, what: what} }

// take counts n more bytes, failing once the total passes the limit.
func (b *budget) take(n int64) error {
	if b == nil || b.limit <= 0 {
		return nil
	}
	if used := b.used.Add(n); used > b.limit || used < 0 {
		return fmt.Errorf("%s unpacks to more than %d bytes, the limit on an image's unpacked size; "+
			"raise it with `shoal daemon --max-image-size` (0 for no limit): %w", b.what, b.limit, errdefs.ErrFailedPrecond)
	}
	return nil
}

// left is how many more bytes take allows, or -1 without a limit.
func (b *budget) left() int64 {
	if b == nil || b.limit <= 0 {
		return -1
	}
	return max(b.limit-b.used.Load(), 0)
}
