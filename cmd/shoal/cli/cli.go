// Package cli is the shoal command line: each subcommand lives in its own
// file with its flags in a struct. It talks to the local daemon's socket,
// or to a manager over mutual TLS with -H tcp://HOST:PORT.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-run/shoal/internal/defaults"
	"github.com/shoal-run/shoal/internal/keys"
	"github.com/shoal-run/shoal/internal/tlsutil"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// recvLimit lets answers past gRPC's 4 MiB default through (config ls
// returns every config's data).
var recvLimit = grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.MaxRecvMsgSize))

// DefaultSocket is where the daemon serves its local socket.
const DefaultSocket = defaults.Socket

// globals are the flags every command takes.
type globals struct {
	host    string
	certDir string
	out     io.Writer
	errOut  io.Writer
	in      io.Reader // standard input; nil is os.Stdin
}

func (g *globals) stdin() io.Reader {
	if g.in == nil {
		return os.Stdin
	}
	return g.in
}

// exitError carries a process exit code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Silent reports whether err only carries an exit code (a container's)
// and needs no message.
func Silent(err error) bool {
	var e exitError
	return errors.As(err, &e)
}

// ExitCode returns the process exit code for err.
func ExitCode(err error) int {
	var e exitError
	if errors.As(err, &e) {
		return e.code
	}
	var u usageError
	if errors.As(err, &u) {
		return u.code
	}
	return 1
}

// Run runs the command line args.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWithStdin(ctx, args, os.Stdin, stdout, stderr)
}

// runWithStdin is Run with its standard input given.
func runWithStdin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := &globals{out: stdout, errOut: stderr, in: stdin}
	root := &cobra.Command{
		Use:           "shoal",
		Short:         "Shoal: a clustered container runtime",
		SilenceUsage:  true,
		SilenceErrors: true,
		// The global flags are parsed before the command's, as docker's:
		// service create's --host (an /etc/hosts line) is not -H.
		TraverseChildren: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVarP(&g.host, "host", "H", os.Getenv("SHOAL_HOST"), "daemon to talk to: unix:///path or tcp://HOST:PORT (env SHOAL_HOST)")
	root.PersistentFlags().StringVar(&g.certDir, "cert-dir", envOr("SHOAL_CERT_PATH", defaults.CertDir), "directory with ca.crt, node.crt and node.key of a manager, for tcp:// hosts (env SHOAL_CERT_PATH)")
	root.AddCommand(newDaemonCmd(g), newSwarmCmd(g), newNodeCmd(g), newServiceCmd(g), newStackCmd(g), newNetworkCmd(g), newSecretCmd(g), newConfigCmd(g), newVolumeCmd(g), newEventsCmd(g), newVersionCmd(g),
		newDevCmd(g), newRunCmd(g), newPsCmd(g), newStopCmd(g), newKillCmd(g), newRmCmd(g), newLogsCmd(g), newImageCmd(g))
	strictUsage(root)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return cleanError(err)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// cleanError turns a gRPC status into its message.
func cleanError(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		msg := s.Message()
		if s.Code().String() == "Unavailable" && strings.Contains(msg, "connection error") {
			msg = "cannot reach the daemon: " + msg + " (is `shoal daemon` running? check -H / SHOAL_HOST)"
		}
		return errors.New(msg)
	}
	return err
}

// dial connects to the daemon or manager named by -H.
func (g *globals) dial() (*grpc.ClientConn, error) {
	host := g.host
	if host == "" {
		host = "unix://" + DefaultSocket
	}
	switch {
	case strings.HasPrefix(host, "unix://"):
		path := strings.TrimPrefix(host, "unix://")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("cannot reach the daemon at %s: %v; is `shoal daemon` running? (choose another with -H or SHOAL_HOST)", path, err)
		}
		return grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()), recvLimit)
	case strings.HasPrefix(host, "tcp://"):
		files := tlsutil.Files{Dir: g.certDir}
		id, err := files.Load()
		if errors.Is(err, keys.ErrLocked) {
			return nil, fmt.Errorf("the key in %s is sealed with the swarm's unlock key (autolock) and only its daemon can use it: run the command on that manager, through its local socket", g.certDir)
		}
		if err != nil {
			return nil, fmt.Errorf("tcp hosts need a manager certificate: %v (set --cert-dir or SHOAL_CERT_PATH to a directory with ca.crt, node.crt and node.key)", err)
		}
		cfg := id.ClientConfig()
		return grpc.NewClient(strings.TrimPrefix(host, "tcp://"), grpc.WithTransportCredentials(credentials.NewTLS(cfg)), recvLimit)
	}
	return nil, fmt.Errorf("host %q: use unix:///path or tcp://HOST:PORT", host)
}

// control returns a ControlService client.
func (g *globals) control() (shoalv1.ControlServiceClient, func(), error) {
	c, err := g.dial()
	if err != nil {
		return nil, nil, err
	}
	return shoalv1.NewControlServiceClient(c), func() { c.Close() }, nil
}

// swarm returns a SwarmService client on the local socket.
func (g *globals) swarm() (shoalv1.SwarmServiceClient, func(), error) {
	if strings.HasPrefix(g.host, "tcp://") {
		return nil, nil, errors.New("swarm init, join and leave act on the local daemon: use its unix socket, not a tcp:// host")
	}
	c, err := g.dial()
	if err != nil {
		return nil, nil, err
	}
	return shoalv1.NewSwarmServiceClient(c), func() { c.Close() }, nil
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.out, "shoal", version())
			return nil
		},
	}
}
