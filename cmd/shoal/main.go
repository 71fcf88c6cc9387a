// Command shoal is the Shoal node daemon and its command-line client.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-run/shoal/cmd/shoal/cli"
	"github.com/shoal-run/shoal/runtime/shim"
)

func main() {
	// The shim and the container init are this binary re-executed; they
	// must not touch the CLI.
	if len(os.Args) == 3 {
		switch os.Args[1] {
		case shim.ShimArg:
			os.Exit(shim.Main(os.Args[2]))
		case shim.InitArg:
			os.Exit(shim.InitMain(os.Args[2]))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !cli.Silent(err) {
			fmt.Fprintln(os.Stderr, "Error:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}
