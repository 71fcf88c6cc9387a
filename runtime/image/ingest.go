package image

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// ingest stores an image's layers from sources (jobs at a time), then
// records the image with its blobs and names, and reports the image done,
// or up to date when it and its names were recorded already. The layers
// it unpacks together may write at most the store's MaxImageSize. If
// anything fails, the layers this call stored and no image needs are
// removed again, and no image is recorded.
func (s *Store) ingest(ctx context.Context, rec *imageRecord, sources []layerSource, names []string, blobs map[string][]byte, jobs int, rep *reporter) (*Image, error) {
	release := s.hold(rec.Layers)
	defer release()

	var mu sync.Mutex
	var made []string
	b := newBudget(s.maxImageSize, "the image")
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	seen := map[string]bool{}
	for _, src := range sources {
		if seen[src.diffID] {
			continue // the same layer twice in one image
		}
		seen[src.diffID] = true
		g.Go(func() error {
			ok, err := s.ensureLayer(gctx, src, rep, b)
			if ok {
				mu.Lock()
				made = append(made, src.diffID)
				mu.Unlock()
			}
			return err
		})
	}
	err := g.Wait()
	if err == nil {
		rec.Size = s.layersSize(rec.Layers)
		var img *Image
		var changed bool
		if img, changed, err = s.commit(rec, names, blobs); err == nil {
			status := StatusDone
			if !changed {
				status = StatusUpToDate
			}
			rep.report(Progress{Status: status, Current: rec.Size, Total: rec.Size})
			return img, nil
		}
	}
	release()
	_, _ = s.collectLayers(made)
	return nil, err
}

func (s *Store) layersSize(diffIDs []string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	seen := map[string]bool{}
	for _, d := range diffIDs {
		if rec, ok := s.layers[d]; ok && !seen[d] {
			seen[d] = true
			n += rec.Size
		}
	}
	return n
}
