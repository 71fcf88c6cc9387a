package controlapi

import (
	"context"
	"fmt"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// nextUnlockKey sets next's unlock key for its (already updated) spec, as
// swarmkit does: autolock on and no key yet, or a rotation asked for,
// makes a new key; autolock off drops it. Rotating while autolock stays
// off is refused (docker's CLI refuses it before asking).
func (s *Server) nextUnlockKey(next *shoalv1.Cluster, rotate bool) error {
	if !next.GetSpec().GetEncryption().GetAutoLockManagers() {
		if rotate {
			return fmt.Errorf("cannot rotate because autolock is not turned on (shoal swarm update --autolock=true turns it on): %w", errdefs.ErrFailedPrecond)
		}
		next.UnlockKey = ""
		return nil
	}
	if next.GetUnlockKey() != "" && !rotate {
		return nil
	}
	key, err := s.NewUnlockKey()
	if err != nil {
		return fmt.Errorf("make an unlock key: %w", err)
	}
	next.UnlockKey = key
	return nil
}

// GetUnlockKey returns the managers' current unlock key; it is empty
// while autolock is off.
func (s *Server) GetUnlockKey(ctx context.Context, _ *shoalv1.GetUnlockKeyRequest) (*shoalv1.GetUnlockKeyResponse, error) {
	c, err := s.cluster()
	if err != nil {
		return nil, err
	}
	return &shoalv1.GetUnlockKeyResponse{UnlockKey: c.GetUnlockKey(), Version: c.GetMeta().GetVersion()}, nil
}
