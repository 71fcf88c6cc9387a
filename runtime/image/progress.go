package image

import "sync"

// Progress is one step of a pull or load, for a whole image (Layer empty)
// or one of its layers.
type Progress struct {
	Ref     string // the reference being pulled, or the archive's image
	Layer   string // the layer's blob digest (its diffID when loading without one)
	Status  string // one of the Status constants
	Current int64  // bytes read so far
	Total   int64  // bytes expected; 0 when unknown
}

// Progress statuses.
const (
	StatusResolving   = "resolving"   // looking up the manifest
	StatusReading     = "reading"     // reading an archive being loaded (Current)
	StatusWaiting     = "waiting"     // another pull is fetching this layer
	StatusDownloading = "downloading" // reading and unpacking (Current/Total)
	StatusVerifying   = "verifying"   // checking digests before storing
	StatusExtracting  = "extracting"  // unpacking from a local archive
	StatusExists      = "exists"      // already stored
	StatusDone        = "done"        // stored
	// StatusUpToDate ends a pull or load (Layer empty) whose image was
	// stored under all its names already: nothing changed.
	StatusUpToDate = "up to date"
)

// progressEvery is how many bytes pass between two byte-count reports.
const progressEvery = 1 << 20

// reporter serializes calls to a caller's progress callback, which may
// come from several layer goroutines.
type reporter struct {
	mu  sync.Mutex
	fn  func(Progress)
	ref string
}

func newReporter(ref string, fn func(Progress)) *reporter { return &reporter{fn: fn, ref: ref} }

func (r *reporter) report(p Progress) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.Ref == "" {
		p.Ref = r.ref
	}
	r.fn(p)
}

// bytes returns a function reporting byte counts of one layer, at most
// once per progressEvery bytes.
func (r *reporter) bytes(layer, status string, total int64) func(int64) {
	if r == nil || r.fn == nil {
		return nil
	}
	var last int64
	return func(n int64) {
		if n-last >= progressEvery || (total > 0 && n == total) {
			last = n
			r.report(Progress{Layer: layer, Status: status, Current: n, Total: total})
		}
	}
}
