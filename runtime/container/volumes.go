package container

import (
	"fmt"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// volumeMount gets the volume m names (creating it if need be) for c, and
// says how to mount it; the Mount returned is m as made.
func (r *Runtime) volumeMount(c *ctr, m Mount, img *Image) (shim.Mount, Mount, error) {
	return shim.Mount{}, m, fmt.Errorf("volume mounts are not built yet: %w", errdefs.ErrFailedPrecond)
}
