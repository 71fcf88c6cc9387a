package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-run/shoal/daemon"
	"github.com/shoal-run/shoal/internal/logging"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

type devFlags struct {
	listen, logLevel, cgroupParent string
	keep                           bool
}

func newDevCmd(g *globals) *cobra.Command {
	f := &devFlags{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run an all-in-one single-node cluster in the foreground, with a throw-away data dir",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "shoal-dev-")
			if err != nil {
				return err
			}
			if !f.keep {
				defer os.RemoveAll(dir)
			}
			log, err := logging.New(f.logLevel)
			if err != nil {
				return err
			}
			sock := filepath.Join(dir, "shoal.sock")
			parent := f.cgroupParent
			if parent == "" {
				parent = "shoal-dev-" + filepath.Base(dir)
			}
			// The daemon outlives Ctrl-C long enough to stop the tasks.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				errc <- daemon.Run(ctx, daemon.Config{DataDir: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"), Socket: sock, ListenAddr: f.listen,
					RaftAddr: portAfter(f.listen, 1), GossipAddr: portAfter(f.listen, 2), AdvertiseAddr: f.listen, Log: log, CgroupParent: parent, RemoveCgroupParent: true})
			}()
			conn, err := waitSocket(ctx, sock, errc)
			if err != nil {
				return err
			}
			defer conn.Close()
			sw := shoalv1.NewSwarmServiceClient(conn)
			if _, err := sw.Init(ctx, &shoalv1.InitRequest{AdvertiseAddr: f.listen}); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Shoal dev cluster running (one manager that is also a worker).\n\n"+
				"Point the CLI at it:\n\n    export SHOAL_HOST=unix://%s\n    shoal node ls\n    shoal service create --name web --replicas 3 IMAGE\n\n"+
				"Ctrl-C stops it, its containers and removes %s.\n", sock, dir)
			select {
			case <-cmd.Context().Done():
			case err := <-errc:
				return err
			}
			// Leaving stops this node's tasks and their containers; the
			// daemon waits for them before it returns.
			lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = sw.Leave(lctx, &shoalv1.LeaveRequest{Force: true})
			lcancel()
			cancel()
			err = <-errc
			return err
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen-addr", "127.0.0.1:4242", "gRPC address of the dev manager")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	cmd.Flags().BoolVar(&f.keep, "keep", false, "keep the data dir on exit")
	cmd.Flags().StringVar(&f.cgroupParent, "cgroup-parent", "", "cgroup parent of the cluster's containers (default shoal-dev-<data dir name>)")
	return cmd
}

// portAfter is listen with its port plus n: the dev node's Raft (n=1) and
// gossip (n=2) addresses.
func portAfter(listen string, n int) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	var p int
	fmt.Sscan(port, &p)
	return net.JoinHostPort(host, fmt.Sprint(p+n))
}

func waitSocket(ctx context.Context, sock string, errc <-chan error) (*grpc.ClientConn, error) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("the daemon stopped")
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, errors.New("the dev daemon did not start in time")
}
