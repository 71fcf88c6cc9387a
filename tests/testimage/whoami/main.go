// Command whoami is the workload of Shoal's tests, in the spirit of Traefik's
// whoami used in Swarm demos: a small static program (standard library
// only) packed into the test image by package testimage. It runs as PID 1
// in a container, so every mode is a plain process with no shell around it.
//
// The first argument picks a mode; with none it serves HTTP on port 80
// (WHOAMI_PORT or PORT set another default):
//
//	serve [-port 80] [-name NAME]  HTTP server, see serve.go
//	exit N        exit at once with code N
//	sleep D       sleep D (a Go duration, or seconds) then exit 0
//	crashloop     exit 1 after 100ms (restart back-off tests)
//	echo ARGS...  print ARGS to stdout
//	stderr TEXT   print TEXT to stderr
//	ids           print uid, gid, groups, euid, egid, hostname, pid
//	caps          print the CapEff and NoNewPrivs lines of /proc/self/status
//	alloc MB      allocate and touch MB MiB, then wait for SIGTERM
//	fork N        start N children (`whoami sleep 10s`), print how many started
//	write PATH    create PATH; print "ok", or "error: ..." and exit 1
//	logspam N     write N lines of 100 bytes to stdout
//	lograte N     write N lines a second to stdout, numbered, for ever
//	hang          ignore SIGTERM and SIGINT and never exit (stop timeouts)
//	load URL...   HTTP client counting ok and failed requests, see load.go
//
// Output of ids and caps is one "key=value" or /proc line per line so tests
// can parse it. Unknown modes print the usage and exit 2.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: whoami [mode [args]]
modes: serve [-port N] [-name NAME] | exit N | sleep D | crashloop | echo ARGS... |
       stderr TEXT | ids | caps | alloc MB | fork N | write PATH | logspam N | lograte N | hang |
       load [-every D] [-timeout D] [-out FILE] URL...`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes one mode and returns the process exit code.
func run(args []string) int {
	if len(args) == 0 {
		return serve(nil)
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "serve":
		return serve(rest)
	case "exit":
		return exitMode(rest)
	case "sleep":
		return sleepMode(rest)
	case "crashloop":
		return crashloop()
	case "echo":
		return echo(rest)
	case "stderr":
		return stderrMode(rest)
	case "ids":
		return ids()
	case "caps":
		return caps()
	case "alloc":
		return alloc(rest)
	case "fork":
		return fork(rest)
	case "write":
		return write(rest)
	case "logspam":
		return logspam(rest)
	case "lograte":
		return lograte(rest)
	case "hang":
		return hang()
	case "load":
		return load(rest)
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		return 0
	}
	// Flags without a mode ("whoami -port 8080") mean serve.
	if len(mode) > 0 && mode[0] == '-' {
		return serve(args)
	}
	fmt.Fprintf(os.Stderr, "whoami: unknown mode %q\n%s\n", mode, usage)
	return 2
}
