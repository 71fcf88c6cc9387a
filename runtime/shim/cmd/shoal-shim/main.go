// Command shoal-shim is the shim and container init alone, without the
// rest of Shoal, so that each container's supervisor stays small. The
// shoal binary can play both roles itself too (see cmd/shoal).
package main

import (
	"fmt"
	"os"

	"github.com/shoal-run/shoal/runtime/shim"
)

func main() {
	if code, ok := shim.Dispatch(os.Args); ok {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "shoal-shim is started by the shoal daemon, not by hand")
	os.Exit(2)
}
