package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// `service rollback SERVICE` and `service update --rollback SERVICE`
// return a service to its previous spec under its rollback config: the
// manager swaps the specs (UpdateServiceRequest.rollback) and rolls the
// tasks back; the CLI waits for that as it waits for an update.

func newServiceRollbackCmd(g *globals) *cobra.Command {
	var detach, quiet bool
	cmd := &cobra.Command{
		Use:   "rollback [OPTIONS] SERVICE",
		Short: "Revert changes to a service's configuration",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.rollback(cmd.Context(), args[0], detach, quiet)
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "Exit immediately instead of waiting for the service to converge")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

// rollbackAlone refuses --rollback with flags that would change the spec,
// as docker does: a rollback restores the previous spec, nothing else.
// fs is the command's own flags (-H and the other global flags may be
// given).
func rollbackAlone(fs *pflag.FlagSet) error {
	other := false
	fs.VisitAll(func(f *pflag.Flag) {
		switch f.Name {
		case "rollback", "detach", "quiet":
		default:
			other = other || f.Changed
		}
	})
	if other {
		return errors.New("other flags may not be combined with --rollback")
	}
	return nil
}

// rollback asks the manager to roll service ref back, prints ref and,
// unless detached, shows the rollback's progress.
func (g *globals) rollback(ctx context.Context, ref string, detach, quiet bool) error {
	c, done, err := g.control()
	if err != nil {
		return err
	}
	defer done()
	cur, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: ref})
	if err != nil {
		return err
	}
	svc := cur.GetService()
	if _, err := c.UpdateService(ctx, &shoalv1.UpdateServiceRequest{
		ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: svc.GetSpec(), Rollback: true,
	}); err != nil {
		return err
	}
	fmt.Fprintln(g.out, ref)
	if detach {
		return nil
	}
	return g.waitConverged(ctx, c, ref, quiet, svc.GetUpdateStatus())
}
