// Package storetest helps tests of the store's users: a proposer that
// applies batches to a store at once, as Raft would after committing them.
package storetest

import (
	"context"
	"sync"

	"github.com/shoal-run/shoal/manager/store"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Direct applies each batch to Store at the next index, as Raft would
// after committing it; a batch the store refuses (a version that moved, a
// name taken) fails as it would through Raft.
type Direct struct {
	Store *store.Store
	mu    sync.Mutex
	idx   uint64
}

// Propose applies b and returns its index.
func (d *Direct) Propose(_ context.Context, b *shoalv1.StoreBatch) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.idx++
	return d.idx, d.Store.Apply(b, d.idx)
}
