package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	// The image's VOLUMEs not covered by a mount get anonymous volumes.
	covered := map[string]bool{}
	for _, m := range spec.Mounts {
		covered[filepath.Clean(m.Target)] = true
	}
	for _, target := range img.Config.Volumes {
		if covered[filepath.Clean(target)] || !filepath.IsAbs(target) {
			continue
		}
		covered[filepath.Clean(target)] = true
		sm, m, err := r.volumeMount(c, Mount{Type: MountVolume, Target: filepath.Clean(target)}, img)
		if err != nil {
			return nil, err
		}
		out = append(out, sm)
		c.state.Mounts = append(c.state.Mounts, m)
	}
	return out, nil
}

func bindMount(m Mount) (shim.Mount, error) {
	if !filepath.IsAbs(m.Source) {
		return shim.Mount{}, fmt.Errorf("invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute: %w", m.Source, errdefs.ErrInvalid)
	}
	if _, err := os.Stat(m.Source); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return shim.Mount{}, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s: %w", m.Source, errdefs.ErrInvalid)
		}
		return shim.Mount{}, fmt.Errorf("invalid mount config for type \"bind\": %w", err)
	}
	switch m.Propagation {
	case "", "rprivate", "private", "rshared", "shared", "rslave", "slave":
	default:
		return shim.Mount{}, fmt.Errorf("invalid mount config for type \"bind\": invalid propagation %q: use rprivate, private, rshared, shared, rslave or slave: %w", m.Propagation, errdefs.ErrInvalid)
	}
	return shim.Mount{Kind: shim.KindBind, Source: filepath.Clean(m.Source), Target: m.Target, ReadOnly: m.ReadOnly, Propagation: m.Propagation}, nil
}

func tmpfsMount(m Mount) (shim.Mount, error) {
	if m.Source != "" {
		return shim.Mount{}, fmt.Errorf("invalid mount config for type \"tmpfs\": field Source must not be specified: %w", errdefs.ErrInvalid)
	}
	if m.TmpfsSize < 0 {
		return shim.Mount{}, fmt.Errorf("invalid mount config for type \"tmpfs\": size %d is negative: %w", m.TmpfsSize, errdefs.ErrInvalid)
	}
	return shim.Mount{Kind: shim.KindTmpfs, Target: m.Target, ReadOnly: m.ReadOnly, Data: tmpfsData(m.TmpfsSize, m.TmpfsMode)}, nil
}
