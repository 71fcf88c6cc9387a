package container

import (
	"fmt"

	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// containerMounts turns a spec's mounts into what the init makes, in
// order; st.Mounts records them as made.
func (r *Runtime) containerMounts(c *ctr, spec Spec, img *Image) ([]shim.Mount, error) {
	var out []shim.Mount
	for _, m := range spec.Mounts {
		var (
			sm  shim.Mount
			err error
		)
		switch m.Type {
		case MountBind:
			sm, err = bindMount(m)
		case MountTmpfs:
			sm, err = tmpfsMount(m)
		case MountVolume:
			sm, m, err = r.volumeMount(c, m, img)
		default:
			err = fmt.Errorf("mount type %q: use bind, volume or tmpfs: %w", m.Type, errdefs.ErrInvalid)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sm)
		c.state.Mounts = append(c.state.Mounts, m)
	}
	return out, nil
}

func bindMount(m Mount) (shim.Mount, error) {
	return shim.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}, nil
}

func tmpfsMount(m Mount) (shim.Mount, error) {
	return shim.Mount{}, fmt.Errorf("tmpfs mounts are not built yet: %w", errdefs.ErrFailedPrecond)
}
