package cli

import (
	"github.com/spf13/pflag"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// containerFlags are the service flags of the container spec beyond the
// basic ones: mounts, and the rest of docker's container surface.
type containerFlags struct {
	mounts []string // --mount (create)
}

func (f *containerFlags) register(fs *pflag.FlagSet, create bool) {}

// apply sets the container spec's fields from the flags given (all of
// them on create).
func (f *containerFlags) apply(fs *pflag.FlagSet, t *shoalv1.TaskSpec, create bool) error {
	c := t.Container
	if create {
		ms, err := parseMounts("--mount", f.mounts, parseMount)
		if err != nil {
			return err
		}
		c.Mounts = ms
	}
	return nil
}
