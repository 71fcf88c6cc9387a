package cli

import "github.com/spf13/pflag"

// imageFlags pin a service's image to a digest and carry registry
// credentials with it.
type imageFlags struct{}

func (f *imageFlags) register(fs *pflag.FlagSet, create bool) {}
