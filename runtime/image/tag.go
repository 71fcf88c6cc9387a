package image

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Tag names the image source resolves to (a reference, an image ID or a
// unique prefix of one) also target, a NAME[:TAG] reference, moving
// target from any image that had it, as `docker tag` does. It returns the
// image with its names.
func (s *Store) Tag(source, target string) (*Image, error) {
	n, r, err := parseRef(target)
	if err != nil {
		return nil, err
	}
	if _, ok := r.(name.Digest); ok {
		return nil, fmt.Errorf("refusing to create a tag with a digest reference %q: give NAME[:TAG]: %w", target, errdefs.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, _, err := s.resolveLocked(source)
	if err != nil {
		return nil, err
	}
	if s.st.Names[n] != rec.ID {
		err := s.updateLocked(func(next *state) error {
			next.Names[n] = rec.ID
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rec.image(s.st.namesOf(rec.ID)), nil
}
