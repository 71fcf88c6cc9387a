package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/defaults"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func newSwarmCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "swarm", Short: "Manage cluster membership"}
	cmd.AddCommand(newSwarmInitCmd(g), newSwarmJoinCmd(g), newSwarmLeaveCmd(g), newJoinTokenCmd(g), newSwarmUpdateCmd(g),
		newUnlockKeyCmd(g), newSwarmUnlockCmd(g))
	return cmd
}

type swarmInitFlags struct {
	advertise  string
	history    int64
	certExpiry time.Duration
	pools      []string
	poolMask   uint32
	autolock   bool
}

func newSwarmInitCmd(g *globals) *cobra.Command {
	f := &swarmInitFlags{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Start a new cluster with this node as its first manager",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.swarm()
			if err != nil {
				return err
			}
			defer done()
			req := &shoalv1.InitRequest{AdvertiseAddr: f.advertise, TaskHistoryLimit: f.history, DefaultAddrPools: f.pools, SubnetSize: f.poolMask, Autolock: f.autolock}
			if f.certExpiry > 0 {
				req.CertExpiry = durationpb.New(f.certExpiry)
			}
			resp, err := c.Init(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Swarm initialized: current node (%s) is now a manager.\n\n", resp.GetNodeId())
			fmt.Fprintf(g.out, "To add a worker to this swarm, run the following command:\n\n    shoal swarm join --token %s %s\n\n", resp.GetWorkerToken(), resp.GetAddr())
			fmt.Fprint(g.out, "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n")
			printUnlockCommand(g.out, resp.GetUnlockKey())
			return nil
		},
	}
	cmd.Flags().StringVar(&f.advertise, "advertise-addr", "", "address other nodes use to reach this manager (HOST[:PORT])")
	cmd.Flags().Int64Var(&f.history, "task-history-limit", 5, "finished tasks kept per slot")
	cmd.Flags().DurationVar(&f.certExpiry, "cert-expiry", 90*24*time.Hour, "validity of node certificates")
	cmd.Flags().StringArrayVar(&f.pools, "default-addr-pool", nil, "CIDR that network subnets are carved from (repeatable; default 10.0.0.0/8)")
	cmd.Flags().Uint32Var(&f.poolMask, "default-addr-pool-mask-length", 24, "prefix length of the subnets carved from the pools")
	cmd.Flags().BoolVar(&f.autolock, "autolock", false, "enable manager autolocking (requiring an unlock key to start a stopped manager)")
	return cmd
}

type swarmJoinFlags struct {
	token, advertise string
}

func newSwarmJoinCmd(g *globals) *cobra.Command {
	f := &swarmJoinFlags{}
	cmd := &cobra.Command{
		Use:   "join --token TOKEN HOST:PORT",
		Short: "Join a cluster as a worker or a manager, as the token says",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.token == "" {
				return fmt.Errorf("--token is required: get one with `shoal swarm join-token worker|manager` on a manager")
			}
			c, done, err := g.swarm()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Join(cmd.Context(), &shoalv1.JoinRequest{Token: f.token, RemoteAddr: args[0], AdvertiseAddr: f.advertise})
			if err != nil {
				return err
			}
			if resp.GetManager() {
				fmt.Fprintln(g.out, "This node joined a swarm as a manager.")
			} else {
				fmt.Fprintln(g.out, "This node joined a swarm as a worker.")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.token, "token", "", "join token")
	cmd.Flags().StringVar(&f.advertise, "advertise-addr", "", "address other nodes use to reach this node (HOST[:PORT])")
	return cmd
}

func newSwarmLeaveCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Leave the cluster",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.swarm()
			if err != nil {
				return err
			}
			defer done()
			if _, err := c.Leave(cmd.Context(), &shoalv1.LeaveRequest{Force: force}); err != nil {
				return err
			}
			fmt.Fprintln(g.out, "Node left the swarm.")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "leave even as a manager")
	return cmd
}

// quietRotateFlags are the flags of join-token and unlock-key:
// docker's -q and --rotate.
type quietRotateFlags struct {
	quiet, rotate bool
}

func (f *quietRotateFlags) register(fs *pflag.FlagSet, quietHelp, rotateHelp string) {
	fs.BoolVarP(&f.quiet, "quiet", "q", false, quietHelp)
	fs.BoolVar(&f.rotate, "rotate", false, rotateHelp)
}

