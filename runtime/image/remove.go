package image

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Remove removes ref. Given one of several names of an image, it removes
// only that name. Otherwise it removes the image, its blobs and the layers
// no other image uses. An image leased by a container is never removed,
// even with force; force only lets the last name of a leased image go
// (the image stays until the lease is released, then Prune removes it),
// and removes an image by ID together with all its names.
func (s *Store) Remove(ref string, force bool) error {
	s.mu.Lock()
	rec, byName, err := s.resolveLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	names := s.st.namesOf(rec.ID)
	leases := s.st.leasesOf(rec.ID)
	removeImage := false
	err = s.updateLocked(func(next *state) error {
		switch {
		case byName != "" && len(names) > 1:
			delete(next.Names, byName)
		case len(leases) > 0 && byName != "" && force:
			delete(next.Names, byName)
		case len(leases) > 0:
			return inUseError(ref, leases)
		case byName == "" && len(names) > 1 && !force:
			sort.Strings(names)
			return fmt.Errorf("image %s has several names (%s); remove them one by one, or use force to remove the image with all of them: %w",
				shortID(rec.ID), strings.Join(names, ", "), errdefs.ErrFailedPrecond)
		default:
			next.removeImage(rec.ID)
			removeImage = true
		}
		return nil
	})
	if err == nil && removeImage {
		s.removeBlob(rec.ID)
		s.removeBlob(rec.Digest)
	}
	s.mu.Unlock()
	if err != nil || !removeImage {
		return err
	}
	_, err = s.collectLayers(rec.Layers)
	return err
}

func inUseError(ref string, owners []string) error {
	sort.Strings(owners)
	who := "container " + owners[0]
	if len(owners) > 1 {
		who = fmt.Sprintf("containers %s and %d more", owners[0], len(owners)-1)
	}
	return fmt.Errorf("image %q is in use by %s; remove the container first: %w", ref, who, errdefs.ErrFailedPrecond)
}

func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// Prune removes dangling images (without names and leases) and every
// layer no image references, returning the IDs of the images removed and
// the bytes freed.
func (s *Store) Prune() (removedImages []string, freedBytes int64, err error) {
	s.mu.Lock()
	var removed []*imageRecord
	err = s.updateLocked(func(next *state) error {
		for id, rec := range s.st.Images {
			if len(s.st.namesOf(id)) == 0 && len(s.st.leasesOf(id)) == 0 {
				next.removeImage(id)
				removed = append(removed, rec)
			}
		}
		return nil
	})
	if err != nil {
		s.mu.Unlock()
		return nil, 0, err
	}
	for _, rec := range removed {
		removedImages = append(removedImages, rec.ID)
		freedBytes += s.removeBlob(rec.ID) + s.removeBlob(rec.Digest)
	}
	candidates := make([]string, 0, len(s.layers))
	for d := range s.layers {
		candidates = append(candidates, d)
	}
	s.mu.Unlock()
	sort.Strings(removedImages)
	sort.Strings(candidates)
	freed, err := s.collectLayers(candidates)
	return removedImages, freedBytes + freed, err
}
