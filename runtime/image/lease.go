package image

import (
	"fmt"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// Lease records that container owner uses image imageID (an ID, or
// anything Get accepts), so that the image is not removed or pruned while
// the container exists. An owner holds one lease; leasing again moves it.
// Leases are persisted.
func (s *Store) Lease(owner, imageID string) error {
	if owner == "" {
		return fmt.Errorf("lease: owner (a container ID) is required: %w", errdefs.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, _, err := s.resolveLocked(imageID)
	if err != nil {
		return err
	}
	if s.st.Leases[owner] == rec.ID {
		return nil
	}
	// Leases are rebuilt from the containers on disk when the daemon
	// starts, so they need no sync: a container start pays no fsync.
	return s.update(func(next *state) error {
		next.Leases[owner] = rec.ID
		return nil
	}, false)
}

// Release drops owner's lease; releasing an owner without one is no error.
func (s *Store) Release(owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Leases[owner]; !ok {
		return nil
	}
	return s.update(func(next *state) error {
		delete(next.Leases, owner)
		return nil
	}, false)
}

// Leases returns the leases, owner to image ID, so that a restarted
// runtime can release those of containers that no longer exist.
func (s *Store) Leases() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.st.Leases))
	for o, id := range s.st.Leases {
		out[o] = id
	}
	return out
}