// rotateCluster sends req, a rotation, against cluster cur's version,
// and says "Successfully rotated WHAT." unless -q; it returns the
// cluster as updated.
func (f *quietRotateFlags) rotateCluster(ctx context.Context, c shoalv1.ControlServiceClient, out io.Writer, cur *shoalv1.Cluster,
	req *shoalv1.UpdateClusterRequest, what string) (*shoalv1.Cluster, error) {
	req.Version = cur.GetMeta().GetVersion()
	resp, err := c.UpdateCluster(ctx, req)
	if err != nil {
		return nil, err
	}
	if !f.quiet {
		fmt.Fprintf(out, "Successfully rotated %s.\n\n", what)
	}
	return resp.GetCluster(), nil
}

func newJoinTokenCmd(g *globals) *cobra.Command {
	f := &quietRotateFlags{}
	cmd := &cobra.Command{
		Use:   "join-token [-q] [--rotate] worker|manager",
		Short: "Print or rotate a join token",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role := args[0]
			if role != "worker" && role != "manager" {
				return fmt.Errorf("unknown role %q: use worker or manager", role)
			}
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			cl, err := c.GetCluster(ctx, &shoalv1.GetClusterRequest{})
			if err != nil {
				return err
			}
			cluster := cl.GetCluster()
			if f.rotate {
				req := &shoalv1.UpdateClusterRequest{RotateWorkerToken: role == "worker", RotateManagerToken: role == "manager"}
				if cluster, err = f.rotateCluster(ctx, c, g.out, cluster, req, role+" join token"); err != nil {
					return err
				}
			}
			tok := cluster.GetJoinTokens().GetWorker()
			if role == "manager" {
				tok = cluster.GetJoinTokens().GetManager()
			}
			if f.quiet {
				fmt.Fprintln(g.out, tok)
				return nil
			}
			addr := "MANAGER_ADDR:" + defaults.APIPort
			if nodes, err := c.ListNodes(ctx, &shoalv1.ListNodesRequest{}); err == nil {
				for _, n := range nodes.GetNodes() {
					if n.GetManagerStatus().GetLeader() {
						addr = n.GetManagerStatus().GetAddr()
					}
				}
			}
			fmt.Fprintf(g.out, "To add a %s to this swarm, run the following command:\n\n    shoal swarm join --token %s %s\n\n", role, tok, addr)
			return nil
		},
	}
	f.register(cmd.Flags(), "print the token only", "replace the token; the old one stops working")
	return cmd
}

type swarmUpdateFlags struct {
	history    int64
	certExpiry time.Duration
	autolock   bool
}

func newSwarmUpdateCmd(g *globals) *cobra.Command {
	f := &swarmUpdateFlags{}
	cmd := &cobra.Command{
		Use:   "update [--task-history-limit N] [--cert-expiry D] [--autolock=true|false]",
		Short: "Change cluster settings",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.control()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			cur, err := c.GetCluster(ctx, &shoalv1.GetClusterRequest{})
			if err != nil {
				return err
			}
			spec := proto.Clone(cur.GetCluster().GetSpec()).(*shoalv1.ClusterSpec)
			if cmd.Flags().Changed("task-history-limit") {
				spec.TaskHistoryLimit = f.history
			}
			if cmd.Flags().Changed("cert-expiry") {
				spec.NodeCertExpiry = durationpb.New(f.certExpiry)
			}
			wasLocked := spec.GetEncryption().GetAutoLockManagers()
			if cmd.Flags().Changed("autolock") {
				spec.Encryption = &shoalv1.EncryptionConfig{AutoLockManagers: f.autolock}
			}
			if _, err := c.UpdateCluster(ctx, &shoalv1.UpdateClusterRequest{Version: cur.GetCluster().GetMeta().GetVersion(), Spec: spec}); err != nil {
				return err
			}
			fmt.Fprintln(g.out, "Swarm updated.")
			if spec.GetEncryption().GetAutoLockManagers() && !wasLocked {
				key, err := c.GetUnlockKey(ctx, &shoalv1.GetUnlockKeyRequest{})
				if err != nil {
					return fmt.Errorf("could not fetch unlock key: %w", err)
				}
				printUnlockCommand(g.out, key.GetUnlockKey())
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&f.history, "task-history-limit", 5, "finished tasks kept per slot")
	cmd.Flags().DurationVar(&f.certExpiry, "cert-expiry", 90*24*time.Hour, "validity of node certificates")
	cmd.Flags().BoolVar(&f.autolock, "autolock", false, "change manager autolocking setting (true|false)")
	return cmd
}
