// Package testimage makes the container images Shoal's tests run, and the
// registry they pull them from; there is no outside registry.
//
// The workload is whoami (sub-directory whoami/), a small static Go program
// in the spirit of Traefik's whoami: an HTTP server that tells who answered,
// plus one-shot modes for exit codes, users, capabilities, memory and pids
// limits, read-only root filesystems and log volume. Build compiles it
// (cached on disk by the hash of its sources) and packs a deterministic OCI
// image of two layers:
//
//	base  /bin/busybox (the host's busybox-static) and applet links,
//	      /etc/passwd and /etc/group (root, nobody, app 1000, extra 2000),
//	      /etc/hostname, /tmp (1777), /home/app (owned by 1000)
//	app   /whoami, /app/version (the tag) and Options.Files
//
// and, for pull benchmarks, an optional third layer of incompressible
// bytes. The same inputs give the same digest. Built writes the image as an
// OCI layout, a tar of one, or a `docker save` archive.
//
// StartRegistry serves go-containerregistry's registry on a free loopback
// port; Push puts an image there over plain HTTP. Command cmd/registry runs
// the same registry as its own process (for daemons in other network
// namespaces) and prints "READY <addr> <ref>".
//
// A test:
//
//	img := testimage.Serve(t, testimage.Options{Tag: "1"})
//	// img.Ref is "127.0.0.1:PORT/whoami:1", img.Image.Digest its digest;
//	// the registry closes at cleanup.
//
// The package imports no test framework: programs such as the demo and the
// benchmarks use Build and StartRegistry, which return errors. It needs the
// go toolchain on PATH and /bin/busybox from Debian's busybox-static; it
// touches nothing but its cache directory (os.TempDir()/shoal-testimage-cache)
// and the paths it is given.
package testimage
