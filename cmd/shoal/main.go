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
	if code, ok := shim.Dispatch(os.Args); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !cli.Silent(err) {
			fmt.Fprintln(os.Stderr, cli.Message(err))
		}
		os.Exit(cli.ExitCode(err))
	}
}
