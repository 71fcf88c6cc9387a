// Command registry runs the test registry of package testimage as a process
// of its own, for daemons that cannot reach a registry inside the test
// process (other network namespaces):
//
//	registry -listen 127.0.0.1:5000 -push-whoami 1
//
// With -push-whoami TAG it first builds the whoami image with that tag and
// pushes it as whoami:TAG. Once it serves, it prints one line to stdout,
// "READY <addr> <ref>" (just "READY <addr>" without -push-whoami), and
// serves until SIGTERM or SIGINT, then exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-run/shoal/tests/testimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

type options struct {
	listen     string
	pushWhoami string
	randomMB   int
	blobDir    string
	verbose    bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:5000", "listen address (port 0 picks a free one)")
	fs.StringVar(&o.pushWhoami, "push-whoami", "", "build the whoami image with this tag and push it as whoami:TAG")
	fs.IntVar(&o.randomMB, "random-mb", 0, "with -push-whoami, add a layer of this many MiB of random bytes")
	fs.StringVar(&o.blobDir, "blob-dir", "", "keep blobs in this directory instead of memory")
	fs.BoolVar(&o.verbose, "v", false, "log every request to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	ropts := testimage.RegistryOptions{Addr: o.listen, BlobDir: o.blobDir}
	if o.verbose {
		ropts.Log = stderr
	}
	reg, err := testimage.ListenRegistry(ropts)
	if err != nil {
		return err
	}
	defer reg.Close()

	ready := "READY " + reg.Addr()
	if o.pushWhoami != "" {
		b, err := testimage.Build("", testimage.Options{Tag: o.pushWhoami, RandomMB: o.randomMB})
		if err != nil {
			return err
		}
		ref, err := reg.PushContext(ctx, b.Image, "whoami:"+o.pushWhoami)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "registry: pushed %s@%s (%d bytes)\n", ref, b.Digest, b.Size)
		ready += " " + ref
	}
	fmt.Fprintln(stdout, ready)

	<-ctx.Done()
	return reg.Close()
}
